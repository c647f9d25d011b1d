//! Where rules read their data: the monitor's series (once wired to a store) or synthetic
//! data in tests.

use std::collections::BTreeMap;

use crate::monitor::metrics::MetricsSnapshot;
use crate::monitor::series::{Point, SeriesStore};

/// Series and values a rule can read.
pub trait MetricSource {
    /// The points of a series at or after `since` (seconds since the epoch), oldest first;
    /// empty when the series is unknown.
    fn series(&self, name: &str, since: u64) -> Vec<Point>;

    /// The latest value of a series, or of an unlabelled metric; `None` when unknown.
    fn value(&self, name: &str) -> Option<f64>;
}

impl MetricSource for SeriesStore {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        self.range(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.last(name).map(|p| p.v)
    }
}

/// A snapshot has values only (of unlabelled metrics, by their Prometheus names).
impl MetricSource for MetricsSnapshot {
    fn series(&self, _name: &str, _since: u64) -> Vec<Point> {
        Vec::new()
    }

    fn value(&self, name: &str) -> Option<f64> {
        MetricsSnapshot::value(self, name)
    }
}

impl<T: MetricSource> MetricSource for parking_lot::RwLock<T> {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        self.read().series(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.read().value(name)
    }
}

impl<T: MetricSource> MetricSource for parking_lot::Mutex<T> {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        self.lock().series(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.lock().value(name)
    }
}

impl<T: MetricSource + ?Sized> MetricSource for &T {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        (**self).series(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        (**self).value(name)
    }
}

impl<T: MetricSource + ?Sized> MetricSource for std::sync::Arc<T> {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        (**self).series(name, since)
    }

    fn value(&self, name: &str) -> Option<f64> {
        (**self).value(name)
    }
}

/// Two sources as one: the first's series or value when it has one, else the second's
/// (the sampler's series, then a metrics snapshot, say).
impl<A: MetricSource, B: MetricSource> MetricSource for (A, B) {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        let first = self.0.series(name, since);
        if first.is_empty() {
            self.1.series(name, since)
        } else {
            first
        }
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.0.value(name).or_else(|| self.1.value(name))
    }
}

/// Series and values held in memory: synthetic data for tests and tools.
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    series: BTreeMap<String, Vec<Point>>,
    values: BTreeMap<String, f64>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> MemorySource {
        MemorySource::default()
    }

    /// Appends a point to a series (keep `t` increasing).
    pub fn push(&mut self, name: &str, t: u64, v: f64) {
        self.series
            .entry(name.to_owned())
            .or_default()
            .push(Point { t, v });
    }

    /// Sets a value that is not a series (it wins over a series' last point).
    pub fn set(&mut self, name: &str, v: f64) {
        self.values.insert(name.to_owned(), v);
    }

    /// Forgets a series and a value of this name.
    pub fn remove(&mut self, name: &str) {
        self.series.remove(name);
        self.values.remove(name);
    }
}

impl MetricSource for MemorySource {
    fn series(&self, name: &str, since: u64) -> Vec<Point> {
        self.series
            .get(name)
            .map(|s| s.iter().filter(|p| p.t >= since).copied().collect())
            .unwrap_or_default()
    }

    fn value(&self, name: &str) -> Option<f64> {
        self.values
            .get(name)
            .copied()
            .or_else(|| self.series.get(name)?.last().map(|p| p.v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_source_ranges_and_values() {
        let mut s = MemorySource::new();
        for t in 0..5 {
            s.push("x", t, t as f64);
        }
        assert_eq!(s.series("x", 3).len(), 2);
        assert_eq!(s.value("x"), Some(4.0));
        s.set("x", 9.0);
        assert_eq!(s.value("x"), Some(9.0));
        assert_eq!(s.value("y"), None);
        s.remove("x");
        assert!(s.series("x", 0).is_empty());
        let mut store = SeriesStore::default();
        store.push("y", 1, 2.0);
        assert_eq!(MetricSource::value(&store, "y"), Some(2.0));
        let mut other = MemorySource::new();
        other.set("z", 3.0);
        other.push("y", 0, 7.0);
        let both = (&store, &other);
        assert_eq!(both.value("y"), Some(2.0));
        assert_eq!(both.value("z"), Some(3.0));
        assert_eq!(both.series("y", 0), vec![Point { t: 1, v: 2.0 }]);
    }
}
