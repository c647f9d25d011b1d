//! Timing loops and latency percentiles.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::Result;

/// A histogram of nanoseconds, 100 ns to 100 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(100, 100_000_000_000, 3)
        .unwrap_or_else(|e| unreachable!("fixed bounds are valid: {e}"))
}

/// Records the time since `start` into `hist`.
pub fn record_since(hist: &mut Histogram<u64>, start: Instant) {
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    hist.saturating_record(ns);
}

/// What a timed loop saw: one latency per durable commit, and the wall-clock time.
#[derive(Debug)]
pub struct Timed {
    /// Latency of each measured commit, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Wall-clock time of the measured commits.
    pub elapsed: Duration,
}

/// Rounds that interleaved measurements are split into: each round runs a slice of every
/// measured thing, in an order that rotates from round to round, so that a slow (or fast)
/// spell of the machine falls on all of them alike instead of on whichever one it met
/// (one engine's reads differed by up to 1.5x between runs, the fsync floor's p50 by 1.4x).
pub const ROUNDS: usize = 8;

/// Adds `more` (another slice of the same measurement) to `total`.
pub fn merge(total: &mut Option<Timed>, more: Timed) -> Result<()> {
    match total {
        None => *total = Some(more),
        Some(t) => {
            t.hist
                .add(&more.hist)
                .map_err(|e| format!("merging latency histograms: {e}"))?;
            t.elapsed += more.elapsed;
        }
    }
    Ok(())
}

/// The `round`th of [`ROUNDS`] slices of `ops`.
pub fn slice<T>(ops: &[T], round: usize) -> &[T] {
    let at = |r: usize| ops.len() * r / ROUNDS;
    &ops[at(round)..at(round + 1)]
}

/// Runs `op(i)` for `i` in `0..warmup + commits`, timing each call after the first `warmup`.
pub fn timed(warmup: u64, commits: u64, mut op: impl FnMut(u64) -> Result<()>) -> Result<Timed> {
    for i in 0..warmup {
        op(i)?;
    }
    let mut hist = histogram();
    let start = Instant::now();
    for i in warmup..warmup + commits {
        let t = Instant::now();
        op(i)?;
        record_since(&mut hist, t);
    }
    Ok(Timed {
        hist,
        elapsed: start.elapsed(),
    })
}

/// Runs `op(seq)` from `threads` threads at once, each taking the sequence numbers
/// `seq ≡ t (mod threads)`: `warmup` unmeasured calls each, then `per_thread` timed ones.
/// The elapsed time runs from the moment all threads are warmed up until the last is done.
pub fn concurrent(
    threads: usize,
    warmup: u64,
    per_thread: u64,
    op: &(dyn Fn(u64) -> Result<()> + Sync),
) -> Result<Timed> {
    let threads = threads.max(1);
    let n = threads as u64;
    let start_line = Barrier::new(threads + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let start_line = &start_line;
                s.spawn(move || -> Result<Histogram<u64>> {
                    let warmed = (0..warmup).try_for_each(|k| op(t + k * n));
                    // Everyone reaches the start line, even after a failure, so no one waits
                    // forever.
                    start_line.wait();
                    warmed?;
                    let mut hist = histogram();
                    for k in warmup..warmup + per_thread {
                        let start = Instant::now();
                        op(t + k * n)?;
                        record_since(&mut hist, start);
                    }
                    Ok(hist)
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        let mut hist = histogram();
        let mut failed = None;
        for h in handles {
            match h.join() {
                Ok(Ok(h)) => hist.add(&h)?,
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => failed = failed.or(Some("a submitter thread panicked".into())),
            }
        }
        let elapsed = start.elapsed();
        match failed {
            Some(e) => Err(e),
            None => Ok(Timed { hist, elapsed }),
        }
    })
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Commits measured.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest.
    pub max_us: f64,
}

impl Latency {
    /// The percentiles of `h` (nanoseconds).
    pub fn of(h: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1_000.0;
        Latency {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// The write rows of a key-value peer: one trade per `unit` (commit or batch), then
/// `plan.batches` of `plan.batch` trades each, then (with `plan.peer_threads > 1`) one trade
/// per `unit` from that many threads.
pub fn measure_peer(
    engine: &'static str,
    unit: &str,
    plan: &crate::run::Plan,
    write: &(dyn Fn(&[crate::workload::TradeRow]) -> Result<()> + Sync),
) -> Result<Vec<crate::report::Measurement>> {
    use crate::report::Measurement;
    use crate::workload::trades;
    let (warmup, commits, batch, batches) = (plan.warmup, plan.per_trade, plan.batch, plan.batches);
    let per_trade = timed(warmup, commits, |i| write(&trades(i..i + 1)))?;
    let base = warmup + commits;
    let batched = timed(1, batches, |i| {
        let from = base + i * batch;
        write(&trades(from..from + batch))
    })?;
    let mut rows = vec![
        Measurement::new(engine, format!("1 trade/{unit}"), 1, 1, &per_trade),
        Measurement::new(engine, format!("{batch} trades/{unit}"), 1, batch, &batched),
    ];
    if plan.peer_threads > 1 {
        let threads = plan.peer_threads;
        let base = base + (batches + 1) * batch;
        let per_thread = commits.div_ceil(threads as u64);
        let op = |seq: u64| write(&trades(base + seq..base + seq + 1));
        let timed = concurrent(threads, warmup, per_thread, &op)?;
        let mode = format!("1 trade/{unit}, {threads} threads");
        rows.push(Measurement::new(engine, mode, threads, 1, &timed));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rounds_split_the_operations_exactly() {
        for n in [0u64, 3, 8, 50, 1001] {
            let ops: Vec<u64> = (0..n).collect();
            let joined: Vec<u64> = (0..ROUNDS).flat_map(|r| slice(&ops, r).to_vec()).collect();
            assert_eq!(joined, ops, "{n} operations");
        }
    }

    #[test]
    fn merged_slices_add_up() {
        let mut total = None;
        for ms in [3u64, 5] {
            let mut hist = histogram();
            hist.record(ms * 1_000_000).unwrap();
            merge(
                &mut total,
                Timed {
                    hist,
                    elapsed: Duration::from_millis(ms),
                },
            )
            .unwrap();
        }
        let t = total.unwrap();
        assert_eq!(t.hist.len(), 2);
        assert_eq!(t.elapsed, Duration::from_millis(8));
    }

    #[test]
    fn timed_skips_warmup() {
        let mut seen = Vec::new();
        let t = timed(2, 3, |i| {
            seen.push(i);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 2, 3, 4]);
        assert_eq!(t.hist.len(), 3);
        assert_eq!(Latency::of(&t.hist).count, 3);
    }

    #[test]
    fn concurrent_threads_take_their_own_sequence_numbers() {
        let seen = std::sync::Mutex::new(Vec::new());
        let t = concurrent(3, 1, 2, &|seq| {
            seen.lock().unwrap().push(seq);
            Ok(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..9).collect::<Vec<_>>());
        assert_eq!(t.hist.len(), 6);
    }
}
