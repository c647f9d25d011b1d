//! A standby made from a backup follows the primary's journal while the primary writes:
//! after each catch-up it holds exactly a prefix of the primary's transactions, and at the
//! end the same rows; it refuses to follow when records are gone, when it was promoted and
//! written, and it waits at bytes that are not yet a whole frame.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tradestore::standby::Standby;
use tradestore::{Config, ErrorKind, Store};
use tradestore_tests::{
    TestResult, assert_clean, dump_bytes, expect_err, insert_long_named_accounts, seed, workload,
};

/// A primary that keeps its checkpointed segments, with small segments and frequent
/// checkpoints so that records move to archive/journal during a test.
fn keeping() -> Config {
    Config {
        keep_journal: true,
        journal_segment_mb: 1,
        checkpoint_interval_ms: 10,
        ..Config::default()
    }
}

fn folders(primary: &Path) -> Vec<PathBuf> {
    vec![primary.join("archive/journal"), primary.join("journal")]
}

/// Catches up until nothing more is waiting; returns the records applied.
fn catch_up_all(standby: &mut Standby) -> TestResult<u64> {
    let mut applied = 0;
    loop {
        let c = standby.catch_up()?;
        applied += c.applied;
        if !c.more {
            return Ok(applied);
        }
    }
}

/// The standby's rows as a dump (opened as a store, then closed again).
fn standby_dump(dir: &Path) -> TestResult<Vec<u8>> {
    let store = Store::open_dir(dir)?;
    assert_clean(&store)?;
    Ok(dump_bytes(&store)?)
}

#[test]
fn a_standby_follows_the_primary_while_it_writes_and_ends_with_the_same_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    let store = Arc::new(Store::open(&primary, keeping())?);
    seed(&store)?;
    workload(&store, 1, 100)?;
    let backup = store.backup(&dir.path().join("backup"))?;
    let standby_dir = dir.path().join("standby");
    let mut standby = Standby::create(&backup.path, &standby_dir, folders(&primary))?;
    assert_eq!(standby.applied_seq(), backup.applied_seq);
    let now_ns = || -> TestResult<u64> {
        Ok(u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos(),
        )?)
    };
    let started = now_ns()?;

    // Trading transactions, and accounts with long names (about 2.6 KB a transaction), so
    // that the 1 MiB segments fill and checkpoints move them to archive/journal while the
    // standby reads.
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || -> tradestore::Result<()> {
            for k in 1..=800u64 {
                if k % 2 == 0 {
                    workload(&store, k, 1)?;
                } else {
                    store
                        .write(|tx| insert_long_named_accounts(tx, 1000 + 10 * k..1010 + 10 * k))?;
                }
            }
            Ok(())
        })
    };
    let mut rounds = 0;
    while !writer.is_finished() {
        let before = standby.applied_seq();
        let c = standby.catch_up()?;
        assert_eq!(c.applied_seq, before + c.applied);
        rounds += 1;
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    writer.join().map_err(|_| "the workload panicked")??;
    catch_up_all(&mut standby)?;
    let durable = store.stats().durable_seq();
    assert_eq!(standby.applied_seq(), durable);
    assert!(rounds > 1, "the standby caught up {rounds} times");
    let kept = std::fs::read_dir(primary.join("archive/journal"))?.count();
    assert!(
        kept > 0,
        "segments moved to archive/journal while the standby followed"
    );
    // Nothing new: a catch-up applies nothing and says so.
    let idle = standby.catch_up()?;
    assert_eq!((idle.applied, idle.more), (0, false));
    // It knows when the primary committed the last transaction it holds.
    let last = idle.last_commit_ns.ok_or("no commit time")?;
    assert!(started < last && last <= now_ns()?, "{started} {last}");
    drop(standby);

    let want = dump_bytes(&store)?;
    assert_eq!(standby_dump(&standby_dir)?, want);

    // A standby reopened later goes on from where it stopped.
    workload(&store, 3, 50)?;
    let mut standby = Standby::open(&standby_dir, folders(&primary))?;
    assert_eq!(standby.applied_seq(), durable);
    assert!(catch_up_all(&mut standby)? > 0);
    drop(standby);
    assert_eq!(standby_dump(&standby_dir)?, dump_bytes(&store)?);
    Ok(())
}

