//! The alert manager through the crate's public API: a configuration in TOML, synthetic
//! series, a controlled clock, the JSON-lines channel, silences, the states as JSON, and
//! the evaluation thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tradestore::ErrorKind;
use tradestore::monitor::alerts::{
    AlertManager, AlertState, Matcher, MemorySource, Notification, NotificationStatus, spawn,
};

const T0: u64 = 1_700_000_000_000;

const CONFIG: &str = r#"
[[rule]]
name = "JournalLag"
kind = "threshold"
series = "journal_lag_transactions"
op = ">"
value = 1000
window = "30s"
for = "20s"
labels = { instance = "db1" }
annotations = { summary = "lag {{value}} transactions" }

[[rule]]
name = "Conflicts"
kind = "rate"
series = "conflicts_per_sec"
op = ">="
value = 5
window = "1m"
severity = "critical"
labels = { instance = "db1" }

[route]
receiver = "file"
group_by = ["instance"]
group_wait = "10s"
group_interval = "1m"

[[receiver]]
name = "file"
[[receiver.jsonl]]
path = "alerts.jsonl"
"#;

fn lines(path: &std::path::Path) -> Vec<Notification> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn alerts_from_toml_to_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = AlertManager::from_toml(CONFIG, "alerts.toml").unwrap();
    m.resolve_paths(dir.path());
    let file = dir.path().join("alerts.jsonl");
    let mut src = MemorySource::new();
    let s = T0 / 1000;
    for t in 0..=200 {
        src.push("journal_lag_transactions", s + t, 5000.0);
        src.push("conflicts_per_sec", s + t, 8.0);
    }
    m.tick(T0 + 40_000, &src);
    let states = m.states();
    assert_eq!(states[0].state, AlertState::Pending);
    assert_eq!(states[1].state, AlertState::Firing);
    m.tick(T0 + 50_000, &src);
    let sent = lines(&file);
    assert_eq!(
        sent.len(),
        1,
        "both in one group, after group_wait, lag still pending"
    );
    assert_eq!(
        sent[0].alert_names(NotificationStatus::Firing),
        ["Conflicts"]
    );
    m.tick(T0 + 60_000, &src);
    assert_eq!(m.states()[0].state, AlertState::Firing);
    m.tick(T0 + 110_000, &src);
    let sent = lines(&file);
    assert_eq!(sent.len(), 2);
    let mut names = sent[1].alert_names(NotificationStatus::Firing);
    names.sort_unstable();
    assert_eq!(names, ["Conflicts", "JournalLag"]);
    let lag = &sent[1]
        .alerts
        .iter()
        .find(|a| a.labels["alertname"] == "JournalLag");
    assert_eq!(
        lag.and_then(|a| a.annotations.get("summary"))
            .map(String::as_str),
        Some("lag 5000 transactions")
    );

    let id = m.silence(
        vec![Matcher::parse("alertname = Conflicts").unwrap()],
        T0 + 3_600_000,
        "known",
    );
    assert_eq!(m.silences()[0].id, id);
    m.evaluate(T0 + 120_000, &src);
    let json = serde_json::to_value(m.states()).unwrap();
    assert_eq!(json[1]["silenced"], true);
    assert_eq!(json[0]["state"], "firing");
}

#[test]
fn a_bad_configuration_is_a_config_error() {
    let e = AlertManager::from_toml(
        &CONFIG.replace(
            "receiver = \"file\"\ngroup_by",
            "receiver = \"nobody\"\ngroup_by",
        ),
        "alerts.toml",
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.message().contains("alerts.toml"), "{e}");
    assert!(e.message().contains("unknown receiver \"nobody\""), "{e}");
}

#[test]
fn the_evaluation_thread_notifies_a_callback() {
    let text = CONFIG
        .replace(
            "[[receiver.jsonl]]\npath = \"alerts.jsonl\"",
            "callback = [\"test\"]",
        )
        .replace("group_wait = \"10s\"", "group_wait = \"0s\"");
    let mut m = AlertManager::from_toml(&text, "alerts.toml").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Notification>();
    let tx = std::sync::Mutex::new(tx);
    m.register_callback(
        "test",
        Arc::new(move |n| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(n.clone());
            }
        }),
    );
    let mut src = MemorySource::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for t in now - 30..now + 30 {
        src.push("conflicts_per_sec", t, 9.0);
    }
    let manager = m.into_shared();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = spawn(
        manager.clone(),
        Arc::new(src),
        Duration::from_millis(20),
        stop.clone(),
    );
    let n = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(n.alert_names(NotificationStatus::Firing), ["Conflicts"]);
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap();
    assert_eq!(manager.lock().states()[1].state, AlertState::Firing);
}

