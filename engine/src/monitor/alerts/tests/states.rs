//! States through the manager: pending, firing, resolved sent once, inactive; the log and
//! jsonl channels; a predicted full disk.

use std::sync::Arc;

use parking_lot::Mutex;

use super::support::{T0, at, firing, manager, record, rule, state, take};
use crate::monitor::alerts::{AlertState, MemorySource, NotificationStatus};

const ROUTE: &str = "[[receiver]]\nname = \"me\"\ncallback = [\"me\"]\n\
                     [route]\nreceiver = \"me\"\ngroup_wait = \"0s\"\ngroup_interval = \"1m\"\n";

#[test]
fn pending_firing_resolved_once_then_inactive() {
    let text = rule(
        "SlowCommits",
        "commit_p99_seconds",
        "for = \"1m\"\nannotations = { summary = \"p99 at {{value}}s\" }",
    ) + ROUTE;
    let mut m = manager(&text);
    let log = record(&mut m, "me");
    let mut src = MemorySource::new();
    src.set("commit_p99_seconds", 0.0);
    m.tick(at(0), &src);
    assert_eq!(state(&m, "SlowCommits"), AlertState::Inactive);
    src.set("commit_p99_seconds", 0.25);
    m.tick(at(10), &src);
    assert_eq!(state(&m, "SlowCommits"), AlertState::Pending);
    m.tick(at(69), &src);
    assert_eq!(state(&m, "SlowCommits"), AlertState::Pending);
    assert!(take(&log).is_empty(), "pending alerts are not notified");
    m.tick(at(70), &src);
    assert_eq!(state(&m, "SlowCommits"), AlertState::Firing);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["SlowCommits"]);
    assert_eq!(
        sent[0].alerts[0]
            .annotations
            .get("summary")
            .map(String::as_str),
        Some("p99 at 0.25s")
    );
    let s = m.state("SlowCommits").unwrap();
    assert_eq!(
        (s.active_since, s.fired_at, s.value),
        (Some(at(10)), Some(at(70)), Some(0.25))
    );

    src.set("commit_p99_seconds", 0.0);
    m.evaluate(at(100), &src);
    assert_eq!(state(&m, "SlowCommits"), AlertState::Resolved);
    assert_eq!(m.state("SlowCommits").unwrap().resolved_at, Some(at(100)));
    // The group was last looked at 70 s in; the next look is a minute later.
    m.flush(at(100));
    assert!(take(&log).is_empty());
    m.tick(at(130), &src);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, NotificationStatus::Resolved);
    assert_ne!(sent[0].alerts[0].ends_at, "0001-01-01T00:00:00Z");
    assert_eq!(state(&m, "SlowCommits"), AlertState::Inactive);
    for t in [190, 250, 5000] {
        m.tick(at(t), &src);
    }
    assert!(take(&log).is_empty(), "resolved is sent once");
}

#[test]
fn an_alert_resolving_before_its_first_notification_is_not_resolved_to_anyone() {
    let text = rule("A", "a", "") + ROUTE.replace("0s", "30s").as_str();
    let mut m = manager(&text);
    let log = record(&mut m, "me");
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    m.tick(at(0), &src);
    src.set("a", 0.0);
    m.tick(at(10), &src);
    assert_eq!(state(&m, "A"), AlertState::Inactive);
    m.tick(at(40), &src);
    assert!(take(&log).is_empty());
}

