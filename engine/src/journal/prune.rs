//! Removing the oldest kept journal segments (`archive/journal`, `keep_journal = true`):
//! the window of point-in-time recovery is bounded by time and by the backup that must
//! stay restorable to the present.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::scan::{SegmentSummary, segments_in, summarize_segment};
use crate::error::{Error, Result};

/// What [`prune_kept`] removed, or would remove.
#[derive(Clone, Debug, Serialize)]
pub struct PruneReport {
    /// The folder of kept segments.
    pub folder: PathBuf,
    /// The segments removed (or, for a dry run, that would be), oldest first.
    pub removed: Vec<SegmentSummary>,
    /// Their bytes.
    pub bytes: u64,
    /// The first transaction the folder still holds after the prune, if it holds any.
    pub first_kept_seq: Option<u64>,
    /// Why the oldest remaining segment was kept, if one remains.
    pub kept_because: Option<String>,
    /// Nothing was removed: the report says what would have been.
    pub dry_run: bool,
}

/// Removes the oldest segments of `store_dir/archive/journal` while every record
/// of the segment was committed before `before_ns` and is held by the backup that must stay
/// restorable (its transactions 1 ..= `backup_seq`): that backup still rolls forward
/// through every segment that remains. Only a prefix is removed, so the folder never gets
/// a gap; a segment that is damaged, holds no records or has a record without a commit time
/// stops the prune there. The folder is synced after the removals. With `dry_run`, nothing
/// is removed. A folder that is the live journal's (through a link) is refused: its
/// segments are not checkpointed copies.
pub fn prune_kept(
    store_dir: &Path,
    before_ns: u64,
    backup_seq: u64,
    dry_run: bool,
) -> Result<PruneReport> {
    let mut report = PruneReport::empty(store_dir, dry_run);
    prune_into(store_dir, before_ns, backup_seq, &mut report)?;
    Ok(report)
}

impl PruneReport {
    fn empty(store_dir: &Path, dry_run: bool) -> PruneReport {
        PruneReport {
            folder: store_dir.join("archive").join("journal"),
            removed: Vec::new(),
            bytes: 0,
            first_kept_seq: None,
            kept_because: None,
            dry_run,
        }
    }

    /// The audit trail's account of a prune that removed segments, and of the error that
    /// stopped it partway, if one did.
    fn audit_detail(&self, before_ns: u64, backup_seq: u64, failed: Option<&Error>) -> String {
        let names: Vec<String> = self
            .removed
            .iter()
            .map(|s| {
                s.path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            })
            .collect();
        let first = self.removed.first().map_or(0, |s| s.first_seq);
        let last = self
            .removed
            .last()
            .and_then(|s| s.last_seq)
            .unwrap_or(first);
        let mut detail = format!(
            "{} kept journal segments removed from {} (transactions {first} to {last}, {} \
             bytes: {}), committed before {} and held by the backup of transactions 1 to \
             {backup_seq}",
            self.removed.len(),
            self.folder.display(),
            self.bytes,
            names.join(", "),
            crate::backup::rfc3339_ns(before_ns),
        );
        if let Some(e) = failed {
            detail.push_str(&format!("; the prune stopped there: {e}"));
        }
        detail
    }
}

impl crate::Store {
    /// [`prune_kept`] of this store's kept journal, recorded in the audit trail: once the
    /// segments are removed, one durable commit appends a `journal.prune` entry naming them,
    /// also when a removal failed partway (the entry names those that went, and the error).
    /// A dry run, or a prune that removes nothing, records nothing.
    pub fn prune_kept_journal(
        &self,
        before_ns: u64,
        backup_seq: u64,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let mut report = PruneReport::empty(self.dir(), dry_run);
        let outcome = prune_into(self.dir(), before_ns, backup_seq, &mut report);
        if !dry_run && !report.removed.is_empty() {
            let detail = report.audit_detail(before_ns, backup_seq, outcome.as_ref().err());
            self.record_audit("journal.prune", &detail)?;
        }
        outcome.map(|()| report)
    }
}