/// A channel that cannot deliver shows in the store's metrics and status, not only in the
/// notifications that never arrive; a jsonl file that can never be written is refused when
/// the store opens.
#[test]
fn failed_deliveries_are_counted_and_an_unwritable_jsonl_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 on loopback: nothing listens, every POST fails.
    let alerts = r#"
[[rule]]
name = "AnyData"
kind = "threshold"
series = "database_size_bytes"
op = ">"
value = 0
window = "1m"

[route]
receiver = "hook"
group_wait = "0s"

[[receiver]]
name = "hook"
[[receiver.webhook]]
url = "http://127.0.0.1:1/alerts"
timeout = "500ms"
"#;
    std::fs::write(dir.path().join("alerts.toml"), alerts).unwrap();
    let store = tradestore::Store::open(dir.path(), tradestore::Config::default()).unwrap();
    store.sample_metrics();
    // The store's own evaluation thread may have sent the notification first (it delivers
    // without holding the manager's lock): then its failure is counted once its delivery
    // returns, so the counter is waited for.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let (text, failures) = loop {
        store.evaluate_alerts();
        let text = store.prometheus();
        let found = text
            .lines()
            .find(|l| l.starts_with("tradestore_alert_notification_failures_total{"))
            .map(str::to_owned);
        match found {
            Some(f) => break (text, f),
            None if std::time::Instant::now() > deadline => {
                panic!("no failure counter in:\n{text}")
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    assert!(failures.contains("receiver=\"hook\""), "{failures}");
    assert!(failures.ends_with(" 1"), "{failures}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("tradestore_alert_notifications_total{") && l.ends_with(" 0")),
        "{text}"
    );
    drop(store);

    let missing = dir.path().join("no-such-folder").join("alerts.jsonl");
    let alerts = format!(
        "[route]\nreceiver = \"file\"\n[[receiver]]\nname = \"file\"\n[[receiver.jsonl]]\npath = {:?}\n",
        missing.display().to_string()
    );
    std::fs::write(dir.path().join("alerts.toml"), alerts).unwrap();
    let err = tradestore::Store::open(dir.path(), tradestore::Config::default())
        .err()
        .expect("an unwritable jsonl path was accepted");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("no-such-folder"), "{err}");
}

/// A rule on a series the store never records would stay inactive forever: the store
/// refuses it when it opens, naming the rule and the series, and leaves nothing open, so
/// that the same process opens the store once the file is fixed. A rule may read the
/// sampler's series or a metric without labels.
#[test]
fn a_rule_on_an_unknown_series_is_refused_and_the_fixed_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |series: &str| {
        format!(
            "[[rule]]\nname = \"Lag\"\nkind = \"threshold\"\nseries = \"{series}\"\nop = \">\"\nvalue = 1\n"
        )
    };
    tradestore::Store::open(dir.path(), tradestore::Config::default()).unwrap();
    for (series, why) in [
        (
            "journal_lag_transaction",
            "a series the monitor does not record",
        ),
        ("tradestore_rows_written_total", "a metric with labels"),
        (
            "tradestore_no_such_metric",
            "a metric this store does not have",
        ),
    ] {
        std::fs::write(dir.path().join("alerts.toml"), rule(series)).unwrap();
        let err = tradestore::Store::open(dir.path(), tradestore::Config::default())
            .err()
            .unwrap_or_else(|| panic!("a rule on {series} was accepted"));
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        let text = err.to_string();
        for part in [
            "alerts.toml",
            "\"Lag\"",
            series,
            why,
            "journal_lag_transactions",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }
    for series in [
        "journal_lag_transactions",
        "commit_p99_seconds",
        "group_max",
        "tradestore_commits_total",
    ] {
        std::fs::write(dir.path().join("alerts.toml"), rule(series)).unwrap();
        let store = tradestore::Store::open(dir.path(), tradestore::Config::default())
            .unwrap_or_else(|e| panic!("a rule on {series} was refused: {e}"));
        assert_eq!(store.alert_states().len(), 1);
    }
}