#[test]
fn a_standby_refuses_to_follow_once_promoted_and_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    let store = Store::open(&primary, keeping())?;
    seed(&store)?;
    let backup = store.backup(&dir.path().join("backup"))?;
    let standby_dir = dir.path().join("standby");
    drop(Standby::create(
        &backup.path,
        &standby_dir,
        folders(&primary),
    )?);

    // Opened as a store and only read: it can still follow.
    drop(Store::open_dir(&standby_dir)?);
    workload(&store, 1, 20)?;
    let mut standby = Standby::open(&standby_dir, folders(&primary))?;
    assert_eq!(catch_up_all(&mut standby)?, 20);
    drop(standby);

    // Promoted: opened as a store and written.
    let promoted = Store::open_dir(&standby_dir)?;
    workload(&promoted, 9, 1)?;
    drop(promoted);
    let err = expect_err(
        Standby::open(&standby_dir, folders(&primary)),
        ErrorKind::Invalid,
    )?;
    assert!(err.to_string().contains("promoted"), "{err}");

    // A plain store is not a standby; a missing one is no store.
    let err = expect_err(
        Standby::open(&primary.join("nowhere"), folders(&primary)),
        ErrorKind::Invalid,
    )?;
    assert!(err.to_string().contains("holds no store"), "{err}");
    let other = dir.path().join("other");
    drop(Store::open(&other, Config::default())?);
    let err = expect_err(Standby::open(&other, folders(&primary)), ErrorKind::Invalid)?;
    assert!(err.to_string().contains("is not a standby"), "{err}");
    Ok(())
}

#[test]
fn records_the_primary_removed_are_named_and_nothing_is_applied() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    // Checkpointed segments are deleted.
    let config = Config {
        keep_journal: false,
        ..keeping()
    };
    let store = Store::open(&primary, config.clone())?;
    seed(&store)?;
    let backup = store.backup(&dir.path().join("backup"))?;
    let standby_dir = dir.path().join("standby");
    let mut standby = Standby::create(&backup.path, &standby_dir, folders(&primary))?;
    // About 2.6 MB of records: the 1 MiB segments fill, and checkpoints remove them.
    for k in 1..=1000u64 {
        store.write(|tx| insert_long_named_accounts(tx, 100 + 10 * k..110 + 10 * k))?;
    }
    drop(store);
    let store = Store::open(&primary, config)?;
    workload(&store, 2, 5)?;
    let before = standby.applied_seq();
    let err = expect_err(standby.catch_up(), ErrorKind::Invalid)?;
    assert!(err.to_string().contains("keep_journal"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("needs record {}", before + 1)),
        "{err}"
    );
    assert_eq!(standby.applied_seq(), before);
    drop(standby);
    assert_eq!(
        Standby::open(&standby_dir, folders(&primary))?.applied_seq(),
        before
    );
    Ok(())
}

#[test]
fn a_standby_waits_at_bytes_that_are_not_yet_a_whole_frame() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    let (backup, durable) = backed_up_then_written(&primary, &dir.path().join("backup"))?;

    // A copy of the journal with a frame being written after the last whole one: a
    // length word and part of a header.
    let copy = dir.path().join("copy");
    let newest = copy_segments(&primary, &copy)?;
    let mut bytes = std::fs::read(&newest)?;
    let end = written_end(&bytes);
    bytes[end..end + 6].copy_from_slice(&[40, 0, 0, 0, 0xde, 0xad]);
    std::fs::write(&newest, &bytes)?;

    let standby_dir = dir.path().join("standby");
    let mut standby = Standby::create(&backup.path, &standby_dir, vec![copy.clone()])?;
    let c = standby.catch_up()?;
    assert_eq!(c.applied_seq, durable, "every whole frame is applied");
    let waiting = c.waiting_at.ok_or("waiting at the partial frame")?;
    assert!(waiting.contains(&format!("at byte {end}")), "{waiting}");
    // The frame is still not whole: nothing more, still waiting.
    let c = standby.catch_up()?;
    assert_eq!(c.applied, 0);
    assert!(c.waiting_at.is_some());
    // With a later segment after it, such bytes can never become a frame: damage.
    let later = copy.join(format!("{:020}.wal", durable + 5));
    std::fs::write(&later, vec![0u8; 4096])?;
    let err = expect_err(standby.catch_up(), ErrorKind::Corruption)?;
    assert!(err.to_string().contains("a later segment follows"), "{err}");
    assert_eq!(standby.applied_seq(), durable);
    std::fs::remove_file(&later)?;
    // The primary's recovery erases such a tail: so does this test; nothing is waiting.
    bytes[end..end + 6].fill(0);
    std::fs::write(&newest, &bytes)?;
    let c = standby.catch_up()?;
    assert_eq!((c.applied, c.waiting_at), (0, None));
    Ok(())
}

