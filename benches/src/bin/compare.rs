//! `compare`: the comparative benchmark. Measures the fsync floor, raw redb, SQLite, fjall
//! and tradestore writing the same trades on the same disk, then each engine restoring and
//! reading one data set, and prints the tables (or, with `--json`, one JSON document).
//!
//! ```text
//! cargo run --release -p tradestore-benches --bin compare -- [--quick] [--json] [--dir DIR]
//! ```

use std::process::ExitCode;

use clap::Parser;
use tradestore_benches::run::{Plan, run_all};

// jemalloc for the whole process (see the README's dependencies): the engine allocates on
// one thread and frees on another, where it costs far less CPU than glibc's malloc.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    about = "Durable trade writes and reads: tradestore against the fsync floor, redb, SQLite and fjall"
)]
struct Args {
    /// Small counts: the whole run takes under two minutes.
    #[arg(long)]
    quick: bool,
    /// Print the results as one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    scratch: tradestore_benches::ScratchArgs,
}

fn main() -> ExitCode {
    tradestore_benches::exit("compare", run(&Args::parse()))
}

fn run(args: &Args) -> tradestore_benches::Result<()> {
    let dir = args.scratch.scratch("compare-")?;
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let report = run_all(dir.path(), &plan, &mut |msg| eprintln!("{msg}"))?;
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
