//! What a store holds: tables with row counts and sizes, indexes with entry counts and
//! sizes, and the files on disk.

use std::path::Path;

use serde::Serialize;
use tradestore_schema::TableId;

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::txn::ReadOps;

/// A table's size.
#[derive(Clone, Debug, Serialize)]
pub struct TableInfo {
    /// Table name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Bytes of keys and values stored (not counting B-tree overhead).
    pub stored_bytes: u64,
}

/// An index's size.
#[derive(Clone, Debug, Serialize)]
pub struct IndexInfo {
    /// Index name.
    pub name: String,
    /// Indexed table.
    pub table: String,
    /// Indexed columns.
    pub columns: Vec<String>,
    /// Unique index.
    pub unique: bool,
    /// Part of the schema (never dropped).
    pub builtin: bool,
    /// Each entry keeps a copy of its row.
    pub covering: bool,
    /// Entries.
    pub entries: u64,
    /// Bytes of keys (and, for a covering index, row copies) stored.
    pub stored_bytes: u64,
}

/// A file of the store.
#[derive(Clone, Debug, Serialize)]
pub struct FileInfo {
    /// Path relative to the store's directory.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The archive tier ([`crate::archive`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArchiveInfo {
    /// Segment files listed.
    pub segments: u64,
    /// Trades they hold (counted in the trades table's rows too).
    pub trades: u64,
    /// Bytes of their records, uncompressed.
    pub raw_bytes: u64,
    /// Bytes of the segment files.
    pub file_bytes: u64,
}

/// The audit trail ([`crate::audit`]) and the migrations applied ([`crate::migrate`]).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LifecycleInfo {
    /// The audit trail's last entry as `SEQ:HASH` (its number is the count of entries).
    pub audit_head: Option<String>,
    /// Why the last entry could not be read, if it could not.
    pub audit_error: Option<String>,
    /// The versions of the migrations applied, in order.
    pub migrations: Vec<u64>,
}

/// Everything `tradestore inspect` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The store's directory.
    pub dir: String,
    /// Store format version.
    pub format_version: u32,
    /// Configuration profile in use.
    pub profile: String,
    /// Tables, in schema order.
    pub tables: Vec<TableInfo>,
    /// Secondary indexes.
    pub indexes: Vec<IndexInfo>,
    /// Files under the directory.
    pub files: Vec<FileInfo>,
    /// Sum of the files' sizes.
    pub total_bytes: u64,
    /// The archive tier.
    pub archive: ArchiveInfo,
    /// The audit trail and the migrations applied.
    pub lifecycle: LifecycleInfo,
    /// What opening the store recovered from the journal.
    pub recovery: crate::Recovery,
    /// Damage met while reading (an archive segment whose checksum fails, say): each names
    /// the table or index whose rows and bytes above are then counted up to it only.
    pub problems: Vec<String>,
    /// The write path's counters and latency percentiles since the store was opened.
    pub write_path: crate::Stats,
}

/// Gathers the inspection of a store.
pub fn inspect(store: &Store) -> Result<Inspection> {
    let tx = store.read()?;
    let mut problems = Vec::new();
    // Damage is noted and the inspection goes on; any other error ends it.
    let mut noted = |what: String, r: Result<()>| match r {
        Err(e) if e.kind() == ErrorKind::Corruption => {
            problems.push(format!("{what}: {}", e.message()));
            Ok(())
        }
        other => other,
    };
    let mut tables = Vec::new();
    for t in TableId::ALL {
        let mut bytes = 0u64;
        let walked = tx.raw_range(
            crate::Source::Table(t),
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
            &mut |k, v| {
                bytes += (k.len() + v.len()) as u64;
                Ok(true)
            },
        );
        noted(format!("table {}", t.name()), walked)?;
        tables.push(TableInfo {
            name: t.name().to_owned(),
            rows: tx.count(t)?,
            stored_bytes: bytes,
        });
    }
    let mut indexes = Vec::new();
    for spec in tx.indexes() {
        let mut bytes = 0u64;
        let mut entries = 0u64;
        let walked = tx.raw_range(
            crate::Source::Index(spec),
            (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded),
            false,
            &mut |k, v| {
                bytes += (k.len() + v.len()) as u64;
                entries += 1;
                Ok(true)
            },
        );
        noted(format!("index {}", spec.def.name), walked)?;
        indexes.push(IndexInfo {
            name: spec.def.name.clone(),
            table: spec.def.table.name().to_owned(),
            columns: spec.def.columns.clone(),
            unique: spec.def.unique,
            builtin: spec.def.builtin,
            covering: spec.def.covering,
            entries,
            stored_bytes: bytes,
        });
    }
    let mut files = Vec::new();
    list_files(store.dir(), store.dir(), &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let total_bytes = files.iter().map(|f| f.bytes).sum();
    let segments = store.archive_segments();
    let archive = ArchiveInfo {
        segments: segments.len() as u64,
        trades: segments.iter().map(|s| s.rows).sum(),
        raw_bytes: segments.iter().map(|s| s.raw_bytes).sum(),
        file_bytes: segments.iter().map(|s| s.file_bytes).sum(),
    };
    let (audit_head, audit_error) = match store.audit_head() {
        Ok(h) => (h.map(|h| h.to_string()), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let lifecycle = LifecycleInfo {
        audit_head,
        audit_error,
        migrations: store
            .migration_history()?
            .iter()
            .map(|m| m.version)
            .collect(),
    };
    Ok(Inspection {
        dir: store.dir().display().to_string(),
        format_version: crate::FORMAT_VERSION,
        profile: store.config().profile.name().to_owned(),
        tables,
        indexes,
        files,
        total_bytes,
        archive,
        lifecycle,
        recovery: store.recovery().clone(),
        write_path: store.stats(),
        problems,
    })
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<FileInfo>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", entry.path().display()), e))?;
        let path = entry.path();
        if meta.is_dir() {
            list_files(root, &path, out)?;
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            out.push(FileInfo {
                path: rel,
                bytes: meta.len(),
            });
        }
    }
    Ok(())
}
