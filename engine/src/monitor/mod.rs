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

pub use alerts::{AlertManager, AlertState, AlertStatus, MetricSource};
pub use api::TrendReport;
pub use health::{Check, HealthPolicy, HealthReport, HealthState};
pub use metrics::{Family, HistogramData, Kind, MetricsSnapshot, Sample};
pub(crate) use sampler::{Monitor, run_sampler};
pub use series::{Minute, Point};
pub use trend::{Trend, predict_linear};

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
