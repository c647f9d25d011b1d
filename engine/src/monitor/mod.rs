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
    Ok(Some(manager))
}
