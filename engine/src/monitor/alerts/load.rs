//! Validation of the TOML configuration (its format is documented on
//! [`AlertManager`](super::AlertManager)): every problem is a Config error naming the
//! setting.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::{parse_ms, parse_opt_ms, parse_time_ms};
use super::file::{AlertsFile, InhibitFile, ReceiverFile, RuleFile};
use super::inhibit::Inhibit;
use super::manager::EVALUATION_INTERVAL_MS;
use super::matcher::{Matcher, parse_all};
use super::receiver::{Channel, Receiver};
use super::route::Route;
use super::rule::{Rule, RuleKind, Severity};
use super::webhook::{DEFAULT_TIMEOUT, MAX_TIMEOUT, Webhook};
use crate::error::{Error, Result};

/// A validated configuration.
pub(crate) struct Parsed {
    pub rules: Vec<Rule>,
    pub route: Option<Route>,
    pub receivers: Vec<Receiver>,
    pub inhibits: Vec<Inhibit>,
    /// Matchers, end (ms since the epoch), comment.
    pub silences: Vec<(Vec<Matcher>, u64, String)>,
    pub interval_ms: u64,
}

/// Parses and validates the text of an alerts file.
pub(crate) fn parse(text: &str) -> Result<Parsed> {
    let file: AlertsFile =
        toml::from_str(text).map_err(|e| Error::config(e.to_string().trim().to_owned()))?;
    let interval_ms = parse_opt_ms(file.evaluation_interval.as_deref(), "evaluation_interval")?
        .unwrap_or(EVALUATION_INTERVAL_MS);
    if interval_ms == 0 {
        return Err(Error::config("evaluation_interval must be over 0"));
    }
    let mut receivers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in file.receiver.iter().enumerate() {
        let rc = receiver(r).map_err(|e| e.context(format!("receiver[{i}]")))?;
        if !names.insert(rc.name.clone()) {
            return Err(Error::config(format!(
                "receiver {:?} is defined twice",
                rc.name
            )));
        }
        receivers.push(rc);
    }
    let route = match (&file.route, receivers.as_slice()) {
        (Some(r), _) => Some(Route::build(r, &names)?),
        (None, []) => None,
        (None, [only]) => Some(Route::to_receiver(&only.name)),
        (None, _) => {
            return Err(Error::config(
                "with several receivers a [route] must say which takes the alerts",
            ));
        }
    };
    let mut rules = Vec::new();
    let mut rule_names = BTreeSet::new();
    for (i, r) in file.rule.iter().enumerate() {
        let what = if r.name.is_empty() {
            format!("rule[{i}]")
        } else {
            format!("rule {:?}", r.name)
        };
        let parsed = rule(r).map_err(|e| e.context(&what))?;
        if !rule_names.insert(parsed.name.clone()) {
            return Err(Error::config(format!("{what} is defined twice")));
        }
        rules.push(parsed);
    }
    let inhibits = file
        .inhibit
        .iter()
        .enumerate()
        .map(|(i, f)| inhibit(f).map_err(|e| e.context(format!("inhibit[{i}]"))))
        .collect::<Result<_>>()?;
    let mut silences = Vec::new();
    for (i, s) in file.silence.iter().enumerate() {
        let what = format!("silence[{i}]");
        if s.matchers.is_empty() {
            return Err(Error::config(format!("{what}: matchers must not be empty")));
        }
        let matchers = parse_all(&s.matchers, &format!("{what}.matchers"))?;
        let ends_at = parse_time_ms(&s.ends_at, &format!("{what}.ends_at"))?;
        silences.push((matchers, ends_at, s.comment.clone()));
    }
    Ok(Parsed {
        rules,
        route,
        receivers,
        inhibits,
        silences,
        interval_ms,
    })
}

