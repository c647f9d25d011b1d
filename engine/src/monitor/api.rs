//! The monitoring API of an open store.

use redb::ReadableDatabase;

use super::health::{HealthPolicy, HealthReport, evaluate};
use super::metrics::{MetricsSnapshot, gather};
use super::series::{Minute, Point, history};
use crate::error::Result;
use crate::store::Store;

impl Store {
    /// Every metric now: counters, gauges and latency histograms.
    pub fn metrics(&self) -> MetricsSnapshot {
        let mut snapshot = gather(&self.shared, &self.queries, self.dir());
        if let Some(alerts) = &self.alerts {
            snapshot
                .families
                .extend(delivery_families(&alerts.lock().delivery_stats()));
        }
        snapshot
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        super::prometheus::render(&self.metrics())
    }

    /// The health checks, from the metrics now and the recent series.
    pub fn health(&self) -> HealthReport {
        let c = self.config();
        let policy = HealthPolicy {
            checkpoint_age_s: c.health_checkpoint_age_s as f64,
            disk_min_bytes: (c.health_disk_min_mb << 20) as f64,
            commit_p99_s: c.health_commit_p99_ms as f64 / 1e3,
        };
        let now = crate::index::now_ns() / 1_000_000_000;
        let series = self.monitor.series.read();
        evaluate(&self.metrics(), Some(&series), &policy, now)
    }

    /// The names of the time series the sampler keeps.
    pub fn series_names(&self) -> Vec<String> {
        self.monitor.series.read().names()
    }

    /// A series' points (1 s resolution, the last hour) from `since` (seconds since the
    /// epoch) on.
    pub fn series(&self, name: &str, since: u64) -> Vec<Point> {
        self.monitor.series.read().range(name, since)
    }

    /// A series' downsampled minutes kept in the store, from `since` on.
    pub fn metric_history(&self, name: &str, since: u64) -> Result<Vec<Minute>> {
        history(&self.shared.db, name, since)
    }

    /// Takes one sample now (the sampler thread does this every `monitor_interval_ms`);
    /// for tests and tools that drive the clock themselves.
    pub fn sample_metrics(&self) -> MetricsSnapshot {
        let now = crate::index::now_ns() / 1_000_000_000;
        self.monitor
            .sample(&self.shared, &self.queries, self.dir(), now)
    }

    /// Trends fitted over the last ten minutes of the series (least squares, like
    /// Prometheus's `predict_linear`): time until the disk is full, journal and database
    /// growth, commit latency drift. A trend without two points yet is left out.
    pub fn trends(&self) -> Vec<TrendReport> {
        let now = crate::index::now_ns() / 1_000_000_000;
        let series = self.monitor.series.read();
        let fit = |name: &str| {
            let pts: Vec<(f64, f64)> = series
                .range(name, now.saturating_sub(600))
                .iter()
                .map(|p| (p.t as f64, p.v))
                .collect();
            super::Trend::fit(&pts)
        };
        let mut out = Vec::new();
        if let Some(t) = fit("disk_free_bytes") {
            out.push(TrendReport {
                name: "disk_full_in_seconds".into(),
                help: "time until the disk is full at the current rate (none: not filling)".into(),
                value: t.time_to(now as f64, 0.0),
            });
        }
        for (series_name, name, help, scale) in [
            (
                "journal_size_bytes",
                "journal_growth_bytes_per_second",
                "journal growth",
                1.0,
            ),
            (
                "database_size_bytes",
                "database_growth_bytes_per_second",
                "database growth",
                1.0,
            ),
            (
                "commit_p99_seconds",
                "commit_p99_drift_seconds_per_hour",
                "commit p99 drift",
                3600.0,
            ),
        ] {
            if let Some(t) = fit(series_name) {
                out.push(TrendReport {
                    name: name.into(),
                    help: help.into(),
                    value: Some(t.slope * scale),
                });
            }
        }
        out
    }

    /// The state of every alert rule (empty when `alerts.toml` configures none).
    pub fn alert_states(&self) -> Vec<super::AlertStatus> {
        self.alerts
            .as_ref()
            .map(|m| m.lock().states())
            .unwrap_or_default()
    }

    /// The alert manager, when `alerts.toml` configures one: to register callbacks, add
    /// silences, or evaluate on demand.
    pub fn alert_manager(&self) -> Option<std::sync::Arc<parking_lot::Mutex<super::AlertManager>>> {
        self.alerts.clone()
    }

    /// Evaluates the alert rules now against the sampled series and sends what is due
    /// (the alert thread does this every `evaluation_interval`).
    pub fn evaluate_alerts(&self) -> usize {
        let now = crate::index::now_ns() / 1_000_000;
        match &self.alerts {
            Some(m) => m.lock().tick(now, &*self.monitor),
            None => 0,
        }
    }

    /// Whether any minute of history is in the store.
    pub fn has_metric_history(&self) -> Result<bool> {
        let txn = self.shared.db.begin_read()?;
        match txn.open_table(super::series::METRICS_TABLE) {
            Ok(t) => Ok(!redb::ReadableTableMetadata::is_empty(&t)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// One fitted trend.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrendReport {
    /// What it measures, with its unit.
    pub name: String,
    /// One line of explanation.
    pub help: String,
    /// The value, when the trend heads somewhere.
    pub value: Option<f64>,
}

/// The alert manager's notifications sent and failed, per receiver and channel: a channel
/// that cannot deliver (a webhook that refuses, a file that cannot be written) shows here
/// and in `/api/status`, not only in the notifications that never arrive.
fn delivery_families(stats: &[super::alerts::DeliveryStats]) -> Vec<super::metrics::Family> {
    use super::metrics::{Family, Kind, Sample};
    let family =
        |name: &str, help: &str, value: &dyn Fn(&super::alerts::DeliveryStats) -> u64| Family {
            name: name.to_owned(),
            help: help.to_owned(),
            kind: Kind::Counter,
            samples: stats
                .iter()
                .map(|d| Sample {
                    labels: vec![
                        ("receiver".to_owned(), d.receiver.clone()),
                        ("channel".to_owned(), d.channel.clone()),
                    ],
                    value: value(d) as f64,
                    histogram: None,
                })
                .collect(),
        };
    vec![
        family(
            "tradestore_alert_notifications_total",
            "Alert notifications delivered, per receiver and channel.",
            &|d| d.sent,
        ),
        family(
            "tradestore_alert_notification_failures_total",
            "Alert notifications that failed to deliver (retried at the group's next interval), per receiver and channel.",
            &|d| d.failed,
        ),
    ]
}
