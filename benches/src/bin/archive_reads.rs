//! `archive_reads`: read latency of a store's trades, for comparing a store with the same
//! store after `tradestore archive`. Opens the store in DIR and reads the last 100 trades of
//! an instrument N times (instruments 1..=100 in turn, one snapshot each), then counts one
//! account's trades through SQL (a read of its whole history).
//!
//! ```text
//! cargo run --release -p tradestore-tools -- simulate --dir /tmp/hot --orders 400000
//! cp -r /tmp/hot /tmp/cold
//! cargo run --release -p tradestore-tools -- archive --dir /tmp/cold --older-than 0s
//! cargo run --release -p tradestore-benches --bin archive_reads -- /tmp/hot 20000
//! cargo run --release -p tradestore-benches --bin archive_reads -- /tmp/cold 20000
//! ```

use std::process::ExitCode;
use std::time::Instant;

use tradestore::{ReadOps, Store};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn run(dir: &str, reads: u64) -> tradestore::Result<()> {
    let store = Store::open_dir(dir)?;
    let started = Instant::now();
    let mut rows = 0;
    for i in 0..reads {
        rows += store.read()?.recent_trades(1 + i % 100, 100)?.len();
    }
    let elapsed = started.elapsed();
    println!(
        "last 100 trades of an instrument: {reads} reads, {rows} rows, {:.1} us per read",
        elapsed.as_secs_f64() * 1e6 / reads.max(1) as f64
    );
    let started = Instant::now();
    let counted = store.query("SELECT count(*) FROM trades WHERE account = 7")?;
    println!(
        "count(*) of account 7's trades: {} in {:.1} ms",
        counted.cell(0, 0),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(reads)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: archive_reads DIR READS");
        return ExitCode::from(2);
    };
    match run(dir, reads) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
