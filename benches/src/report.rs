//! One row per measurement, the ratios against the references, and the table.
//!
//! Every ratio of tradestore over a peer is also listed by name in [`Report::comparisons`],
//! which is what a later run compares against (see [`crate::baseline`]).

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::latency::{Latency, Timed};
use crate::reads::{self, ReadMeasurement};

/// Engine name of the fsync floor row.
pub const FLOOR: &str = "fsync floor";
/// Engine name of the SQLite rows.
pub const SQLITE: &str = "sqlite";
/// Engine name of the fjall rows.
pub const FJALL: &str = "fjall";
/// Engine name of the tradestore rows.
pub const TRADESTORE: &str = "tradestore";
/// Mode prefix of tradestore's `store.transact` rows.
pub const TRANSACT: &str = "store.transact";
/// Mode prefix of tradestore's pipelined `store.submit` row.
pub const PIPELINED: &str = "store.submit pipelined";

/// The targets the issue sets: tradestore's 1-writer p50 at most this many times the fsync
/// floor's p50.
pub const TARGET_P50_OVER_FLOOR: f64 = 1.3;
/// tradestore's concurrent and pipelined trades/s at least this many times SQLite's
/// one-trade-per-commit rate.
pub const TARGET_OVER_SQLITE: f64 = 40.0;
/// tradestore's concurrent and pipelined trades/s at least this many times fjall's
/// one-trade-per-commit rate.
pub const TARGET_OVER_FJALL: f64 = 25.0;

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
    /// tradestore's write-path statistics (`store.stats()`) for its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_path: Option<WritePath>,
}

/// What `store.stats()` said after a tradestore row: group commit at work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WritePath {
    /// Journal groups written (one write + one fdatasync each).
    pub groups: u64,
    /// Median transactions per group.
    pub group_p50: u64,
    /// 99th percentile of transactions per group.
    pub group_p99: u64,
    /// Largest group.
    pub group_max: u64,
    /// Median journal write + fdatasync of a group, microseconds.
    pub fsync_p50_us: u64,
    /// 99th percentile of it.
    pub fsync_p99_us: u64,
    /// Median latency of `store.write` (and `transact` attempts) as the store measures it.
    pub commit_p50_us: u64,
    /// Transactions made durable during the measured part (written or submitted).
    pub commits: u64,
    /// Commits refused as conflicts during the measured part.
    pub conflicts: u64,
    /// Retries `store.transact` made during the measured part.
    pub retries: u64,
}

/// One target of the issue, checked against this run's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is compared, e.g. `store.transact, 1 thread: p50 / fsync floor p50`.
    pub what: String,
    /// The measured ratio, `None` when a row it needs is missing.
    pub value: Option<f64>,
    /// The bound.
    pub bound: f64,
    /// Whether `value` must be at most (`true`) or at least `bound`.
    pub at_most: bool,
    /// The unit of `value` and `bound`: `x` for a ratio.
    pub unit: &'static str,
    /// Whether the target is met.
    pub met: bool,
}

impl Target {
    /// A ratio target: met when `value` is at most (`at_most`) or at least `bound`.
    pub(crate) fn new(what: String, value: Option<f64>, bound: f64, at_most: bool) -> Target {
        let met = value.is_some_and(|v| if at_most { v <= bound } else { v >= bound });
        Target {
            what,
            value,
            bound,
            at_most,
            unit: "x",
            met,
        }
    }

    /// The target with `value` and `bound` in `unit` instead of a ratio.
    #[must_use]
    pub(crate) fn with_unit(mut self, unit: &'static str) -> Target {
        self.unit = unit;
        self
    }

    fn show(&self, v: f64) -> String {
        if self.unit == "x" {
            format!("{v:.2}x")
        } else {
            format!("{v:.0}{}", self.unit)
        }
    }
}

