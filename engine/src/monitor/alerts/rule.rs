//! Rules: what is measured and when it alerts.
//!
//! - `threshold`: the latest value of the series (or metric), or its average over `window`
//!   when one is given, compared with `value`.
//! - `rate`: the increase per second of a counter series over `window` (resets count from
//!   zero); for a series already in per second (its name ends in `_per_sec`), its average
//!   over `window`.
//! - `prediction`: a least-squares line through the series over `window`, read `horizon`
//!   after the evaluation time (Prometheus's `predict_linear`), e.g. `disk_free_bytes`
//!   predicted 4 h ahead `< 0`.
//!
//! A rule without data (unknown series, no point in the window, too few points for a rate
//! or a line) measures nothing, and nothing counts as the condition being false: an
//! inactive alert stays inactive, a pending one returns to inactive, a firing one resolves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::duration::format_value;
use super::source::MetricSource;
use crate::monitor::series::Point;
use crate::monitor::trend::Trend;

/// An alert's severity; its `severity` label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention soon.
    #[default]
    Warning,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// The label value: `warning` or `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a rule measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuleKind {
    Threshold,
    Rate,
    Prediction,
}

/// The comparison of the measured value with the rule's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    fn holds(self, measured: f64, value: f64) -> bool {
        match self {
            Op::Gt => measured > value,
            Op::Ge => measured >= value,
            Op::Lt => measured < value,
            Op::Le => measured <= value,
        }
    }
}

/// A validated rule.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub name: String,
    pub kind: RuleKind,
    pub series: String,
    pub op: Op,
    pub value: f64,
    /// Seconds.
    pub window_s: Option<u64>,
    /// Seconds.
    pub horizon_s: u64,
    /// Milliseconds.
    pub for_ms: u64,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Milliseconds.
    pub escalate_after_ms: Option<u64>,
}

impl Rule {
    /// The measured value at `now_s` (seconds since the epoch); `None` without data.
    pub fn measure(&self, source: &dyn MetricSource, now_s: u64) -> Option<f64> {
        let window = || -> Vec<Point> {
            let since = now_s.saturating_sub(self.window_s.unwrap_or(0));
            let mut pts = source.series(&self.series, since);
            pts.retain(|p| p.t <= now_s && p.v.is_finite());
            pts
        };
        let v = match self.kind {
            RuleKind::Threshold if self.window_s.is_none() => source.value(&self.series)?,
            RuleKind::Threshold => average(&window())?,
            RuleKind::Rate if self.series.ends_with("_per_sec") => average(&window())?,
            RuleKind::Rate => increase_per_sec(&window())?,
            RuleKind::Prediction => {
                let pts = window();
                let base = pts.first()?.t;
                let xy: Vec<(f64, f64)> = pts.iter().map(|p| ((p.t - base) as f64, p.v)).collect();
                let at = now_s.saturating_sub(base) as f64 + self.horizon_s as f64;
                Trend::fit(&xy)?.at(at)
            }
        };
        v.is_finite().then_some(v)
    }

    /// Whether a measured value meets the condition.
    pub fn holds(&self, measured: f64) -> bool {
        self.op.holds(measured, self.value)
    }

    /// The alert's labels: the rule's, `alertname` and `severity`.
    pub fn labels(&self, severity: Severity) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("alertname".into(), self.name.clone());
        l.insert("severity".into(), severity.name().into());
        l
    }

    /// The annotations with `{{value}}` and `{{labels.NAME}}` filled in.
    pub fn annotations(
        &self,
        value: Option<f64>,
        labels: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let shown = value.map_or_else(|| "none".to_owned(), format_value);
        self.annotations
            .iter()
            .map(|(k, text)| {
                let mut t = text.replace("{{value}}", &shown);
                t = t.replace("{{ value }}", &shown);
                for (name, v) in labels {
                    t = t.replace(&format!("{{{{labels.{name}}}}}"), v);
                }
                (k.clone(), t)
            })
            .collect()
    }
}

fn average(pts: &[Point]) -> Option<f64> {
    (!pts.is_empty()).then(|| pts.iter().map(|p| p.v).sum::<f64>() / pts.len() as f64)
}

