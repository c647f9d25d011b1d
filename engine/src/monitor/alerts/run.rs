//! The evaluation thread of a store: every `interval` it evaluates the rules against the
//! source with the system clock and sends what is due, delivering without holding the
//! manager's lock (a slow webhook delays only this thread).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::manager::AlertManager;
use super::source::MetricSource;

/// Milliseconds since the epoch, by the system clock.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Starts a thread that ticks the manager every `interval` (at once, then on) until `stop`
/// is set; it notices `stop` within 50 ms. The lock is `parking_lot`'s
/// ([`AlertManager::into_shared`] makes one).
pub fn spawn(
    manager: Arc<Mutex<AlertManager>>,
    source: Arc<dyn MetricSource + Send + Sync>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() < next {
                std::thread::sleep(Duration::from_millis(50).min(interval));
                continue;
            }
            next += interval;
            let now = now_ms();
            let mut outbox = {
                let mut m = manager.lock();
                m.evaluate(now, source.as_ref());
                m.prepare(now)
            };
            outbox.deliver();
            manager.lock().complete(now, outbox);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::source::MemorySource;

    #[test]
    fn ticks_until_stopped() {
        let text = r#"
            [[rule]]
            name = "Poisoned"
            kind = "threshold"
            series = "poisoned"
            op = ">"
            value = 0
            severity = "critical"
            [[receiver]]
            name = "me"
            callback = ["seen"]
            [route]
            receiver = "me"
            group_wait = "0s"
        "#;
        let mut m = AlertManager::from_toml(text, "alerts.toml").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = parking_lot::Mutex::new(tx);
        m.register_callback(
            "seen",
            Arc::new(move |n| {
                let _ = tx.lock().send(
                    n.alert_names(super::super::NotificationStatus::Firing)
                        .join(","),
                );
            }),
        );
        let manager = m.into_shared();
        let mut src = MemorySource::new();
        src.set("poisoned", 1.0);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn(
            manager.clone(),
            Arc::new(src),
            Duration::from_millis(20),
            stop.clone(),
        );
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, "Poisoned");
        stop.store(true, Ordering::SeqCst);
        handle.join().unwrap();
        assert_eq!(
            manager.lock().state("Poisoned").map(|s| s.state),
            Some(super::super::AlertState::Firing)
        );
    }
}
