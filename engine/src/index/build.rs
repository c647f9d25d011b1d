//! Online index builds and drops.
//!
//! A build goes through four steps, each safe to crash in:
//!
//! 1. The definition is registered in the catalog as *building* and its redb table created.
//! 2. Under the commit lock the index joins the store's index list and the schema epoch is
//!    bumped: every transaction validated from then on carries the index's entries in its
//!    write set (so the overlay has them), transactions begun before fail with a retryable
//!    conflict, and the applier derives the entries for everything it moves into redb.
//! 3. Once redb holds every transaction ordered before step 2, the rows already in redb are
//!    backfilled in chunks, each a short redb write transaction taking turns with the
//!    applier; both derive entries from the row as redb holds it at that moment, so the two
//!    agree whatever their order.
//! 4. The catalog marks the index ready and the index list is republished with it usable:
//!    only now do queries and foreign key checks read it.
//!
//! A store opened with a build in progress (a crash during step 3) redoes the backfill from
//! scratch before it serves anything. A drop removes the index from the list (bumping the
//! epoch), waits for the applier to stop writing it, then deletes its table.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Durability, ReadableDatabase, ReadableTable, TableHandle};
use tradestore_schema::{IndexDef, codec};

use crate::catalog::{self, IndexDecision};
use crate::commit::Shared;
use crate::error::{Error, Result};
use crate::layout::{self, IndexSpec};
use crate::state::read_applied_seq;
use crate::store::Store;
use crate::txn::entry_key;

/// Rows backfilled per redb write transaction: small enough that the applier is never held
/// up for long, large enough that commit overhead stays small.
const CHUNK_ROWS: usize = 4096;

/// What an online build did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildReport {
    /// The index built.
    pub name: String,
    /// Entries written by the backfill.
    pub backfilled: u64,
    /// Backfill chunks (redb write transactions).
    pub chunks: u64,
    /// Wall time of the whole build.
    pub elapsed: Duration,
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn decision(action: &str, def: &IndexDef, reason: &str) -> IndexDecision {
    IndexDecision {
        at_ns: now_ns(),
        action: action.to_owned(),
        index: def.name.clone(),
        table: def.table.name().to_owned(),
        columns: def.columns.clone(),
        reason: reason.to_owned(),
    }
}

/// Checks a definition for an online build against the indexes that exist.
pub(crate) fn validate(def: &IndexDef, existing: &[IndexSpec]) -> Result<()> {
    let name_ok = !def.name.is_empty()
        && def.name.len() <= 64
        && def
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !name_ok {
        return Err(Error::invalid(format!(
            "index name {:?}: use 1 to 64 characters of a-z, 0-9 and _",
            def.name
        )));
    }
    if def.columns.is_empty() {
        return Err(Error::invalid(format!("index {} has no columns", def.name)));
    }
    for (i, c) in def.columns.iter().enumerate() {
        if def.table.column(c).is_none() {
            let names: Vec<&str> = def.table.columns().iter().map(|c| c.name).collect();
            return Err(Error::invalid(format!(
                "index {}: table {} has no column {c:?}; its columns are {}",
                def.name,
                def.table,
                names.join(", ")
            )));
        }
        if def.columns[..i].contains(c) {
            return Err(Error::invalid(format!(
                "index {}: column {c} is listed twice",
                def.name
            )));
        }
    }
    if def.unique {
        return Err(Error::invalid(format!(
            "index {}: unique indexes belong to the schema; indexes created at run time are \
             not unique",
            def.name
        )));
    }
    if def.builtin {
        return Err(Error::invalid(format!(
            "index {}: built-in indexes belong to the schema",
            def.name
        )));
    }
    if let Some(same) = existing.iter().find(|s| s.def.name == def.name) {
        return Err(Error::constraint(format!(
            "an index named {} already exists (on {} {})",
            def.name,
            same.def.table,
            same.def.columns.join(", ")
        ))
        .advise(INDEX_EXISTS));
    }
    if let Some(same) = existing
        .iter()
        .find(|s| s.def.table == def.table && s.def.columns == def.columns)
    {
        return Err(Error::constraint(format!(
            "index {} already indexes {} ({})",
            same.def.name,
            def.table,
            def.columns.join(", ")
        ))
        .advise(INDEX_EXISTS));
    }
    Ok(())
}

/// The advice given with a refused index creation that repeats an existing index.
const INDEX_EXISTS: &str = "nothing was changed; the existing index is in use, or, if its \
     build was interrupted, is finished when the store next opens: see `tradestore index list`, \
     and drop it first to redefine it";

