//! What is measured, how much, and in which order.

use std::path::Path;

use serde::Serialize;

use crate::reads::run_reads;
use crate::report::{Measurement, Report};
use crate::{Result, fjall, raw_redb, sqlite, tradestore};

/// How many operations each measurement runs.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// `quick` or `full`.
    pub name: &'static str,
    /// Unmeasured operations before each measured loop (per thread for tradestore).
    pub warmup: u64,
    /// Synced 4 KiB writes of the fsync floor.
    pub floor_ops: u64,
    /// Trades of every one-trade-per-commit measurement (split over the threads for
    /// tradestore's concurrent ones).
    pub per_trade: u64,
    /// Trades per commit of the batched measurements.
    pub batch: u64,
    /// Commits of the batched measurements.
    pub batches: u64,
    /// tradestore's submitter thread counts.
    pub threads: Vec<usize>,
    /// Threads of the extra concurrent one-trade-per-commit row of raw redb and fjall
    /// (none when below 2).
    pub peer_threads: usize,
    /// Trades of the data set every engine loads (the bulk restore) and reads.
    pub read_trades: u64,
    /// Point gets by id.
    pub gets: u64,
    /// Reads of an instrument's last 100 trades.
    pub recent_reads: u64,
    /// Reads of an account's positions.
    pub position_reads: u64,
    /// Operations per read transaction (snapshot), in every engine.
    pub per_snapshot: usize,
}

impl Plan {
    /// Small counts: the whole run takes well under a minute.
    pub fn quick() -> Plan {
        Plan {
            name: "quick",
            warmup: 20,
            floor_ops: 3_000,
            per_trade: 2_000,
            batch: 1_000,
            batches: 20,
            threads: vec![1, 4, 16, 64],
            peer_threads: 64,
            read_trades: 20_000,
            gets: 100_000,
            recent_reads: 2_000,
            position_reads: 50_000,
            per_snapshot: 1_000,
        }
    }

    /// The default counts: a few minutes.
    pub fn full() -> Plan {
        Plan {
            name: "full",
            warmup: 100,
            floor_ops: 20_000,
            per_trade: 10_000,
            batch: 1_000,
            batches: 100,
            threads: vec![1, 4, 16, 64],
            peer_threads: 64,
            read_trades: 200_000,
            gets: 500_000,
            recent_reads: 10_000,
            position_reads: 200_000,
            per_snapshot: 1_000,
        }
    }

    /// Tiny counts for tests.
    pub fn tiny() -> Plan {
        Plan {
            name: "tiny",
            warmup: 1,
            floor_ops: 3,
            per_trade: 4,
            batch: 3,
            batches: 2,
            threads: vec![1, 2],
            peer_threads: 2,
            read_trades: 300,
            gets: 50,
            recent_reads: 10,
            position_reads: 20,
            per_snapshot: 16,
        }
    }
}

/// Measures every peer's writes, then every engine's reads ([`run_reads`]), each in a fresh
/// folder of its own under `dir` (removed after it), on the same disk, one after another.
/// `progress` hears what is being measured.
pub fn run_all(dir: &Path, plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let report = run_writes(dir, plan, progress)?;
    let reads = run_reads(dir, plan, progress)?;
    Ok(report.with_reads(reads))
}

/// Measures every peer's writes in a fresh folder of its own under `dir` (removed after it).
pub fn run_writes(dir: &Path, plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let mut rows: Vec<Measurement> = Vec::new();
    let mut step = |name: &str,
                    rows: &mut Vec<Measurement>,
                    f: &mut dyn FnMut(&Path) -> Result<Vec<Measurement>>|
     -> Result<()> {
        progress(&format!("measuring {name} ..."));
        let sub = dir.join(name.replace([' ', ','], "-"));
        let out = f(&sub);
        // Free the disk for the next peer whatever happened.
        let _ = std::fs::remove_dir_all(&sub);
        rows.extend(out?);
        Ok(())
    };
    let p = plan;
    // The floor and the one-writer row are measured together, interleaved: their p50s
    // make a target.
    step(
        "fsync floor and tradestore store.transact 1, interleaved",
        &mut rows,
        &mut |d| {
            Ok(tradestore::one_writer_beside_floor(d, p.warmup, p.floor_ops, p.per_trade)?.into())
        },
    )?;
    let one_writer = rows.pop().ok_or("the one-writer row is missing")?;
    step("redb", &mut rows, &mut |d| raw_redb::measure(d, p))?;
    step("sqlite", &mut rows, &mut |d| sqlite::measure(d, p))?;
    step("fjall", &mut rows, &mut |d| fjall::measure(d, p))?;
    rows.push(one_writer);
    for way in tradestore::SUBMITTERS {
        let threads: &[usize] = if way.concurrent { &p.threads } else { &[1] };
        for &threads in threads {
            if way.concurrent && threads == 1 {
                continue;
            }
            let name = format!("tradestore {} {threads}", way.name);
            step(&name, &mut rows, &mut |d| {
                Ok(vec![tradestore::measure(
                    d,
                    way,
                    threads,
                    p.warmup,
                    p.per_trade,
                )?])
            })?;
        }
    }
    Ok(Report::new(dir.display().to_string(), plan.name, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_run_measures_every_peer() {
        let dir = tempfile::tempdir().unwrap();
        let report = run_all(dir.path(), &Plan::tiny(), &mut |_| {}).unwrap();
        let engines: Vec<_> = report.rows.iter().map(|r| r.engine).collect();
        assert_eq!(
            engines,
            [
                "fsync floor",
                "redb",
                "redb",
                "redb",
                "sqlite",
                "sqlite",
                "fjall",
                "fjall",
                "fjall",
                "tradestore",
                "tradestore",
                "tradestore"
            ]
        );
        assert!(report.rows[9].ratios.over_sqlite_per_trade.is_some());
        assert!(report.rows[11].mode.starts_with(tradestore::PIPELINED));
        assert!(report.rows[9..].iter().all(|r| r.write_path.is_some()));
        assert_eq!(report.reads.len(), 16);
        assert_eq!(report.targets.len(), 12);
        assert!(report.targets.iter().all(|t| t.value.is_some()));
        // 3 tradestore write rows over 2 peers, 4 reads over 3 peers.
        assert_eq!(report.comparisons.len(), 6 + 12);
        // The names known before a run (a baseline is checked against them) are the ones
        // the run reports.
        let mut known = crate::report::comparison_names(&Plan::tiny());
        let mut reported: Vec<String> = report.comparisons.iter().map(|c| c.name.clone()).collect();
        known.sort();
        reported.sort();
        assert_eq!(known, reported);
        // Every peer's folder is gone afterwards.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
