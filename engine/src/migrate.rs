//! Versioned migrations: files that change the store's data and indexes, applied once each,
//! in dependency order, with their history kept in the store.
//!
//! A migration is one TOML file (the name is free, it must end in `.toml`):
//!
//! ```toml
//! version = 3                        # a positive integer, unique among the files
//! description = "venue B goes live"  # optional
//! depends_on = [1, 2]                # optional: versions applied before this one
//!
//! [[step]]
//! create_index = { name = "orders_by_price", table = "orders", columns = ["price"] }
//! [[step]]
//! drop_index = "trades_by_fee"
//! [[step]]                           # rows in the dump's line format; a key that exists is an error
//! insert = ['{"table":"accounts","record":{"id":9,"name":"venue-b","status":"active"}}']
//! [[step]]                           # the same, replacing a row that exists
//! put = ['{"table":"accounts","record":{"id":4,"name":"desk-4","status":"suspended"}}']
//! [[step]]                           # primary keys; a key with no row is an error
//! delete = { table = "cash", keys = [[9, "USD"]] }
//! ```
//!
//! [`Store::migrate`] applies every pending migration (a file whose version the history does
//! not hold) in one durable redb commit, or none of them:
//!
//! 1. **Validation.** Every file is read and checked first: its syntax, its steps (tables,
//!    columns, index names, rows in the dump format), its dependencies (known, no cycle), and
//!    the history: a migration already applied whose file is now different (its SHA-256
//!    checksum changed) or gone is refused, since the files no longer describe the store.
//! 2. **Backup.** Unless told otherwise, an online backup is taken into the store's
//!    `backups/` folder ([`Store::backup_in_store`]); the history names it.
//! 3. **Apply.** Under the commit lock, once every acked write is in redb, the data steps run
//!    in one write transaction of the public API, in dependency order and step order, so every
//!    rule, foreign key and unique index is checked as for any write; index steps change the
//!    index list. Then one redb write transaction writes the rows, maintains every index,
//!    deletes dropped indexes, builds created ones from the rows as they end up, records the
//!    decisions and the history entries, and commits durably.
//!
//! Any error before that commit leaves the store exactly as it was (the rollback is the
//! commit not happening), and a crash during it leaves it as before or as after. Writers wait
//! while a migration applies; transactions begun before it fail with a retryable conflict.
//!
//! A migration is written to redb directly, not to the journal (like a restore): a standby
//! does not follow it, and a point-in-time restore of an earlier base backup does not replay
//! it. A standby refuses migrations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableDatabase};
use serde::{Deserialize, Serialize};
use tradestore_schema::{ColumnType, IndexDef, TableId, Value};

use crate::catalog;
use crate::dump::parse_line;
use crate::error::{Error, Result};
use crate::index;
use crate::keys;
use crate::layout::IndexSpec;
use crate::state::{RowChange, apply_rows, read_standby_seq};
use crate::store::Store;

/// The largest migration file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// The most bytes of migration files one folder may hold: a run holds every file's rows in
/// memory at once.
pub const MAX_DIR_BYTES: u64 = 64 << 20;
/// The longest description (it is copied into the history and the audit trail).
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// The catalog prefix of history entries: `migration/<20-digit version>`.
const HISTORY_PREFIX: &str = "migration/";

/// A migration read from its file.
#[derive(Clone, Debug, PartialEq)]
pub struct Migration {
    /// Its version: the order of application when dependencies leave a choice.
    pub version: u64,
    /// The file's name without `.toml`.
    pub name: String,
    /// What it does, from the file (may be empty).
    pub description: String,
    /// Versions that must be applied before it.
    pub depends_on: Vec<u64>,
    /// What it does, in order.
    pub steps: Vec<Step>,
    /// SHA-256 of the file's bytes, as `sha256:` and 64 hex digits.
    pub checksum: String,
    /// Where it was read from.
    pub source: PathBuf,
}

