//! The metrics registry: every metric of an open store gathered into one
//! [`MetricsSnapshot`] of named families (counters, gauges, histograms) with labels, named
//! after Prometheus conventions (base units, `_total` for counters, `_seconds`, `_bytes`).
//!
//! Latencies are kept in HDR histograms (1 us to 1 h, 3 significant digits); a snapshot
//! turns each into cumulative buckets for the exposition and into p50/p99 for the time
//! series.

use std::path::Path;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use redb::ReadableDatabase;
use serde::Serialize;

use crate::breaker::BreakerState;
use crate::commit::Shared;
use crate::query::QueryEngine;
use crate::state::read_applied_seq;

/// Bucket bounds of latency histograms, in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bucket bounds of the group size histogram.
pub const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

/// What a metric family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Only goes up (until the store reopens).
    Counter,
    /// A level.
    Gauge,
    /// A distribution.
    Histogram,
}

/// A histogram's buckets and summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistogramData {
    /// Cumulative counts: (upper bound, observations <= bound); `+Inf` is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations (from the histogram's mean: exact to its precision).
    pub sum: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// One labelled value of a family.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Label names and values.
    pub labels: Vec<(String, String)>,
    /// The value (a histogram's count for histograms).
    pub value: f64,
    /// The distribution, for histograms.
    pub histogram: Option<HistogramData>,
}

/// A named metric with its samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Family {
    /// Prometheus name, e.g. `tradestore_commit_duration_seconds`.
    pub name: String,
    /// One line of help.
    pub help: String,
    /// What it is.
    pub kind: Kind,
    /// Its samples.
    pub samples: Vec<Sample>,
}

/// Every metric of a store at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// When, ns since the Unix epoch.
    pub at_ns: u64,
    /// The families, in a fixed order.
    pub families: Vec<Family>,
}

impl MetricsSnapshot {
    /// The family with this name.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The value of an unlabelled metric (a histogram's count).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.family(name)?
            .samples
            .iter()
            .find(|s| s.labels.is_empty())
            .map(|s| s.value)
    }

    /// The distribution of an unlabelled histogram.
    pub fn histogram(&self, name: &str) -> Option<&HistogramData> {
        self.family(name)?
            .samples
            .iter()
            .find(|s| s.labels.is_empty())
            .and_then(|s| s.histogram.as_ref())
    }
}

/// Converts an HDR histogram into buckets; `scale` turns recorded units into the exported
/// unit (1e-6 for microseconds to seconds).
pub fn histogram_data(h: &Histogram<u64>, bounds: &[f64], scale: f64) -> HistogramData {
    let count = h.len();
    let buckets = bounds
        .iter()
        .map(|b| {
            let limit = (b / scale).floor() as u64;
            let n = if count == 0 || limit == 0 {
                0
            } else {
                h.count_between(0, limit)
            };
            (*b, n.min(count))
        })
        .collect();
    let q = |p: f64| {
        if count == 0 {
            0.0
        } else {
            h.value_at_quantile(p) as f64 * scale
        }
    };
    HistogramData {
        buckets,
        count,
        sum: h.mean() * count as f64 * scale,
        p50: q(0.5),
        p99: q(0.99),
        max: if count == 0 {
            0.0
        } else {
            h.max() as f64 * scale
        },
    }
}

struct Builder {
    families: Vec<Family>,
}

impl Builder {
    fn scalar(&mut self, name: &str, help: &str, kind: Kind, value: f64) {
        self.labelled(name, help, kind, vec![(Vec::new(), value)]);
    }

    fn labelled(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        values: Vec<(Vec<(String, String)>, f64)>,
    ) {
        self.families.push(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind,
            samples: values
                .into_iter()
                .map(|(labels, value)| Sample {
                    labels,
                    value,
                    histogram: None,
                })
                .collect(),
        });
    }

    fn histogram(
        &mut self,
        name: &str,
        help: &str,
        samples: Vec<(Vec<(String, String)>, HistogramData)>,
    ) {
        self.families.push(Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: Kind::Histogram,
            samples: samples
                .into_iter()
                .map(|(labels, h)| Sample {
                    labels,
                    value: h.count as f64,
                    histogram: Some(h),
                })
                .collect(),
        });
    }
}

