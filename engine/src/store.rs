//! The store: opening a directory, snapshots, and write transactions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, Durability, ReadableDatabase};
use tradestore_schema::TableId;

use crate::catalog;
use crate::config::Config;
use crate::error::{Error, Result, guard_read};
use crate::layout::{self, IndexSpec};
use crate::txn::{Mode, ReadTx, WriteTx};

/// The redb file inside a store's directory.
pub const DB_FILE: &str = "tradestore.redb";
/// Folders a store's directory holds besides the redb file.
pub const SUBDIRS: [&str; 3] = ["journal", "archive", "backups"];

/// An open store. Cheap to share between threads behind an `Arc`; reads run in parallel
/// with each other and with the one writer.
pub struct Store {
    db: Database,
    dir: PathBuf,
    config: Config,
    indexes: RwLock<Arc<Vec<IndexSpec>>>,
}

impl Store {
    /// Opens the store in `dir`, creating the directory, its folders and the database on
    /// first use.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Store> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        for sub in SUBDIRS {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p)
                .map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
        }
        let path = dir.join(DB_FILE);
        let mut builder = Database::builder();
        builder.set_cache_size(usize::try_from(config.cache_size_mb << 20).unwrap_or(usize::MAX));
        let mut db = builder
            .create(&path)
            .map_err(|e| Error::from(e).context(path.display()))?;
        if config.check_on_open
            && !db
                .check_integrity()
                .map_err(|e| Error::from(e).context(path.display()))?
        {
            return Err(Error::corruption(format!(
                "{}: integrity check failed and was repaired; verify with `tradestore check`",
                path.display()
            )));
        }
        let indexes = guard_read(&path.display().to_string(), || {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            for t in TableId::ALL {
                txn.open_table(layout::data_table(t))?;
            }
            let indexes = catalog::init(&txn)?;
            for spec in &indexes {
                txn.open_table(spec.redb_table())?;
            }
            txn.commit()?;
            Ok(indexes)
        })?;
        Ok(Store {
            db,
            dir,
            config,
            indexes: RwLock::new(Arc::new(indexes)),
        })
    }

    /// Opens the store in `dir` with the configuration found there ([`Config::load`]).
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Store> {
        let config = Config::load(dir.as_ref())?;
        Store::open(dir, config)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The secondary indexes.
    pub fn indexes(&self) -> Arc<Vec<IndexSpec>> {
        Arc::clone(&self.indexes.read())
    }

    /// A consistent read snapshot.
    pub fn read(&self) -> Result<ReadTx> {
        Ok(ReadTx::new(self.db.begin_read()?, self.indexes()))
    }

    /// Runs `f` in a write transaction and commits it durably when `f` returns `Ok`; when it
    /// returns `Err` nothing it wrote is kept. Returns after the commit is on disk.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx) -> Result<T>) -> Result<T> {
        self.write_mode(Mode::Api, f)
    }

    pub(crate) fn write_mode<T>(
        &self,
        mode: Mode,
        f: impl FnOnce(&mut WriteTx) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        let max = usize::try_from(self.config.max_value_bytes).unwrap_or(usize::MAX);
        let mut tx = WriteTx::new(txn, self.indexes(), max);
        tx.set_mode(mode);
        let out = f(&mut tx)?;
        tx.into_inner().commit()?;
        Ok(out)
    }

    /// Checks the consistency of the whole store ([`check::check`](crate::check::check)).
    /// `progress(done, total)` is called as rows and index entries are examined.
    pub fn check(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<crate::check::CheckReport> {
        let tx = self.read()?;
        crate::check::check(&tx, tx.indexes(), progress)
    }

    /// Size in bytes of the database file.
    pub fn file_size(&self) -> Result<u64> {
        let p = self.dir.join(DB_FILE);
        std::fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::io(format!("reading {}", p.display()), e))
    }
}
