//! Health checks: each check is ok, degraded or failing with a reason; the store's state is
//! the worst of them. `tradestore health` exits 0, 1 or 2 by state, usable as a readiness
//! probe.
//!
//! | check | degraded when | failing when |
//! |---|---|---|
//! | `writes` | the circuit breaker is half-open | the store is poisoned, or the breaker is open |
//! | `journal_lag` | the overlay is over half its limit | over 90% (commits are waiting) |
//! | `checkpoint_age` | transactions wait for a checkpoint longer than `health_checkpoint_age_s` | for 5 times that |
//! | `disk_headroom` | free space under `health_disk_min_mb`, or predicted to run out within an hour | under a quarter of it |
//! | `error_rate` | storage errors in the last minute, or over half the commits conflicting | — (the breaker decides) |
//! | `latency_objective` | commit p99 over `health_commit_p99_ms` | over 10 times it |

use serde::{Deserialize, Serialize};

use super::metrics::MetricsSnapshot;
use super::series::SeriesStore;
use super::trend::Trend;

/// A health state; ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Working as intended.
    Ok,
    /// Working, but something needs attention.
    Degraded,
    /// Not serving writes, or about to stop.
    Failing,
}

impl HealthState {
    /// The state's name.
    pub fn name(self) -> &'static str {
        match self {
            HealthState::Ok => "ok",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
        }
    }

    /// The exit status of `tradestore health`: 0, 1, 2.
    pub fn exit_code(self) -> u8 {
        match self {
            HealthState::Ok => 0,
            HealthState::Degraded => 1,
            HealthState::Failing => 2,
        }
    }
}

/// One check's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The check.
    pub name: String,
    /// Its state.
    pub state: HealthState,
    /// Why, with the numbers.
    pub reason: String,
}

/// Every check, and the worst state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The worst state of the checks.
    pub state: HealthState,
    /// The checks.
    pub checks: Vec<Check>,
}

/// The thresholds (from the configuration).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HealthPolicy {
    /// Checkpoint age that degrades, seconds.
    pub checkpoint_age_s: f64,
    /// Free disk that degrades, bytes.
    pub disk_min_bytes: f64,
    /// Commit p99 objective, seconds.
    pub commit_p99_s: f64,
}

fn check(name: &str, state: HealthState, reason: String) -> Check {
    Check {
        name: name.to_owned(),
        state,
        reason,
    }
}

