//! Dispatch: the firing and resolved alerts put into the groups of the routes that take
//! them, the groups that are due looked at, and a notification made for each channel that
//! needs one ([`AlertManager::prepare`]); after delivery, what went out is recorded and the
//! resolved alerts nobody is owed a notification for return to inactive
//! ([`AlertManager::complete`]).
//!
//! An escalated alert leaves the groups of its warning routes without a notification
//! there (it goes on as critical) and enters those of the routes that take it as critical.

use std::collections::{BTreeMap, BTreeSet};

use super::alert::{Alert, AlertState};
use super::delivery::{DeliveryStats, Outbox};
use super::duration::format_time_ms;
use super::group::{Group, GroupKey};
use super::manager::AlertManager;
use super::notification::{NO_END, Notification, NotificationStatus, NotifiedAlert, group_key};
use super::rule::Rule;
use super::source::MetricSource;

impl AlertManager {
    /// Gathers the notifications due at `now` (milliseconds since the epoch) into an
    /// outbox, to be sent with [`Outbox::deliver`] (without holding the manager) and handed
    /// back to [`AlertManager::complete`].
    pub fn prepare(&mut self, now: u64) -> Outbox {
        self.refresh_mutes(now);
        self.regroup(now);
        let mut items = Vec::new();
        let Some(route) = &self.route else {
            return self.outbox(items);
        };
        for (key, group) in &mut self.groups {
            if !group.due(now) {
                continue;
            }
            let Some(r) = route.find(key.route) else {
                continue;
            };
            let Some(receiver) = self.receivers.get(&r.receiver) else {
                continue;
            };
            group.advance(now, r.group_interval_ms);
            let name = |i: &usize| self.rules[*i].name.clone();
            let firing: BTreeSet<String> = group
                .members
                .iter()
                .filter(|i| {
                    let a = &self.alerts[**i];
                    a.state == AlertState::Firing && !a.muted()
                })
                .map(name)
                .collect();
            for (ci, channel) in receiver.channels.iter().enumerate() {
                let Some(state) = group.channels.get(ci) else {
                    continue;
                };
                let resolved: BTreeSet<String> = group
                    .members
                    .iter()
                    .filter(|i| self.alerts[**i].state == AlertState::Resolved)
                    .map(name)
                    .filter(|n| state.sent_firing.contains(n))
                    .collect();
                if !state.needs_update(&firing, &resolved, now, r.repeat_interval_ms) {
                    continue;
                }
                let alerts = group
                    .members
                    .iter()
                    .filter(|i| firing.contains(&name(i)))
                    .chain(group.members.iter().filter(|i| resolved.contains(&name(i))))
                    .map(|i| notified(&self.rules[*i], &self.alerts[*i]))
                    .collect();
                let notification = Notification::new(
                    &receiver.name,
                    group_key(key.route, &key.labels),
                    key.labels.clone(),
                    alerts,
                );
                items.push(super::delivery::Delivery {
                    group: key.clone(),
                    channel: ci,
                    target: channel.clone(),
                    notification,
                    firing: firing.clone(),
                });
            }
        }
        self.outbox(items)
    }

    fn outbox(&self, items: Vec<super::delivery::Delivery>) -> Outbox {
        Outbox {
            items,
            sinks: self.sinks.clone(),
            results: Vec::new(),
        }
    }

    /// Puts each firing or resolved alert into the groups of the routes that take it,
    /// creating groups (due after `group_wait`) and forgetting empty ones.
    fn regroup(&mut self, now: u64) {
        let mut wanted: BTreeMap<GroupKey, BTreeSet<usize>> = BTreeMap::new();
        if let Some(route) = &self.route {
            for (i, (rule, a)) in self.rules.iter().zip(&self.alerts).enumerate() {
                if !matches!(a.state, AlertState::Firing | AlertState::Resolved) {
                    continue;
                }
                let labels = a.labels(rule);
                for r in route.matching(&labels) {
                    let key = GroupKey {
                        route: r.id,
                        labels: r.group_labels(&labels),
                    };
                    wanted.entry(key).or_default().insert(i);
                }
            }
        }
        self.groups.retain(|k, _| wanted.contains_key(k));
        for (key, members) in wanted {
            let Some(r) = self.route.as_ref().and_then(|root| root.find(key.route)) else {
                continue;
            };
            let channels = self
                .receivers
                .get(&r.receiver)
                .map_or(0, |rc| rc.channels.len());
            let group = self
                .groups
                .entry(key)
                .or_insert_with(|| Group::new(now, r.group_wait_ms, channels));
            let names: BTreeSet<&str> = members
                .iter()
                .map(|i| self.rules[*i].name.as_str())
                .collect();
            for c in &mut group.channels {
                c.sent_firing.retain(|n| names.contains(n.as_str()));
            }
            group.members = members;
        }
    }

    /// Records what an outbox delivered at `now`, counts failures, and returns the
    /// resolved alerts no receiver is still owed a notification for to inactive.
    pub fn complete(&mut self, now: u64, outbox: Outbox) {
        let Outbox { items, results, .. } = outbox;
        for (d, result) in items.into_iter().zip(results) {
            let receiver = d.notification.receiver.clone();
            let stats = self
                .stats
                .entry((receiver.clone(), d.channel))
                .or_insert_with(|| DeliveryStats {
                    receiver,
                    channel: d.target.describe(),
                    ..DeliveryStats::default()
                });
            match result {
                Ok(()) => {
                    stats.sent += 1;
                    if let Some(state) = self
                        .groups
                        .get_mut(&d.group)
                        .and_then(|g| g.channels.get_mut(d.channel))
                    {
                        state.sent_firing = d.firing;
                        state.last_sent = Some(now);
                    }
                }
                Err(e) => {
                    stats.failed += 1;
                    stats.last_error = Some(e);
                }
            }
        }
        for (i, (rule, alert)) in self.rules.iter().zip(self.alerts.iter_mut()).enumerate() {
            if alert.state != AlertState::Resolved {
                continue;
            }
            let owed = self.groups.values().any(|g| {
                g.members.contains(&i)
                    && g.channels
                        .iter()
                        .any(|c| c.sent_firing.contains(&rule.name))
            });
            if !owed {
                alert.retire(rule, now);
            }
        }
    }

    /// Sends the notifications due at `now`; returns how many went out.
    pub fn flush(&mut self, now: u64) -> usize {
        let mut outbox = self.prepare(now);
        outbox.deliver();
        let sent = outbox.delivered();
        self.complete(now, outbox);
        sent
    }

    /// Evaluates at `now`, then sends what is due; returns how many notifications went out.
    pub fn tick(&mut self, now: u64, source: &dyn MetricSource) -> usize {
        self.evaluate(now, source);
        self.flush(now)
    }
}

/// An alert as it appears in a notification.
fn notified(rule: &Rule, a: &Alert) -> NotifiedAlert {
    let labels = a.labels(rule);
    let resolved = a.state == AlertState::Resolved;
    NotifiedAlert {
        status: if resolved {
            NotificationStatus::Resolved
        } else {
            NotificationStatus::Firing
        },
        annotations: rule.annotations(a.value, &labels),
        labels,
        starts_at: format_time_ms(a.fired_at.or(a.active_since).unwrap_or(0)),
        ends_at: match (resolved, a.resolved_at) {
            (true, Some(t)) => format_time_ms(t),
            _ => NO_END.to_owned(),
        },
        value: a.value,
    }
}