/// One step of a migration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Builds a secondary index (not unique; a name or column list in use is refused).
    CreateIndex(IndexStep),
    /// Drops a secondary index created at run time.
    DropIndex(String),
    /// Inserts rows, dump lines; a row whose key exists is an error.
    Insert(Vec<String>),
    /// Inserts or replaces rows, dump lines.
    Put(Vec<String>),
    /// Deletes rows by primary key; a key with no row is an error.
    Delete(DeleteStep),
}

/// An index to create.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexStep {
    /// The index's name: 1 to 64 characters of a-z, 0-9 and _.
    pub name: String,
    /// The indexed table.
    pub table: String,
    /// The indexed columns, in key order.
    pub columns: Vec<String>,
    /// Keep a copy of each row in its entry.
    #[serde(default)]
    pub covering: bool,
}

/// Rows to delete.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteStep {
    /// The table.
    pub table: String,
    /// Primary keys, each a list of the key's columns: `[7]`, or `[9, "USD"]` for cash.
    pub keys: Vec<Vec<toml::Value>>,
}

impl Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::CreateIndex(_) => "create_index",
            Step::DropIndex(_) => "drop_index",
            Step::Insert(_) => "insert",
            Step::Put(_) => "put",
            Step::Delete(_) => "delete",
        }
    }
}

/// A migration file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    depends_on: Vec<u64>,
    #[serde(default)]
    step: Vec<Step>,
}

