//! Escalation: a warning firing longer than `escalate_after` becomes critical, is routed
//! to the critical route's receiver and inhibits as critical.

use super::support::{at, firing, manager, record, rule, take};
use crate::monitor::alerts::MemorySource;

#[test]
fn a_long_warning_becomes_critical_and_routes_on() {
    let text = rule(
        "LagGrowing",
        "journal_lag_transactions",
        "escalate_after = \"10m\"\nlabels = { instance = \"db1\" }",
    ) + &rule("Slow", "slow", "labels = { instance = \"db1\" }")
        + "[[inhibit]]\nequal = [\"instance\"]\n\
           [[receiver]]\nname = \"ops\"\ncallback = [\"ops\"]\n\
           [[receiver]]\nname = \"pager\"\ncallback = [\"pager\"]\n\
           [route]\nreceiver = \"ops\"\ngroup_by = [\"alertname\"]\n\
           group_wait = \"0s\"\ngroup_interval = \"1m\"\n\
           [[route.routes]]\nmatchers = [\"severity = critical\"]\nreceiver = \"pager\"\n";
    let mut m = manager(&text);
    let ops = record(&mut m, "ops");
    let pager = record(&mut m, "pager");
    let mut src = MemorySource::new();
    src.set("journal_lag_transactions", 5000.0);
    m.tick(at(0), &src);
    let sent = take(&ops);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["LagGrowing"]);
    assert!(take(&pager).is_empty());

    for t in (60..600).step_by(60) {
        m.tick(at(t), &src);
    }
    assert_eq!(m.state("LagGrowing").unwrap().severity, "warning");
    src.set("slow", 1.0);
    m.tick(at(600), &src);
    let s = m.state("LagGrowing").unwrap();
    assert_eq!((s.severity.as_str(), s.escalated), ("critical", true));
    assert_eq!(
        s.labels.get("severity").map(String::as_str),
        Some("critical")
    );
    let paged = take(&pager);
    assert_eq!(paged.len(), 1);
    assert_eq!(firing(&paged[0]), ["LagGrowing"]);
    assert_eq!(paged[0].alerts[0].labels["severity"], "critical");
    assert!(
        take(&ops).is_empty(),
        "the warning route is not told again; Slow is inhibited by the escalated alert"
    );
    assert!(m.state("Slow").unwrap().inhibited);

    // It resolves as critical, to the pager, then is a warning rule again.
    src.set("journal_lag_transactions", 0.0);
    m.tick(at(660), &src);
    let paged = take(&pager);
    assert_eq!(paged.len(), 1);
    assert_eq!(
        paged[0].alerts[0].status,
        crate::monitor::alerts::NotificationStatus::Resolved
    );
    let s = m.state("LagGrowing").unwrap();
    assert_eq!((s.severity.as_str(), s.escalated), ("warning", false));
    // Slow, no longer inhibited, goes to ops.
    let sent = take(&ops);
    assert_eq!(sent.len(), 1);
    assert_eq!(firing(&sent[0]), ["Slow"]);
}
