//! Online backup, verification and restore.
//!
//! [`Store::backup`](crate::Store::backup) copies one redb read transaction (taken once
//! every acknowledged write is applied) into a new database while writers go on, with the
//! configuration and archive files and a manifest of checksums; [`verify_backup`] checks a
//! backup without writing to it; [`restore_backup`] makes a new store of one and proves it
//! with the consistency check. The manifest's format is described in `manifest.rs`.

mod create;
pub(crate) mod files;
mod list;
mod manifest;
mod overlay;
mod restore;
mod tables;
mod verify;

pub use create::BackupReport;
pub use list::{BackupListing, list_backups};
pub use manifest::{FileSum, MANIFEST_FILE, MANIFEST_VERSION, Manifest, TableSum};
pub(crate) use restore::restore_as;
pub use restore::{PointInTime, RestoreReport, restore_backup, restore_backup_to};
pub use verify::{BackupVerification, verify_backup};

/// Whether a process with id `pid` is running (on Linux, from `/proc`): a folder named
/// after a process that is gone, or a zombie not yet reaped, was abandoned by it.
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last `)` (comm may hold one).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