impl Migration {
    /// Parses a migration file's bytes; `source` names it in errors.
    pub fn parse(source: &Path, bytes: &[u8]) -> Result<Migration> {
        let shown = source.display();
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::invalid(format!("{shown}: not UTF-8 text ({e})")))?;
        let file: File = toml::from_str(text).map_err(|e| {
            let text = e.to_string();
            let what = if text.contains("wanted exactly 1 element") {
                "\na [[step]] holds exactly one of create_index, drop_index, insert, put, delete"
            } else {
                ""
            };
            Error::invalid(format!("{shown}: {}{what}", text.trim_end()))
        })?;
        let name = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let m = Migration {
            version: file.version,
            name,
            description: file.description,
            depends_on: file.depends_on,
            steps: file.step,
            checksum: checksum(bytes),
            source: source.to_path_buf(),
        };
        m.check_static().map_err(|e| e.context(shown))?;
        Ok(m)
    }

    /// What can be checked without a store.
    fn check_static(&self) -> Result<()> {
        if self.version == 0 {
            return Err(Error::invalid("version must be 1 or more"));
        }
        if self.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(Error::invalid(format!(
                "the description is {} bytes; at most {MAX_DESCRIPTION_BYTES}",
                self.description.len()
            )));
        }
        if self.depends_on.contains(&self.version) {
            return Err(Error::invalid(format!(
                "migration {} depends on itself",
                self.version
            )));
        }
        if self.steps.is_empty() {
            return Err(Error::invalid(
                "no steps: add [[step]] tables (create_index, drop_index, insert, put, delete)",
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = |e: Error| e.context(format!("step {} ({})", i + 1, step.kind()));
            match step {
                Step::CreateIndex(s) => {
                    index_def(s).map_err(at)?;
                }
                Step::DropIndex(_) => {}
                Step::Insert(rows) | Step::Put(rows) => {
                    if rows.is_empty() {
                        return Err(at(Error::invalid("no rows")));
                    }
                    for (r, line) in rows.iter().enumerate() {
                        parse_line(line).map_err(|e| at(e.context(format!("row {}", r + 1))))?;
                    }
                }
                Step::Delete(d) => {
                    if d.keys.is_empty() {
                        return Err(at(Error::invalid("no keys")));
                    }
                    let table = table_of(&d.table).map_err(at)?;
                    for (k, key) in d.keys.iter().enumerate() {
                        key_values(table, key)
                            .map_err(|e| at(e.context(format!("key {}", k + 1))))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A file's checksum: `sha256:` and 64 hex digits (a changed file cannot keep it).
fn checksum(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", crate::audit::hex(&sha2::Sha256::digest(bytes)))
}

fn table_of(name: &str) -> Result<TableId> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        Error::invalid(format!(
            "no table {name:?}; the tables are {}",
            names.join(", ")
        ))
    })
}

fn index_def(s: &IndexStep) -> Result<IndexDef> {
    let def = IndexDef {
        name: s.name.clone(),
        table: table_of(&s.table)?,
        columns: s.columns.clone(),
        unique: false,
        builtin: false,
        covering: s.covering,
    };
    index::validate(&def, &[])?;
    Ok(def)
}

/// A primary key from TOML values: integers for id columns, strings for text columns.
fn key_values(table: TableId, key: &[toml::Value]) -> Result<Vec<Value>> {
    let cols = table.primary_key();
    if key.len() != cols.len() {
        return Err(Error::invalid(format!(
            "{table} is keyed by ({}): {} value{} expected, {} given",
            cols.join(", "),
            cols.len(),
            if cols.len() == 1 { "" } else { "s" },
            key.len()
        )));
    }
    cols.iter()
        .zip(key)
        .map(|(col, v)| {
            let ty = table.column(col).map(|c| c.ty);
            match (ty, v) {
                (Some(ColumnType::Id), toml::Value::Integer(i)) if *i >= 0 => {
                    Ok(Value::U64(u64::try_from(*i).unwrap_or(0)))
                }
                // TOML integers stop at i64::MAX; larger ids are written as decimal text.
                (Some(ColumnType::Id), toml::Value::String(t)) if t.parse::<u64>().is_ok() => {
                    Ok(Value::U64(t.parse().unwrap_or(0)))
                }
                (Some(ColumnType::Text), toml::Value::String(s)) => Ok(Value::Text(s.clone())),
                (Some(ColumnType::Id), _) => Err(Error::invalid(format!(
                    "{table}.{col} is an id: a non-negative integer (or its decimal digits \
                     quoted, above 9223372036854775807), not {v}"
                ))),
                _ => Err(Error::invalid(format!(
                    "{table}.{col} is text: a quoted string, not {v}"
                ))),
            }
        })
        .collect()
}

/// Reads every `*.toml` file of `dir` as a migration, sorted by version. Other files are
/// ignored; a `.toml` entry that is not a regular file, is over [`MAX_FILE_BYTES`], does
/// not parse, or repeats another's version is an error naming it.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| unreadable(&format!("the migrations folder {shown}"), &e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| unreadable(&shown.to_string(), &e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut by_version: BTreeMap<u64, Migration> = BTreeMap::new();
    let mut total = 0u64;
    for path in paths {
        let bytes = read_bounded(&path)?;
        total += bytes.len() as u64;
        if total > MAX_DIR_BYTES {
            return Err(Error::invalid(format!(
                "the migration files of {shown} hold over {MAX_DIR_BYTES} bytes: apply them in \
                 parts (move applied ones to another folder only once every later file has \
                 been applied)"
            )));
        }
        let m = Migration::parse(&path, &bytes)?;
        if let Some(other) = by_version.get(&m.version) {
            return Err(Error::invalid(format!(
                "{} and {} both have version {}",
                other.source.display(),
                path.display(),
                m.version
            )));
        }
        by_version.insert(m.version, m);
    }
    Ok(by_version.into_values().collect())
}

/// A migration file or folder that cannot be read: bad input, not a failure of the store.
fn unreadable(what: &str, e: &std::io::Error) -> Error {
    Error::invalid(format!("{what} cannot be read: {e}"))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| unreadable(&shown.to_string(), &e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{shown}: not a regular file")));
    }
    let file = std::fs::File::open(path).map_err(|e| unreadable(&shown.to_string(), &e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(&shown.to_string(), &e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::invalid(format!(
            "{shown}: over {MAX_FILE_BYTES} bytes; split the migration"
        )));
    }
    Ok(bytes)
}

/// A migration in the store's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedMigration {
    /// Its version.
    pub version: u64,
    /// Its file's name without `.toml`.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its file's checksum when it was applied.
    pub checksum: String,
    /// When its commit was made, nanoseconds since the Unix epoch.
    pub applied_at_ns: u64,
    /// Rows its steps inserted, replaced or deleted, cascaded deletes included; a row
    /// written twice counts twice. The same whether it was applied alone or in one run with
    /// others.
    pub rows_changed: u64,
    /// Indexes it created.
    pub created_indexes: Vec<String>,
    /// Indexes it dropped.
    pub dropped_indexes: Vec<String>,
    /// The backup taken before the run that applied it, if one was.
    pub backup: Option<String>,
}

impl AppliedMigration {
    /// The migration in words, for the audit trail.
    fn audit_detail(&self) -> String {
        let mut s = format!(
            "version {} ({}, {})",
            self.version, self.name, self.checksum
        );
        if !self.description.is_empty() {
            s.push_str(&format!(": {}", self.description));
        }
        s.push_str(&format!("; {} rows changed", self.rows_changed));
        for i in &self.created_indexes {
            s.push_str(&format!("; created index {i}"));
        }
        for i in &self.dropped_indexes {
            s.push_str(&format!("; dropped index {i}"));
        }
        if let Some(b) = &self.backup {
            s.push_str(&format!("; backup {b}"));
        }
        s
    }
}

/// Where a migration stands against the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    /// Applied, and its file is unchanged.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, but its file has changed since.
    Changed,
    /// Applied, but no file has its version any more.
    Missing,
}

impl fmt::Display for MigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Changed => "changed",
            MigrationState::Missing => "missing",
        })
    }
}

