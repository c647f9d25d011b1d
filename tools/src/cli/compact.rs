//! `tradestore compact`: rewrite the database file without its free pages.

use std::io::Write;

use anyhow::{Context, Result};
use tradestore::{Config, Store};

use super::store::{StoreDir, existing};

/// Compact the database file, offline.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Compact the store's database file, offline: open the store (replaying its journal), close it \
with everything applied and checkpointed, then rewrite tradestore.redb without its free pages. \
The store must not be open in another process (that is an error, and nothing changes).

The file keeps free pages between compactions: the engine writes to it without syncing \
between checkpoints, and pages replaced by those writes become free only at a checkpoint. \
They are reused as data grows, but the file never shrinks on its own.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print what the journal's recovery did and the sizes before and after as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `compact`.
pub fn run(args: &Args) -> Result<()> {
    let dir = &args.store.dir;
    existing(dir)?;
    let config = Config::load(dir)
        .with_context(|| format!("reading the configuration of {}", dir.display()))?;
    let done = Store::compact(dir, config)
        .with_context(|| format!("compacting the store in {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &done)?;
        writeln!(out)?;
    } else {
        if done.recovery.found_anything() {
            writeln!(out, "recovered first: {}", done.recovery)?;
        }
        writeln!(
            out,
            "compacted {}: {} -> {} bytes",
            dir.join(tradestore::DB_FILE).display(),
            done.before_bytes,
            done.after_bytes
        )?;
    }
    out.flush()?;
    Ok(())
}
