//! The alert manager: rules (threshold, rate, trend prediction) evaluated against the
//! monitor's series, with a pending period and the states inactive, pending, firing and
//! resolved; notifications routed by labels to receivers (log, JSON-lines file, webhook,
//! in-process callback), grouped like Prometheus Alertmanager (`group_by`, `group_wait`,
//! `group_interval`, `repeat_interval`), muted by inhibition and silences, and warnings
//! escalated to critical when they fire too long. Configured in TOML: see [`AlertManager`].
//!
//! Every time-dependent function takes `now` as milliseconds since the Unix epoch, so tests
//! drive the clock; [`spawn`] ticks with the system clock.

mod alert;
mod delivery;
mod dispatch;
mod duration;
mod evaluate;
mod file;
mod group;
mod inhibit;
mod jsonl;
mod load;
mod log;
mod manager;
mod matcher;
mod notification;
mod receiver;
mod route;
mod rule;
mod run;
mod silence;
mod source;
mod status;
mod webhook;

#[cfg(test)]
mod tests;

pub use alert::AlertState;
pub use delivery::{DeliveryStats, Outbox};
pub use manager::AlertManager;
pub use matcher::{MatchOp, Matcher};
pub use notification::{Notification, NotificationStatus, NotifiedAlert};
pub use receiver::Callback;
pub use rule::Severity;
pub use run::spawn;
pub use silence::Silence;
pub use source::{MemorySource, MetricSource};
pub use status::AlertStatus;