impl Store {
    /// Creates a secondary index online: registers it, then backfills the rows already
    /// stored in chunks while writes continue, and returns once it is complete and used by
    /// queries. Transactions begun before the index existed fail with a retryable conflict.
    /// `reason` is recorded with the decision in the catalog.
    pub fn create_index(&self, def: IndexDef, reason: &str) -> Result<BuildReport> {
        create(&self.shared, def, reason)
    }

    /// Drops a secondary index created at run time (built-in indexes cannot be dropped).
    /// `reason` is recorded with the decision in the catalog.
    pub fn drop_index(&self, name: &str, reason: &str) -> Result<()> {
        drop(&self.shared, name, reason)
    }

    /// Every index decision recorded in the catalog, oldest first.
    pub fn index_decisions(&self) -> Result<Vec<IndexDecision>> {
        catalog::decisions(&self.shared.db.begin_read()?)
    }
}

/// [`Store::create_index`].
pub(crate) fn create(shared: &Shared, def: IndexDef, reason: &str) -> Result<BuildReport> {
    let started = Instant::now();
    let _ddl = shared.index_ddl.lock();
    let current = shared.indexes.read().clone();
    validate(&def, &current)?;
    if shared.poisoned.load(Ordering::SeqCst) {
        return Err(shared.poison_error());
    }
    let slot = shared.next_slot.fetch_add(1, Ordering::SeqCst);
    let spec = IndexSpec::new(def.clone(), slot, false);

    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    catalog::register_building(&txn, &def)?;
    spec.open_mut(&txn)?;
    catalog::record_decision(&txn, &decision("create", &def, reason))?;
    shared.commit_redb(txn, None)?;

    let ordered = publish(shared, |list| list.push(spec.clone()));
    let outcome = wait_applied(shared, ordered).and_then(|()| backfill(shared, &spec));
    let (backfilled, chunks) = match outcome {
        Ok(done) => done,
        Err(e) => {
            let why = format!("build failed: {e}");
            // Best effort: a store that cannot even record the abandonment finishes
            // the build when it is next opened.
            let _ = remove(shared, &spec, "abandon", &why);
            return Err(e);
        }
    };
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    catalog::mark_ready(&txn, &def.name)?;
    let why = format!(
        "backfilled {backfilled} entr{} in {chunks} chunk{}",
        if backfilled == 1 { "y" } else { "ies" },
        if chunks == 1 { "" } else { "s" }
    );
    catalog::record_decision(&txn, &decision("ready", &def, &why))?;
    shared.commit_redb(txn, None)?;
    {
        let mut list = shared.indexes.write();
        let mut next: Vec<IndexSpec> = list.iter().cloned().collect();
        if let Some(s) = next.iter_mut().find(|s| s.def.name == def.name) {
            s.ready = true;
        }
        *list = Arc::new(next);
        shared.index_gen.fetch_add(1, Ordering::SeqCst);
    }
    Ok(BuildReport {
        name: def.name,
        backfilled,
        chunks,
        elapsed: started.elapsed(),
    })
}

/// [`Store::drop_index`].
pub(crate) fn drop(shared: &Shared, name: &str, reason: &str) -> Result<()> {
    let _ddl = shared.index_ddl.lock();
    let current = shared.indexes.read().clone();
    let spec = crate::txn::find_any_index(&current, name)?;
    if spec.def.builtin {
        return Err(Error::invalid(format!(
            "index {name} is built in: the schema needs it"
        )));
    }
    if shared.poisoned.load(Ordering::SeqCst) {
        return Err(shared.poison_error());
    }
    // The drop takes the index out of use before its commit: make sure the commit can
    // record it first.
    crate::audit::ready(&shared.db)?;
    remove(shared, &spec, "drop", reason)
}

/// Takes the index out of use, waits until the applier no longer writes it, then deletes
/// its table and definition.
fn remove(shared: &Shared, spec: &IndexSpec, action: &str, reason: &str) -> Result<()> {
    let ordered = publish(shared, |list| list.retain(|s| s.def.name != spec.def.name));
    wait_applied(shared, ordered)?;
    let mut txn = shared.db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    spec.delete_table(&txn)?;
    catalog::remove_index(&txn, &spec.def.name)?;
    catalog::record_decision(&txn, &decision(action, &spec.def, reason))?;
    shared.commit_redb(txn, None)?;
    Ok(())
}

