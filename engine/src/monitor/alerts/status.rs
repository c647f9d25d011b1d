//! The state of every alert, for `tradestore alerts [--json]` and the dashboard.

use std::collections::BTreeMap;

use serde::Serialize;

use super::alert::AlertState;

/// One alert's state, serializable.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertStatus {
    /// The rule's name (the `alertname` label).
    pub name: String,
    /// Its state.
    pub state: AlertState,
    /// Its severity now (`critical` once escalated).
    pub severity: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations, with the value filled in.
    pub annotations: BTreeMap<String, String>,
    /// The last measured value.
    pub value: Option<f64>,
    /// When it entered its state, milliseconds since the epoch (`None`: never changed).
    pub since: Option<u64>,
    /// When its condition began to hold (pending, firing).
    pub active_since: Option<u64>,
    /// When it began firing.
    pub fired_at: Option<u64>,
    /// When it resolved.
    pub resolved_at: Option<u64>,
    /// Whether it was escalated from warning to critical.
    pub escalated: bool,
    /// Whether a silence mutes it.
    pub silenced: bool,
    /// Whether a firing alert inhibits it.
    pub inhibited: bool,
}

impl AlertStatus {
    /// One line for a terminal: name, state, severity, value, and what mutes it.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{:<24} {:<9} {:<8} {}",
            self.name,
            self.state.name(),
            self.severity,
            self.value
                .map_or_else(|| "-".to_owned(), super::duration::format_value)
        );
        if self.silenced {
            s.push_str(" silenced");
        }
        if self.inhibited {
            s.push_str(" inhibited");
        }
        if self.escalated {
            s.push_str(" escalated");
        }
        s
    }
}
