//! One row per measurement, the ratios against the references, and the table.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::latency::{Latency, Timed};

/// Engine name of the fsync floor row.
pub const FLOOR: &str = "fsync floor";
/// Engine name of the SQLite rows.
pub const SQLITE: &str = "sqlite";
/// Engine name of the fjall rows.
pub const FJALL: &str = "fjall";

/// One measured mode of one engine.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    /// Which engine.
    pub engine: &'static str,
    /// How it was driven, e.g. `1 trade/commit`.
    pub mode: String,
    /// Threads submitting concurrently.
    pub threads: usize,
    /// Trades in each durable commit (1 for the per-trade modes; 0 for the fsync floor,
    /// whose unit is one 4 KiB write).
    pub trades_per_commit: u64,
    /// Trades (or floor writes) measured.
    pub trades: u64,
    /// Wall-clock seconds of the measured part.
    pub seconds: f64,
    /// Trades (or floor writes) per second.
    pub trades_per_sec: f64,
    /// Latency of each durable commit, from the call to its return.
    pub latency: Latency,
    /// Comparisons with the reference rows, filled in by [`Report::new`].
    pub ratios: Ratios,
}

/// How a row compares with the reference rows; `None` where a reference is missing.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Ratios {
    /// This row's p50 latency over the fsync floor's p50.
    pub p50_over_floor: Option<f64>,
    /// This row's trades/s over SQLite's one-trade-per-transaction rate.
    pub over_sqlite_per_trade: Option<f64>,
    /// This row's trades/s over fjall's one-trade-per-batch rate.
    pub over_fjall_per_trade: Option<f64>,
}

impl Measurement {
    /// A row from a timed loop of `commits` commits of `trades_per_commit` trades each.
    pub fn new(
        engine: &'static str,
        mode: impl Into<String>,
        threads: usize,
        trades_per_commit: u64,
        timed: &Timed,
    ) -> Measurement {
        let latency = Latency::of(&timed.hist);
        let trades = latency.count * trades_per_commit.max(1);
        Measurement {
            engine,
            mode: mode.into(),
            threads,
            trades_per_commit,
            trades,
            seconds: timed.elapsed.as_secs_f64(),
            trades_per_sec: rate(trades, timed.elapsed),
            latency,
            ratios: Ratios::default(),
        }
    }

    fn is_per_trade(&self, engine: &str) -> bool {
        self.engine == engine && self.trades_per_commit == 1 && self.threads == 1
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

/// The whole run: what was measured where.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Where the files were written.
    pub dir: String,
    /// `quick` or `full`.
    pub plan: &'static str,
    /// The rows, in measuring order.
    pub rows: Vec<Measurement>,
}

impl Report {
    /// A report of `rows`, with every row's ratios computed against the fsync floor and the
    /// per-trade SQLite and fjall rows.
    pub fn new(dir: String, plan: &'static str, mut rows: Vec<Measurement>) -> Report {
        let floor_p50 = rows
            .iter()
            .find(|r| r.engine == FLOOR)
            .map(|r| r.latency.p50_us);
        let per_trade = |engine| {
            rows.iter()
                .find(|r| r.is_per_trade(engine))
                .map(|r| r.trades_per_sec)
        };
        let (sqlite, fjall) = (per_trade(SQLITE), per_trade(FJALL));
        let over = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map(|b| a / b);
        for r in &mut rows {
            r.ratios = Ratios {
                p50_over_floor: over(r.latency.p50_us, floor_p50),
                over_sqlite_per_trade: over(r.trades_per_sec, sqlite),
                over_fjall_per_trade: over(r.trades_per_sec, fjall),
            };
        }
        Report { dir, plan, rows }
    }

    /// The report as one JSON document.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| unreachable!("plain data serialises: {e}"))
    }

    /// The report as a text table.
    pub fn table(&self) -> String {
        let head = [
            "engine",
            "mode",
            "trades/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "p50/floor",
            "x sqlite",
            "x fjall",
        ];
        let ratio = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        let cells: Vec<[String; 9]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.engine.to_owned(),
                    r.mode.clone(),
                    format!("{:.0}", r.trades_per_sec),
                    format!("{:.0}", r.latency.p50_us),
                    format!("{:.0}", r.latency.p99_us),
                    format!("{:.0}", r.latency.p999_us),
                    ratio(r.ratios.p50_over_floor),
                    ratio(r.ratios.over_sqlite_per_trade),
                    ratio(r.ratios.over_fjall_per_trade),
                ]
            })
            .collect();
        let mut width = head.map(str::len);
        for row in &cells {
            for (w, c) in width.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[&str]| {
            for (i, (c, w)) in row.iter().zip(width).enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                // Text columns to the left, numbers to the right.
                if i < 2 {
                    let _ = write!(out, "{sep}{c:<w$}");
                } else {
                    let _ = write!(out, "{sep}{c:>w$}");
                }
            }
            out.push('\n');
        };
        line(&mut out, &head);
        let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
        line(
            &mut out,
            &rule.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        for row in &cells {
            line(
                &mut out,
                &row.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        let _ = writeln!(
            out,
            "\n{} plan, files in {}. Latency is per durable commit (per 4 KiB write for the \
             floor); p50/floor = p50 over the fsync floor's p50; x sqlite / x fjall = trades/s \
             over that engine's one-trade-per-commit rate.",
            self.plan, self.dir
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::histogram;

    fn row(engine: &'static str, per_commit: u64, ns: u64, n: u64) -> Measurement {
        let mut hist = histogram();
        for _ in 0..n {
            hist.record(ns).unwrap();
        }
        let timed = Timed {
            hist,
            elapsed: Duration::from_secs(1),
        };
        Measurement::new(engine, "m", 1, per_commit, &timed)
    }

    #[test]
    fn ratios_use_the_reference_rows() {
        let r = Report::new(
            "d".into(),
            "quick",
            vec![
                row(FLOOR, 0, 100_000, 10),
                row(SQLITE, 1, 200_000, 20),
                row(FJALL, 1, 300_000, 40),
                row("tradestore", 1, 400_000, 80),
            ],
        );
        let t = &r.rows[3];
        assert_eq!(t.trades_per_sec, 80.0);
        assert!((t.ratios.p50_over_floor.unwrap() - 4.0).abs() < 0.01);
        assert_eq!(t.ratios.over_sqlite_per_trade, Some(4.0));
        assert_eq!(t.ratios.over_fjall_per_trade, Some(2.0));
        assert!(r.table().contains("tradestore"));
        assert!(r.json().contains("\"p50_over_floor\""));
    }
}
