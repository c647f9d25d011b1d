//! The backups kept in a store's `backups/` folder.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::Manifest;
use crate::error::{Error, Result};

/// One directory of a store's `backups/` folder, as its manifest describes it (checksums
/// are not checked: that is [`verify_backup`](super::verify_backup)).
#[derive(Clone, Debug, Serialize)]
pub struct BackupListing {
    /// The backup's directory.
    pub path: PathBuf,
    /// When its snapshot was taken (RFC 3339, UTC), if the manifest is readable.
    pub created: Option<String>,
    /// The last transaction it holds.
    pub applied_seq: Option<u64>,
    /// Entries of every table together.
    pub rows: Option<u64>,
    /// Bytes of its files.
    pub bytes: Option<u64>,
    /// Why its manifest is missing or unreadable (an unfinished or damaged backup).
    pub problem: Option<String>,
}

/// The directories of `store_dir/backups`, by name (oldest first for the default names).
/// Nothing is opened but each manifest; the store need not be closed.
pub fn list_backups(store_dir: &Path) -> Result<Vec<BackupListing>> {
    let folder = store_dir.join("backups");
    let entries = match std::fs::read_dir(&folder) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", folder.display()), e)),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", folder.display()), e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|path| match Manifest::read(&path) {
            Ok(m) => BackupListing {
                created: Some(m.created.clone()),
                applied_seq: Some(m.applied_seq),
                rows: Some(m.rows()),
                bytes: Some(m.bytes()),
                problem: None,
                path,
            },
            Err(e) => BackupListing {
                path,
                created: None,
                applied_seq: None,
                rows: None,
                bytes: None,
                problem: Some(e.message().to_owned()),
            },
        })
        .collect())
}