#[test]
fn a_standby_refuses_damage_in_the_newest_segment_that_good_frames_follow() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    let (backup, _) = backed_up_then_written(&primary, &dir.path().join("backup"))?;
    let copy = dir.path().join("copy");
    let newest = copy_segments(&primary, &copy)?;
    let mut bytes = std::fs::read(&newest)?;
    // The first frame the standby needs, with at least one good frame after it.
    let mut at = 0;
    let mut frames = Vec::new();
    while at + 16 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if len == 0 {
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[at + 8..at + 16]);
        frames.push((at, u64::from_le_bytes(seq), len as usize));
        at += 16 + len as usize;
    }
    let needed: Vec<_> = frames
        .iter()
        .filter(|(_, seq, _)| *seq > backup.applied_seq)
        .collect();
    assert!(needed.len() >= 2, "{frames:?}");
    let (offset, seq, len) = *needed[0];
    bytes[offset + 16 + len / 2] ^= 0x40;
    std::fs::write(&newest, &bytes)?;

    let standby_dir = dir.path().join("standby");
    let mut standby = Standby::create(&backup.path, &standby_dir, vec![copy])?;
    let err = expect_err(standby.catch_up(), ErrorKind::Corruption)?;
    assert!(err.to_string().contains("yet a good frame"), "{err}");
    assert!(standby.applied_seq() < seq, "nothing past the damage");
    // It does not wait there: asked again, it says the same.
    expect_err(standby.catch_up(), ErrorKind::Corruption)?;
    Ok(())
}

/// A primary in `primary`, seeded and backed up to `backup`, then 30 more fills of which the
/// standby will need the records; returns the backup and the primary's last durable seq.
fn backed_up_then_written(
    primary: &Path,
    backup: &Path,
) -> TestResult<(tradestore::backup::BackupReport, u64)> {
    let store = Store::open(primary, keeping())?;
    seed(&store)?;
    let report = store.backup(backup)?;
    workload(&store, 1, 30)?;
    Ok((report, store.stats().durable_seq()))
}

/// Copies the primary's segment files (both folders) into `copy`; returns the newest copy.
fn copy_segments(primary: &Path, copy: &Path) -> TestResult<PathBuf> {
    std::fs::create_dir_all(copy)?;
    let mut newest: Option<PathBuf> = None;
    for folder in folders(primary).into_iter().filter(|f| f.is_dir()) {
        for entry in std::fs::read_dir(folder)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "wal") {
                let to = copy.join(path.file_name().ok_or("a name")?);
                std::fs::copy(&path, &to)?;
                if newest.as_ref().is_none_or(|n| to > *n) {
                    newest = Some(to);
                }
            }
        }
    }
    Ok(newest.ok_or("a segment")?)
}

/// The offset after the last frame of a segment's bytes: frames are `len` (u32 LE),
/// `crc`, `seq` (u64), then `len` payload bytes; a zero `len` ends them.
fn written_end(bytes: &[u8]) -> usize {
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if len == 0 {
            break;
        }
        at += 16 + len as usize;
    }
    at
}

#[test]
fn a_standby_of_a_primary_that_has_written_nothing_follows_its_first_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let primary = dir.path().join("primary");
    let store = Store::open(&primary, keeping())?;
    let backup = store.backup(&dir.path().join("backup"))?;
    assert_eq!(backup.applied_seq, 0);
    let standby_dir = dir.path().join("standby");
    let mut standby = Standby::create(&backup.path, &standby_dir, folders(&primary))?;
    assert_eq!(standby.catch_up()?.applied, 0);
    seed(&store)?;
    workload(&store, 1, 20)?;
    assert!(catch_up_all(&mut standby)? > 0);
    assert_eq!(standby.applied_seq(), store.stats().durable_seq());
    drop(standby);
    assert_eq!(standby_dump(&standby_dir)?, dump_bytes(&store)?);
    // Reopened, it is still a standby.
    let standby = Standby::open(&standby_dir, folders(&primary))?;
    assert_eq!(standby.applied_seq(), store.stats().durable_seq());
    Ok(())
}
