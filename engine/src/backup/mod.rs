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
pub use restore::{PointInTime, RestoreReport, restore_backup, restore_backup_to, restore_staging};
pub use verify::{BackupVerification, verify_backup};

/// `2026-11-27T23:15:00.123456789Z`: a time in ns since the Unix epoch as RFC 3339, UTC.
pub(crate) fn rfc3339_ns(ns: u64) -> String {
    humantime::format_rfc3339_nanos(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

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

/// The pid in the name of a folder entry named `PREFIX<pid>` or `PREFIX<pid>-...`.
pub(crate) fn owner(entry: &std::fs::DirEntry, prefix: &str) -> Option<u32> {
    let name = entry.file_name();
    let rest = name.to_str()?.strip_prefix(prefix)?;
    rest.split_once('-')
        .map_or(rest, |(pid, _)| pid)
        .parse()
        .ok()
}

/// Removes the folders in `dir` named `PREFIX<pid>` or `PREFIX<pid>-...` whose process is
/// gone ([`process_running`]): what a run killed before it could clean up left behind.
/// Best effort: one that cannot be removed stays; one of a running process (this one
/// included) is not touched; only real folders are removed, never a link.
pub fn remove_abandoned(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = owner(&entry, prefix) else {
            continue;
        };
        let gone = pid != std::process::id() && !process_running(pid);
        if gone && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests;
