//! The simulation's report: counts, throughput and latency percentiles per operation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::engine::{Counts, LoadProfile, SimConfig};

/// Latency histograms (microseconds) by operation name.
#[derive(Default)]
pub struct Latencies {
    by_op: BTreeMap<&'static str, Histogram<u64>>,
}

/// A new histogram of microseconds, 1 us to 100 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3)
        .unwrap_or_else(|e| unreachable!("fixed bounds are valid: {e}"))
}

impl Latencies {
    /// Records one operation's latency.
    pub fn record(&mut self, op: &'static str, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.by_op
            .entry(op)
            .or_insert_with(histogram)
            .saturating_record(us);
    }

    /// Adds another thread's histograms.
    pub fn merge(&mut self, other: &Latencies) {
        for (op, h) in &other.by_op {
            let mine = self.by_op.entry(op).or_insert_with(histogram);
            // Both histograms share the same bounds, so adding cannot fail.
            let _ = mine.add(h);
        }
    }
}

/// Percentiles of one operation, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Operations measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Percentiles {
    /// The percentiles of a histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// The whole report; `--json` prints it as one document.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Flow seed.
    pub seed: u64,
    /// Load profile.
    pub profile: LoadProfile,
    /// Writer threads used.
    pub writers: usize,
    /// Accounts.
    pub accounts: u64,
    /// Instruments.
    pub instruments: u64,
    /// Whether the run was stopped early (Ctrl-C, SIGTERM) before its duration or order
    /// count; what it reports was done and acknowledged all the same.
    pub interrupted: bool,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// New orders committed.
    pub orders: u64,
    /// Trades committed (a match makes two, one per side).
    pub trades: u64,
    /// Orders cancelled.
    pub cancels: u64,
    /// Orders rejected.
    pub rejects: u64,
    /// Orders per second.
    pub orders_per_s: f64,
    /// Trades per second.
    pub trades_per_s: f64,
    /// Commit latency of each kind of write and latency of each reader query.
    pub latency: BTreeMap<String, Percentiles>,
    /// Size of the database file after the run, bytes.
    pub store_bytes: u64,
    /// The store's write path during the run: commits, conflicts, retries, group sizes,
    /// journal fsync and redb apply latency.
    pub write_path: tradestore::Stats,
}

impl Report {
    pub(crate) fn new(
        cfg: &SimConfig,
        writers: usize,
        elapsed: Duration,
        c: &Counts,
        lat: &Latencies,
        store_bytes: u64,
        write_path: tradestore::Stats,
    ) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Report {
            seed: cfg.seed,
            profile: cfg.profile,
            writers,
            accounts: cfg.accounts,
            instruments: cfg.instruments,
            interrupted: false,
            elapsed_s: secs,
            orders: c.orders,
            trades: c.trades,
            cancels: c.cancels,
            rejects: c.rejects,
            orders_per_s: c.orders as f64 / secs,
            trades_per_s: c.trades as f64 / secs,
            latency: lat
                .by_op
                .iter()
                .map(|(op, h)| ((*op).to_owned(), Percentiles::of(h)))
                .collect(),
            store_bytes,
            write_path,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "simulated {:.1}s{}, profile {:?}, {} writers, {} accounts, {} instruments, seed {}",
            self.elapsed_s,
            if self.interrupted {
                " (stopped early by a signal)"
            } else {
                ""
            },
            self.profile,
            self.writers,
            self.accounts,
            self.instruments,
            self.seed
        )?;
        writeln!(
            f,
            "orders {} ({:.0}/s)  trades {} ({:.0}/s)  cancels {}  rejects {}",
            self.orders,
            self.orders_per_s,
            self.trades,
            self.trades_per_s,
            self.cancels,
            self.rejects
        )?;
        writeln!(
            f,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (us)", "count", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (op, p) in &self.latency {
            writeln!(
                f,
                "{op:<28} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                p.count, p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us
            )?;
        }
        let w = &self.write_path;
        let (g, fs) = (w.group_size(), w.fsync_us());
        writeln!(
            f,
            "write path: {} commits, {} conflicts, {} retries; group size p50 {} p99 {} max {}; journal fsync p50 {} us p99 {} us; {} checkpoints",
            w.commits(),
            w.conflicts(),
            w.retries(),
            g.p50,
            g.p99,
            g.max,
            fs.p50,
            fs.p99,
            w.checkpoints()
        )?;
        write!(
            f,
            "store file: {:.1} MiB",
            self.store_bytes as f64 / (1024.0 * 1024.0)
        )
    }
}