/// Evaluates the checks on a metrics snapshot and, when available, the recent series (the
/// last minute's latency, the disk trend). `now` is seconds since the epoch.
pub fn evaluate(
    m: &MetricsSnapshot,
    series: Option<&SeriesStore>,
    policy: &HealthPolicy,
    now: u64,
) -> HealthReport {
    use HealthState::*;
    let v = |name: &str| m.value(name).unwrap_or(0.0);
    let mut checks = Vec::new();

    let breaker = m
        .family("tradestore_breaker_state")
        .and_then(|f| f.samples.iter().find(|s| s.value == 1.0))
        .and_then(|s| s.labels.first().map(|l| l.1.clone()))
        .unwrap_or_else(|| "closed".to_owned());
    checks.push(if v("tradestore_poisoned") == 1.0 {
        check(
            "writes",
            Failing,
            "a storage failure poisoned the store: writes are refused until it is reopened".into(),
        )
    } else if breaker == "open" {
        check(
            "writes",
            Failing,
            "the storage circuit breaker is open: storage operations are refused".into(),
        )
    } else if breaker == "half_open" {
        check(
            "writes",
            Degraded,
            "the storage circuit breaker is half-open: probing storage".into(),
        )
    } else {
        check("writes", Ok, "writes are accepted".into())
    });

    let (overlay, limit) = (
        v("tradestore_overlay_bytes"),
        v("tradestore_overlay_limit_bytes").max(1.0),
    );
    let share = overlay / limit;
    let lag = v("tradestore_journal_lag_transactions");
    let reason = format!(
        "{lag:.0} transactions ({:.1}% of the overlay limit) wait for the applier",
        share * 100.0
    );
    checks.push(check(
        "journal_lag",
        if share > 0.9 {
            Failing
        } else if share > 0.5 {
            Degraded
        } else {
            Ok
        },
        reason,
    ));

    let age = v("tradestore_checkpoint_age_seconds");
    let reason = format!(
        "last checkpoint {age:.1} s ago (objective {:.0} s)",
        policy.checkpoint_age_s
    );
    checks.push(check(
        "checkpoint_age",
        if age > 5.0 * policy.checkpoint_age_s {
            Failing
        } else if age > policy.checkpoint_age_s {
            Degraded
        } else {
            Ok
        },
        reason,
    ));

    let free = m.value("tradestore_disk_free_bytes").unwrap_or(f64::NAN);
    let runway = series.and_then(|s| {
        let pts: Vec<(f64, f64)> = s
            .range("disk_free_bytes", now.saturating_sub(600))
            .iter()
            .map(|p| (p.t as f64, p.v))
            .collect();
        Trend::fit(&pts).and_then(|t| t.time_to(now as f64, 0.0))
    });
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let (state, reason) = if free.is_nan() {
        (Degraded, "free disk space is unknown".to_owned())
    } else if free < policy.disk_min_bytes / 4.0 {
        (
            Failing,
            format!(
                "{:.0} MiB free, under a quarter of the {:.0} MiB minimum",
                mib(free),
                mib(policy.disk_min_bytes)
            ),
        )
    } else if free < policy.disk_min_bytes {
        (
            Degraded,
            format!(
                "{:.0} MiB free, under the {:.0} MiB minimum",
                mib(free),
                mib(policy.disk_min_bytes)
            ),
        )
    } else if let Some(secs) = runway.filter(|s| *s < 3600.0) {
        (
            Degraded,
            format!(
                "{:.0} MiB free, full in about {:.0} s at the current rate",
                mib(free),
                secs
            ),
        )
    } else {
        (Ok, format!("{:.0} MiB free", mib(free)))
    };
    checks.push(check("disk_headroom", state, reason));

    let last_minute = |name: &str| -> Option<f64> {
        let pts = series?.range(name, now.saturating_sub(60));
        (!pts.is_empty()).then(|| pts.iter().map(|p| p.v).sum::<f64>())
    };
    let errors = last_minute("storage_errors_per_sec").unwrap_or(0.0);
    let commits = last_minute("commits_per_sec").unwrap_or(v("tradestore_commits_total"));
    let conflicts = last_minute("conflicts_per_sec").unwrap_or(v("tradestore_conflicts_total"));
    let ratio = if commits + conflicts > 0.0 {
        conflicts / (commits + conflicts)
    } else {
        0.0
    };
    let (state, reason) = if errors > 0.0 {
        (
            Degraded,
            format!("{errors:.0} storage errors in the last minute"),
        )
    } else if ratio > 0.5 {
        (
            Degraded,
            format!("{:.0}% of commits conflicted", ratio * 100.0),
        )
    } else {
        (
            Ok,
            format!(
                "no storage errors; {:.1}% of commits conflicted",
                ratio * 100.0
            ),
        )
    };
    checks.push(check("error_rate", state, reason));

    let p99 = series
        .and_then(|s| {
            let pts = s.range("commit_p99_seconds", now.saturating_sub(60));
            pts.iter()
                .map(|p| p.v)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
        })
        .or_else(|| {
            m.histogram("tradestore_commit_duration_seconds")
                .filter(|h| h.count > 0)
                .map(|h| h.p99)
        });
    let (state, reason) = match p99 {
        None => (Ok, "no commits measured yet".to_owned()),
        Some(p) => {
            let ms = p * 1e3;
            let objective = policy.commit_p99_s * 1e3;
            let state = if p > 10.0 * policy.commit_p99_s {
                Failing
            } else if p > policy.commit_p99_s {
                Degraded
            } else {
                Ok
            };
            (
                state,
                format!("commit p99 {ms:.2} ms (objective {objective:.0} ms)"),
            )
        }
    };
    checks.push(check("latency_objective", state, reason));

    HealthReport {
        state: checks.iter().map(|c| c.state).max().unwrap_or(Ok),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::metrics::{Family, Kind, Sample};

    fn snap(values: &[(&str, f64)], breaker: &str) -> MetricsSnapshot {
        let mut families: Vec<Family> = values
            .iter()
            .map(|(n, v)| Family {
                name: (*n).to_owned(),
                help: String::new(),
                kind: Kind::Gauge,
                samples: vec![Sample {
                    labels: Vec::new(),
                    value: *v,
                    histogram: None,
                }],
            })
            .collect();
        families.push(Family {
            name: "tradestore_breaker_state".into(),
            help: String::new(),
            kind: Kind::Gauge,
            samples: ["closed", "half_open", "open"]
                .iter()
                .map(|s| Sample {
                    labels: vec![("state".into(), (*s).to_owned())],
                    value: if *s == breaker { 1.0 } else { 0.0 },
                    histogram: None,
                })
                .collect(),
        });
        MetricsSnapshot { at_ns: 0, families }
    }

    const POLICY: HealthPolicy = HealthPolicy {
        checkpoint_age_s: 60.0,
        disk_min_bytes: 1024.0 * 1024.0 * 1024.0,
        commit_p99_s: 0.05,
    };

    fn healthy() -> Vec<(&'static str, f64)> {
        vec![
            ("tradestore_overlay_bytes", 0.0),
            ("tradestore_overlay_limit_bytes", 100.0),
            ("tradestore_checkpoint_age_seconds", 1.0),
            ("tradestore_disk_free_bytes", 1e12),
            ("tradestore_poisoned", 0.0),
        ]
    }

    fn with(over: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
        let mut v = healthy();
        for (n, x) in over {
            if let Some(slot) = v.iter_mut().find(|(k, _)| k == n) {
                slot.1 = *x;
            }
        }
        v
    }

    fn state_of(r: &HealthReport, name: &str) -> HealthState {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map_or(HealthState::Ok, |c| c.state)
    }

    #[test]
    fn each_check_degrades_and_fails_on_its_threshold() {
        let r = evaluate(&snap(&healthy(), "closed"), None, &POLICY, 0);
        assert_eq!(r.state, HealthState::Ok, "{r:?}");
        let r = evaluate(
            &snap(&with(&[("tradestore_poisoned", 1.0)]), "closed"),
            None,
            &POLICY,
            0,
        );
        assert_eq!(
            (r.state, state_of(&r, "writes")),
            (HealthState::Failing, HealthState::Failing)
        );
        let r = evaluate(&snap(&healthy(), "half_open"), None, &POLICY, 0);
        assert_eq!(state_of(&r, "writes"), HealthState::Degraded);
        let r = evaluate(
            &snap(&with(&[("tradestore_overlay_bytes", 60.0)]), "closed"),
            None,
            &POLICY,
            0,
        );
        assert_eq!(state_of(&r, "journal_lag"), HealthState::Degraded);
        let r = evaluate(
            &snap(&with(&[("tradestore_overlay_bytes", 95.0)]), "closed"),
            None,
            &POLICY,
            0,
        );
        assert_eq!(state_of(&r, "journal_lag"), HealthState::Failing);
        let r = evaluate(
            &snap(
                &with(&[("tradestore_checkpoint_age_seconds", 61.0)]),
                "closed",
            ),
            None,
            &POLICY,
            0,
        );
        assert_eq!(state_of(&r, "checkpoint_age"), HealthState::Degraded);
        let r = evaluate(
            &snap(
                &with(&[("tradestore_checkpoint_age_seconds", 301.0)]),
                "closed",
            ),
            None,
            &POLICY,
            0,
        );
        assert_eq!(state_of(&r, "checkpoint_age"), HealthState::Failing);
        let r = evaluate(
            &snap(&with(&[("tradestore_disk_free_bytes", 5e8)]), "closed"),
            None,
            &POLICY,
            0,
        );
        assert_eq!(state_of(&r, "disk_headroom"), HealthState::Degraded);
        let r = evaluate(
            &snap(&with(&[("tradestore_disk_free_bytes", 1e8)]), "closed"),
            None,
            &POLICY,
            0,
        );
        assert_eq!(
            (r.state, state_of(&r, "disk_headroom")),
            (HealthState::Failing, HealthState::Failing)
        );
    }

    #[test]
    fn series_drive_error_rate_latency_and_the_disk_trend() {
        let mut s = SeriesStore::default();
        for t in 1000..1060 {
            s.push(
                "storage_errors_per_sec",
                t,
                if t == 1050 { 2.0 } else { 0.0 },
            );
            s.push("commit_p99_seconds", t, if t == 1055 { 0.6 } else { 0.01 });
            // Losing 1 GB a minute from 30 GB: full in about half an hour.
            s.push("disk_free_bytes", t, 30e9 - (t - 1000) as f64 * 1e9 / 60.0);
        }
        let r = evaluate(&snap(&healthy(), "closed"), Some(&s), &POLICY, 1059);
        assert_eq!(state_of(&r, "error_rate"), HealthState::Degraded);
        assert_eq!(
            state_of(&r, "latency_objective"),
            HealthState::Failing,
            "{r:?}"
        );
        let disk = r
            .checks
            .iter()
            .find(|c| c.name == "disk_headroom")
            .map(|c| (c.state, c.reason.clone()));
        assert_eq!(
            disk.as_ref().map(|d| d.0),
            Some(HealthState::Degraded),
            "{disk:?}"
        );
    }
}