/// [`prune_kept`] into `report`, which holds the segments removed when an error stops it.
fn prune_into(
    store_dir: &Path,
    before_ns: u64,
    backup_seq: u64,
    report: &mut PruneReport,
) -> Result<()> {
    let dry_run = report.dry_run;
    let folder = store_dir.join("archive").join("journal");
    let folder = folder.as_path();
    if !folder.is_dir() {
        return Err(Error::invalid(format!(
            "{} does not exist: the store keeps no journal segments (keep_journal = false)",
            folder.display()
        )));
    }
    let live = store_dir.join("journal");
    let resolved = |p: &Path| {
        std::fs::canonicalize(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e))
    };
    if live.exists() && resolved(folder)? == resolved(&live)? {
        return Err(Error::invalid(format!(
            "{} is the live journal folder {} (through a link): its segments are the store's \
             journal, not kept copies, and are never pruned",
            folder.display(),
            live.display()
        )));
    }
    let segments = segments_in(&[folder.to_path_buf()], false)?;
    // Each segment is read only when the ones before it went: a long archive is not read
    // past its first segment that stays.
    for (first, path) in segments {
        let s = summarize_segment(first, path)?;
        if let Some(why) = keep_reason(&s, before_ns, backup_seq) {
            report.first_kept_seq = Some(s.first_seq);
            report.kept_because = Some(format!("{}: {why}", s.path.display()));
            break;
        }
        if !dry_run {
            std::fs::remove_file(&s.path)
                .map_err(|e| Error::io(format!("removing {}", s.path.display()), e))?;
        }
        report.bytes += s.bytes;
        report.removed.push(s);
    }
    if !dry_run && !report.removed.is_empty() {
        crate::backup::files::sync_dir(folder)?;
    }
    Ok(())
}

