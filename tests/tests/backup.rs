//! Online backup of a store under a trading workload: the backup verifies and restores to a
//! clean store, and the Prometheus exposition with the backup histogram is accepted by
//! `promtool check metrics`.

use std::sync::Arc;

use tradestore::backup::{restore_backup, verify_backup};
use tradestore::{Config, Store};
use tradestore_tests::{TestResult, assert_clean, seed, workload};

#[test]
fn a_backup_under_a_workload_restores_clean_and_promtool_accepts_its_metrics() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path().join("store"), Config::default())?);
    seed(&store)?;
    workload(&store, 1, 50)?;
    let writer = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || workload(&store, 2, 150))
    };
    let report = store.backup(&dir.path().join("backup"))?;
    writer.join().map_err(|_| "the workload panicked")??;
    assert!(report.applied_seq >= 51, "{}", report.applied_seq);
    verify_backup(&report.path)?;
    let restored = restore_backup(&report.path, &dir.path().join("restored"))?;
    assert_eq!(restored.applied_seq, report.applied_seq);
    assert_clean(&Store::open_dir(&restored.to)?)?;

    let m = store.metrics();
    let h = m
        .histogram("tradestore_backup_duration_seconds")
        .ok_or("backup histogram")?;
    assert_eq!(h.count, 1);
    assert_eq!(
        h.buckets.len(),
        tradestore::monitor::metrics::LATENCY_BUCKETS.len()
    );
    assert_eq!(m.value("tradestore_backup_failures_total"), Some(0.0));
    let text = store.prometheus();
    assert!(text.contains("tradestore_backup_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
    tradestore_tests::promtool_check(&text)
}

/// Accounts 1 ..= n as they read back from `store`'s snapshot.
fn account_ids(store: &Store) -> TestResult<Vec<u64>> {
    use tradestore::ReadOps;
    let accounts: Vec<tradestore::schema::Account> = store.read()?.all()?;
    Ok(accounts.iter().map(|a| a.id).collect())
}

#[test]
fn point_in_time_recovery_replays_the_kept_journal_up_to_a_transaction() -> TestResult {
    use tradestore::backup::{PointInTime, restore_backup_to};
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("store");
    let config = Config {
        keep_journal: true,
        // Small segments and frequent checkpoints: most records end up in archive/journal.
        journal_segment_mb: 1,
        checkpoint_interval_ms: 10,
        ..Config::default()
    };
    let store = Store::open(&src, config)?;
    // Transaction k inserts accounts 10k-9 ..= 10k, with long names (about 2.5 KB a
    // record, so the 1 MiB segments fill); seq_of[k] is its sequence number.
    let batch = |tx: &mut tradestore::WriteTx, k: u64| -> tradestore::Result<()> {
        tradestore_tests::insert_long_named_accounts(tx, 10 * k - 9..=10 * k)
    };
    let mut seq_of = vec![0u64];
    for k in 1..=600u64 {
        let ((), ticket) = store.submit(|tx| batch(tx, k))?;
        seq_of.push(ticket.seq());
        ticket.wait()?;
        if k % 100 == 0 {
            // Let checkpoints release full segments into archive/journal.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let backup = store.backup(&dir.path().join("b"))?;
    // Every write acknowledged before the backup is in it, and nothing after.
    assert_eq!(backup.applied_seq, seq_of[600]);
    for k in 601..=900u64 {
        let ((), ticket) = store.submit(|tx| batch(tx, k))?;
        seq_of.push(ticket.seq());
        ticket.wait()?;
    }
    drop(store);
    let kept = src.join("archive").join("journal");
    assert!(
        std::fs::read_dir(&kept)?.count() > 0,
        "no segment was kept in archive/journal"
    );
    let journal = vec![kept, src.join("journal")];

    // Up to the transaction that wrote accounts 7491 ..= 7500.
    let pit = PointInTime {
        journal: journal.clone(),
        until_seq: Some(seq_of[750]),
        ..PointInTime::default()
    };
    let r = restore_backup_to(&backup.path, &dir.path().join("r750"), &pit)?;
    assert_eq!(r.applied_seq, seq_of[750]);
    let copy = Store::open_dir(&r.to)?;
    assert_eq!(account_ids(&copy)?, (1..=7500).collect::<Vec<u64>>());
    drop(copy);

    // Everything the journal holds.
    let all = PointInTime {
        journal: journal.clone(),
        ..PointInTime::default()
    };
    let r = restore_backup_to(&backup.path, &dir.path().join("rall"), &all)?;
    assert_eq!(r.replay_stopped, None);
    let copy = Store::open_dir(&r.to)?;
    assert_eq!(account_ids(&copy)?, (1..=9000).collect::<Vec<u64>>());
    assert_clean(&copy)?;
    drop(copy);

    // Past the journal's end, or without the kept segments: refused, nothing left behind.
    for (name, folders, until) in [
        ("beyond", journal.clone(), seq_of[900] + 5),
        ("gap", vec![src.join("journal")], seq_of[750]),
    ] {
        let target = dir.path().join(name);
        let pit = PointInTime {
            journal: folders,
            until_seq: Some(until),
            ..PointInTime::default()
        };
        let err = restore_backup_to(&backup.path, &target, &pit)
            .err()
            .ok_or("restored past what the journal holds")?;
        assert!(
            err.to_string().contains("not ") || err.to_string().contains("missing"),
            "{err}"
        );
        assert!(!target.exists(), "{name}: a failed restore left {target:?}");
    }

    // Folders without a segment (the store's directory for its journal/, an empty folder)
    // would roll nothing forward: refused rather than restored as if all were replayed.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty)?;
    for folders in [vec![src.clone()], vec![empty.clone()]] {
        let target = dir.path().join("none");
        let pit = PointInTime {
            journal: folders,
            ..PointInTime::default()
        };
        let err = restore_backup_to(&backup.path, &target, &pit)
            .err()
            .ok_or("restored from folders without a segment")?;
        assert!(err.to_string().contains("no journal segment"), "{err}");
        assert!(!target.exists(), "a failed restore left {target:?}");
    }
    Ok(())
}

/// Nanoseconds since the Unix epoch, now.
fn now_ns() -> TestResult<u64> {
    Ok(u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos(),
    )?)
}

#[test]
fn point_in_time_recovery_to_a_time_replays_what_was_committed_by_then() -> TestResult {
    use tradestore::backup::{PointInTime, restore_backup_to};
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("store");
    let config = Config {
        keep_journal: true,
        ..Config::default()
    };
    let store = Store::open(&src, config)?;
    // Transaction k inserts accounts 10k-9 ..= 10k; after_k[k] is a time after its ack and
    // before transaction k+1 began.
    let mut seq_of = vec![0u64];
    let mut after_k = vec![0u64];
    let commit = |k: u64| -> TestResult<(u64, u64)> {
        let pause = || std::thread::sleep(std::time::Duration::from_millis(3));
        let ((), ticket) = store
            .submit(|tx| tradestore_tests::insert_long_named_accounts(tx, 10 * k - 9..=10 * k))?;
        let seq = ticket.seq();
        ticket.wait()?;
        pause();
        let after = now_ns()?;
        pause();
        Ok((seq, after))
    };
    for k in 1..=5 {
        let (seq, after) = commit(k)?;
        seq_of.push(seq);
        after_k.push(after);
    }
    let backup = store.backup(&dir.path().join("b"))?;
    let before_backup = after_k[3];
    for k in 6..=20 {
        let (seq, after) = commit(k)?;
        seq_of.push(seq);
        after_k.push(after);
    }
    drop(store);
    let journal = vec![src.join("archive").join("journal"), src.join("journal")];

    // To the moment after transaction 12: accounts 1 ..= 120, and the report names 13 as
    // the first transaction left out.
    let pit = PointInTime {
        journal: journal.clone(),
        until_time_ns: Some(after_k[12]),
        ..PointInTime::default()
    };
    let r = restore_backup_to(&backup.path, &dir.path().join("r12"), &pit)?;
    assert_eq!(r.applied_seq, seq_of[12]);
    assert_eq!(r.replayed, seq_of[12] - seq_of[5]);
    let (next, next_ns) = r.stopped_before.ok_or("no transaction after the time")?;
    assert_eq!(next, seq_of[13]);
    assert!(next_ns > after_k[12] && next_ns < after_k[13]);
    let last = r.last_commit_ns.ok_or("no commit time replayed")?;
    assert!(last > after_k[11] && last <= after_k[12]);
    let copy = Store::open_dir(&r.to)?;
    assert_eq!(account_ids(&copy)?, (1..=120).collect::<Vec<u64>>());
    assert_clean(&copy)?;
    drop(copy);

    // A time after the last transaction: all of them, nothing passed.
    let pit = PointInTime {
        journal: journal.clone(),
        until_time_ns: Some(after_k[20]),
        ..PointInTime::default()
    };
    let r = restore_backup_to(&backup.path, &dir.path().join("r20"), &pit)?;
    assert_eq!((r.applied_seq, r.stopped_before), (seq_of[20], None));
    drop(Store::open_dir(&r.to)?);

    // Refused, nothing left behind: a time before the backup was taken (it may hold later
    // transactions), a time and a transaction together, a time with no journal folders.
    let refusals = [
        (
            "older",
            PointInTime {
                journal: journal.clone(),
                until_time_ns: Some(before_backup),
                ..PointInTime::default()
            },
            "restore an older backup",
        ),
        (
            "both",
            PointInTime {
                journal: journal.clone(),
                until_seq: Some(seq_of[12]),
                until_time_ns: Some(after_k[12]),
            },
            "not both",
        ),
        (
            "nojournal",
            PointInTime {
                until_time_ns: Some(after_k[12]),
                ..PointInTime::default()
            },
            "needs the journal folders",
        ),
    ];
    for (name, pit, says) in refusals {
        let target = dir.path().join(name);
        let err = restore_backup_to(&backup.path, &target, &pit)
            .err()
            .ok_or_else(|| format!("{name}: restored"))?;
        assert!(err.to_string().contains(says), "{name}: {err}");
        assert!(!target.exists(), "{name}: a failed restore left {target:?}");
    }
    Ok(())
}

#[test]
fn a_backup_in_the_store_removes_what_killed_backups_left() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Config::default())?;
    seed(&store)?;
    let first = store.backup_in_store()?;
    let backups = dir.path().join("backups");
    // What a process killed during an in-store backup leaves: a named folder, no manifest.
    let abandoned = backups.join("20260101T000000Z-seq1");
    std::fs::create_dir_all(abandoned.join("journal"))?;
    std::fs::write(abandoned.join("tradestore.redb"), b"partial")?;
    // Folders the store did not name are the operator's: left alone.
    let other = backups.join("copied-by-hand");
    std::fs::create_dir_all(&other)?;
    let second = store.backup_in_store()?;
    assert!(!abandoned.exists());
    assert!(other.is_dir());
    verify_backup(&first.path)?;
    verify_backup(&second.path)?;
    Ok(())
}
