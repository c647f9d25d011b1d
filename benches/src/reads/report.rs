//! The read rows, tradestore's ratio over each peer, the read targets and the read table.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::latency::{Latency, Timed};
use crate::report::{Comparison, FJALL, SQLITE, TRADESTORE, Target, grid};

/// A read (or the bulk restore) that is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ReadOp {
    /// One trade by its id.
    #[serde(rename = "point get by id")]
    Get,
    /// The last [`RECENT_LIMIT`] trades of an instrument, newest first.
    #[serde(rename = "last 100 trades of an instrument")]
    Recent,
    /// Every position of an account.
    #[serde(rename = "positions of an account")]
    Positions,
    /// Loading every trade (with its indexes) and position into an empty database.
    #[serde(rename = "bulk restore")]
    Restore,
}

/// Trades the [`ReadOp::Recent`] read returns.
pub const RECENT_LIMIT: usize = 100;

impl ReadOp {
    /// Every op, in report order.
    pub const ALL: [ReadOp; 4] = [
        ReadOp::Get,
        ReadOp::Recent,
        ReadOp::Positions,
        ReadOp::Restore,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            ReadOp::Get => "point get by id",
            ReadOp::Recent => "last 100 trades of an instrument",
            ReadOp::Positions => "positions of an account",
            ReadOp::Restore => "bulk restore",
        }
    }
}

/// Engine name of raw redb.
const REDB: &str = crate::raw_redb::NAME;

/// The read targets of the issue: (op, peer, tradestore's ops/s over the peer's at least).
pub const TARGETS_OVER_PEER: [(ReadOp, &str, f64); 6] = [
    (ReadOp::Get, REDB, 1.0),
    (ReadOp::Get, SQLITE, 4.0),
    (ReadOp::Get, FJALL, 2.0),
    (ReadOp::Recent, SQLITE, 4.0),
    (ReadOp::Restore, SQLITE, 8.0),
    (ReadOp::Restore, FJALL, 1.8),
];

/// tradestore's bulk restore at least this many trades per second.
pub const TARGET_RESTORE_PER_SEC: f64 = 300_000.0;

/// One measured read of one engine.
#[derive(Clone, Debug, Serialize)]
pub struct ReadMeasurement {
    /// Which engine.
    pub engine: &'static str,
    /// Which read.
    pub op: ReadOp,
    /// How it was driven, e.g. `1000 per read transaction`.
    pub mode: String,
    /// Operations measured (trades loaded, for the bulk restore).
    pub ops: u64,
    /// Wall-clock seconds of the measured part.
    pub seconds: f64,
    /// Operations (trades, for the bulk restore) per second.
    pub ops_per_sec: f64,
    /// Latency of each operation; none for the bulk restore, which is one operation.
    pub latency: Option<Latency>,
    /// tradestore's ops/s over this row's, on the peers' rows.
    pub tradestore_over_this: Option<f64>,
}

impl ReadMeasurement {
    /// A row from a timed loop of reads.
    pub fn new(engine: &'static str, op: ReadOp, mode: impl Into<String>, t: &Timed) -> Self {
        let latency = Latency::of(&t.hist);
        ReadMeasurement {
            engine,
            op,
            mode: mode.into(),
            ops: latency.count,
            seconds: t.elapsed.as_secs_f64(),
            ops_per_sec: per_sec(latency.count, t.elapsed),
            latency: Some(latency),
            tradestore_over_this: None,
        }
    }

    /// The bulk restore row: `trades` loaded in `elapsed`.
    pub fn restore(
        engine: &'static str,
        mode: impl Into<String>,
        trades: u64,
        elapsed: Duration,
    ) -> Self {
        ReadMeasurement {
            engine,
            op: ReadOp::Restore,
            mode: mode.into(),
            ops: trades,
            seconds: elapsed.as_secs_f64(),
            ops_per_sec: per_sec(trades, elapsed),
            latency: None,
            tradestore_over_this: None,
        }
    }
}

fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// tradestore's ops/s of `op`.
fn tradestore_rate(rows: &[ReadMeasurement], op: ReadOp) -> Option<f64> {
    rows.iter()
        .find(|r| r.engine == TRADESTORE && r.op == op)
        .map(|r| r.ops_per_sec)
}

