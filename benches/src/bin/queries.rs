//! `queries`: the query benchmark. Loads one data set into tradestore and SQLite, runs the
//! common queries of the SQL front end in both with the same random parameters, with and
//! without the index tradestore's advisor recommends, and prints each query's p50 and p99
//! latency in both (or, with `--json`, one JSON document).
//!
//! ```text
//! cargo run --release -p tradestore-benches --bin queries -- [--quick] [--json] [--dir DIR]
//! ```

use std::process::ExitCode;

use clap::Parser;
use tradestore_benches::queries::{QueryPlan, run_queries};

// The same allocator as the `tradestore` binary (see the README's dependencies).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Latency of the common queries: tradestore against SQLite running the same SQL")]
struct Args {
    /// A small data set (20k trades): the whole run takes well under two minutes.
    #[arg(long)]
    quick: bool,
    /// Print the results as one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    scratch: tradestore_benches::ScratchArgs,
}

fn main() -> ExitCode {
    tradestore_benches::exit("queries", run(&Args::parse()))
}

fn run(args: &Args) -> tradestore_benches::Result<()> {
    let dir = args.scratch.scratch("queries-")?;
    let plan = if args.quick {
        QueryPlan::quick()
    } else {
        QueryPlan::full()
    };
    let report = run_queries(dir.path(), &plan, &mut |msg| eprintln!("{msg}"))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
