//! The alert manager: its rules, alerts, routing, receivers, inhibitions, silences and
//! groups; constructed from TOML (see `load.rs` for the format), driven by
//! [`AlertManager::evaluate`] and [`AlertManager::flush`] (or [`AlertManager::tick`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::alert::Alert;
use super::delivery::DeliveryStats;
use super::group::{Group, GroupKey};
use super::inhibit::Inhibit;
use super::matcher::Matcher;
use super::receiver::{Callback, Receiver, Sinks};
use super::route::Route;
use super::rule::Rule;
use super::silence::Silence;
use super::status::AlertStatus;
use crate::error::Result;

/// Default evaluation interval: 10 s.
pub(crate) const EVALUATION_INTERVAL_MS: u64 = 10_000;

/// The alert manager.
///
/// The configuration, in TOML:
///
/// ```toml
/// evaluation_interval = "10s"       # how often the store evaluates (default 10s)
///
/// [[rule]]
/// name = "DiskFullSoon"
/// kind = "prediction"               # threshold | rate | prediction
/// series = "disk_free_bytes"        # a series of the sampler (or `metric`)
/// op = "<"                          # > >= < <=
/// value = 0
/// window = "1h"                     # points fitted (rate, prediction; threshold: average)
/// horizon = "4h"                    # prediction only: how far ahead
/// for = "5m"                        # pending period (default 0: fires at once)
/// severity = "warning"              # warning (default) | critical
/// escalate_after = "30m"            # a warning firing this long becomes critical
/// labels = { instance = "db1" }
/// annotations = { summary = "disk predicted full in 4h ({{value}} bytes)" }
///
/// [route]                           # the root takes every alert
/// receiver = "ops"
/// group_by = ["instance"]           # ["..."]: every label; none: one group
/// group_wait = "30s"                # defaults: 30s, 5m, 4h
/// group_interval = "5m"
/// repeat_interval = "4h"
/// [[route.routes]]                  # the first matching child takes it (deepest wins)
/// matchers = ["severity = critical"] # = != =~ !~ (regular expressions match whole values)
/// receiver = "pager"
/// continue = false                  # true: later siblings may take it too
///
/// [[receiver]]
/// name = "ops"
/// log = true                        # a line to the log writer (stderr by default)
/// callback = ["dashboard"]          # functions registered with register_callback
/// [[receiver.jsonl]]
/// path = "alerts.jsonl"             # one JSON object a line, appended
/// [[receiver]]
/// name = "pager"
/// [[receiver.webhook]]
/// url = "http://127.0.0.1:9093/hook" # POST of Alertmanager's webhook JSON; http only
/// timeout = "5s"
///
/// [[inhibit]]                       # a firing source mutes targets with equal labels
/// source_matchers = ["severity = critical"]   # the defaults
/// target_matchers = ["severity = warning"]
/// equal = ["instance"]
///
/// [[silence]]
/// matchers = ["instance = db2"]
/// ends_at = "2030-01-01T00:00:00Z"
/// comment = "decommissioned"
/// ```
///
/// Without `[route]`, a single receiver takes everything; without receivers alerts are
/// only kept as states. Times passed to the methods are milliseconds since the epoch.
pub struct AlertManager {
    pub(crate) rules: Vec<Rule>,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) route: Option<Route>,
    pub(crate) receivers: BTreeMap<String, Receiver>,
    pub(crate) inhibits: Vec<Inhibit>,
    pub(crate) silences: Vec<Silence>,
    pub(crate) next_silence: u64,
    pub(crate) groups: BTreeMap<GroupKey, Group>,
    pub(crate) sinks: Sinks,
    /// Per receiver and channel position.
    pub(crate) stats: BTreeMap<(String, usize), DeliveryStats>,
    pub(crate) interval_ms: u64,
}

impl Default for AlertManager {
    fn default() -> AlertManager {
        AlertManager::empty()
    }
}

impl AlertManager {
    /// A manager without rules (nothing ever fires).
    pub fn empty() -> AlertManager {
        AlertManager {
            rules: Vec::new(),
            alerts: Vec::new(),
            route: None,
            receivers: BTreeMap::new(),
            inhibits: Vec::new(),
            silences: Vec::new(),
            next_silence: 1,
            groups: BTreeMap::new(),
            sinks: Sinks::default(),
            stats: BTreeMap::new(),
            interval_ms: EVALUATION_INTERVAL_MS,
        }
    }

