//! Verifying a backup without writing to it: the manifest, every listed file's size and
//! CRC32C, redb's integrity check of the database, and every table's rows and CRC32C.

use std::path::{Path, PathBuf};

use redb::ReadableDatabase;
use serde::Serialize;

use super::files;
use super::manifest::{Manifest, TableSum};
use super::overlay::ReadOnlyOverlay;
use crate::archive::SegmentMeta;
use crate::error::{Error, Result, guard_read};
use crate::state::read_applied_seq;
use crate::store::DB_FILE;

/// What [`verify_backup`] checked: the backup is whole.
#[derive(Clone, Debug, Serialize)]
pub struct BackupVerification {
    /// The backup's directory.
    pub path: PathBuf,
    /// When its snapshot was taken (RFC 3339, UTC).
    pub created: String,
    /// It holds exactly transactions 1 ..= this.
    pub applied_seq: u64,
    /// Every redb table, with its entries and checksum (as listed and as found).
    pub tables: Vec<TableSum>,
    /// Entries of every table together.
    pub rows: u64,
    /// Files checked (the manifest aside).
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// The id of the store it was taken of, when it names one ([`crate::identity`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
}

/// Verifies the backup in `path` and writes nothing to it. Checks, in order: `backup.json`
/// (bounded size, known format and version, paths that stay inside the backup, the tables'
/// combined checksum); every listed file (a regular file, not a link, of the listed size and
/// CRC32C); redb's integrity check of `tradestore.redb` (run on an in-memory overlay of the
/// file, so nothing is written); every table of the database against the listed ones (the
/// same names, rows and CRC32C of keys and values); and the sequence number it holds.
///
/// Anything wrong is a [`Corruption`](crate::ErrorKind::Corruption) error naming the file or
/// table and what differs; a directory without `backup.json` is
/// [`NotFound`](crate::ErrorKind::NotFound).
pub fn verify_backup(path: &Path) -> Result<BackupVerification> {
    verify(path).map(|m| BackupVerification {
        path: path.to_path_buf(),
        created: m.created.clone(),
        applied_seq: m.applied_seq,
        rows: m.rows(),
        files: m.files.len(),
        bytes: m.bytes(),
        store_id: m.store_id,
        tables: m.tables,
    })
}

/// Verifies the backup in `path` and returns its manifest.
pub(crate) fn verify(path: &Path) -> Result<Manifest> {
    verify_files(path).map_err(|e| match e.kind() {
        crate::ErrorKind::Corruption => e.advise(
            "the backup is damaged or is not one: use another backup, or take a new one; \
             the store it came from is not affected",
        ),
        _ => e,
    })
}

fn verify_files(path: &Path) -> Result<Manifest> {
    let manifest = Manifest::read(path)?;
    for f in &manifest.files {
        let file = files::under(path, &f.path);
        no_links(path, &f.path)?;
        let (bytes, crc32c) = files::file_sum(&file)?;
        if bytes != f.bytes {
            return Err(Error::corruption(format!(
                "{} has {bytes} bytes, the manifest lists {}: the file was truncated or changed",
                file.display(),
                f.bytes
            )));
        }
        if crc32c != f.crc32c {
            return Err(Error::corruption(format!(
                "{}: CRC32C {crc32c:08x} differs from the listed {:08x}: the file's bytes changed",
                file.display(),
                f.crc32c
            )));
        }
    }
    let db_path = path.join(DB_FILE);
    let (applied, found, segments) = check_database(&db_path)?;
    compare_tables(&manifest.tables, &found).map_err(|e| e.context(db_path.display()))?;
    check_segments(&segments, &manifest.files).map_err(|e| e.context(path.display()))?;
    if applied != manifest.applied_seq {
        return Err(Error::corruption(format!(
            "{} holds transactions up to {applied}, the manifest says {}",
            db_path.display(),
            manifest.applied_seq
        )));
    }
    Ok(manifest)
}

