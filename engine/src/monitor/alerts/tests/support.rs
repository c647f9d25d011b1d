//! Helpers of the scenario tests: rules as TOML, managers whose receivers are recording
//! callbacks, and a clock.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::monitor::alerts::{AlertManager, AlertState, Notification, NotificationStatus};

/// The tests' epoch: 2023-11-14, in milliseconds.
pub(crate) const T0: u64 = 1_700_000_000_000;

/// Seconds after [`T0`], in milliseconds since the epoch.
pub(crate) fn at(seconds: u64) -> u64 {
    T0 + seconds * 1000
}

/// A threshold rule `series > 0` with extra lines.
pub(crate) fn rule(name: &str, series: &str, extra: &str) -> String {
    format!(
        "[[rule]]\nname = \"{name}\"\nkind = \"threshold\"\nseries = \"{series}\"\n\
         op = \">\"\nvalue = 0\n{extra}\n"
    )
}

/// The notifications a callback received.
pub(crate) type Log = Arc<Mutex<Vec<Notification>>>;

/// Registers a callback recording what it receives.
pub(crate) fn record(m: &mut AlertManager, name: &str) -> Log {
    let log: Log = Arc::default();
    let sink = log.clone();
    m.register_callback(name, Arc::new(move |n| sink.lock().push(n.clone())));
    log
}

/// Takes the notifications recorded so far.
pub(crate) fn take(log: &Log) -> Vec<Notification> {
    std::mem::take(&mut *log.lock())
}

/// A manager from TOML; panics on a bad configuration.
pub(crate) fn manager(text: &str) -> AlertManager {
    match AlertManager::from_toml(text, "alerts.toml") {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// The firing alert names of a notification, sorted.
pub(crate) fn firing(n: &Notification) -> Vec<&str> {
    let mut v = n.alert_names(NotificationStatus::Firing);
    v.sort_unstable();
    v
}

/// The state of an alert.
pub(crate) fn state(m: &AlertManager, name: &str) -> AlertState {
    m.state(name)
        .map(|s| s.state)
        .unwrap_or_else(|| panic!("no alert {name}"))
}
