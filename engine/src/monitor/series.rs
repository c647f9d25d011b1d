//! Time series: the sampler's points at 1 s resolution for the last hour, in memory, and
//! their 1 min downsampling (average, minimum, maximum) kept in the store's `metrics` redb
//! table for a configured retention.
//!
//! `metrics` table layout: key = series name, a 0 byte, then the minute (seconds since the
//! epoch, big-endian u64); value = average, minimum, maximum as big-endian f64 bits.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

use redb::{ReadableDatabase, TableDefinition};
use serde::Serialize;

use crate::error::Result;

/// Points kept per series in memory: one hour at 1 s.
pub const MEMORY_POINTS: usize = 3600;

/// The downsampled series in the store.
pub(crate) const METRICS_TABLE: TableDefinition<'static, &'static [u8], &'static [u8]> =
    TableDefinition::new("metrics");

/// One point of a series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub t: u64,
    /// The value.
    pub v: f64,
}

/// One downsampled minute.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Minute {
    /// The minute's start, seconds since the Unix epoch.
    pub t: u64,
    /// Average of its points.
    pub avg: f64,
    /// Smallest point.
    pub min: f64,
    /// Largest point.
    pub max: f64,
}

/// The in-memory series.
#[derive(Default)]
pub struct SeriesStore {
    series: BTreeMap<String, VecDeque<Point>>,
}

impl SeriesStore {
    /// Appends a point (NaN values are skipped).
    pub fn push(&mut self, name: &str, t: u64, v: f64) {
        if v.is_nan() {
            return;
        }
        let s = self.series.entry(name.to_owned()).or_default();
        if s.len() == MEMORY_POINTS {
            s.pop_front();
        }
        s.push_back(Point { t, v });
    }

    /// The points of a series at or after `since`.
    pub fn range(&self, name: &str, since: u64) -> Vec<Point> {
        self.series
            .get(name)
            .map(|s| s.iter().filter(|p| p.t >= since).copied().collect())
            .unwrap_or_default()
    }

    /// The latest point of a series.
    pub fn last(&self, name: &str) -> Option<Point> {
        self.series.get(name).and_then(|s| s.back().copied())
    }

    /// The names of every series.
    pub fn names(&self) -> Vec<String> {
        self.series.keys().cloned().collect()
    }

    /// The minute `minute_start .. minute_start + 60` of every series, downsampled.
    pub fn minute(&self, minute_start: u64) -> Vec<(String, Minute)> {
        let mut out = Vec::new();
        for (name, s) in &self.series {
            let pts: Vec<f64> = s
                .iter()
                .filter(|p| p.t >= minute_start && p.t < minute_start + 60)
                .map(|p| p.v)
                .collect();
            if pts.is_empty() {
                continue;
            }
            let avg = pts.iter().sum::<f64>() / pts.len() as f64;
            let min = pts.iter().copied().fold(f64::INFINITY, f64::min);
            let max = pts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push((
                name.clone(),
                Minute {
                    t: minute_start,
                    avg,
                    min,
                    max,
                },
            ));
        }
        out
    }
}

fn key(name: &str, minute: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 9);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k.extend_from_slice(&minute.to_be_bytes());
    k
}

/// Writes downsampled minutes and deletes those older than `keep_after` (seconds since the
/// epoch), in one redb transaction.
pub(crate) fn persist(
    db: &redb::Database,
    minutes: &[(String, Minute)],
    keep_after: u64,
) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut t = txn.open_table(METRICS_TABLE)?;
        let mut names: Vec<&str> = Vec::new();
        for (name, m) in minutes {
            let mut v = [0u8; 24];
            v[..8].copy_from_slice(&m.avg.to_bits().to_be_bytes());
            v[8..16].copy_from_slice(&m.min.to_bits().to_be_bytes());
            v[16..].copy_from_slice(&m.max.to_bits().to_be_bytes());
            t.insert(key(name, m.t).as_slice(), v.as_slice())?;
            names.push(name);
        }
        for name in names {
            let lo = key(name, 0);
            let hi = key(name, keep_after);
            t.retain_in::<&[u8], _>(lo.as_slice()..hi.as_slice(), |_, _| false)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// The downsampled minutes of a series from `since` (seconds since the epoch) on.
pub(crate) fn history(db: &redb::Database, name: &str, since: u64) -> Result<Vec<Minute>> {
    let txn = db.begin_read()?;
    let t = match txn.open_table(METRICS_TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let lo = key(name, since);
    let hi = key(name, u64::MAX);
    let mut out = Vec::new();
    for item in t.range::<&[u8]>((
        Bound::Included(lo.as_slice()),
        Bound::Included(hi.as_slice()),
    ))? {
        let (k, v) = item?;
        let (k, v) = (k.value(), v.value());
        let (Some(minute), Some(vals)) = (k.get(k.len().saturating_sub(8)..), v.get(..24)) else {
            continue;
        };
        let f = |b: &[u8]| f64::from_bits(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
        out.push(Minute {
            t: u64::from_be_bytes(minute.try_into().unwrap_or([0; 8])),
            avg: f(&vals[..8]),
            min: f(&vals[8..16]),
            max: f(&vals[16..24]),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_an_hour_and_downsamples_minutes() {
        let mut s = SeriesStore::default();
        for t in 0..(MEMORY_POINTS as u64 + 10) {
            s.push("x", t, t as f64);
        }
        assert_eq!(s.range("x", 0).len(), MEMORY_POINTS);
        assert_eq!(s.range("x", 0)[0].t, 10);
        let m = s.minute(60);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].1,
            Minute {
                t: 60,
                avg: 89.5,
                min: 60.0,
                max: 119.0
            }
        );
        s.push("x", 5000, f64::NAN);
        assert_eq!(s.last("x").map(|p| p.t), Some(MEMORY_POINTS as u64 + 9));
    }

    #[test]
    fn minutes_persist_and_expire() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let db = redb::Database::create(dir.path().join("m.redb"))?;
        let m = |t, v| Minute {
            t,
            avg: v,
            min: v,
            max: v,
        };
        persist(
            &db,
            &[
                ("a".into(), m(60, 1.0)),
                ("a".into(), m(120, 2.0)),
                ("ab".into(), m(60, 9.0)),
            ],
            0,
        )?;
        assert_eq!(history(&db, "a", 0)?, vec![m(60, 1.0), m(120, 2.0)]);
        persist(&db, &[("a".into(), m(180, 3.0))], 120)?;
        assert_eq!(history(&db, "a", 0)?, vec![m(120, 2.0), m(180, 3.0)]);
        assert_eq!(history(&db, "ab", 0)?, vec![m(60, 9.0)]);
        Ok(())
    }
}
