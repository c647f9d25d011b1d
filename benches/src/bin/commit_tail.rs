//! `commit_tail`: the tail of one writer's commit latency over a long run. One thread
//! records fills (`store.transact(|tx| tx.record_fill(..))`, as the benchmark's one-writer
//! row does) for `--fills` commits, several runs each on a fresh store, and prints per run
//! the throughput, p50, p99, p99.9 and the commits slower than 1 ms. The comparative
//! benchmark's row measures 10k commits, too few for a steady p99.9.
//!
//! ```text
//! cargo run --release -p tradestore-benches --bin commit_tail -- [--fills 40000] [--runs 5] [--dir DIR]
//! ```

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use tradestore::schema::TableId;
use tradestore::{RetryPolicy, Store};
use tradestore_benches::tradestore::{setup, to_trade};
use tradestore_benches::workload::trade;

// The same allocator as the `tradestore` binary (see the README's dependencies).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "One writer's commit latency percentiles over a long run")]
struct Args {
    /// Commits per run.
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u64).range(1_000..=10_000_000))]
    fills: u64,
    /// Runs, each on a fresh store.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
    runs: u64,
    #[command(flatten)]
    scratch: tradestore_benches::ScratchArgs,
}

fn main() -> ExitCode {
    tradestore_benches::exit("commit_tail", run(&Args::parse()))
}

fn run(args: &Args) -> tradestore_benches::Result<()> {
    let dir = args.scratch.scratch("commit-tail-")?;
    println!("run  fills/s  p50 us  p99 us  p99.9 us  over 1 ms");
    for r in 1..=args.runs {
        let store = setup(&dir.path().join(format!("run-{r}")))?;
        let mut us = commits(&store, args.fills)?;
        let secs = us.iter().sum::<u64>() as f64 / 1e6;
        us.sort_unstable();
        let at = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)];
        println!(
            "{r:>3}  {:>7.0}  {:>6}  {:>6}  {:>8}  {:>9}",
            us.len() as f64 / secs.max(1e-9),
            at(0.5),
            at(0.99),
            at(0.999),
            us.iter().filter(|&&l| l > 1_000).count()
        );
    }
    Ok(())
}

/// Commits `n` fills one after another; returns each commit's latency in microseconds.
fn commits(store: &Store, n: u64) -> tradestore_benches::Result<Vec<u64>> {
    let policy = RetryPolicy::default();
    let mut us = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    for k in 0..n {
        let mut t = to_trade(&trade(k));
        let start = Instant::now();
        store.transact(&policy, |tx| {
            t.id = tx.next_id(TableId::Trades)?;
            tx.record_fill(&t)
        })?;
        us.push(u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(us)
}
