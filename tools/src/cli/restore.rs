//! `tradestore restore`: load a dump into a store.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::dump::describe;
use super::progress::Progress;
use super::store::{StoreDir, open_existing};

/// Load a JSON Lines dump into the store, all of it or nothing.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Load a JSON Lines dump (as written by `tradestore dump`) into the store. Every line is \
parsed (on all cores), then the rows are checked as a whole: no key twice or already in the \
store, unique indexes, parents listed before the rows that reference them, and the whole store \
as it would be afterwards (business rules, foreign keys, order fills, position folds). The rows \
and their index entries are written in key order and committed in one durable transaction, \
only if all of it is good.

The dump's last line counts its rows (`{\"end\":{\"rows\":3205}}`, written by `tradestore \
dump`): a dump cut short, even at a line boundary, or with rows added or removed, is refused. \
--no-end-check loads a file made without one. The parsed rows are held in memory until the \
commit: a dump whose rows need more than restore_max_mb (tradestore.toml, default 4096 MiB) is \
refused while it is read.

On any error (a malformed or truncated line, a missing or wrong end line, a broken rule, a key \
already in the store) the message names the line, the command exits 1 and the store is left \
exactly as it was. Blank lines are skipped. A summary of the rows per table goes to stderr.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The dump to read; `-` reads standard input.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,

    /// Accept a file without the end line, and skip end lines wherever they are: for files
    /// made by hand or by other tools, or dumps joined together. A dump cut short at a line
    /// boundary then loads the rows it holds.
    #[arg(long)]
    pub no_end_check: bool,
}

/// Runs `restore`.
pub fn run(args: &Args) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let options = tradestore::dump::RestoreOptions {
        check_end: !args.no_end_check,
    };
    let (summary, source) = if args.input.as_os_str() == "-" {
        let progress = Progress::bytes("restoring", None);
        let mut input = std::io::stdin().lock();
        let summary = tradestore::dump::restore_with(&store, &mut input, options, &mut |n| {
            progress.bytes_done(n)
        })
        .context("restoring from standard input")?;
        progress.finish();
        (summary, "from standard input".to_owned())
    } else {
        let shown = args.input.display();
        let file = File::open(&args.input).with_context(|| format!("opening {shown}"))?;
        let len = file.metadata().ok().map(|m| m.len());
        let progress = Progress::bytes("restoring", len);
        let mut input = BufReader::new(file);
        let summary = tradestore::dump::restore_with(&store, &mut input, options, &mut |n| {
            progress.bytes_done(n)
        })
        .with_context(|| format!("restoring from {shown}"))?;
        progress.finish();
        (summary, format!("from {shown}"))
    };
    eprintln!("{}", describe(&summary, "restored", &source));
    Ok(())
}
