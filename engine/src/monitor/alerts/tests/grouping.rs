//! Grouping: group_wait gathers alerts, group_interval limits updates, repeat_interval
//! re-sends; and the webhook channel through the manager, to a real server.

use super::http::Server;
use super::support::{at, firing, manager, record, rule, take};
use crate::monitor::alerts::{MemorySource, Notification, NotificationStatus};

/// Three rules on instance db1 (a, b, c) and one on db2 (d).
fn rules() -> String {
    rule("A", "a", "labels = { instance = \"db1\" }")
        + &rule("B", "b", "labels = { instance = \"db1\" }")
        + &rule("C", "c", "labels = { instance = \"db1\" }")
        + &rule("D", "d", "labels = { instance = \"db2\" }")
}

const ROUTE: &str = "[[receiver]]\nname = \"ops\"\ncallback = [\"ops\"]\n\
                     [route]\nreceiver = \"ops\"\ngroup_by = [\"instance\"]\n\
                     group_wait = \"30s\"\ngroup_interval = \"5m\"\nrepeat_interval = \"1h\"\n";

#[test]
fn alerts_arriving_within_group_wait_go_out_together() {
    let mut m = manager(&(rules() + ROUTE));
    let log = record(&mut m, "ops");
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    src.set("d", 1.0);
    m.tick(at(0), &src);
    src.set("b", 1.0);
    m.tick(at(20), &src);
    assert!(take(&log).is_empty(), "waiting group_wait");
    m.tick(at(30), &src);
    let mut sent = take(&log);
    sent.sort_by(|x, y| x.group_labels.cmp(&y.group_labels));
    assert_eq!(sent.len(), 2, "one per instance");
    assert_eq!(firing(&sent[0]), ["A", "B"]);
    assert_eq!(
        sent[0].group_labels.get("instance").map(String::as_str),
        Some("db1")
    );
    assert_eq!(
        sent[0].common_labels.get("instance").map(String::as_str),
        Some("db1")
    );
    assert_eq!(firing(&sent[1]), ["D"]);
}

#[test]
fn group_interval_limits_updates_and_repeat_interval_resends() {
    let mut m = manager(&(rules() + ROUTE));
    let log = record(&mut m, "ops");
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    m.tick(at(0), &src);
    m.tick(at(30), &src);
    assert_eq!(take(&log).len(), 1);
    // C fires a minute later: it waits for the group's next look, 5 min after the first.
    src.set("c", 1.0);
    for t in [60, 120, 329] {
        m.tick(at(t), &src);
    }
    assert!(take(&log).is_empty(), "rate-limited by group_interval");
    m.tick(at(330), &src);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["A", "C"]);
    // Nothing changes: re-sent once repeat_interval (1 h) has passed, at a group look.
    let mut sends = Vec::new();
    for t in (630..=4230).step_by(300) {
        m.tick(at(t), &src);
        if !take(&log).is_empty() {
            sends.push(t);
        }
    }
    assert_eq!(sends, [3930], "1 h after the update at 330 s");
}

#[test]
fn webhook_posts_to_a_real_server_and_failures_are_retried() {
    let server = Server::start(200);
    let text = rules()
        + &format!(
            "[[receiver]]\nname = \"hook\"\n[[receiver.webhook]]\nurl = \"{}\"\ntimeout = \"2s\"\n\
             [route]\nreceiver = \"hook\"\ngroup_by = [\"instance\"]\ngroup_wait = \"0s\"\n\
             group_interval = \"1m\"\n",
            server.url("/alerts")
        );
    let mut m = manager(&text);
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    src.set("b", 2.0);
    assert_eq!(m.tick(at(0), &src), 1);
    let req = server.next_request().unwrap();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/alerts")
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body["receiver"], "hook");
    assert_eq!(body["status"], "firing");
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({ "instance": "db1" })
    );
    assert_eq!(
        body["commonLabels"],
        serde_json::json!({ "instance": "db1", "severity": "warning" })
    );
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1]["labels"]["alertname"], "B");
    assert_eq!(alerts[1]["status"], "firing");
    assert_eq!(alerts[1]["startsAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(alerts[1]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[1]["value"], 2.0);
    let n: Notification = serde_json::from_str(&req.body).unwrap();
    assert_eq!(n.status, NotificationStatus::Firing);

    // A receiver that is down: the failure is counted and retried at the next interval.
    let down = rules()
        + &format!(
            "[[receiver]]\nname = \"hook\"\n[[receiver.webhook]]\nurl = \"{}\"\ntimeout = \"1s\"\n\
             [route]\nreceiver = \"hook\"\ngroup_wait = \"0s\"\ngroup_interval = \"1m\"\n",
            Server::closed_url()
        );
    let mut m = manager(&down);
    assert_eq!(m.tick(at(0), &src), 0);
    m.tick(at(30), &src);
    assert_eq!(m.tick(at(60), &src), 0);
    let stats = m.delivery_stats();
    assert_eq!((stats[0].sent, stats[0].failed), (0, 2), "{stats:?}");
    assert!(
        stats[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("webhook"))
    );
}