/// A counter's increase per second over the points; a drop is a reset (the counter
/// restarted from zero, so the new value is all increase).
fn increase_per_sec(pts: &[Point]) -> Option<f64> {
    let (first, last) = (pts.first()?, pts.last()?);
    let dt = last.t.checked_sub(first.t).filter(|d| *d > 0)?;
    let increase: f64 = pts
        .windows(2)
        .map(|w| {
            if w[1].v >= w[0].v {
                w[1].v - w[0].v
            } else {
                w[1].v
            }
        })
        .sum();
    Some(increase / dt as f64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::monitor::alerts::source::MemorySource;

    pub(crate) fn rule(kind: RuleKind, series: &str, op: Op, value: f64) -> Rule {
        Rule {
            name: "r".into(),
            kind,
            series: series.into(),
            op,
            value,
            window_s: None,
            horizon_s: 0,
            for_ms: 0,
            severity: Severity::Warning,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            escalate_after_ms: None,
        }
    }

    #[test]
    fn threshold_reads_the_latest_value_or_the_window_average() {
        let mut src = MemorySource::new();
        for (t, v) in [(100, 1.0), (110, 2.0), (120, 9.0)] {
            src.push("commit_p99_seconds", t, v);
        }
        let mut r = rule(RuleKind::Threshold, "commit_p99_seconds", Op::Gt, 5.0);
        assert_eq!(r.measure(&src, 120), Some(9.0));
        assert!(r.holds(9.0));
        r.window_s = Some(15);
        // Points at 110 and 120 (the one at 100 is before the window).
        assert_eq!(r.measure(&src, 120), Some(5.5));
        assert!(r.holds(5.5));
        assert_eq!(r.measure(&src, 1000), None, "no point in the window");
        r.series = "nothing".into();
        r.window_s = None;
        assert_eq!(r.measure(&src, 120), None, "unknown series");
    }

    #[test]
    fn rate_of_a_counter_and_of_a_per_second_series() {
        let mut src = MemorySource::new();
        // +10/s, then a reset to 5 at t = 30 (counted as 5), then +10/s.
        for (t, v) in [(0, 0.0), (10, 100.0), (20, 200.0), (30, 5.0), (40, 105.0)] {
            src.push("storage_errors_total", t, v);
        }
        let mut r = rule(RuleKind::Rate, "storage_errors_total", Op::Gt, 1.0);
        r.window_s = Some(40);
        assert_eq!(r.measure(&src, 40), Some((200.0 + 5.0 + 100.0) / 40.0));
        r.window_s = Some(5);
        assert_eq!(r.measure(&src, 40), None, "one point is no rate");
        for (t, v) in [(0, 1.0), (1, 3.0)] {
            src.push("conflicts_per_sec", t, v);
        }
        let mut r = rule(RuleKind::Rate, "conflicts_per_sec", Op::Ge, 2.0);
        r.window_s = Some(60);
        assert_eq!(r.measure(&src, 1), Some(2.0));
    }

    #[test]
    fn prediction_sees_the_disk_filling() {
        let mut src = MemorySource::new();
        let t0 = 1_700_000_000;
        // 10 GB free, losing 1 MB a second: full in 10 000 s (2.8 h).
        for i in 0..600u64 {
            src.push("disk_free_bytes", t0 + i, 10e9 - 1e6 * i as f64);
        }
        let now = t0 + 599;
        let mut r = rule(RuleKind::Prediction, "disk_free_bytes", Op::Lt, 0.0);
        r.window_s = Some(600);
        r.horizon_s = 4 * 3600;
        let v = r.measure(&src, now).unwrap_or(f64::NAN);
        let expected = 10e9 - 1e6 * (599.0 + 4.0 * 3600.0);
        assert!((v - expected).abs() < 1.0, "{v} vs {expected}");
        assert!(r.holds(v), "predicted full within 4 h");
        r.horizon_s = 3600;
        assert!(!r.holds(r.measure(&src, now).unwrap_or(f64::NAN)));
        r.series = "journal_size_bytes".into();
        assert_eq!(r.measure(&src, now), None);
    }

    #[test]
    fn annotations_fill_in_value_and_labels() {
        let mut r = rule(RuleKind::Threshold, "x", Op::Gt, 1.0);
        r.annotations.insert(
            "summary".into(),
            "p99 {{value}}s on {{labels.instance}}".into(),
        );
        r.labels.insert("instance".into(), "db1".into());
        let labels = r.labels(Severity::Warning);
        assert_eq!(labels.get("alertname").map(String::as_str), Some("r"));
        let a = r.annotations(Some(0.25), &labels);
        assert_eq!(
            a.get("summary").map(String::as_str),
            Some("p99 0.25s on db1")
        );
    }
}