fn valid_label_name(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn rule(f: &RuleFile) -> Result<Rule> {
    if f.name.trim().is_empty() {
        return Err(Error::config("name must not be empty"));
    }
    if f.series.trim().is_empty() {
        return Err(Error::config("series must not be empty"));
    }
    if !f.value.is_finite() {
        return Err(Error::config("value must be a finite number"));
    }
    let window_ms = parse_opt_ms(f.window.as_deref(), "window")?;
    let window_s = match window_ms {
        Some(ms) if ms < 1000 => {
            return Err(Error::config("window must be at least 1s"));
        }
        w => w.map(|ms| ms / 1000),
    };
    if window_s.is_none() && f.kind != RuleKind::Threshold {
        return Err(Error::config(format!(
            "a {} rule needs a window (e.g. window = \"5m\")",
            kind_name(f.kind)
        )));
    }
    let horizon_s = match (f.kind, f.horizon.as_deref()) {
        (RuleKind::Prediction, Some(h)) => parse_ms(h, "horizon")? / 1000,
        (RuleKind::Prediction, None) => {
            return Err(Error::config(
                "a prediction rule needs a horizon (e.g. horizon = \"4h\")",
            ));
        }
        (_, Some(_)) => {
            return Err(Error::config("horizon is only for prediction rules"));
        }
        (_, None) => 0,
    };
    let escalate_after_ms = parse_opt_ms(f.escalate_after.as_deref(), "escalate_after")?;
    match escalate_after_ms {
        Some(0) => return Err(Error::config("escalate_after must be over 0")),
        Some(_) if f.severity == Severity::Critical => {
            return Err(Error::config(
                "escalate_after is for warnings; this rule is already critical",
            ));
        }
        _ => {}
    }
    for name in f.labels.keys() {
        if name == "alertname" || name == "severity" {
            return Err(Error::config(format!(
                "label {name:?} is set by the manager (use the rule's name and severity)"
            )));
        }
        if !valid_label_name(name) {
            return Err(Error::config(format!(
                "label {name:?}: a label name is letters, digits and _"
            )));
        }
    }
    Ok(Rule {
        name: f.name.trim().to_owned(),
        kind: f.kind,
        series: f.series.trim().to_owned(),
        op: f.op,
        value: f.value,
        window_s,
        horizon_s,
        for_ms: parse_opt_ms(f.pending.as_deref(), "for")?.unwrap_or(0),
        severity: f.severity,
        labels: f.labels.clone(),
        annotations: f.annotations.clone(),
        escalate_after_ms,
    })
}

fn kind_name(k: RuleKind) -> &'static str {
    match k {
        RuleKind::Threshold => "threshold",
        RuleKind::Rate => "rate",
        RuleKind::Prediction => "prediction",
    }
}

fn receiver(f: &ReceiverFile) -> Result<Receiver> {
    if f.name.trim().is_empty() {
        return Err(Error::config("name must not be empty"));
    }
    let mut channels = Vec::new();
    if f.log {
        channels.push(Channel::Log);
    }
    for j in &f.jsonl {
        if j.path.trim().is_empty() {
            return Err(Error::config("jsonl.path must not be empty"));
        }
        channels.push(Channel::Jsonl(PathBuf::from(&j.path)));
    }
    for w in &f.webhook {
        if let Err(why) = crate::monitor::check_http_url(&w.url) {
            return Err(Error::config(format!("webhook url {:?}: {why}", w.url)));
        }
        let timeout = match parse_opt_ms(w.timeout.as_deref(), "webhook.timeout")? {
            Some(0) => return Err(Error::config("webhook.timeout must be over 0")),
            Some(ms) if Duration::from_millis(ms) > MAX_TIMEOUT => {
                return Err(Error::config(format!(
                    "webhook.timeout {:?} is over the longest, {}s: a delivery under way holds \
                     up the alert manager and the store's close",
                    w.timeout.as_deref().unwrap_or_default(),
                    MAX_TIMEOUT.as_secs()
                )));
            }
            Some(ms) => Duration::from_millis(ms),
            None => DEFAULT_TIMEOUT,
        };
        channels.push(Channel::Webhook(Webhook::new(&w.url, timeout)));
    }
    for c in &f.callback {
        if c.trim().is_empty() {
            return Err(Error::config("a callback name must not be empty"));
        }
        channels.push(Channel::Callback(c.clone()));
    }
    Ok(Receiver {
        name: f.name.clone(),
        channels,
    })
}

