//! The TOML form of the alert configuration, as read (unknown keys refused); `load.rs`
//! validates it.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rule::{Op, RuleKind, Severity};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsFile {
    /// How often the store evaluates the rules (default 10 s).
    pub evaluation_interval: Option<String>,
    #[serde(default)]
    pub rule: Vec<RuleFile>,
    pub route: Option<RouteFile>,
    #[serde(default)]
    pub receiver: Vec<ReceiverFile>,
    #[serde(default)]
    pub inhibit: Vec<InhibitFile>,
    #[serde(default)]
    pub silence: Vec<SilenceFile>,
}

/// `[[rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleFile {
    pub name: String,
    pub kind: RuleKind,
    #[serde(alias = "metric")]
    pub series: String,
    pub op: Op,
    pub value: f64,
    pub window: Option<String>,
    pub horizon: Option<String>,
    #[serde(rename = "for")]
    pub pending: Option<String>,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub escalate_after: Option<String>,
}

/// `[route]` and its `[[route.routes]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    pub receiver: Option<String>,
    pub group_by: Option<Vec<String>>,
    pub group_wait: Option<String>,
    pub group_interval: Option<String>,
    pub repeat_interval: Option<String>,
    #[serde(default)]
    pub matchers: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    #[serde(default)]
    pub routes: Vec<RouteFile>,
}

/// `[[receiver]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReceiverFile {
    pub name: String,
    #[serde(default)]
    pub log: bool,
    #[serde(default)]
    pub jsonl: Vec<JsonlFile>,
    #[serde(default)]
    pub webhook: Vec<WebhookFile>,
    #[serde(default)]
    pub callback: Vec<String>,
}

/// `[[receiver.jsonl]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JsonlFile {
    pub path: String,
}

/// `[[receiver.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookFile {
    pub url: String,
    pub timeout: Option<String>,
}

/// `[[inhibit]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InhibitFile {
    pub source_matchers: Option<Vec<String>>,
    pub target_matchers: Option<Vec<String>>,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// `[[silence]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SilenceFile {
    pub matchers: Vec<String>,
    pub ends_at: String,
    #[serde(default)]
    pub comment: String,
}
