//! The circuit breaker that guards storage I/O.
//!
//! Closed: operations run; `failures` consecutive storage failures open it. Open: operations
//! fail at once, without touching the disk, for `cooldown`. Half-open: after the cooldown one
//! probe runs; its success closes the breaker, its failure opens it again. A failing disk is
//! not hammered by every caller, and callers get a fast, clear error instead of a slow one.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Storage operations run.
    Closed,
    /// Storage operations are refused until the cooldown ends.
    Open,
    /// One probe operation may run.
    HalfOpen,
}

struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    probing: bool,
}

/// A circuit breaker with a failure threshold and a cooldown.
pub(crate) struct Breaker {
    inner: Mutex<Inner>,
    threshold: u32,
    cooldown: Duration,
    /// Failures recorded since the store opened.
    failures_total: std::sync::atomic::AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                opened_at: None,
                probing: false,
            }),
            threshold: threshold.max(1),
            cooldown,
            failures_total: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether an operation may touch storage now.
    pub(crate) fn allow(&self, now: Instant) -> Result<()> {
        let mut i = self.inner.lock();
        if i.state == BreakerState::Open
            && i.opened_at
                .is_some_and(|t| now.duration_since(t) >= self.cooldown)
        {
            i.state = BreakerState::HalfOpen;
            i.probing = false;
        }
        match i.state {
            BreakerState::Closed => Ok(()),
            BreakerState::HalfOpen if !i.probing => {
                i.probing = true;
                Ok(())
            }
            _ => Err(Error::new(
                ErrorKind::Io,
                format!(
                    "storage is failing ({} consecutive errors); the circuit breaker refuses I/O for {} ms before probing again",
                    i.failures,
                    self.cooldown.as_millis()
                ),
            )),
        }
    }

    /// Records the outcome of a storage operation.
    pub(crate) fn record(&self, ok: bool, now: Instant) {
        let mut i = self.inner.lock();
        i.probing = false;
        if ok {
            i.state = BreakerState::Closed;
            i.failures = 0;
            i.opened_at = None;
            return;
        }
        i.failures = i.failures.saturating_add(1);
        self.failures_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if i.state == BreakerState::HalfOpen || i.failures >= self.threshold {
            i.state = BreakerState::Open;
            i.opened_at = Some(now);
        }
    }

    /// Storage failures recorded since the store opened.
    pub(crate) fn failures_total(&self) -> u64 {
        self.failures_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs a storage operation through the breaker; only I/O and corruption errors count
    /// as storage failures.
    pub(crate) fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.allow(Instant::now())?;
        let out = f();
        let failed =
            matches!(&out, Err(e) if matches!(e.kind(), ErrorKind::Io | ErrorKind::Corruption));
        self.record(!failed, Instant::now());
        out
    }

    /// The current state.
    pub(crate) fn state(&self) -> BreakerState {
        self.inner.lock().state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_recovers_through_half_open() {
        let b = Breaker::new(3, Duration::from_millis(100));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.allow(t0).unwrap();
            b.record(false, t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.allow(t0).unwrap();
        b.record(false, t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.allow(t0 + Duration::from_millis(50)).unwrap_err().kind(),
            ErrorKind::Io
        );
        // After the cooldown one probe runs; a second caller is refused meanwhile.
        let later = t0 + Duration::from_millis(100);
        b.allow(later).unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(later).is_err());
        b.record(true, later);
        assert_eq!(b.state(), BreakerState::Closed);
        b.allow(later).unwrap();
    }

    #[test]
    fn failed_probe_reopens() {
        let b = Breaker::new(1, Duration::from_millis(10));
        let t0 = Instant::now();
        b.record(false, t0);
        assert_eq!(b.state(), BreakerState::Open);
        let t1 = t0 + Duration::from_millis(10);
        b.allow(t1).unwrap();
        b.record(false, t1);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.allow(t1 + Duration::from_millis(5)).is_err());
        b.allow(t1 + Duration::from_millis(10)).unwrap();
    }

    #[test]
    fn run_counts_only_storage_errors() {
        let b = Breaker::new(1, Duration::from_secs(60));
        let r: Result<()> = b.run(|| Err(Error::new(ErrorKind::Constraint, "bad data")));
        assert!(r.is_err());
        assert_eq!(b.state(), BreakerState::Closed);
        let r: Result<()> = b.run(|| Err(Error::new(ErrorKind::Io, "disk")));
        assert!(r.is_err());
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.run(|| Ok(())).is_err(), "open: refused without running");
    }
}
