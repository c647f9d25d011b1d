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
    };
    let r = restore_backup_to(&backup.path, &dir.path().join("r750"), &pit)?;
    assert_eq!(r.applied_seq, seq_of[750]);
    let copy = Store::open_dir(&r.to)?;
    assert_eq!(account_ids(&copy)?, (1..=7500).collect::<Vec<u64>>());
    drop(copy);

    // Everything the journal holds.
    let all = PointInTime {
        journal: journal.clone(),
        until_seq: None,
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
    Ok(())
}