/// One line of [`Store::migration_status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The version.
    pub version: u64,
    /// The file's name (or the history's, for a missing file).
    pub name: String,
    /// Where it stands.
    pub state: MigrationState,
    /// The position in which [`Store::migrate`] would apply it (pending ones only, from 1).
    pub order: Option<usize>,
}

/// What [`Store::migrate`] did, or would do with `dry_run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The history entries written, in the order applied (empty when none was pending).
    pub applied: Vec<AppliedMigration>,
    /// The backup taken first, if one was.
    pub backup: Option<PathBuf>,
    /// Nothing was written: the migrations were checked against the store, including every
    /// row of their data steps, and rolled back.
    pub dry_run: bool,
}

/// How [`Store::migrate`] runs.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// Check everything, including the data steps against the store, and write nothing.
    pub dry_run: bool,
    /// Take an online backup into `backups/` before applying (default: yes).
    pub backup: bool,
}

impl Default for MigrateOptions {
    fn default() -> MigrateOptions {
        MigrateOptions {
            dry_run: false,
            backup: true,
        }
    }
}

/// What the apply of one run did to the index list.
struct IndexChanges {
    /// The list after the run.
    list: Vec<IndexSpec>,
    /// Created by the run (and not dropped by it again).
    created: Vec<IndexDef>,
    /// Existing before the run and dropped by it.
    dropped: Vec<IndexSpec>,
}

impl Store {
    /// The migrations applied to this store, by version.
    pub fn migration_history(&self) -> Result<Vec<AppliedMigration>> {
        catalog::scan_json(&self.shared.db.begin_read()?, HISTORY_PREFIX)
    }