/// One ratio of tradestore over a peer, named so that two runs can be compared; higher is
/// better for tradestore.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What is compared, e.g. `point get by id: tradestore / sqlite`.
    pub name: String,
    /// tradestore's rate over the peer's.
    pub value: f64,
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
            write_path: None,
        }
    }

    /// The row with the store's write-path statistics.
    #[must_use]
    pub fn with_write_path(mut self, write_path: WritePath) -> Measurement {
        self.write_path = Some(write_path);
        self
    }

    fn is_tradestore(&self, mode: &str) -> bool {
        self.engine == TRADESTORE && self.mode.starts_with(mode)
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
    /// The reads and bulk restores, every engine on the same data set.
    pub reads: Vec<ReadMeasurement>,
    /// The targets, checked against these rows.
    pub targets: Vec<Target>,
    /// Every ratio of tradestore over a peer in this run, by name.
    pub comparisons: Vec<Comparison>,
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
        let targets = targets(&rows);
        let comparisons = write_comparisons(&rows);
        Report {
            dir,
            plan,
            rows,
            reads: Vec::new(),
            targets,
            comparisons,
        }
    }

    /// The report with the read rows (their ratios filled in, as
    /// [`reads::run_reads`] returns them), their targets and their comparisons.
    #[must_use]
    pub fn with_reads(mut self, reads: Vec<ReadMeasurement>) -> Report {
        self.targets.extend(reads::report::targets(&reads));
        self.comparisons.extend(reads::report::comparisons(&reads));
        self.reads = reads;
        self
    }

    /// The write-path block: one line of `store.stats()` per tradestore row.
    fn write_path_table(&self) -> String {
        let head = [
            "tradestore mode",
            "commits",
            "conflicts",
            "retries",
            "groups",
            "group p50",
            "group p99",
            "group max",
            "fsync p50 us",
            "fsync p99 us",
        ];
        let cells: Vec<[String; 10]> = self
            .rows
            .iter()
            .filter_map(|r| r.write_path.map(|w| (r, w)))
            .map(|(r, w)| {
                [
                    r.mode.clone(),
                    w.commits.to_string(),
                    w.conflicts.to_string(),
                    w.retries.to_string(),
                    w.groups.to_string(),
                    w.group_p50.to_string(),
                    w.group_p99.to_string(),
                    w.group_max.to_string(),
                    w.fsync_p50_us.to_string(),
                    w.fsync_p99_us.to_string(),
                ]
            })
            .collect();
        if cells.is_empty() {
            return String::new();
        }
        let mut out = String::from("\nwrite path (store.stats() after each tradestore row):\n");
        out.push_str(&grid(&head, &cells, 1));
        out.push_str(
            "commits, conflicts, retries: measured part only; groups, group sizes and fsync \
             (journal write + fdatasync per group): whole store, set-up and warm-up included.\n",
        );
        out
    }

    /// The targets block.
    fn targets_block(&self) -> String {
        let mut out = String::from("\ntargets (this run's numbers):\n");
        let width = self.targets.iter().map(|t| t.what.len()).max().unwrap_or(0);
        for t in &self.targets {
            let value = t.value.map_or_else(|| "-".to_owned(), |v| t.show(v));
            let bound = format!(
                "{} {}",
                if t.at_most { "<=" } else { ">=" },
                t.show(t.bound)
            );
            let verdict = if t.met { "met" } else { "NOT met" };
            let _ = writeln!(
                out,
                "  {:<width$}  {value:>15}  {bound:>18}  {verdict}",
                t.what
            );
        }
        out
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
        let mut out = grid(&head, &cells, 2);
        let _ = writeln!(
            out,
            "\n{} plan, files in {}. Latency is per durable commit (per 4 KiB write for the \
             floor; for the pipelined row, from each submit until its ticket was seen \
             durable); p50/floor = p50 over the fsync floor's p50; x sqlite / x fjall = trades/s \
             over that engine's one-trade-per-commit rate. Every engine allocates through \
             the process's allocator (jemalloc in the `tradestore` and `compare` binaries).",
            self.plan, self.dir
        );
        out.push_str(&self.write_path_table());
        out.push_str(&reads::report::table(&self.reads));
        out.push_str(&self.targets_block());
        out
    }
}

/// The targets of the issue, from `rows`: tradestore's 1-writer `store.transact` p50 over
/// the fsync floor's; its most-threads `store.transact` row and its pipelined row over
/// SQLite's and fjall's one-trade-per-commit rates.
fn targets(rows: &[Measurement]) -> Vec<Target> {
    let one = rows
        .iter()
        .find(|r| r.is_tradestore(TRANSACT) && r.threads == 1);
    let most = rows
        .iter()
        .filter(|r| r.is_tradestore(TRANSACT))
        .max_by_key(|r| r.threads)
        .filter(|r| r.threads > 1);
    let pipelined = rows.iter().find(|r| r.is_tradestore(PIPELINED));
    let mut out = vec![Target::new(
        format!("{TRANSACT}, 1 thread: p50 / fsync floor p50"),
        one.and_then(|r| r.ratios.p50_over_floor),
        TARGET_P50_OVER_FLOOR,
        true,
    )];
    let named = [
        (
            most.map(|r| format!("{TRANSACT}, {} threads", r.threads)),
            most,
        ),
        (Some(PIPELINED.to_owned()), pipelined),
    ];
    for (name, row) in named {
        let name = name.unwrap_or_else(|| format!("{TRANSACT}, many threads"));
        out.push(Target::new(
            format!("{name}: trades/s / sqlite 1 trade/commit"),
            row.and_then(|r| r.ratios.over_sqlite_per_trade),
            TARGET_OVER_SQLITE,
            false,
        ));
        out.push(Target::new(
            format!("{name}: trades/s / fjall 1 trade/commit"),
            row.and_then(|r| r.ratios.over_fjall_per_trade),
            TARGET_OVER_FJALL,
            false,
        ));
    }
    out
}

