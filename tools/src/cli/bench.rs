//! `tradestore bench`: the comparative benchmark (`tradestore-benches`), optionally checked
//! against a baseline.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tradestore_benches::baseline::Baseline;
use tradestore_benches::run::{Plan, run_all};

/// The exit status when a ratio regressed beyond the threshold.
pub const REGRESSED: u8 = 3;

/// Measure tradestore against raw redb, SQLite and fjall on this machine.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Measure tradestore against raw redb (untyped tables), SQLite (WAL) and fjall, all in one run \
on the same disk, and print tables of ratios: durable trade writes (one trade per commit, \
concurrent and pipelined, next to the disk's fsync floor), then one data set loaded into \
each engine (the bulk restore, trades/s) and read back (point gets by id, an instrument's \
last 100 trades, an account's positions; ops/s, p50 and p99). The issue's targets are \
computed from this run's numbers and shown as met or not met. Last, what monitoring costs: \
the reference trading engine (simulate) on fresh stores with the sampler on and off, in \
alternating rounds, compared by median throughput.

Scratch data goes to a temporary folder inside --dir, removed afterwards. --quick takes \
under two minutes; the default counts take several.

With --baseline FILE (an earlier run's --json output) every ratio of tradestore over a peer \
is compared with the baseline's (absolute timings never are): the command exits 3 and lists \
each ratio that fell by more than --threshold percent, and exits 0 otherwise. The baseline \
is read and checked before anything is measured; an unreadable or malformed one exits 1, and so \
does one none of whose ratios this run has (nothing would be compared).")]
pub struct Args {
    /// Small counts: the whole run takes under two minutes.
    #[arg(long)]
    pub quick: bool,

    /// Print the whole run as one JSON document (the baseline comparison goes to stderr).
    #[arg(long)]
    pub json: bool,

    /// An earlier run's --json output to compare the ratios with.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// How many percent a ratio may fall below the baseline's before it counts as a
    /// regression.
    #[arg(long, value_name = "PCT", default_value_t = 25.0)]
    pub threshold: f64,

    /// Where to write scratch data (a temporary folder is made inside it and removed
    /// afterwards). Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Runs `bench`: 0 when no ratio regressed, [`REGRESSED`] when one did.
pub fn run(args: &Args) -> Result<ExitCode> {
    if !args.threshold.is_finite() || !(0.0..100.0).contains(&args.threshold) {
        bail!(
            "--threshold {} is not a percentage in 0..100",
            args.threshold
        );
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    // Checked before anything is measured: a bad baseline should not cost a whole run.
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    if let (Some(b), Some(path)) = (&baseline, &args.baseline) {
        let names = tradestore_benches::report::comparison_names(&plan);
        if !b.comparisons.iter().any(|c| names.contains(&c.name)) {
            bail!(
                "none of the {} ratios of the baseline {} is one this run reports (another \
                 version's report?): nothing would be compared; make a new baseline with \
                 `tradestore bench --json`",
                b.comparisons.len(),
                path.display()
            );
        }
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    // Removed when dropped; one a killed run left is removed by the next run.
    let dir = tradestore_benches::scratch_dir(Some(&base), "tradestore-bench-")
        .map_err(|e| anyhow::anyhow!(e))?;
    let report = run_all(dir.path(), &plan, &mut |msg| eprintln!("{msg}"))
        .map_err(|e| anyhow::anyhow!(e))
        .context("running the benchmark")?;
    // A round's paired difference moves by up to 5% either way on this machine (7 rounds
    // gave medians from -4.6% to 4.8% over runs of one build): more rounds, a steadier median.
    let (rounds, orders) = if args.quick { (3, 3_000) } else { (15, 20_000) };
    let cost =
        super::monitor_cost::measure(dir.path(), rounds, orders, &mut |msg| eprintln!("{msg}"))
            .context("measuring what monitoring costs")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut doc: serde_json::Value = serde_json::from_str(&report.json())?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("monitor_cost".into(), serde_json::to_value(&cost)?);
        }
        writeln!(out, "{doc}")?;
    } else {
        write!(out, "{}", report.table())?;
        write!(out, "{}", cost.text())?;
    }
    let Some(baseline) = baseline else {
        return Ok(ExitCode::SUCCESS);
    };
    let verdict = baseline.compare(&report, args.threshold);
    let mut text = verdict.text(args.threshold);
    if baseline.plan != report.plan {
        text.push_str(&format!(
            "  note: the baseline ran the {} plan, this run the {} plan\n",
            baseline.plan, report.plan
        ));
    }
    if args.json {
        eprint!("{text}");
    } else {
        write!(out, "{text}")?;
    }
    out.flush()?;
    // A baseline none of whose ratios this run has would pass every run: not a check.
    if verdict.compared == 0 {
        bail!(
            "none of the baseline's {} ratios is in this run (another version's report?): \
             nothing was compared; make a new baseline with `tradestore bench --json`",
            verdict.missing.len()
        );
    }
    if verdict.regressions.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(REGRESSED))
    }
}