fn inhibit(f: &InhibitFile) -> Result<Inhibit> {
    let or_default = |m: &Option<Vec<String>>, default: &str, what: &str| match m {
        Some(m) => parse_all(m, what),
        None => Ok(vec![Matcher::parse(default)?]),
    };
    for n in &f.equal {
        if !valid_label_name(n) {
            return Err(Error::config(format!("equal: {n:?} is not a label name")));
        }
    }
    Ok(Inhibit {
        source: or_default(&f.source_matchers, "severity = critical", "source_matchers")?,
        target: or_default(&f.target_matchers, "severity = warning", "target_matchers")?,
        equal: f.equal.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn error(text: &str) -> String {
        match crate::monitor::alerts::AlertManager::from_toml(text, "alerts.toml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Config, "{e}");
                e.to_string()
            }
        }
    }

    const RULE: &str =
        "[[rule]]\nname = \"a\"\nkind = \"threshold\"\nseries = \"x\"\nop = \">\"\nvalue = 1\n";

    #[test]
    fn an_empty_file_is_a_manager_without_rules() {
        let m = crate::monitor::alerts::AlertManager::from_toml("", "alerts.toml").unwrap();
        assert!(m.states().is_empty());
        assert_eq!(m.evaluation_interval(), Duration::from_secs(10));
    }

    #[test]
    fn problems_are_config_errors_naming_them() {
        let cases: &[(String, &[&str])] = &[
            ("[[rule]\nname = 1".into(), &["alerts.toml", "TOML"]),
            (
                format!("{RULE}colour = \"red\""),
                &["alerts.toml", "colour"],
            ),
            (format!("{RULE}{RULE}"), &["rule \"a\" is defined twice"]),
            (
                format!("{RULE}for = \"soonish\""),
                &["rule \"a\"", "for = \"soonish\" is not a duration"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[route]\nreceiver = \"pager\"".into(),
                &["alerts.toml", "unknown receiver \"pager\"", "ops"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[route]\nreceiver = \"ops\"\n\
                 [[route.routes]]\nmatchers = [\"instance =~ \\\"(\\\"\"]"
                    .into(),
                &["route.routes[0].matchers", "bad regular expression"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[[receiver]]\nname = \"ops\"".into(),
                &["receiver \"ops\" is defined twice"],
            ),
            (
                "[[receiver]]\nname = \"a\"\n[[receiver]]\nname = \"b\"".into(),
                &["[route]"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[[receiver.webhook]]\nurl = \"http://127.0.0.1:9/\"\n\
                 timeout = \"500000000years\"\n[route]\nreceiver = \"ops\""
                    .into(),
                &["webhook.timeout", "over the longest, 60s"],
            ),
            (RULE.replace("threshold", "rate"), &["needs a window"]),
            (RULE.replace("threshold", "guess"), &["guess"]),
            (RULE.replace("\">\"", "\"=>\""), &["=>"]),
            (
                RULE.replace("threshold", "prediction") + "window = \"1h\"",
                &["needs a horizon"],
            ),
            (
                format!("{RULE}severity = \"critical\"\nescalate_after = \"1m\""),
                &["escalate_after"],
            ),
            (
                format!("{RULE}labels = {{ severity = \"x\" }}"),
                &["label \"severity\""],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[[receiver.webhook]]\nurl = \"https://x\"".into(),
                &["receiver[0]", "https is not supported"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[[receiver.webhook]]\nurl = \"http://:99999999/x\""
                    .into(),
                &["receiver[0]", "no host"],
            ),
            (
                "[[receiver]]\nname = \"ops\"\n[[receiver.webhook]]\nurl = \"http://h:99999/x\""
                    .into(),
                &["receiver[0]", "port 99999 is not from 1 to 65535"],
            ),
            (
                "[[silence]]\nmatchers = [\"a = b\"]\nends_at = \"tomorrow\"".into(),
                &["silence[0].ends_at"],
            ),
            (
                "[[inhibit]]\nequal = [\"instance\"]\nsource_matchers = [\"sev\"]".into(),
                &["inhibit[0]", "source_matchers", "no operator"],
            ),
        ];
        for (text, needles) in cases {
            let e = error(text);
            for n in *needles {
                assert!(e.contains(n), "{text:?}: {e:?} lacks {n:?}");
            }
        }
    }

    #[test]
    fn a_full_configuration_loads() {
        let text = r#"
            evaluation_interval = "15s"
            [[rule]]
            name = "DiskFullSoon"
            kind = "prediction"
            metric = "disk_free_bytes"
            op = "<"
            value = 0
            window = "1h"
            horizon = "4h"
            for = "5m"
            escalate_after = "30m"
            labels = { instance = "db1" }
            annotations = { summary = "disk full in 4h ({{value}})" }
            [route]
            receiver = "ops"
            group_by = ["instance"]
            [[route.routes]]
            matchers = ["severity = critical"]
            receiver = "pager"
            [[receiver]]
            name = "ops"
            log = true
            callback = ["dashboard"]
            [[receiver.jsonl]]
            path = "alerts.jsonl"
            [[receiver]]
            name = "pager"
            [[receiver.webhook]]
            url = "http://127.0.0.1:9/hook"
            timeout = "2s"
            [[inhibit]]
            equal = ["instance"]
            [[silence]]
            matchers = ["instance = db2"]
            ends_at = "2030-01-01T00:00:00Z"
            comment = "decommissioned"
        "#;
        let m = crate::monitor::alerts::AlertManager::from_toml(text, "alerts.toml").unwrap();
        assert_eq!(m.rule_names(), ["DiskFullSoon"]);
        assert_eq!(m.evaluation_interval(), Duration::from_secs(15));
        assert_eq!(m.silences().len(), 1);
        assert_eq!(m.silences()[0].ends_at, 1_893_456_000_000);
    }
}