/// Gathers every metric of the store in `dir`.
pub(crate) fn gather(shared: &Shared, queries: &QueryEngine, dir: &Path) -> MetricsSnapshot {
    let m = &shared.metrics;
    let mut b = Builder {
        families: Vec::new(),
    };
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
    let hist = m.histograms();
    let us = 1e-6;
    for (name, h) in &hist {
        match *name {
            "commit" => b.histogram(
                "tradestore_commit_duration_seconds",
                "Submit-to-durable-ack latency of write transactions.",
                vec![(Vec::new(), histogram_data(h, LATENCY_BUCKETS, us))],
            ),
            "fsync" => b.histogram(
                "tradestore_journal_fsync_duration_seconds",
                "Journal write plus fdatasync latency per commit group.",
                vec![(Vec::new(), histogram_data(h, LATENCY_BUCKETS, us))],
            ),
            "apply" => b.histogram(
                "tradestore_apply_duration_seconds",
                "Latency of one applier batch into redb.",
                vec![(Vec::new(), histogram_data(h, LATENCY_BUCKETS, us))],
            ),
            _ => b.histogram(
                "tradestore_commit_group_size",
                "Transactions per journal group (one fsync each).",
                vec![(Vec::new(), histogram_data(h, GROUP_BUCKETS, 1.0))],
            ),
        }
    }
    b.histogram(
        "tradestore_archive_duration_seconds",
        "Latency of archive runs (old trades moved into compressed segments).",
        vec![(
            Vec::new(),
            histogram_data(&m.archive_histogram(), LATENCY_BUCKETS, us),
        )],
    );
    b.histogram(
        "tradestore_backup_duration_seconds",
        "Duration of the online backups that succeeded.",
        vec![(
            Vec::new(),
            histogram_data(&m.backup_histogram(), LATENCY_BUCKETS, us),
        )],
    );
    b.scalar(
        "tradestore_backup_failures_total",
        "Online backups that failed.",
        Kind::Counter,
        count(&m.backup_failures),
    );
    let shapes = queries.shape_latencies();
    b.histogram(
        "tradestore_query_duration_seconds",
        "Query latency (plan and execute) per query shape.",
        shapes
            .iter()
            .map(|(shape, h)| {
                (
                    vec![("shape".to_owned(), shape.clone())],
                    histogram_data(h, LATENCY_BUCKETS, us),
                )
            })
            .collect(),
    );
    b.scalar(
        "tradestore_commits_total",
        "Committed write transactions.",
        Kind::Counter,
        count(&m.commits),
    );
    b.scalar(
        "tradestore_conflicts_total",
        "Commits refused because a concurrent transaction changed what they read.",
        Kind::Counter,
        count(&m.conflicts),
    );
    b.scalar(
        "tradestore_deadlocks_total",
        "Transactions chosen as deadlock victims.",
        Kind::Counter,
        count(&m.deadlocks),
    );
    b.scalar(
        "tradestore_retries_total",
        "Retries made by transact.",
        Kind::Counter,
        count(&m.retries),
    );
    b.scalar(
        "tradestore_archive_failures_total",
        "Archive runs that failed.",
        Kind::Counter,
        count(&m.archive_failures),
    );
    let segments = shared.archive.segments();
    b.scalar(
        "tradestore_archive_segments",
        "Archive segments the store lists.",
        Kind::Gauge,
        segments.len() as f64,
    );
    b.scalar(
        "tradestore_archived_trades",
        "Trades held in archive segments.",
        Kind::Gauge,
        segments.iter().map(|s| s.rows).sum::<u64>() as f64,
    );
    b.scalar(
        "tradestore_archive_bytes",
        "Bytes of the archive segment files.",
        Kind::Gauge,
        segments.iter().map(|s| s.file_bytes).sum::<u64>() as f64,
    );
    b.scalar(
        "tradestore_checkpoints_total",
        "Durable redb checkpoints made by the applier.",
        Kind::Counter,
        count(&m.checkpoints),
    );
    b.scalar(
        "tradestore_storage_errors_total",
        "Storage operations that failed (counted by the circuit breaker).",
        Kind::Counter,
        shared.breaker.failures_total() as f64,
    );
    if let Some(rows) = &shared.rows {
        let rc = rows.stats();
        b.scalar(
            "tradestore_row_cache_hits_total",
            "Point reads answered by the row cache.",
            Kind::Counter,
            rc.hits as f64,
        );
        b.scalar(
            "tradestore_row_cache_misses_total",
            "Point reads below the overlay that went to redb.",
            Kind::Counter,
            rc.misses as f64,
        );
        b.scalar(
            "tradestore_row_cache_bytes",
            "Bytes of rows the row cache holds.",
            Kind::Gauge,
            rc.bytes as f64,
        );
    }
    if let Some(recent) = &shared.recent {
        let r = recent.stats();
        b.scalar(
            "tradestore_recent_trades_hits_total",
            "Reads of a trade by id answered by the ring of the newest trades.",
            Kind::Counter,
            r.hits as f64,
        );
        b.scalar(
            "tradestore_recent_trades_misses_total",
            "Reads of a trade by id that the ring of the newest trades did not answer.",
            Kind::Counter,
            r.misses as f64,
        );
    }
    if let Some(tails) = &shared.tails {
        let t = tails.stats();
        b.scalar(
            "tradestore_instrument_tail_reads_total",
            "Newest-first walks of an instrument's trades answered from memory.",
            Kind::Counter,
            t.reads as f64,
        );
        b.scalar(
            "tradestore_instrument_tail_misses_total",
            "Newest-first walks of an instrument's trades that read redb instead.",
            Kind::Counter,
            t.misses as f64,
        );
        b.scalar(
            "tradestore_instrument_tail_bytes",
            "Bytes of the instruments' newest trades index entries held in memory.",
            Kind::Gauge,
            t.bytes as f64,
        );
    }
    let (hits, misses) = queries.cache_counts();
    b.scalar(
        "tradestore_plan_cache_hits_total",
        "Query plans found in the plan cache.",
        Kind::Counter,
        hits as f64,
    );
    b.scalar(
        "tradestore_plan_cache_misses_total",
        "Query plans made (not found in the plan cache).",
        Kind::Counter,
        misses as f64,
    );
    b.labelled(
        "tradestore_rows_written_total",
        "Row changes committed, per table.",
        Kind::Counter,
        tradestore_schema::TableId::ALL
            .iter()
            .map(|t| {
                (
                    vec![("table".to_owned(), t.name().to_owned())],
                    count(&shared.row_changes[*t as usize]),
                )
            })
            .collect(),
    );

    let db_file = dir.join(crate::store::DB_FILE);
    let db_bytes = std::fs::metadata(&db_file).map_or(0, |m| m.len());
    b.scalar(
        "tradestore_database_size_bytes",
        "Size of the redb file.",
        Kind::Gauge,
        db_bytes as f64,
    );
    let journal_bytes = shared.journal.lock().size_bytes();
    b.scalar(
        "tradestore_journal_size_bytes",
        "Bytes of journal segments on disk.",
        Kind::Gauge,
        journal_bytes as f64,
    );
    let durable = shared.published.read().durable;
    let overlay = shared
        .overlay_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    let applied = shared
        .db
        .begin_read()
        .ok()
        .and_then(|t| read_applied_seq(&t).ok())
        .unwrap_or(durable);
    b.scalar(
        "tradestore_journal_lag_transactions",
        "Durable transactions not yet applied to redb.",
        Kind::Gauge,
        durable.saturating_sub(applied) as f64,
    );
    b.scalar(
        "tradestore_overlay_bytes",
        "Committed data held in memory until the applier moves it.",
        Kind::Gauge,
        overlay as f64,
    );
    b.scalar(
        "tradestore_overlay_limit_bytes",
        "Overlay size at which commits wait for the applier.",
        Kind::Gauge,
        (shared.config.overlay_max_mb << 20) as f64,
    );
    let now = crate::index::now_ns();
    let last = m.last_checkpoint_ns.load(Ordering::Relaxed);
    // An idle store whose last checkpoint holds everything has nothing waiting for one: its
    // age is 0, not the time since it went idle.
    let waiting = durable > m.checkpointed_seq.load(Ordering::Relaxed);
    b.scalar(
        "tradestore_checkpoint_age_seconds",
        "Time since the last checkpoint, while transactions wait for one (0 when it holds them all).",
        Kind::Gauge,
        if waiting {
            now.saturating_sub(last) as f64 / 1e9
        } else {
            0.0
        },
    );
    let cache = shared.db.cache_stats();
    let reads = cache.read_hits() + cache.read_misses();
    b.scalar(
        "tradestore_cache_hit_ratio",
        "Share of redb page reads served by its cache since the store opened.",
        Kind::Gauge,
        if reads == 0 {
            1.0
        } else {
            cache.read_hits() as f64 / reads as f64
        },
    );
    let free = fs4::available_space(dir).map_or(f64::NAN, |v| v as f64);
    b.scalar(
        "tradestore_disk_free_bytes",
        "Free space on the store's file system.",
        Kind::Gauge,
        free,
    );
    b.scalar(
        "tradestore_open_readers",
        "Snapshots open now (read and write transactions).",
        Kind::Gauge,
        count(&m.readers),
    );
    b.scalar(
        "tradestore_poisoned",
        "1 when a storage failure made the store refuse writes until reopened.",
        Kind::Gauge,
        if shared.poisoned.load(Ordering::SeqCst) {
            1.0
        } else {
            0.0
        },
    );
    let state = shared.breaker.state();
    b.labelled(
        "tradestore_breaker_state",
        "The storage circuit breaker: 1 for its current state.",
        Kind::Gauge,
        [
            (BreakerState::Closed, "closed"),
            (BreakerState::HalfOpen, "half_open"),
            (BreakerState::Open, "open"),
        ]
        .into_iter()
        .map(|(s, n)| {
            (
                vec![("state".to_owned(), n.to_owned())],
                if s == state { 1.0 } else { 0.0 },
            )
        })
        .collect(),
    );
    b.scalar(
        "tradestore_durable_sequence",
        "Sequence number of the last durable transaction.",
        Kind::Gauge,
        durable as f64,
    );
    MetricsSnapshot {
        at_ns: now,
        families: b.families,
    }
}