/// Refuses a listed path any part of which is a link or not what it should be (directories,
/// then a regular file), and a missing file.
fn no_links(base: &Path, relative: &str) -> Result<()> {
    let parts: Vec<&str> = relative.split('/').collect();
    let mut at = base.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corruption(format!(
                    "{} is listed in the manifest but missing",
                    base.join(relative).display()
                )));
            }
            Err(e) => return Err(Error::io(format!("reading {}", at.display()), e)),
        };
        let last = i + 1 == parts.len();
        let fits = if last { meta.is_file() } else { meta.is_dir() };
        if meta.file_type().is_symlink() || !fits {
            return Err(Error::corruption(format!(
                "{} is a link or not a {}",
                at.display(),
                if last { "regular file" } else { "directory" }
            )));
        }
    }
    Ok(())
}

/// Runs redb's integrity check on the database at `path` through an overlay that keeps
/// redb's writes in memory, then sums every table. Returns the applied sequence number and
/// the sums.
fn check_database(path: &Path) -> Result<(u64, Vec<TableSum>, Vec<SegmentMeta>)> {
    let mut segments = Vec::new();
    let shown = path.display().to_string();
    let damaged = |e: Error| {
        Error::corruption(format!(
            "{shown} does not open as a database: {}",
            e.message()
        ))
    };
    let (applied, sums) = guard_read(&shown, || {
        let overlay = ReadOnlyOverlay::open(path)?;
        let mut db = redb::Database::builder()
            .create_with_backend(overlay)
            .map_err(|e| damaged(e.into()))?;
        let clean = db.check_integrity().map_err(|e| damaged(e.into()))?;
        if !clean {
            return Err(Error::corruption(format!(
                "{shown} fails redb's integrity check"
            )));
        }
        let read = db.begin_read()?;
        let applied = read_applied_seq(&read)?;
        segments = crate::catalog::scan_json(&read, crate::archive::CATALOG_PREFIX)?;
        Ok((applied, super::tables::sum_all(&read)?))
    })?;
    Ok((applied, sums, segments))
}

/// Every archive segment the database lists must be in the backup, as the store wrote it
/// (its size and CRC32C are in the listing).
pub(crate) fn check_segments(
    listed: &[SegmentMeta],
    files: &[super::manifest::FileSum],
) -> Result<()> {
    for s in listed {
        match files.iter().find(|f| f.path == s.file) {
            None => {
                return Err(Error::corruption(format!(
                    "archive segment {} is listed by the database but not in the backup",
                    s.file
                )));
            }
            Some(f) if (f.bytes, f.crc32c) != (s.file_bytes, s.crc32c) => {
                return Err(Error::corruption(format!(
                    "archive segment {}: {} bytes with CRC32C {:08x}, but it was written with {} \
                     bytes and CRC32C {:08x}: the segment is damaged",
                    s.file, f.bytes, f.crc32c, s.file_bytes, s.crc32c
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The tables found must be the tables listed, with the same rows and checksums.
fn compare_tables(listed: &[TableSum], found: &[TableSum]) -> Result<()> {
    for f in found {
        match listed.iter().find(|l| l.name == f.name) {
            None => {
                return Err(Error::corruption(format!(
                    "table {} is not listed in the manifest",
                    f.name
                )));
            }
            Some(l) if l.rows != f.rows => {
                return Err(Error::corruption(format!(
                    "table {} has {} rows, the manifest lists {}",
                    f.name, f.rows, l.rows
                )));
            }
            Some(l) if l.crc32c != f.crc32c => {
                return Err(Error::corruption(format!(
                    "table {}: CRC32C {:08x} of its keys and values differs from the listed {:08x}",
                    f.name, f.crc32c, l.crc32c
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(l) = listed
        .iter()
        .find(|l| !found.iter().any(|f| f.name == l.name))
    {
        return Err(Error::corruption(format!(
            "table {} is listed in the manifest but missing from the database",
            l.name
        )));
    }
    Ok(())
}