/// Why segment `s` must stay, if it must.
fn keep_reason(s: &SegmentSummary, before_ns: u64, backup_seq: u64) -> Option<String> {
    if let Some(problem) = &s.problem {
        return Some(format!("it does not read whole ({problem})"));
    }
    let Some(last) = s.last_seq else {
        return Some("it holds no records".to_owned());
    };
    if s.untimed > 0 {
        return Some(format!("{} of its records carry no commit time", s.untimed));
    }
    if last > backup_seq {
        return Some(format!(
            "it holds transactions up to {last}, after the backup's last ({backup_seq}), \
             which roll that backup forward"
        ));
    }
    match s.last_commit_ns {
        Some(t) if t < before_ns => None,
        _ => Some(format!(
            "its last transaction ({last}) was committed at or after the cutoff"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::prune_kept;
    use crate::journal::frame;

    use crate::state::record::timed_empty as body;

    /// A segment of records `first ..` committed at these times.
    fn segment(dir: &std::path::Path, first: u64, times: &[u64]) -> std::path::PathBuf {
        let mut bytes = Vec::new();
        for (i, t) in times.iter().enumerate() {
            frame::encode(&mut bytes, first + i as u64, &body(*t));
        }
        bytes.resize(bytes.len() + 128, 0);
        let path = dir.join(format!("{first:020}.wal"));
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("writing a segment: {e}"));
        path
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{e}"))
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }

    /// A store directory's `archive/journal` and `journal` folders, made in `tmp`.
    fn kept_folder(tmp: &std::path::Path) -> std::path::PathBuf {
        let kept = tmp.join("archive").join("journal");
        for d in [&kept, &tmp.join("journal")] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        kept
    }

    #[test]
    fn the_oldest_segments_go_while_before_the_cutoff_and_held_by_the_backup() -> crate::Result<()>
    {
        let tmp = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = tmp.path();
        let dir = kept_folder(store);
        let dir = dir.as_path();
        segment(dir, 1, &[10, 20]);
        segment(dir, 3, &[30, 40]);
        segment(dir, 5, &[50, 60]);
        segment(dir, 7, &[70]);
        let all = names(dir);

        // A dry run reports and removes nothing.
        let r = prune_kept(store, 55, 100, true)?;
        assert_eq!(r.removed.len(), 2);
        assert_eq!(r.first_kept_seq, Some(5));
        assert_eq!(names(dir), all);

        // The time bound: segments whose last record is before 45.
        let r = prune_kept(store, 45, 100, false)?;
        assert_eq!(
            r.removed.iter().map(|s| s.first_seq).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert!(r.bytes > 0);
        assert_eq!(names(dir), all[2..].to_vec());
        assert!(
            r.kept_because
                .as_deref()
                .is_some_and(|w| w.contains("at or after the cutoff")),
            "{:?}",
            r.kept_because
        );

        // The backup bound: it holds 1 ..= 6, so the segment of 7 stays whatever the time.
        let r = prune_kept(store, u64::MAX, 6, false)?;
        assert_eq!(r.removed.len(), 1);
        assert_eq!(r.first_kept_seq, Some(7));
        assert!(
            r.kept_because
                .as_deref()
                .is_some_and(|w| w.contains("after the backup's last (6)")),
            "{:?}",
            r.kept_because
        );
        assert_eq!(names(dir), all[3..].to_vec());
        Ok(())
    }

    #[test]
    fn a_damaged_or_untimed_segment_stops_the_prune_before_it() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = tmp.path();
        let dir = kept_folder(store);
        let dir = dir.as_path();
        segment(dir, 1, &[10]);
        let damaged = segment(dir, 2, &[20, 30]);
        segment(dir, 4, &[40]);
        let mut bytes = std::fs::read(&damaged).map_err(|e| crate::Error::io("read", e))?;
        bytes[20] ^= 0xff;
        std::fs::write(&damaged, &bytes).map_err(|e| crate::Error::io("write", e))?;
        let r = prune_kept(store, u64::MAX, u64::MAX, false)?;
        assert_eq!(r.removed.len(), 1);
        assert_eq!(r.first_kept_seq, Some(2));
        assert!(damaged.exists());
        assert_eq!(
            std::fs::read(&damaged).map_err(|e| crate::Error::io("read", e))?,
            bytes
        );

        let untimed = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let mut seg = Vec::new();
        frame::encode(&mut seg, 1, &[0x01, 3, 1, 7, 0]);
        std::fs::write(
            kept_folder(untimed.path()).join(format!("{:020}.wal", 1)),
            &seg,
        )
        .map_err(|e| crate::Error::io("write", e))?;
        let r = prune_kept(untimed.path(), u64::MAX, u64::MAX, false)?;
        assert!(r.removed.is_empty());
        assert!(
            r.kept_because
                .as_deref()
                .is_some_and(|w| w.contains("carry no commit time")),
            "{:?}",
            r.kept_because
        );

        let missing = untimed.path().join("missing");
        let Err(e) = prune_kept(&missing, 1, 1, false) else {
            panic!("pruned a folder that does not exist");
        };
        assert!(e.to_string().contains("keeps no journal segments"), "{e}");
        Ok(())
    }

    #[test]
    fn a_kept_folder_that_links_to_the_live_journal_is_refused() -> crate::Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = tmp.path();
        let live = store.join("journal");
        std::fs::create_dir_all(store.join("archive")).map_err(|e| crate::Error::io("mkdir", e))?;
        std::fs::create_dir_all(&live).map_err(|e| crate::Error::io("mkdir", e))?;
        std::os::unix::fs::symlink("../journal", store.join("archive").join("journal"))
            .map_err(|e| crate::Error::io("symlink", e))?;
        let segment = segment(&live, 1, &[10, 20]);
        let Err(e) = prune_kept(store, u64::MAX, u64::MAX, false) else {
            panic!("pruned the live journal");
        };
        assert!(e.to_string().contains("is the live journal folder"), "{e}");
        assert!(segment.exists());
        Ok(())
    }
}
