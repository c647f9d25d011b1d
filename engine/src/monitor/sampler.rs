//! The sampler: once a second it gathers the metrics, turns counters into rates and the
//! latency histograms into the last second's percentiles, appends every value to its time
//! series, and at each new minute writes the previous minute, downsampled, to the store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};

use super::metrics::{MetricsSnapshot, gather};
use super::series::{SeriesStore, persist};
use crate::commit::Shared;
use crate::query::QueryEngine;

/// What the last sample saw, for rates and interval percentiles.
struct Prev {
    at: Instant,
    counters: Vec<(String, f64)>,
    histograms: Vec<(&'static str, Histogram<u64>)>,
}

/// The monitor's state: the series and the sampler's memory.
#[derive(Default)]
pub(crate) struct Monitor {
    pub series: RwLock<SeriesStore>,
    prev: Mutex<Option<Prev>>,
    /// The minute last written to the store.
    persisted: Mutex<u64>,
    /// The last sample's metrics.
    last: RwLock<MetricsSnapshot>,
}

impl super::alerts::MetricSource for Monitor {
    fn series(&self, name: &str, since: u64) -> Vec<super::series::Point> {
        self.series.read().range(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        let from_series = self.series.read().last(name).map(|p| p.v);
        from_series.or_else(|| self.last.read().value(name))
    }
}

/// Counters turned into per-second rates: (metric, label value or "", series name).
const RATES: &[(&str, &str, &str)] = &[
    ("tradestore_commits_total", "", "commits_per_sec"),
    ("tradestore_conflicts_total", "", "conflicts_per_sec"),
    (
        "tradestore_storage_errors_total",
        "",
        "storage_errors_per_sec",
    ),
    ("tradestore_rows_written_total", "trades", "trades_per_sec"),
    ("tradestore_rows_written_total", "orders", "orders_per_sec"),
    (
        "tradestore_plan_cache_hits_total",
        "",
        "plan_cache_hits_per_sec",
    ),
    (
        "tradestore_plan_cache_misses_total",
        "",
        "plan_cache_misses_per_sec",
    ),
];

/// Gauges recorded as they are: (metric, series name).
const GAUGES: &[(&str, &str)] = &[
    ("tradestore_database_size_bytes", "database_size_bytes"),
    ("tradestore_journal_size_bytes", "journal_size_bytes"),
    ("tradestore_archive_bytes", "archive_bytes"),
    (
        "tradestore_journal_lag_transactions",
        "journal_lag_transactions",
    ),
    ("tradestore_overlay_bytes", "overlay_bytes"),
    (
        "tradestore_checkpoint_age_seconds",
        "checkpoint_age_seconds",
    ),
    ("tradestore_cache_hit_ratio", "cache_hit_ratio"),
    ("tradestore_disk_free_bytes", "disk_free_bytes"),
    ("tradestore_open_readers", "open_readers"),
    ("tradestore_poisoned", "poisoned"),
];

/// The histograms the sampler turns into percentile series: the store's
/// (`Metrics::histograms`) and every query's latency together.
const HISTOGRAMS: [&str; 5] = ["commit", "fsync", "apply", "group", "query"];

/// The name of the series of histogram `name`'s quantile `q` (`p50`, `p99`): latencies in
/// seconds, group sizes as counts.
fn quantile_series(name: &str, q: &str) -> String {
    let unit = if name == "group" { "" } else { "_seconds" };
    format!("{name}_{q}{unit}")
}

/// Every series the sampler records, whatever the store's state: the names alert rules
/// and `store.series` can read besides the unlabelled metrics.
pub(crate) fn series_names() -> Vec<String> {
    let mut names: Vec<String> = RATES.iter().map(|(_, _, s)| (*s).to_owned()).collect();
    names.push("queries_per_sec".to_owned());
    names.extend(GAUGES.iter().map(|(_, s)| (*s).to_owned()));
    for h in HISTOGRAMS {
        names.push(quantile_series(h, "p50"));
        names.push(quantile_series(h, "p99"));
    }
    names.push("group_max".to_owned());
    names.sort();
    names
}

fn counter(m: &MetricsSnapshot, name: &str, label: &str) -> Option<f64> {
    let f = m.family(name)?;
    f.samples
        .iter()
        .find(|s| label.is_empty() && s.labels.is_empty() || s.labels.iter().any(|l| l.1 == label))
        .map(|s| s.value)
}

impl Monitor {
    /// Takes one sample at `now` (seconds since the epoch).
    pub(crate) fn sample(
        &self,
        shared: &Shared,
        queries: &QueryEngine,
        dir: &Path,
        now: u64,
    ) -> MetricsSnapshot {
        let m = gather(shared, queries, dir);
        let mut hist: Vec<(&'static str, Histogram<u64>)> =
            shared.metrics.histograms().into_iter().collect();
        let mut all_queries: Option<Histogram<u64>> = None;
        for (_, h) in queries.shape_latencies() {
            match all_queries.as_mut() {
                Some(a) => {
                    let _ = a.add(&h);
                }
                None => all_queries = Some(h),
            }
        }
        hist.push(("query", all_queries.unwrap_or_else(crate::stats::histogram)));
        let counters: Vec<(String, f64)> = RATES
            .iter()
            .map(|(n, l, s)| ((*s).to_owned(), counter(&m, n, l).unwrap_or(0.0)))
            .chain(std::iter::once((
                "queries_per_sec".to_owned(),
                hist.iter()
                    .find(|h| h.0 == "query")
                    .map_or(0.0, |h| h.1.len() as f64),
            )))
            .collect();
        let mut series = self.series.write();
        for (metric, name) in GAUGES {
            if let Some(v) = m.value(metric) {
                series.push(name, now, v);
            }
        }
        let mut prev = self.prev.lock();
        if let Some(p) = prev.as_ref() {
            let dt = p.at.elapsed().as_secs_f64().max(1e-3);
            for ((name, cur), (_, old)) in counters.iter().zip(&p.counters) {
                series.push(name, now, ((cur - old) / dt).max(0.0));
            }
            for ((name, cur), (_, old)) in hist.iter().zip(&p.histograms) {
                let mut d = cur.clone();
                // A histogram that shrank was reset: use it whole.
                if d.subtract(old).is_err() {
                    d = cur.clone();
                }
                let scale = if *name == "group" { 1.0 } else { 1e-6 };
                let q = |p: f64| {
                    if d.is_empty() {
                        f64::NAN
                    } else {
                        d.value_at_quantile(p) as f64 * scale
                    }
                };
                series.push(&quantile_series(name, "p50"), now, q(0.5));
                series.push(&quantile_series(name, "p99"), now, q(0.99));
                if *name == "group" {
                    series.push(
                        "group_max",
                        now,
                        if d.is_empty() {
                            f64::NAN
                        } else {
                            d.max() as f64
                        },
                    );
                }
            }
        }
        *prev = Some(Prev {
            at: Instant::now(),
            counters,
            histograms: hist,
        });
        *self.last.write() = m.clone();
        m
    }

    /// Writes every complete minute not yet written; keeps `retention_s` of them.
    pub(crate) fn persist_minutes(
        &self,
        db: &redb::Database,
        now: u64,
        retention_s: u64,
    ) -> crate::Result<()> {
        let current = now - now % 60;
        let mut last = self.persisted.lock();
        if *last == 0 {
            *last = current;
            return Ok(());
        }
        if current <= *last {
            return Ok(());
        }
        let minutes: Vec<_> = {
            let series = self.series.read();
            (*last..current)
                .step_by(60)
                .flat_map(|m| series.minute(m))
                .collect()
        };
        persist(db, &minutes, now.saturating_sub(retention_s))?;
        *last = current;
        Ok(())
    }
}

/// The sampler thread: a sample every `interval` until the store closes.
pub(crate) fn run_sampler(
    shared: &Arc<Shared>,
    queries: &Arc<QueryEngine>,
    monitor: &Arc<Monitor>,
    dir: &Path,
    interval: Duration,
) {
    let retention = shared.config.metrics_retention_h * 3600;
    let mut next = Instant::now();
    while !shared.shutdown.load(Ordering::SeqCst) {
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20).min(interval));
            continue;
        }
        next += interval;
        let now = crate::index::now_ns() / 1_000_000_000;
        monitor.sample(shared, queries, dir, now);
        if !shared.poisoned.load(Ordering::SeqCst) {
            // A failed write of the history is retried with the next minute.
            let _ = monitor.persist_minutes(&shared.db, now, retention);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Store};