/// Changes the index list under the commit lock and bumps the schema epoch; returns the
/// sequence number of the last transaction ordered under the old list.
fn publish(shared: &Shared, change: impl FnOnce(&mut Vec<IndexSpec>)) -> u64 {
    let mut st = shared.commit.lock();
    let mut next: Vec<IndexSpec> = shared.indexes.read().iter().cloned().collect();
    change(&mut next);
    *shared.indexes.write() = Arc::new(next);
    shared.index_gen.fetch_add(1, Ordering::SeqCst);
    st.epoch += 1;
    st.next_seq - 1
}

/// Waits until redb holds every transaction up to `seq`.
fn wait_applied(shared: &Shared, seq: u64) -> Result<()> {
    loop {
        if shared.poisoned.load(Ordering::SeqCst) {
            return Err(shared.poison_error());
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return Err(closing());
        }
        if read_applied_seq(&shared.db.begin_read()?)? >= seq {
            return Ok(());
        }
        shared.apply_cv.notify_one();
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn closing() -> Error {
    Error::new(
        crate::ErrorKind::Busy,
        "the store is closing; the index build is finished when it is next opened",
    )
}

/// Writes the entries of every row in redb, chunk by chunk; returns (entries, chunks).
fn backfill(shared: &Shared, spec: &IndexSpec) -> Result<(u64, u64)> {
    let mut after: Option<Vec<u8>> = None;
    let (mut entries, mut chunks) = (0u64, 0u64);
    loop {
        if shared.poisoned.load(Ordering::SeqCst) {
            return Err(shared.poison_error());
        }
        if shared.shutdown.load(Ordering::SeqCst) {
            return Err(closing());
        }
        let mut txn = shared.db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let (n, last) = backfill_chunk(&txn, spec, after.as_deref(), CHUNK_ROWS)?;
        shared.commit_redb(txn, None)?;
        entries += n;
        chunks += 1;
        match last {
            Some(k) => after = Some(k),
            None => return Ok((entries, chunks)),
        }
        std::thread::yield_now();
    }
}

/// Indexes up to `limit` rows after `after`; returns how many, and the last key when the
/// table may hold more.
pub(crate) fn backfill_chunk(
    txn: &redb::WriteTransaction,
    spec: &IndexSpec,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(u64, Option<Vec<u8>>)> {
    let table = spec.def.table;
    let data = txn.open_table(layout::data_table(table))?;
    let mut idx = spec.open_mut(txn)?;
    let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut n = 0u64;
    for item in data.range::<&[u8]>((lower, Bound::Unbounded))? {
        let (k, v) = item?;
        let record = codec::decode_any(table, v.value())?;
        idx.insert(&entry_key(spec, &record, k.value()), v.value())?;
        n += 1;
        if n as usize == limit {
            return Ok((n, Some(k.value().to_vec())));
        }
    }
    Ok((n, None))
}

/// On open: makes sure every index's table exists with the value type its definition asks
/// for. A table of the other layout (a store written before the index became covering) is
/// rebuilt from the rows in redb; the journal replay that follows maintains it.
pub(crate) fn convert_layouts(txn: &redb::WriteTransaction, indexes: &[IndexSpec]) -> Result<()> {
    let tables: Vec<String> = txn.list_tables()?.map(|h| h.name().to_owned()).collect();
    for spec in indexes {
        match spec.stored_covering(txn, &tables)? {
            Some(covering) if covering != spec.def.covering => {
                spec.delete_table(txn)?;
                backfill_chunk(txn, spec, None, usize::MAX)?;
            }
            _ => {
                spec.open_mut(txn)?;
            }
        }
    }
    Ok(())
}

/// On open: finishes the builds a crash interrupted, redoing each backfill from scratch in
/// one durable commit, and marks them ready.
pub(crate) fn finish_interrupted(db: &redb::Database, indexes: &mut [IndexSpec]) -> Result<()> {
    for spec in indexes.iter_mut().filter(|s| !s.ready) {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        spec.delete_table(&txn)?;
        let (n, _) = backfill_chunk(&txn, spec, None, usize::MAX)?;
        catalog::mark_ready(&txn, &spec.def.name)?;
        let why = format!("build interrupted; redone on open with {n} entries");
        catalog::record_decision(&txn, &decision("ready", &spec.def, &why))?;
        txn.commit()?;
        spec.ready = true;
    }
    Ok(())
}