#[test]
fn log_and_jsonl_channels_write_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = rule("DiskFull", "disk_free_bytes", "")
        .replace("op = \">\"", "op = \"<\"")
        .replace("value = 0", "value = 1e9")
        + "[[receiver]]\nname = \"me\"\nlog = true\n[[receiver.jsonl]]\npath = \"out/alerts.jsonl\"\n\
           [route]\nreceiver = \"me\"\ngroup_wait = \"0s\"\n";
    let mut m = manager(&text);
    std::fs::create_dir(dir.path().join("out")).unwrap();
    m.resolve_paths(dir.path());
    let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
    m.set_log_writer(Box::new(Shared(buf.clone())));
    let mut src = MemorySource::new();
    src.set("disk_free_bytes", 5e8);
    assert_eq!(m.tick(T0, &src), 2);
    let line = String::from_utf8(buf.lock().clone()).unwrap();
    assert!(
        line.starts_with(
            "alert firing receiver=me group={}: DiskFull [warning firing] value=500000000"
        ),
        "{line}"
    );
    let text = std::fs::read_to_string(dir.path().join("out/alerts.jsonl")).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["alerts"][0]["labels"]["alertname"], "DiskFull");
    assert_eq!(v["status"], "firing");
    let stats = m.delivery_stats();
    assert_eq!(stats.len(), 2);
    assert!(
        stats.iter().all(|s| s.sent == 1 && s.failed == 0),
        "{stats:?}"
    );
}

#[test]
fn a_disk_predicted_full_fires() {
    let text = "[[rule]]\nname = \"DiskFullIn4h\"\nkind = \"prediction\"\n\
                series = \"disk_free_bytes\"\nop = \"<\"\nvalue = 0\nwindow = \"10m\"\n\
                horizon = \"4h\"\nseverity = \"critical\"\n"
        .to_owned()
        + ROUTE;
    let mut m = manager(&text);
    let log = record(&mut m, "me");
    let mut src = MemorySource::new();
    let t0 = T0 / 1000;
    // 20 GB free, losing 1 MB/s: full in about 5.5 h, so not within 4 h...
    for i in 0..600 {
        src.push("disk_free_bytes", t0 + i, 20e9 - 1e6 * i as f64);
    }
    m.tick(at(599), &src);
    assert_eq!(state(&m, "DiskFullIn4h"), AlertState::Inactive);
    // ...then losing 2 MB/s: full in under 3 h.
    for i in 600..1200 {
        src.push("disk_free_bytes", t0 + i, 19.4e9 - 2e6 * (i - 600) as f64);
    }
    m.tick(at(1199), &src);
    assert_eq!(state(&m, "DiskFullIn4h"), AlertState::Firing);
    assert_eq!(take(&log).len(), 1);
    assert!(m.state("DiskFullIn4h").unwrap().value.unwrap() < 0.0);
}

#[test]
fn a_callback_not_registered_fails_until_it_is() {
    let mut m = manager(&(rule("A", "a", "") + ROUTE));
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    assert_eq!(m.tick(at(0), &src), 0);
    let stats = m.delivery_stats();
    assert_eq!(
        (stats[0].channel.as_str(), stats[0].failed),
        ("callback me", 1)
    );
    assert!(
        stats[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("\"me\""))
    );
    let log = record(&mut m, "me");
    m.tick(at(30), &src);
    assert!(take(&log).is_empty(), "retried at the next group_interval");
    m.tick(at(60), &src);
    assert_eq!(take(&log).len(), 1);
    assert_eq!(m.delivery_stats()[0].sent, 1);
}

#[test]
fn states_serialize_for_the_cli() {
    let text = rule("A", "a", "for = \"1m\"\nlabels = { instance = \"db1\" }") + ROUTE;
    let mut m = manager(&text);
    let mut src = MemorySource::new();
    src.set("a", 3.0);
    m.evaluate(at(0), &src);
    let v = serde_json::to_value(m.states()).unwrap();
    assert_eq!(v[0]["name"], "A");
    assert_eq!(v[0]["state"], "pending");
    assert_eq!(v[0]["severity"], "warning");
    assert_eq!(v[0]["labels"]["instance"], "db1");
    assert_eq!(v[0]["value"], 3.0);
    assert_eq!(v[0]["since"], at(0));
    assert_eq!(v[0]["silenced"], false);
    assert_eq!(v[0]["inhibited"], false);
    assert!(
        m.states()[0].line().starts_with("A "),
        "{}",
        m.states()[0].line()
    );
}

/// A writer into a shared buffer.
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
