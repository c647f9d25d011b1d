//! Monitoring: the metrics registry, time series kept by a sampler, health checks, the
//! Prometheus exposition and trend prediction.

pub mod alerts;
mod api;
pub mod health;
pub mod metrics;
pub mod prometheus;
mod sampler;
pub mod series;
pub mod server;
pub mod trend;
mod url;

pub use alerts::{AlertManager, AlertState, AlertStatus, MetricSource};
pub use api::TrendReport;
pub use health::{Check, HealthPolicy, HealthReport, HealthState};
pub use metrics::{Family, HistogramData, Kind, MetricsSnapshot, Sample};
pub(crate) use sampler::{Monitor, run_sampler};
pub use series::{Minute, Point};
pub use trend::{Trend, predict_linear};
pub use url::check_http_url;

/// The alert configuration file inside a store's directory.
pub const ALERTS_FILE: &str = "alerts.toml";

/// The alert manager configured by `dir/alerts.toml`, if the file exists. A malformed file
/// is a [`crate::ErrorKind::Config`] error naming the problem.
pub fn alerts_config(dir: &std::path::Path) -> crate::Result<Option<AlertManager>> {
    let path = dir.join(ALERTS_FILE);
    let Some(text) = crate::config::read_text_file(&path)? else {
        return Ok(None);
    };
    let mut manager = AlertManager::from_toml(&text, &path.display().to_string())?;
    manager.resolve_paths(dir);
    // A JSON-lines file that can never be written is a mistake to name now, not a failure
    // to find later in the delivery counters.
    for file in manager.jsonl_paths() {
        let parent = file.parent().filter(|p| !p.as_os_str().is_empty());
        if file.is_dir() || parent.is_some_and(|p| !p.is_dir()) {
            return Err(crate::Error::config(format!(
                "in {}: the jsonl path {} is a folder, or its folder does not exist",
                path.display(),
                file.display()
            )));
        }
    }
    Ok(Some(manager))
}

/// Refuses an alert rule that reads a series the store never records: a misspelt name would
/// leave the rule inactive forever, the same as a condition that never holds. A rule reads
/// one of the sampler's series or a metric of `metrics` without labels (a labelled one, a
/// counter per table say, has no single value; the sampler's rates cover the common ones).
pub(crate) fn check_rule_series(
    manager: &AlertManager,
    metrics: &MetricsSnapshot,
    file: &std::path::Path,
) -> crate::Result<()> {
    let series = sampler::series_names();
    let unknown =
        manager.unknown_series(|n| series.iter().any(|s| s == n) || metrics.value(n).is_some());
    let Some((rule, name)) = unknown.first() else {
        return Ok(());
    };
    let why = if metrics.family(name).is_some() {
        "a metric with labels, which has no single value"
    } else if name.starts_with("tradestore_") {
        "a metric this store does not have (a cache configured off has none)"
    } else {
        "a series the monitor does not record"
    };
    Err(crate::Error::config(format!(
        "in {}: rule {rule:?} reads {name:?}, {why}; a rule reads one of the series {} or a \
         metric of /metrics without labels (such as tradestore_commits_total)",
        file.display(),
        series.join(", ")
    )))
}
