//! Monitoring end to end: after a workload the metrics count what happened, the Prometheus
//! exposition is accepted by `promtool check metrics`, the sampler produces rates and
//! latency percentiles once a second, and the health checks report every check.

use std::time::{Duration, Instant};

use tradestore::monitor::HealthState;
use tradestore::{Config, Store};
use tradestore_tests::{TestResult, seed, workload};

fn config() -> Config {
    Config {
        monitor_interval_ms: 100,
        health_disk_min_mb: 0,
        ..Config::default()
    }
}

#[test]
fn metrics_count_the_workload_and_promtool_accepts_the_exposition() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), config())?;
    seed(&store)?;
    workload(&store, 2, 120)?;
    store.query("SELECT count(*) FROM trades")?;
    store.query("SELECT * FROM trades WHERE instrument = 1 ORDER BY ts DESC LIMIT 5")?;
    let m = store.metrics();
    assert_eq!(m.value("tradestore_commits_total"), Some(121.0));
    let commit = m
        .histogram("tradestore_commit_duration_seconds")
        .ok_or("commit histogram")?;
    assert_eq!(commit.count, 121);
    assert!(commit.p50 > 0.0 && commit.p99 >= commit.p50);
    assert_eq!(
        commit.buckets.last().map(|b| b.1),
        Some(121),
        "every commit under 10 s"
    );
    let queries = m
        .family("tradestore_query_duration_seconds")
        .ok_or("query histogram")?;
    assert_eq!(queries.samples.len(), 2, "one histogram per query shape");
    assert!(m.value("tradestore_database_size_bytes").unwrap_or(0.0) > 0.0);
    assert!(m.value("tradestore_disk_free_bytes").unwrap_or(0.0) > 0.0);
    assert_eq!(m.value("tradestore_poisoned"), Some(0.0));

    let text = store.prometheus();
    assert!(
        text.contains("# TYPE tradestore_commits_total counter\ntradestore_commits_total 121\n")
    );
    assert!(text.contains("tradestore_commit_duration_seconds_bucket{le=\"+Inf\"} 121\n"));
    assert!(text.contains("tradestore_breaker_state{state=\"closed\"} 1\n"));
    tradestore_tests::promtool_check(&text)
}

#[test]
fn the_sampler_keeps_rates_and_percentiles_and_health_reports_every_check() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), config())?;
    seed(&store)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    loop {
        workload(&store, 100 + round, 20)?;
        round += 1;
        let rates = store.series("commits_per_sec", 0);
        let p99 = store.series("commit_p99_seconds", 0);
        if rates.iter().any(|p| p.v > 0.0) && !p99.is_empty() {
            assert!(p99.iter().all(|p| p.v > 0.0 && p.v < 10.0), "{p99:?}");
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("no samples: {:?}", store.series_names()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for name in [
        "database_size_bytes",
        "disk_free_bytes",
        "overlay_bytes",
        "checkpoint_age_seconds",
    ] {
        assert!(!store.series(name, 0).is_empty(), "series {name}");
    }
    let health = store.health();
    let names: Vec<&str> = health.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "writes",
            "journal_lag",
            "checkpoint_age",
            "disk_headroom",
            "error_rate",
            "latency_objective"
        ]
    );
    assert_eq!(health.state, HealthState::Ok, "{health:?}");
    Ok(())
}

#[test]
fn the_latency_objective_is_judged_against_the_measured_p99() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Without the sampler the check reads the whole-run histogram, which the test reads
    // too: the verdict must follow from the objective and the measurement.
    let store = Store::open(
        dir.path(),
        Config {
            health_commit_p99_ms: 1,
            monitor: false,
            ..config()
        },
    )?;
    seed(&store)?;
    workload(&store, 4, 30)?;
    let p99 = store
        .metrics()
        .histogram("tradestore_commit_duration_seconds")
        .map(|h| h.p99)
        .ok_or("histogram")?;
    let check = store
        .health()
        .checks
        .into_iter()
        .find(|c| c.name == "latency_objective")
        .ok_or("check")?;
    let expected = if p99 > 0.01 {
        HealthState::Failing
    } else if p99 > 0.001 {
        HealthState::Degraded
    } else {
        HealthState::Ok
    };
    assert_eq!(check.state, expected, "{check:?} with p99 {p99}");
    assert!(check.reason.contains("objective 1 ms"), "{}", check.reason);
    Ok(())
}

/// An idle store whose checkpoint holds everything has nothing waiting for a checkpoint: its
/// health stays ok however long it idles (it used to degrade a minute after the last write).
#[test]
fn an_idle_store_is_not_degraded_by_the_age_of_its_last_checkpoint() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Store::open(
        dir.path(),
        Config {
            checkpoint_interval_ms: 50,
            health_checkpoint_age_s: 1,
            ..config()
        },
    )?;
    seed(&store)?;
    workload(&store, 7, 20)?;
    let started = Instant::now();
    let age = |store: &Store| {
        store
            .metrics()
            .value("tradestore_checkpoint_age_seconds")
            .unwrap_or(f64::NAN)
    };
    while age(&store) != 0.0 {
        assert!(started.elapsed() < Duration::from_secs(10), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(age(&store), 0.0);
    let report = store.health();
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "checkpoint_age")
        .ok_or("no checkpoint_age check")?;
    assert_eq!(check.state, HealthState::Ok, "{}", check.reason);
    Ok(())
}