/// The peers of tradestore's write rows in comparisons: the per-trade SQLite and fjall rows.
const WRITE_PEERS: [&str; 2] = ["sqlite 1 trade/tx", "fjall 1 trade/batch"];

/// The name of the comparison of tradestore's write row `mode` with `peer`.
fn write_comparison_name(mode: &str, peer: &str) -> String {
    format!("write {mode}: tradestore / {peer}")
}

/// tradestore's write rows over the per-trade SQLite and fjall rows, by name.
fn write_comparisons(rows: &[Measurement]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| r.engine == TRADESTORE) {
        let values = [
            r.ratios.over_sqlite_per_trade,
            r.ratios.over_fjall_per_trade,
        ];
        for (peer, value) in WRITE_PEERS.into_iter().zip(values) {
            if let Some(value) = value {
                out.push(Comparison {
                    name: write_comparison_name(&r.mode, peer),
                    value,
                });
            }
        }
    }
    out
}

/// The name of every comparison a run of `plan` reports (when every measurement succeeds):
/// a baseline that shares none of them is refused before anything is measured.
pub fn comparison_names(plan: &crate::run::Plan) -> Vec<String> {
    let mut out = Vec::new();
    for way in crate::tradestore::SUBMITTERS {
        let threads: &[usize] = if way.concurrent { &plan.threads } else { &[1] };
        for &n in threads {
            let mode = crate::tradestore::mode(way, n);
            out.extend(WRITE_PEERS.map(|peer| write_comparison_name(&mode, peer)));
        }
    }
    out.extend(reads::report::comparison_names());
    out
}

/// A text grid: a header, a rule, the rows; the first `text` columns to the left, the
/// others (numbers) to the right.
pub(crate) fn grid<const N: usize>(head: &[&str; N], cells: &[[String; N]], text: usize) -> String {
    let mut width = head.map(str::len);
    for row in cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        for (i, (c, w)) in row.iter().zip(width).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            if i < text {
                let _ = write!(out, "{sep}{c:<w$}");
            } else {
                let _ = write!(out, "{sep}{c:>w$}");
            }
        }
        out.push('\n');
    };
    line(&mut out, head);
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    line(
        &mut out,
        &rule.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for row in cells {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
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
        // No store.transact or pipelined row: every target is unmet, none invented.
        assert_eq!(r.targets.len(), 5);
        assert!(r.targets.iter().all(|t| !t.met && t.value.is_none()));
    }

    #[test]
    fn targets_come_from_the_rows() {
        let mut one = row(TRADESTORE, 1, 120_000, 10);
        one.mode = format!("{TRANSACT}, 1 thread");
        let mut many = row(TRADESTORE, 1, 400_000, 8_000);
        many.mode = format!("{TRANSACT}, 64 threads");
        many.threads = 64;
        let mut piped = row(TRADESTORE, 1, 900_000, 3_000);
        piped.mode = format!("{PIPELINED}, window 4096");
        piped = piped.with_write_path(WritePath {
            group_p50: 100,
            group_max: 128,
            ..WritePath::default()
        });
        let r = Report::new(
            "d".into(),
            "quick",
            vec![
                row(FLOOR, 0, 100_000, 10),
                row(SQLITE, 1, 200_000, 100),
                row(FJALL, 1, 300_000, 100),
                one,
                many,
                piped,
            ],
        );
        let got: Vec<_> = r.targets.iter().map(|t| (t.value, t.met)).collect();
        let near = |v: Option<f64>, want: f64| (v.unwrap() - want).abs() < 0.01;
        assert!(near(got[0].0, 1.2) && got[0].1);
        assert!(near(got[1].0, 80.0) && got[1].1);
        assert!(near(got[3].0, 30.0) && !got[3].1);
        assert!(r.targets[1].what.contains("64 threads"));
        let table = r.table();
        assert!(table.contains("NOT met"), "{table}");
        assert!(table.contains("group max"), "{table}");
    }
}
