//! Delivery: the notifications due, gathered by [`AlertManager::prepare`] into an
//! [`Outbox`] that is sent without holding the manager (a webhook may take up to its
//! timeout), then handed back to [`AlertManager::complete`], which records what went out
//! and counts failures (a failed notification is retried at the group's next
//! `group_interval`).
//!
//! [`AlertManager::prepare`]: super::AlertManager::prepare
//! [`AlertManager::complete`]: super::AlertManager::complete

use std::collections::BTreeSet;

use serde::Serialize;

use super::group::GroupKey;
use super::notification::Notification;
use super::receiver::{Channel, Sinks};

/// One notification for one channel.
pub(crate) struct Delivery {
    pub group: GroupKey,
    /// The channel's position in its receiver.
    pub channel: usize,
    pub target: Channel,
    pub notification: Notification,
    /// The firing alerts it tells of (by name).
    pub firing: BTreeSet<String>,
}

/// Notifications due, to be sent with [`Outbox::deliver`].
pub struct Outbox {
    pub(crate) items: Vec<Delivery>,
    pub(crate) sinks: Sinks,
    /// Per item once delivered: `Ok` or why it failed.
    pub(crate) results: Vec<Result<(), String>>,
}

impl Outbox {
    /// How many notifications it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The notifications it holds.
    pub fn notifications(&self) -> impl Iterator<Item = &Notification> {
        self.items.iter().map(|d| &d.notification)
    }

    /// Sends every notification through its channel (once; a second call does nothing).
    pub fn deliver(&mut self) {
        if self.results.len() == self.items.len() {
            return;
        }
        self.results = self
            .items
            .iter()
            .map(|d| self.sinks.send(&d.target, &d.notification))
            .collect();
    }

    /// How many were sent successfully.
    pub fn delivered(&self) -> usize {
        self.results.iter().filter(|r| r.is_ok()).count()
    }
}

/// The deliveries of one channel of a receiver.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeliveryStats {
    /// The receiver.
    pub receiver: String,
    /// The channel: `log`, `jsonl PATH`, `webhook URL` or `callback NAME`.
    pub channel: String,
    /// Notifications sent.
    pub sent: u64,
    /// Notifications that failed (each retried at its group's next interval).
    pub failed: u64,
    /// Why the last failure failed.
    pub last_error: Option<String>,
}
