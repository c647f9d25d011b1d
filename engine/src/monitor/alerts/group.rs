//! Aggregation groups, as in Alertmanager: the alerts of a route with the same values of
//! its `group_by` labels. A new group waits `group_wait` before its first notification,
//! then is looked at every `group_interval`; a receiver's channel is notified when an alert
//! fires that it was not told of, or one it was told of resolved, or, with nothing new,
//! when `repeat_interval` has passed since its last notification. A group whose alerts
//! are all gone is forgotten (a new one waits `group_wait` again).

use std::collections::{BTreeMap, BTreeSet};

/// A group: its route and group labels.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GroupKey {
    pub route: usize,
    pub labels: BTreeMap<String, String>,
}

/// What one channel of the group's receiver was last sent.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChannelState {
    /// The alerts (by name) it was told fire.
    pub sent_firing: BTreeSet<String>,
    /// When, milliseconds since the epoch.
    pub last_sent: Option<u64>,
}

impl ChannelState {
    /// Whether this channel is to be notified, given the group's firing (not muted) alerts
    /// and its resolved alerts this channel was told fired.
    pub fn needs_update(
        &self,
        firing: &BTreeSet<String>,
        resolved: &BTreeSet<String>,
        now: u64,
        repeat_ms: u64,
    ) -> bool {
        if !firing.is_subset(&self.sent_firing) || !resolved.is_empty() {
            return true;
        }
        !firing.is_empty()
            && self
                .last_sent
                .is_none_or(|t| now.saturating_sub(t) >= repeat_ms)
    }
}

/// A group's state.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    /// Its alerts (indices of the manager's rules), firing or resolved.
    pub members: BTreeSet<usize>,
    /// When it is next looked at, milliseconds since the epoch.
    pub next_flush: u64,
    /// One per channel of the route's receiver.
    pub channels: Vec<ChannelState>,
}

impl Group {
    /// A group created at `now`.
    pub fn new(now: u64, group_wait_ms: u64, channels: usize) -> Group {
        Group {
            members: BTreeSet::new(),
            next_flush: now.saturating_add(group_wait_ms),
            channels: vec![ChannelState::default(); channels],
        }
    }

    /// Whether it is to be looked at.
    pub fn due(&self, now: u64) -> bool {
        now >= self.next_flush
    }

    /// Schedules the next look, `group_interval` steps after the last one.
    pub fn advance(&mut self, now: u64, group_interval_ms: u64) {
        let step = group_interval_ms.max(1);
        let behind = now.saturating_sub(self.next_flush) / step + 1;
        self.next_flush = self.next_flush.saturating_add(behind.saturating_mul(step));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn updates_on_new_firing_resolved_or_repeat() {
        let mut c = ChannelState::default();
        assert!(!c.needs_update(&set(&[]), &set(&[]), 0, 100));
        assert!(c.needs_update(&set(&["a"]), &set(&[]), 0, 100));
        c.sent_firing = set(&["a"]);
        c.last_sent = Some(0);
        assert!(!c.needs_update(&set(&["a"]), &set(&[]), 99, 100));
        assert!(c.needs_update(&set(&["a"]), &set(&[]), 100, 100), "repeat");
        assert!(c.needs_update(&set(&["a", "b"]), &set(&[]), 1, 100), "new");
        assert!(c.needs_update(&set(&[]), &set(&["a"]), 1, 100), "resolved");
        assert!(!c.needs_update(&set(&[]), &set(&[]), 1, 100), "muted");
    }

    #[test]
    fn waits_then_steps_by_the_interval() {
        let mut g = Group::new(1_000, 500, 1);
        assert!(!g.due(1_499));
        assert!(g.due(1_500));
        g.advance(1_500, 300);
        assert_eq!(g.next_flush, 1_800);
        g.advance(2_500, 300);
        assert_eq!(g.next_flush, 2_700);
    }
}
