//! The blocking front of the lock table: one mutex over the table, a condition variable per
//! waiting transaction, and the errors callers see.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::TxId;
use super::record::{DeadlockRecord, LockStats, show_key};
use super::table::{Begin, LockTable, Settled};
use crate::error::{Error, ErrorKind, Result};

/// Settings of a [`LockManager`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockOptions {
    /// How long [`LockManager::lock`] waits for a held key before giving up with a
    /// [`ErrorKind::Capacity`] error. Default: 1 second. `Duration::MAX` waits forever.
    pub wait_timeout: Duration,
    /// How many of the latest deadlocks [`LockManager::deadlocks`] keeps. Default: 32.
    pub deadlock_history: usize,
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions {
            wait_timeout: Duration::from_secs(1),
            deadlock_history: 32,
        }
    }
}

/// Exclusive locks on keys, held by transactions until [`release_all`](Self::release_all),
/// with deadlock detection. See the [module documentation](super) for the algorithm.
pub struct LockManager {
    table: Mutex<LockTable>,
    wait_timeout: Duration,
}

impl LockManager {
    /// A lock manager with no locks held.
    pub fn new(opts: LockOptions) -> LockManager {
        LockManager {
            table: Mutex::new(LockTable::new(opts.deadlock_history)),
            wait_timeout: opts.wait_timeout,
        }
    }

    /// Takes an exclusive lock on `key` for `tx`, waiting while another transaction holds
    /// it. Re-locking a key `tx` already holds returns at once. A transaction takes its locks
    /// from one thread at a time.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Deadlock`] (retryable) when waiting would close a lock cycle and `tx`
    ///   is chosen as the victim, now or while it waits. `tx` keeps the locks it holds: abort
    ///   it and call [`release_all`](Self::release_all).
    /// - [`ErrorKind::Capacity`] when the key is still held after the wait timeout.
    /// - [`ErrorKind::Conflict`] (retryable) when `release_all(tx)` ran while `tx` waited.
    /// - [`ErrorKind::Invalid`] when `tx` is already waiting for a lock in another thread.
    pub fn lock(&self, tx: TxId, key: &[u8]) -> Result<()> {
        let mut table = self.table.lock();
        let wake = match table.begin(tx, key) {
            Begin::Held | Begin::Granted => return Ok(()),
            Begin::Wait { wake } => wake,
            Begin::Victim(record) => {
                return Err(Error::new(
                    ErrorKind::Deadlock,
                    format!(
                        "tx {tx} would wait for key {} in a lock cycle ({record}); it is the youngest in the cycle and was chosen to break it",
                        show_key(key)
                    ),
                ));
            }
            Begin::Busy { key: waiting } => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!(
                        "tx {tx} asked for key {} while already waiting for key {} in another thread; a transaction takes its locks one at a time",
                        show_key(key),
                        show_key(&waiting)
                    ),
                ));
            }
        };
        // `None` when the timeout is too large to add to now: wait without one.
        let deadline = Instant::now().checked_add(self.wait_timeout);
        let mut timed_out = false;
        loop {
            // The state is only changed under the mutex, and checked before every wait, so
            // a wake-up cannot be lost.
            if let Some(settled) = table.settle(tx, timed_out) {
                return match settled {
                    Settled::Granted => Ok(()),
                    Settled::Victim(record) => Err(Error::new(
                        ErrorKind::Deadlock,
                        format!(
                            "tx {tx} was waiting for key {} in a lock cycle ({record}); it is the youngest in the cycle and was chosen to break it",
                            show_key(key)
                        ),
                    )),
                    Settled::Cancelled => Err(Error::new(
                        ErrorKind::Conflict,
                        format!(
                            "tx {tx} was released while it waited for key {}; the lock was not taken, retry the transaction",
                            show_key(key)
                        ),
                    )),
                    Settled::TimedOut { holder } => Err(Error::new(
                        ErrorKind::Capacity,
                        format!(
                            "tx {tx} waited {:?} for key {}, held by tx {holder}, and gave up; abort the transaction and retry it, or raise the lock wait timeout",
                            self.wait_timeout,
                            show_key(key)
                        ),
                    )),
                };
            }
            timed_out = match deadline {
                Some(deadline) => wake.wait_until(&mut table, deadline).timed_out(),
                None => {
                    wake.wait(&mut table);
                    false
                }
            };
        }
    }

    /// Releases every lock of `tx`, handing each key to the transaction that has waited for
    /// it longest, and cancels a wait of `tx` still pending. Call it when `tx` commits or
    /// aborts, including after a deadlock or timeout error.
    pub fn release_all(&self, tx: TxId) {
        self.table.lock().release_all(tx);
    }

    /// The latest deadlocks detected, newest last (at most
    /// [`LockOptions::deadlock_history`]).
    pub fn deadlocks(&self) -> Vec<DeadlockRecord> {
        self.table.lock().deadlocks()
    }

    /// Counters since creation and the current holders and waiters.
    pub fn stats(&self) -> LockStats {
        self.table.lock().stats()
    }
}