    /// Where each migration of `files` (and each applied one whose file is gone) stands,
    /// by version; pending ones carry the order they would be applied in. Unknown
    /// dependencies and cycles are errors.
    pub fn migration_status(&self, files: &[Migration]) -> Result<Vec<MigrationStatus>> {
        let history = self.migration_history()?;
        let order: BTreeMap<u64, usize> = pending_order(files, &history)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| (v, i + 1))
            .collect();
        let applied: BTreeMap<u64, &AppliedMigration> =
            history.iter().map(|h| (h.version, h)).collect();
        let present: BTreeSet<u64> = files.iter().map(|m| m.version).collect();
        let mut out: Vec<MigrationStatus> = files
            .iter()
            .map(|m| {
                let state = match applied.get(&m.version) {
                    None => MigrationState::Pending,
                    Some(h) if h.checksum == m.checksum => MigrationState::Applied,
                    Some(_) => MigrationState::Changed,
                };
                MigrationStatus {
                    version: m.version,
                    name: m.name.clone(),
                    state,
                    order: order.get(&m.version).copied(),
                }
            })
            .collect();
        for h in &history {
            if !present.contains(&h.version) {
                out.push(MigrationStatus {
                    version: h.version,
                    name: h.name.clone(),
                    state: MigrationState::Missing,
                    order: None,
                });
            }
        }
        out.sort_by_key(|s| s.version);
        Ok(out)
    }

    /// Applies every pending migration of `files` in one durable commit, or none (see the
    /// [module documentation](crate::migrate)). Returns what was applied; nothing pending is
    /// not an error.
    pub fn migrate(&self, files: &[Migration], options: &MigrateOptions) -> Result<MigrateReport> {
        if read_standby_seq(&self.shared.db.begin_read()?)?.is_some() {
            return Err(Error::invalid(
                "this store is a standby: migrate the primary (a standby does not follow \
                 migrations; make a new standby from a backup taken after them), or, if this \
                 one has taken over from the primary, promote it first (`tradestore standby \
                 --dir DIR --promote`)",
            ));
        }
        let status = self.migration_status(files)?;
        let stale: Vec<String> = status
            .iter()
            .filter(|s| matches!(s.state, MigrationState::Changed | MigrationState::Missing))
            .map(|s| format!("{} ({}, {})", s.version, s.name, s.state))
            .collect();
        if !stale.is_empty() {
            return Err(Error::invalid(format!(
                "the migration files no longer match the store's history: {}; an applied \
                 migration's file must stay as it was (add a new migration to change more)",
                stale.join(", ")
            )));
        }
        let history = self.migration_history()?;
        let order = pending_order(files, &history)?;
        let by_version: BTreeMap<u64, &Migration> = files.iter().map(|m| (m.version, m)).collect();
        let pending: Vec<&Migration> = order
            .iter()
            .filter_map(|v| by_version.get(v).copied())
            .collect();
        let mut report = MigrateReport {
            applied: Vec::new(),
            backup: None,
            dry_run: options.dry_run,
        };
        if pending.is_empty() {
            return Ok(report);
        }
        if options.backup && !options.dry_run {
            // Everything a dry run checks is checked before the backup, so that a run that
            // cannot apply leaves no backup behind.
            self.apply_migrations(&pending, true, None)?;
            report.backup = Some(self.backup_in_store()?.path);
        }
        let backup = report.backup.as_ref().map(|p| p.display().to_string());
        report.applied = self.apply_migrations(&pending, options.dry_run, backup)?;
        Ok(report)
    }

    fn apply_migrations(
        &self,
        pending: &[&Migration],
        dry_run: bool,
        backup: Option<String>,
    ) -> Result<Vec<AppliedMigration>> {
        let shared = &self.shared;
        let _ddl = shared.index_ddl.lock();
        let mut st = self.drained()?;
        let current: Vec<IndexSpec> = shared.indexes.read().iter().cloned().collect();
        let mut tx = self.detached_tx(shared.snapshot()?);
        let mut changes = IndexChanges {
            list: current,
            created: Vec::new(),
            dropped: Vec::new(),
        };
        let mut entries = Vec::with_capacity(pending.len());
        let mut counted = 0u64;
        for m in pending {
            let mut entry = AppliedMigration {
                version: m.version,
                name: m.name.clone(),
                description: m.description.clone(),
                checksum: m.checksum.clone(),
                applied_at_ns: 0,
                rows_changed: 0,
                created_indexes: Vec::new(),
                dropped_indexes: Vec::new(),
                backup: backup.clone(),
            };
            for (i, step) in m.steps.iter().enumerate() {
                let at = |e: Error| {
                    e.context(format!(
                        "migration {} ({}), step {} ({})",
                        m.version,
                        m.source.display(),
                        i + 1,
                        step.kind()
                    ))
                };
                apply_step(&mut tx, &mut changes, &mut entry, step).map_err(at)?;
            }
            let written = tx.row_writes();
            entry.rows_changed = written.saturating_sub(counted);
            counted = written;
            entries.push(entry);
        }
        let (parts, _locks) = tx.into_parts();
        if dry_run {
            return Ok(entries);
        }
        let rows = RowChange::of_writes(&parts.writes);
        drop(parts);

        let mut txn = shared.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
        let at_ns = index::now_ns();
        let kept: Vec<IndexSpec> = changes
            .list
            .iter()
            .filter(|s| !changes.created.iter().any(|d| d.name == s.def.name))
            .cloned()
            .collect();
        apply_rows(&txn, &kept, &rows, None)?;
        for spec in &changes.dropped {
            let m = entries
                .iter()
                .find(|e| e.dropped_indexes.contains(&spec.def.name))
                .map_or(0, |e| e.version);
            spec.delete_table(&txn)?;
            catalog::remove_index(&txn, &spec.def.name)?;
            let why = format!("dropped by migration {m}");
            catalog::record_decision(&txn, &index::decision("drop", &spec.def, &why))?;
        }
        let mut built = Vec::with_capacity(changes.created.len());
        for def in &changes.created {
            let m = entries
                .iter()
                .find(|e| e.created_indexes.contains(&def.name))
                .map_or(0, |e| e.version);
            let slot = shared.next_slot.fetch_add(1, Ordering::SeqCst);
            let spec = IndexSpec::new(def.clone(), slot, true);
            catalog::register_building(&txn, def)?;
            let (n, _) = index::backfill_chunk(&txn, &spec, None, usize::MAX)?;
            catalog::mark_ready(&txn, &def.name)?;
            let why = format!("created by migration {m} with {n} entries");
            catalog::record_decision(&txn, &index::decision("create", def, &why))?;
            built.push(spec);
        }
        for entry in &mut entries {
            entry.applied_at_ns = at_ns;
            let key = format!("{HISTORY_PREFIX}{:020}", entry.version);
            catalog::put_json(&txn, &key, entry)?;
            crate::audit::append(&txn, "migrate", &entry.audit_detail())?;
        }
        let cache = shared
            .rows
            .as_deref()
            .map(crate::rowcache::RowCache::begin_write);
        if let Some(cache) = &cache {
            for c in &rows {
                if let Some(t) = TableId::from_u8(c.table) {
                    cache.forget(t, &c.key);
                }
            }
        }
        shared.commit_redb(txn, cache)?;
        // The new index list: the kept specs as they were, the built ones with their slots.
        let mut list = kept;
        list.extend(built);
        *shared.indexes.write() = Arc::new(list);
        shared.index_gen.fetch_add(1, Ordering::SeqCst);
        st.epoch += 1;
        drop(st);
        for c in &rows {
            let Some(table) = TableId::from_u8(c.table) else {
                continue;
            };
            shared.row_changes[table as usize].fetch_add(1, Ordering::Relaxed);
            if let Some(id) = keys::id_of(&c.key).filter(|_| table.primary_key() == ["id"]) {
                shared.ids.observe(table, id);
            }
        }
        Ok(entries)
    }
}

