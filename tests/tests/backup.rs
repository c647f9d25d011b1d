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
