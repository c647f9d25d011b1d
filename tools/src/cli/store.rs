//! The `--dir` argument every subcommand takes, and opening the store it names.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tradestore::{DB_FILE, Store};

/// Where the store lives.
#[derive(Debug, clap::Args)]
pub struct StoreDir {
    /// The store's directory: it holds tradestore.toml, tradestore.redb and the journal,
    /// archive and backups folders.
    #[arg(long, env = "TRADESTORE_DIR", default_value = "./tradestore-data")]
    pub dir: PathBuf,
}

/// Opens the store in `dir` with its configuration. A directory that does not exist, or
/// holds no database, is an error that says to run `tradestore init`: only `init` creates
/// a store.
pub fn open_existing(dir: &Path) -> Result<Store> {
    open_in(dir, false)
}

/// Like [`open_existing`], with redb's full integrity check on open whatever the
/// configuration says: for commands that report on or copy out the data (`check`, `dump`),
/// which must not take a damaged file's bytes for the store's.
pub fn open_existing_checked(dir: &Path) -> Result<Store> {
    open_in(dir, true)
}

/// Whether `e` says the store is open in another process.
pub fn is_busy(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<tradestore::Error>()
            .is_some_and(|e| e.kind() == tradestore::ErrorKind::Busy)
    })
}

fn open_in(dir: &Path, check: bool) -> Result<Store> {
    existing(dir)?;
    let opened = tradestore::Config::load(dir).and_then(|config| {
        let check_on_open = config.check_on_open || check;
        Store::open(
            dir,
            tradestore::Config {
                check_on_open,
                ..config
            },
        )
    });
    let store = opened.with_context(|| format!("opening the store in {}", dir.display()))?;
    warn_recovery(store.recovery());
    Ok(store)
}

/// Tells the operator, on stderr, what opening accepted that they should know of: records
/// lost under `accept_journal_loss`, damage in journal records the database already holds.
pub fn warn_recovery(found: &tradestore::Recovery) {
    if let Some(lost) = &found.journal_loss {
        eprintln!("warning: {lost}");
    }
    for d in &found.journal_damage {
        eprintln!(
            "warning: damage in journal records the database already holds (nothing stored \
             is missing; a point-in-time recovery through them would be): {d}"
        );
    }
}

/// Checks that `dir` holds a store (see [`open_existing`]).
pub fn existing(dir: &Path) -> Result<()> {
    let shown = dir.display();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => bail!("{shown} is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "store directory {shown} does not exist; create the store with \
             `tradestore init --dir {shown}`"
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
    }
    let db = dir.join(DB_FILE);
    match std::fs::metadata(&db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if tradestore::is_unfinished_store(dir) {
                bail!(
                    "{shown} holds no {DB_FILE} yet: the store's creation was interrupted \
                     before its database was in place, so it holds no data; `tradestore init \
                     --dir {shown}` (or `simulate`) finishes creating it"
                );
            }
            if let Some((staging, running)) = tradestore::backup::restore_staging(dir) {
                let staging = staging.display();
                if running {
                    bail!(
                        "{shown} holds no {DB_FILE} yet: a backup restore into it is running \
                         (its staging folder is {staging}); wait for it to finish"
                    );
                }
                bail!(
                    "{shown} holds no {DB_FILE}: a backup restore into it (`backup restore \
                     --to`, or `standby --from-backup`) was interrupted, and left its staging \
                     folder {staging}; run the same command again (it removes that folder and \
                     restores), rather than `tradestore init`, which would make the directory \
                     a new, empty store"
                );
            }
            bail!(
                "{shown} holds no {DB_FILE}, so it is not a store; create one with \
                 `tradestore init --dir {shown}`"
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", db.display())),
    }
    Ok(())
}