fn apply_step(
    tx: &mut crate::txn::WriteTx,
    changes: &mut IndexChanges,
    entry: &mut AppliedMigration,
    step: &Step,
) -> Result<()> {
    match step {
        Step::CreateIndex(s) => {
            let def = index_def(s)?;
            index::validate(&def, &changes.list).map_err(|e| {
                let earlier = changes.created.iter().any(|c| {
                    c.name == def.name || (c.table == def.table && c.columns == def.columns)
                });
                if earlier {
                    e.advise(
                        "an earlier step of the migrations being applied creates that index; \
                         nothing was changed: remove one of the two steps",
                    )
                } else {
                    e
                }
            })?;
            changes
                .list
                .push(IndexSpec::new(def.clone(), u16::MAX, true));
            entry.created_indexes.push(def.name.clone());
            changes.created.push(def);
        }
        Step::DropIndex(name) => {
            let spec = crate::txn::find_any_index(&changes.list, name)?;
            if spec.def.builtin {
                return Err(Error::invalid(format!(
                    "index {name} is built in: the schema needs it"
                )));
            }
            changes.list.retain(|s| s.def.name != *name);
            let before = changes.created.len();
            changes.created.retain(|d| d.name != *name);
            if changes.created.len() == before {
                changes.dropped.push(spec);
            }
            entry.dropped_indexes.push(name.clone());
        }
        Step::Insert(lines) | Step::Put(lines) => {
            let replace = matches!(step, Step::Put(_));
            for (r, line) in lines.iter().enumerate() {
                let record = parse_line(line).map_err(|e| e.context(format!("row {}", r + 1)))?;
                tx.write_any(record, replace)
                    .map_err(|e| e.context(format!("row {}", r + 1)))?;
            }
        }
        Step::Delete(d) => {
            let table = table_of(&d.table)?;
            for (k, key) in d.keys.iter().enumerate() {
                let values = key_values(table, key)?;
                if !tx.delete_any(table, &values)? {
                    return Err(Error::not_found(format!(
                        "key {}: no {table} row with key {}",
                        k + 1,
                        crate::txn::show_values(&values)
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The versions of `files` not in `history`, in the order to apply them: each after its
/// dependencies, lower versions first where dependencies leave a choice.
fn pending_order(files: &[Migration], history: &[AppliedMigration]) -> Result<Vec<u64>> {
    let applied: BTreeSet<u64> = history.iter().map(|h| h.version).collect();
    let pending: BTreeMap<u64, &Migration> = files
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| (m.version, m))
        .collect();
    for m in pending.values() {
        for d in &m.depends_on {
            if !applied.contains(d) && !pending.contains_key(d) {
                return Err(Error::invalid(format!(
                    "migration {} ({}) depends on {d}, which is neither applied nor among \
                     the files",
                    m.version,
                    m.source.display()
                )));
            }
        }
    }
    // Kahn's algorithm, the lowest version first among those whose dependencies are met.
    let mut waiting: BTreeMap<u64, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for m in pending.values() {
        let deps: BTreeSet<u64> = m
            .depends_on
            .iter()
            .copied()
            .filter(|d| !applied.contains(d))
            .collect();
        waiting.insert(m.version, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(m.version);
        }
    }
    let mut ready: BTreeSet<u64> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(v, _)| *v)
        .collect();
    let mut order = Vec::with_capacity(pending.len());
    while let Some(v) = ready.pop_first() {
        order.push(v);
        for d in dependents.get(&v).map(Vec::as_slice).unwrap_or(&[]) {
            if let Some(n) = waiting.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(*d);
                }
            }
        }
    }
    if order.len() < pending.len() {
        let done: BTreeSet<u64> = order.iter().copied().collect();
        let stuck: Vec<String> = pending
            .keys()
            .filter(|v| !done.contains(v))
            .map(u64::to_string)
            .collect();
        return Err(Error::invalid(format!(
            "the dependencies of migrations {} form a cycle",
            stuck.join(", ")
        )));
    }
    Ok(order)
}
