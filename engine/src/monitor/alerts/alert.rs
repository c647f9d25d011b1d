//! One alert per rule and its states: inactive, pending (the condition holds, waiting for
//! the rule's `for`), firing, resolved (the condition stopped holding after firing; the
//! resolved notification goes out once, then the alert is inactive again). A warning that
//! fires for `escalate_after` becomes critical (its `severity` label changes, so it routes
//! as critical and inhibits as critical) until it resolves.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rule::{Rule, Severity};

/// An alert's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition does not hold (or there is no data).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition has held for the rule's `for`.
    Firing,
    /// The condition stopped holding after firing; the resolved notification is pending.
    Resolved,
}

impl AlertState {
    /// The state's name.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// The alert of one rule. Times are milliseconds since the epoch.
#[derive(Clone, Debug)]
pub(crate) struct Alert {
    pub state: AlertState,
    /// When the current state began (`None` before the first change).
    pub since: Option<u64>,
    /// When the condition began to hold (pending, firing).
    pub active_since: Option<u64>,
    pub fired_at: Option<u64>,
    pub resolved_at: Option<u64>,
    /// The last measured value.
    pub value: Option<f64>,
    pub severity: Severity,
    pub escalated: bool,
    pub silenced: bool,
    pub inhibited: bool,
}

impl Alert {
    /// A new, inactive alert of a rule.
    pub fn new(rule: &Rule) -> Alert {
        Alert {
            state: AlertState::Inactive,
            since: None,
            active_since: None,
            fired_at: None,
            resolved_at: None,
            value: None,
            severity: rule.severity,
            escalated: false,
            silenced: false,
            inhibited: false,
        }
    }

    /// The alert's labels now.
    pub fn labels(&self, rule: &Rule) -> BTreeMap<String, String> {
        rule.labels(self.severity)
    }

    /// Whether a silence or an inhibition keeps it from being notified.
    pub fn muted(&self) -> bool {
        self.silenced || self.inhibited
    }

    fn enter(&mut self, state: AlertState, now: u64) {
        self.state = state;
        self.since = Some(now);
    }

    /// Advances the state with a measurement (`None`: no data) at `now`.
    pub fn step(&mut self, rule: &Rule, measured: Option<f64>, now: u64) {
        if measured.is_some() {
            self.value = measured;
        }
        let holds = measured.is_some_and(|v| rule.holds(v));
        match (self.state, holds) {
            (AlertState::Inactive | AlertState::Resolved, true) => {
                self.severity = rule.severity;
                self.escalated = false;
                self.resolved_at = None;
                self.active_since = Some(now);
                self.fired_at = None;
                self.enter(AlertState::Pending, now);
                self.promote(rule, now);
            }
            (AlertState::Pending, true) => self.promote(rule, now),
            (AlertState::Pending, false) => {
                self.active_since = None;
                self.enter(AlertState::Inactive, now);
            }
            (AlertState::Firing, true) => self.escalate(rule, now),
            (AlertState::Firing, false) => {
                self.resolved_at = Some(now);
                self.enter(AlertState::Resolved, now);
            }
            (AlertState::Inactive | AlertState::Resolved, false) => {}
        }
    }

    /// Pending long enough: firing.
    fn promote(&mut self, rule: &Rule, now: u64) {
        let since = self.active_since.unwrap_or(now);
        if now.saturating_sub(since) >= rule.for_ms {
            self.fired_at = Some(now);
            self.enter(AlertState::Firing, now);
        }
    }

    /// A warning firing for `escalate_after` becomes critical.
    fn escalate(&mut self, rule: &Rule, now: u64) {
        let (Some(after), Some(fired)) = (rule.escalate_after_ms, self.fired_at) else {
            return;
        };
        if self.severity == Severity::Warning && now.saturating_sub(fired) >= after {
            self.severity = Severity::Critical;
            self.escalated = true;
        }
    }

    /// The resolved notification went out (or was owed to nobody): inactive again.
    pub fn retire(&mut self, rule: &Rule, now: u64) {
        if self.state == AlertState::Resolved {
            self.severity = rule.severity;
            self.escalated = false;
            self.active_since = None;
            self.enter(AlertState::Inactive, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::rule::tests::rule;
    use crate::monitor::alerts::rule::{Op, RuleKind};

    #[test]
    fn pending_then_firing_after_for_then_resolved() {
        let mut r = rule(RuleKind::Threshold, "x", Op::Gt, 1.0);
        r.for_ms = 60_000;
        let mut a = Alert::new(&r);
        a.step(&r, Some(0.0), 0);
        assert_eq!(a.state, AlertState::Inactive);
        a.step(&r, Some(2.0), 1_000);
        assert_eq!(a.state, AlertState::Pending);
        assert_eq!(a.active_since, Some(1_000));
        a.step(&r, Some(2.0), 60_999);
        assert_eq!(a.state, AlertState::Pending);
        a.step(&r, Some(3.0), 61_000);
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!((a.fired_at, a.value), (Some(61_000), Some(3.0)));
        a.step(&r, Some(0.5), 70_000);
        assert_eq!(a.state, AlertState::Resolved);
        assert_eq!(a.resolved_at, Some(70_000));
        a.retire(&r, 71_000);
        assert_eq!(a.state, AlertState::Inactive);
        assert_eq!(a.since, Some(71_000));
    }

    #[test]
    fn pending_clears_without_firing_and_missing_data_is_false() {
        let mut r = rule(RuleKind::Threshold, "x", Op::Gt, 1.0);
        r.for_ms = 60_000;
        let mut a = Alert::new(&r);
        a.step(&r, None, 0);
        assert_eq!(a.state, AlertState::Inactive, "no data: stays inactive");
        a.step(&r, Some(2.0), 1_000);
        a.step(&r, Some(0.0), 2_000);
        assert_eq!(a.state, AlertState::Inactive);
        r.for_ms = 0;
        a.step(&r, Some(2.0), 3_000);
        assert_eq!(a.state, AlertState::Firing, "no `for`: fires at once");
        a.step(&r, None, 4_000);
        assert_eq!(a.state, AlertState::Resolved, "data gone: resolves");
        assert_eq!(a.value, Some(2.0), "keeps the last value");
    }

    #[test]
    fn a_warning_escalates_after_firing_long_enough() {
        let mut r = rule(RuleKind::Threshold, "x", Op::Gt, 1.0);
        r.escalate_after_ms = Some(600_000);
        let mut a = Alert::new(&r);
        a.step(&r, Some(2.0), 0);
        a.step(&r, Some(2.0), 599_999);
        assert_eq!(a.severity, Severity::Warning);
        a.step(&r, Some(2.0), 600_000);
        assert_eq!((a.severity, a.escalated), (Severity::Critical, true));
        assert_eq!(
            a.labels(&r).get("severity").map(String::as_str),
            Some("critical")
        );
        a.step(&r, Some(0.0), 700_000);
        a.retire(&r, 700_000);
        assert_eq!((a.severity, a.escalated), (Severity::Warning, false));
    }
}