impl fmt::Debug for LockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockManager")
            .field("wait_timeout", &self.wait_timeout)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    /// Generous: these waits end in milliseconds unless something hangs.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn manager(wait_timeout: Duration, deadlock_history: usize) -> Arc<LockManager> {
        Arc::new(LockManager::new(LockOptions {
            wait_timeout,
            deadlock_history,
        }))
    }

    /// Waits until `n` transactions are blocked in `lock`.
    fn until_waiters(m: &LockManager, n: usize) {
        let start = Instant::now();
        while m.stats().waiters() != n {
            assert!(start.elapsed() < PATIENCE, "expected {n} waiters: {m:?}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn spawn_lock(
        m: &Arc<LockManager>,
        tx: TxId,
        key: &'static [u8],
    ) -> thread::JoinHandle<Result<()>> {
        let m = Arc::clone(m);
        thread::spawn(move || m.lock(tx, key))
    }

    #[test]
    fn relocking_a_held_key_returns_at_once() {
        let m = manager(PATIENCE, 4);
        m.lock(1, b"a").unwrap();
        m.lock(1, b"a").unwrap();
        m.lock(1, b"b").unwrap();
        let s = m.stats();
        assert_eq!((s.holders(), s.locked_keys(), s.waits()), (1, 2, 0));
        m.release_all(1);
        assert_eq!(m.stats().locked_keys(), 0);
    }

    #[test]
    fn release_wakes_the_waiter() {
        let m = manager(PATIENCE, 4);
        m.lock(1, b"a").unwrap();
        let waiter = spawn_lock(&m, 2, b"a");
        until_waiters(&m, 1);
        m.release_all(1);
        waiter.join().unwrap().unwrap();
        let s = m.stats();
        assert_eq!((s.holders(), s.waiters(), s.waits()), (1, 0, 1));
        // Tx 2 holds the key now: re-locking it does not wait.
        m.lock(2, b"a").unwrap();
        assert_eq!(m.stats().waits(), 1);
    }

    #[test]
    fn a_wait_times_out_with_a_message_naming_key_holder_and_timeout() {
        let m = manager(Duration::from_millis(20), 4);
        m.lock(7, b"acct/1").unwrap();
        let err = m.lock(8, b"acct/1").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Capacity);
        assert!(!err.is_retryable());
        let msg = err.message();
        for part in ["tx 8", "\"acct/1\"", "held by tx 7", "20ms", "retry"] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
        let s = m.stats();
        assert_eq!((s.timeouts(), s.waiters(), s.holders()), (1, 0, 1));
        m.release_all(7);
        m.lock(8, b"acct/1").unwrap();
    }

    #[test]
    fn two_tx_deadlock_the_younger_caller_is_the_victim() {
        let m = manager(PATIENCE, 4);
        m.lock(1, b"a").unwrap();
        m.lock(2, b"b").unwrap();
        let older = spawn_lock(&m, 1, b"b");
        until_waiters(&m, 1);
        let err = m.lock(2, b"a").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deadlock);
        assert!(err.is_retryable());
        assert!(err.message().contains("tx 2"), "{err}");
        m.release_all(2);
        older.join().unwrap().unwrap();
        let [r] = &m.deadlocks()[..] else {
            panic!("one deadlock: {:?}", m.deadlocks())
        };
        assert_eq!((r.cycle(), r.victim()), (&[2, 1][..], 2));
        assert_eq!(m.stats().deadlocks(), 1);
    }

    #[test]
    fn two_tx_deadlock_the_younger_waiter_is_the_victim() {
        let m = manager(PATIENCE, 4);
        m.lock(1, b"a").unwrap();
        m.lock(2, b"b").unwrap();
        let younger = spawn_lock(&m, 2, b"a");
        until_waiters(&m, 1);
        let older = spawn_lock(&m, 1, b"b");
        let err = younger.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Deadlock);
        assert!(err.message().contains("tx 2 was waiting"), "{err}");
        // The older keeps waiting until the victim releases its locks.
        until_waiters(&m, 1);
        m.release_all(2);
        older.join().unwrap().unwrap();
        let [r] = &m.deadlocks()[..] else {
            panic!("one deadlock")
        };
        assert_eq!((r.cycle(), r.victim()), (&[1, 2][..], 2));
    }

    #[test]
    fn three_tx_cycle_aborts_the_youngest() {
        let m = manager(PATIENCE, 4);
        m.lock(10, b"a").unwrap();
        m.lock(20, b"b").unwrap();
        m.lock(30, b"c").unwrap();
        let t30 = spawn_lock(&m, 30, b"a");
        until_waiters(&m, 1);
        let t10 = spawn_lock(&m, 10, b"b");
        until_waiters(&m, 2);
        // Tx 20 closes the cycle; tx 30, waiting, is the youngest.
        let t20 = spawn_lock(&m, 20, b"c");
        assert_eq!(t30.join().unwrap().unwrap_err().kind(), ErrorKind::Deadlock);
        m.release_all(30);
        t20.join().unwrap().unwrap();
        m.release_all(20);
        t10.join().unwrap().unwrap();
        let [r] = &m.deadlocks()[..] else {
            panic!("one deadlock")
        };
        assert_eq!(r.cycle(), &[20, 30, 10]);
        assert_eq!(r.keys(), &[b"c".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(r.victim(), 30);
    }

    #[test]
    fn deadlock_history_keeps_the_latest() {
        let m = manager(PATIENCE, 3);
        for round in 0..5u64 {
            let (old, young) = (2 * round + 1, 2 * round + 2);
            m.lock(old, b"a").unwrap();
            m.lock(young, b"b").unwrap();
            let waiter = spawn_lock(&m, old, b"b");
            until_waiters(&m, 1);
            assert_eq!(m.lock(young, b"a").unwrap_err().kind(), ErrorKind::Deadlock);
            m.release_all(young);
            waiter.join().unwrap().unwrap();
            m.release_all(old);
        }
        let victims: Vec<TxId> = m.deadlocks().iter().map(|r| r.victim()).collect();
        assert_eq!(victims, [6, 8, 10], "the last three, newest last");
        assert_eq!(m.stats().deadlocks(), 5);
        assert!(manager(PATIENCE, 0).deadlocks().is_empty());
    }

    #[test]
    fn release_all_cancels_a_wait() {
        let m = manager(PATIENCE, 4);
        m.lock(1, b"a").unwrap();
        let waiter = spawn_lock(&m, 2, b"a");
        until_waiters(&m, 1);
        m.release_all(2);
        let err = waiter.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        m.release_all(1);
        assert_eq!(
            m.stats().locked_keys(),
            0,
            "the cancelled waiter got nothing"
        );
    }

    #[test]
    fn a_huge_timeout_waits_without_a_deadline() {
        let m = manager(Duration::MAX, 4);
        m.lock(1, b"a").unwrap();
        let waiter = spawn_lock(&m, 2, b"a");
        until_waiters(&m, 1);
        m.release_all(1);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<LockManager>();
    }
}
