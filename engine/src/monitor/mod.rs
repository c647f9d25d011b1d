//! Monitoring: the metrics registry, time series kept by a sampler, health checks, the
//! Prometheus exposition and trend prediction.

pub mod alerts;
mod api;
pub mod health;
pub mod metrics;
pub mod prometheus;
mod sampler;
pub mod series;
pub mod trend;

pub use alerts::{AlertManager, AlertState, AlertStatus, MetricSource};
pub use health::{Check, HealthPolicy, HealthReport, HealthState};
pub use metrics::{Family, HistogramData, Kind, MetricsSnapshot, Sample};
pub(crate) use sampler::{Monitor, run_sampler};
pub use series::{Minute, Point};
pub use trend::{Trend, predict_linear};
