//! Inhibition and silences.

use super::support::{at, firing, manager, record, rule, take};
use crate::monitor::alerts::{Matcher, MemorySource};

const ROUTE: &str = "[[receiver]]\nname = \"ops\"\ncallback = [\"ops\"]\n\
                     [route]\nreceiver = \"ops\"\ngroup_by = [\"alertname\"]\n\
                     group_wait = \"0s\"\ngroup_interval = \"1m\"\n";

#[test]
fn a_firing_critical_mutes_warnings_with_the_same_instance_only() {
    let text = rule(
        "Down",
        "down",
        "severity = \"critical\"\nlabels = { instance = \"db1\" }",
    ) + &rule("Slow1", "slow1", "labels = { instance = \"db1\" }")
        + &rule("Slow2", "slow2", "labels = { instance = \"db2\" }")
        + "[[inhibit]]\nequal = [\"instance\"]\n"
        + ROUTE;
    let mut m = manager(&text);
    let log = record(&mut m, "ops");
    let mut src = MemorySource::new();
    for s in ["down", "slow1", "slow2"] {
        src.set(s, 1.0);
    }
    m.tick(at(0), &src);
    let mut names: Vec<&str> = Vec::new();
    let sent = take(&log);
    for n in &sent {
        names.extend(firing(n));
    }
    names.sort_unstable();
    assert_eq!(names, ["Down", "Slow2"], "Slow1 is inhibited by Down");
    let s1 = m.state("Slow1").unwrap();
    assert!(s1.inhibited && !s1.silenced);
    assert!(!m.state("Slow2").unwrap().inhibited);
    assert!(!m.state("Down").unwrap().inhibited);

    // Down resolves: Slow1 is no longer inhibited and goes out at its group's next look.
    src.set("down", 0.0);
    m.tick(at(30), &src);
    assert!(!m.state("Slow1").unwrap().inhibited);
    m.tick(at(60), &src);
    let sent = take(&log);
    let mut names: Vec<String> = sent
        .iter()
        .map(|n| format!("{:?} {}", n.status, n.alerts[0].labels["alertname"]))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Firing Slow1", "Resolved Down"]);
}

#[test]
fn silences_mute_until_they_end() {
    let text = rule("A", "a", "labels = { instance = \"db1\" }")
        + &rule("B", "b", "labels = { instance = \"db2\" }")
        + "[[silence]]\nmatchers = [\"instance = db2\"]\n\
           ends_at = \"2023-11-14T22:15:00Z\"\ncomment = \"maintenance\"\n"
        + ROUTE;
    let mut m = manager(&text);
    let log = record(&mut m, "ops");
    let mut src = MemorySource::new();
    src.set("a", 1.0);
    src.set("b", 1.0);
    m.tick(at(0), &src);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["A"]);
    let b = m.state("B").unwrap();
    assert_eq!(
        b.state,
        crate::monitor::alerts::AlertState::Firing,
        "still changes state"
    );
    assert!(b.silenced);
    // The silence ends 100 s in (22:15:00): B goes out at its group's next look after.
    m.tick(at(60), &src);
    assert!(take(&log).is_empty());
    m.tick(at(120), &src);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["B"]);
    assert!(m.silences().is_empty(), "ended silences are dropped");

    // A silence through the API, expired early.
    let id = m.silence(
        vec![Matcher::parse("alertname = A").unwrap()],
        at(10_000),
        "deploy",
    );
    src.set("a", 0.0);
    m.tick(at(180), &src);
    let sent = take(&log);
    assert_eq!(
        sent.len(),
        1,
        "a resolution still goes out to whom was told it fired"
    );
    src.set("a", 1.0);
    m.tick(at(240), &src);
    assert!(m.state("A").unwrap().silenced);
    m.tick(at(300), &src);
    assert!(take(&log).is_empty(), "silenced");
    assert!(m.expire(id));
    assert!(!m.expire(id));
    m.tick(at(360), &src);
    let sent = take(&log);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["A"]);
}