    #[test]
    fn minutes_reach_the_store_and_expire_after_the_retention() -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = Store::open(
            dir.path(),
            Config {
                monitor: false,
                metrics_retention_h: 1,
                ..Config::default()
            },
        )?;
        let m = &store.monitor;
        // One sample a second through the minute starting at t = 600.
        for t in 590..660 {
            m.sample(&store.shared, &store.queries, dir.path(), t);
        }
        // The first call only notes the current minute; the next one writes what ended.
        m.persist_minutes(&store.shared.db, 600, 3600)?;
        assert!(store.metric_history("database_size_bytes", 0)?.is_empty());
        m.persist_minutes(&store.shared.db, 665, 3600)?;
        let minutes = store.metric_history("database_size_bytes", 0)?;
        assert_eq!(minutes.iter().map(|x| x.t).collect::<Vec<_>>(), vec![600]);
        assert!(
            minutes[0].min > 0.0
                && minutes[0].min <= minutes[0].avg
                && minutes[0].avg <= minutes[0].max
        );
        assert!(store.has_metric_history()?);
        // Two hours later, with one hour kept, that minute is gone and the new one is in.
        for t in 7800..7860 {
            m.sample(&store.shared, &store.queries, dir.path(), t);
        }
        m.persist_minutes(&store.shared.db, 7865, 3600)?;
        let kept: Vec<u64> = store
            .metric_history("database_size_bytes", 0)?
            .iter()
            .map(|x| x.t)
            .collect();
        assert!(!kept.contains(&600), "{kept:?}");
        assert!(kept.contains(&7800), "{kept:?}");
        Ok(())
    }

    /// The names alert rules are checked against are exactly the series sampling records.
    #[test]
    fn the_listed_series_are_the_ones_sampling_records() -> crate::Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let config = Config {
            monitor: false,
            ..Config::default()
        };
        let store = Store::open(dir.path(), config)?;
        // Rates need a sample before them, percentiles a commit and a query between.
        let sample = |t| {
            store
                .monitor
                .sample(&store.shared, &store.queries, dir.path(), t)
        };
        sample(100);
        store.write(|tx| {
            tx.insert(&tradestore_schema::Account {
                id: 1,
                name: "a".into(),
                status: tradestore_schema::AccountStatus::Active,
            })
        })?;
        store.query("SELECT * FROM accounts")?;
        // And an applier batch: it runs within milliseconds of the commit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.stats().apply_us().count == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        sample(101);
        assert_eq!(store.monitor.series.read().names(), super::series_names());
        Ok(())
    }
}