/// Fills in every peer row's `tradestore_over_this`.
pub fn fill_ratios(rows: &mut [ReadMeasurement]) {
    let rates: Vec<_> = ReadOp::ALL
        .iter()
        .map(|&op| (op, tradestore_rate(rows, op)))
        .collect();
    for r in rows.iter_mut().filter(|r| r.engine != TRADESTORE) {
        let ts = rates
            .iter()
            .find(|(op, _)| *op == r.op)
            .and_then(|(_, v)| *v);
        r.tradestore_over_this = ts
            .filter(|_| r.ops_per_sec > 0.0)
            .map(|t| t / r.ops_per_sec);
    }
}

/// The ratio of `op` against `peer`, as it is named in comparisons and targets.
fn ratio_name(op: ReadOp, peer: &str) -> String {
    format!("{}: tradestore / {peer}", op.name())
}

/// The read targets, from rows whose ratios are filled in.
pub fn targets(rows: &[ReadMeasurement]) -> Vec<Target> {
    let restore = tradestore_rate(rows, ReadOp::Restore);
    let mut out = vec![
        Target::new(
            format!("{}: tradestore trades/s", ReadOp::Restore.name()),
            restore,
            TARGET_RESTORE_PER_SEC,
            false,
        )
        .with_unit(" trades/s"),
    ];
    for (op, peer, bound) in TARGETS_OVER_PEER {
        let value = rows
            .iter()
            .find(|r| r.engine == peer && r.op == op)
            .and_then(|r| r.tradestore_over_this);
        out.push(Target::new(ratio_name(op, peer), value, bound, false));
    }
    out
}

/// The name of every read comparison a run reports: each read against each peer.
pub fn comparison_names() -> Vec<String> {
    let peers = [REDB, SQLITE, FJALL];
    ReadOp::ALL
        .iter()
        .flat_map(|&op| peers.map(|peer| ratio_name(op, peer)))
        .collect()
}

/// tradestore's ratio over every peer row, for baselines.
pub fn comparisons(rows: &[ReadMeasurement]) -> Vec<Comparison> {
    rows.iter()
        .filter_map(|r| {
            r.tradestore_over_this.map(|value| Comparison {
                name: ratio_name(r.op, r.engine),
                value,
            })
        })
        .collect()
}

/// The read table, empty without rows.
pub fn table(rows: &[ReadMeasurement]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let head = [
        "engine",
        "read",
        "mode",
        "ops",
        "ops/s",
        "p50 us",
        "p99 us",
        "tradestore x",
    ];
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.engine.to_owned(),
                r.op.name().to_owned(),
                r.mode.clone(),
                r.ops.to_string(),
                format!("{:.0}", r.ops_per_sec),
                us(r.latency.map(|l| l.p50_us)),
                us(r.latency.map(|l| l.p99_us)),
                r.tradestore_over_this
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            ]
        })
        .collect();
    let mut out = String::from("\nreads (and bulk restore), same data set in every engine:\n");
    out.push_str(&grid(&head, &cells, 3));
    let _ = writeln!(
        out,
        "ops/s of the bulk restore = trades loaded per second (all indexes, durable). \
         tradestore x = tradestore's ops/s over that row's."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &'static str, op: ReadOp, per_sec: f64) -> ReadMeasurement {
        ReadMeasurement::restore(
            engine,
            "m",
            1_000,
            Duration::from_secs_f64(1_000.0 / per_sec),
        )
        .with_op(op)
    }

    impl ReadMeasurement {
        fn with_op(mut self, op: ReadOp) -> Self {
            self.op = op;
            self
        }
    }

    #[test]
    fn ratios_targets_and_comparisons() {
        let mut rows = vec![
            row(TRADESTORE, ReadOp::Get, 1_000_000.0),
            row(REDB, ReadOp::Get, 800_000.0),
            row(SQLITE, ReadOp::Get, 500_000.0),
            row(TRADESTORE, ReadOp::Restore, 400_000.0),
            row(SQLITE, ReadOp::Restore, 40_000.0),
        ];
        fill_ratios(&mut rows);
        assert!((rows[1].tradestore_over_this.unwrap() - 1.25).abs() < 1e-6);
        assert!((rows[2].tradestore_over_this.unwrap() - 2.0).abs() < 1e-6);
        assert_eq!(rows[0].tradestore_over_this, None);
        let t = targets(&rows);
        assert!(t[0].met, "restore 400k >= 300k");
        assert!(t[1].met, "get over redb 1.25 >= 1.0");
        assert!(!t[2].met, "get over sqlite 2 < 4");
        assert!(t[3].value.is_none() && !t[3].met, "no fjall row");
        assert!(t[5].met, "restore 10x sqlite");
        let c = comparisons(&rows);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].name, "point get by id: tradestore / redb");
        assert!(table(&rows).contains("bulk restore"));
    }
}