    /// Reads and validates a configuration; a Config error names `file_name` and the
    /// problem (a TOML error, an unknown key, an unknown receiver, a bad duration or
    /// regular expression, a duplicate rule name...).
    pub fn from_toml(text: &str, file_name: &str) -> Result<AlertManager> {
        let parsed = super::load::parse(text).map_err(|e| e.context(format!("in {file_name}")))?;
        let mut m = AlertManager::empty();
        m.alerts = parsed.rules.iter().map(Alert::new).collect();
        m.rules = parsed.rules;
        m.route = parsed.route;
        m.receivers = parsed
            .receivers
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        m.inhibits = parsed.inhibits;
        for (matchers, ends_at, comment) in parsed.silences {
            m.silence(matchers, ends_at, &comment);
        }
        m.interval_ms = parsed.interval_ms;
        Ok(m)
    }

    /// The manager behind a lock, as [`spawn`](super::spawn) takes it.
    pub fn into_shared(self) -> Arc<Mutex<AlertManager>> {
        Arc::new(Mutex::new(self))
    }

    /// How often to evaluate (the file's `evaluation_interval`).
    pub fn evaluation_interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The rules' names, in the file's order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.name.as_str()).collect()
    }

    /// Each rule whose series `known` refuses, with that series, in the file's order.
    pub(crate) fn unknown_series(&self, known: impl Fn(&str) -> bool) -> Vec<(&str, &str)> {
        self.rules
            .iter()
            .filter(|r| !known(&r.series))
            .map(|r| (r.name.as_str(), r.series.as_str()))
            .collect()
    }

    /// Registers the function a `callback = ["NAME"]` channel calls (replacing one of the
    /// same name). Until registered, deliveries to it fail and are retried.
    pub fn register_callback(&mut self, name: &str, callback: Callback) {
        self.sinks.callbacks.insert(name.to_owned(), callback);
    }

    /// Sets where `log` channels write (stderr by default).
    pub fn set_log_writer(&mut self, writer: Box<dyn Write + Send>) {
        self.sinks.log = Arc::new(Mutex::new(writer));
    }

    /// The files of the `jsonl` channels.
    pub fn jsonl_paths(&self) -> Vec<std::path::PathBuf> {
        self.receivers
            .values()
            .flat_map(|r| r.channels.iter())
            .filter_map(|c| match c {
                super::receiver::Channel::Jsonl(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Takes relative `jsonl` paths as relative to `base` (the store's directory, say).
    pub fn resolve_paths(&mut self, base: &Path) {
        for r in self.receivers.values_mut() {
            r.resolve_paths(base);
        }
    }

    /// Adds a silence muting the alerts that satisfy every matcher until `ends_at`
    /// (milliseconds since the epoch); returns its id. Without matchers it mutes nothing.
    pub fn silence(&mut self, matchers: Vec<Matcher>, ends_at: u64, comment: &str) -> u64 {
        let id = self.next_silence;
        self.next_silence += 1;
        self.silences.push(Silence {
            id,
            matchers,
            ends_at,
            comment: comment.to_owned(),
        });
        id
    }

    /// Ends a silence now; false when there is no silence with this id.
    pub fn expire(&mut self, id: u64) -> bool {
        let before = self.silences.len();
        self.silences.retain(|s| s.id != id);
        self.silences.len() != before
    }

    /// The silences not yet ended (as of the last evaluation).
    pub fn silences(&self) -> Vec<Silence> {
        self.silences.clone()
    }

    /// Every alert's state, in the rules' order.
    pub fn states(&self) -> Vec<AlertStatus> {
        self.rules
            .iter()
            .zip(&self.alerts)
            .map(|(rule, a)| {
                let labels = a.labels(rule);
                AlertStatus {
                    name: rule.name.clone(),
                    state: a.state,
                    severity: a.severity.name().to_owned(),
                    annotations: rule.annotations(a.value, &labels),
                    labels,
                    value: a.value,
                    since: a.since,
                    active_since: a.active_since,
                    fired_at: a.fired_at,
                    resolved_at: a.resolved_at,
                    escalated: a.escalated,
                    silenced: a.silenced,
                    inhibited: a.inhibited,
                }
            })
            .collect()
    }

    /// The state of one alert by its rule's name.
    pub fn state(&self, name: &str) -> Option<AlertStatus> {
        self.states().into_iter().find(|s| s.name == name)
    }

    /// Deliveries and failures per receiver channel.
    pub fn delivery_stats(&self) -> Vec<DeliveryStats> {
        self.stats.values().cloned().collect()
    }
}
