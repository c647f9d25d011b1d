//! The lock table: who holds each key, who waits for it, and the wait-for graph those
//! define. Pure state, always used under the manager's one mutex; it never blocks.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Condvar;

use super::TxId;
use super::record::{DeadlockRecord, LockStats};

/// A locked key: its holder and the transactions waiting for it, oldest request first.
struct KeyLock {
    holder: TxId,
    // Invariant: exactly the transactions whose `Wait` is `Waiting` on this key.
    queue: VecDeque<TxId>,
}

/// How a pending `lock` call stands. Set by whoever decides it, read by the waiting thread,
/// which removes the entry when it returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum WaitState {
    /// Still waiting: an edge of the wait-for graph.
    Waiting,
    /// The key was handed over; the waiter now holds it.
    Granted,
    /// Chosen as the victim of this deadlock.
    Victim(DeadlockRecord),
    /// `release_all` ran for the waiting transaction.
    Cancelled,
}

struct Wait {
    key: Vec<u8>,
    state: WaitState,
    wake: Arc<Condvar>,
}

/// What a lock request found.
pub(super) enum Begin {
    /// The transaction already held the key.
    Held,
    /// The key was free; it is now held.
    Granted,
    /// The key is held by `holder`: wait on `wake` until the state changes.
    Wait { wake: Arc<Condvar> },
    /// Waiting would close a cycle in which the caller is the youngest: it is the victim.
    Victim(DeadlockRecord),
    /// The transaction is already waiting for a lock (called from two threads at once).
    Busy { key: Vec<u8> },
}

/// How a wait ended, for the waiting thread.
pub(super) enum Settled {
    Granted,
    Victim(DeadlockRecord),
    Cancelled,
    TimedOut { holder: TxId },
}

pub(super) struct LockTable {
    keys: HashMap<Vec<u8>, KeyLock>,
    held: HashMap<TxId, Vec<Vec<u8>>>,
    waits: HashMap<TxId, Wait>,
    history: VecDeque<DeadlockRecord>,
    history_cap: usize,
    stats: LockStats,
}

impl LockTable {
    pub(super) fn new(history_cap: usize) -> LockTable {
        LockTable {
            keys: HashMap::new(),
            held: HashMap::new(),
            waits: HashMap::new(),
            history: VecDeque::new(),
            history_cap,
            stats: LockStats::default(),
        }
    }

    /// Takes `key` for `tx` if it is free, or registers the wait and checks it for a cycle.
    pub(super) fn begin(&mut self, tx: TxId, key: &[u8]) -> Begin {
        let holder = match self.keys.get(key) {
            Some(lock) if lock.holder == tx => return Begin::Held,
            Some(lock) => lock.holder,
            None => {
                self.keys.insert(
                    key.to_vec(),
                    KeyLock {
                        holder: tx,
                        queue: VecDeque::new(),
                    },
                );
                self.held.entry(tx).or_default().push(key.to_vec());
                return Begin::Granted;
            }
        };
        if let Some(w) = self.waits.get(&tx) {
            return Begin::Busy { key: w.key.clone() };
        }
        debug_assert_ne!(holder, tx);
        self.stats.waits += 1;
        let wake = Arc::new(Condvar::new());
        self.waits.insert(
            tx,
            Wait {
                key: key.to_vec(),
                state: WaitState::Waiting,
                wake: Arc::clone(&wake),
            },
        );
        if let Some(lock) = self.keys.get_mut(key) {
            lock.queue.push_back(tx);
        }
        let Some((cycle, keys)) = self.cycle_through(tx) else {
            return Begin::Wait { wake };
        };
        let victim = cycle.iter().copied().max().unwrap_or(tx);
        let record = DeadlockRecord::new(cycle, keys, victim);
        self.stats.deadlocks += 1;
        if self.history_cap > 0 {
            if self.history.len() == self.history_cap {
                self.history.pop_front();
            }
            self.history.push_back(record.clone());
        }
        if victim == tx {
            self.forget_wait(tx);
            return Begin::Victim(record);
        }
        // Removing the victim's edge breaks the cycle; its thread learns why when it wakes.
        self.dequeue(victim);
        if let Some(w) = self.waits.get_mut(&victim) {
            w.state = WaitState::Victim(record);
            w.wake.notify_one();
        }
        Begin::Wait { wake }
    }

    /// Follows the wait-for edges from `tx` (each waiter waits for its key's holder). Every
    /// transaction waits for at most one key, so the edges form chains; as every earlier
    /// cycle was broken when it formed, a new cycle must pass through `tx`, the one new edge.
    /// Returns the cycle's transactions and the key each waits for, starting at `tx`.
    fn cycle_through(&self, tx: TxId) -> Option<(Vec<TxId>, Vec<Vec<u8>>)> {
        let mut cycle = vec![tx];
        let mut keys = Vec::new();
        let mut current = tx;
        loop {
            let wait = self.waits.get(&current)?;
            if wait.state != WaitState::Waiting {
                return None;
            }
            let holder = self.keys.get(&wait.key)?.holder;
            keys.push(wait.key.clone());
            if holder == tx {
                return Some((cycle, keys));
            }
            // Defensive: a chain longer than the number of waiters would be a cycle that
            // avoids `tx`, which the invariant above rules out.
            if cycle.len() > self.waits.len() {
                return None;
            }
            cycle.push(holder);
            current = holder;
        }
    }

    /// For the waiting thread, after a wake-up or a timeout: returns how the wait ended (and
    /// removes it), or `None` to keep waiting.
    pub(super) fn settle(&mut self, tx: TxId, timed_out: bool) -> Option<Settled> {
        let wait = self.waits.get(&tx)?;
        let settled = match &wait.state {
            WaitState::Waiting if !timed_out => return None,
            WaitState::Waiting => {
                self.stats.timeouts += 1;
                let holder = self.keys.get(&wait.key).map_or(tx, |l| l.holder);
                self.dequeue(tx);
                Settled::TimedOut { holder }
            }
            WaitState::Granted => Settled::Granted,
            WaitState::Victim(record) => Settled::Victim(record.clone()),
            WaitState::Cancelled => Settled::Cancelled,
        };
        self.waits.remove(&tx);
        Some(settled)
    }

    /// Releases every lock of `tx`, handing each key to its oldest waiter, and cancels a
    /// wait of `tx` still pending.
    pub(super) fn release_all(&mut self, tx: TxId) {
        if let Some(w) = self.waits.get(&tx) {
            if w.state == WaitState::Waiting {
                self.dequeue(tx);
            }
            if let Some(w) = self.waits.get_mut(&tx)
                && matches!(w.state, WaitState::Waiting | WaitState::Granted)
            {
                w.state = WaitState::Cancelled;
                w.wake.notify_one();
            }
        }
        for key in self.held.remove(&tx).unwrap_or_default() {
            self.hand_off(key);
        }
    }

    /// Gives a released key to the first transaction in its queue, or frees it.
    fn hand_off(&mut self, key: Vec<u8>) {
        let Some(lock) = self.keys.get_mut(&key) else {
            return;
        };
        let Some(next) = lock.queue.pop_front() else {
            self.keys.remove(&key);
            return;
        };
        lock.holder = next;
        if let Some(w) = self.waits.get_mut(&next) {
            w.state = WaitState::Granted;
            w.wake.notify_one();
        }
        self.held.entry(next).or_default().push(key);
    }

    /// Removes `tx` from the queue of the key it waits for (its wait-for edge).
    fn dequeue(&mut self, tx: TxId) {
        if let Some(w) = self.waits.get(&tx)
            && let Some(lock) = self.keys.get_mut(&w.key)
        {
            lock.queue.retain(|&t| t != tx);
        }
    }

    /// Drops a wait that never blocked (the caller was the victim).
    fn forget_wait(&mut self, tx: TxId) {
        self.dequeue(tx);
        self.waits.remove(&tx);
    }

    pub(super) fn deadlocks(&self) -> Vec<DeadlockRecord> {
        self.history.iter().cloned().collect()
    }

    pub(super) fn stats(&self) -> LockStats {
        LockStats {
            holders: self.held.len(),
            locked_keys: self.keys.len(),
            waiters: self
                .waits
                .values()
                .filter(|w| w.state == WaitState::Waiting)
                .count(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl LockTable {
        fn holder(&self, key: &[u8]) -> Option<TxId> {
            self.keys.get(key).map(|l| l.holder)
        }
    }

    fn state(t: &LockTable, tx: TxId) -> Option<WaitState> {
        t.waits.get(&tx).map(|w| w.state.clone())
    }

    fn waits(b: Begin) -> bool {
        matches!(b, Begin::Wait { .. })
    }

    #[test]
    fn free_key_is_granted_and_relocking_is_a_no_op() {
        let mut t = LockTable::new(4);
        assert!(matches!(t.begin(1, b"a"), Begin::Granted));
        assert!(matches!(t.begin(1, b"a"), Begin::Held));
        assert_eq!(t.held[&1].len(), 1);
        t.release_all(1);
        assert!(t.keys.is_empty() && t.held.is_empty());
    }

    #[test]
    fn release_hands_the_key_to_the_oldest_waiter() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        assert!(waits(t.begin(3, b"a")));
        assert!(waits(t.begin(2, b"a")));
        t.release_all(1);
        assert_eq!(t.holder(b"a"), Some(3), "first come, first served");
        assert_eq!(state(&t, 3), Some(WaitState::Granted));
        assert_eq!(state(&t, 2), Some(WaitState::Waiting));
        assert!(matches!(t.settle(3, false), Some(Settled::Granted)));
        t.release_all(3);
        assert_eq!(t.holder(b"a"), Some(2));
    }

    #[test]
    fn the_caller_closing_a_cycle_as_the_youngest_is_the_victim() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        t.begin(2, b"b");
        assert!(waits(t.begin(1, b"b")));
        let Begin::Victim(r) = t.begin(2, b"a") else {
            panic!("tx 2 closes the cycle and is the youngest");
        };
        assert_eq!((r.cycle(), r.victim()), (&[2, 1][..], 2));
        assert_eq!(r.keys(), &[b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(state(&t, 2), None, "the victim's edge is removed");
        assert_eq!(t.stats().waiters(), 1);
    }

    #[test]
    fn an_older_caller_closing_a_cycle_aborts_the_waiting_youngest() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        t.begin(2, b"b");
        assert!(waits(t.begin(2, b"a")));
        assert!(waits(t.begin(1, b"b")), "tx 1 is older: it keeps waiting");
        let Some(WaitState::Victim(r)) = state(&t, 2) else {
            panic!("tx 2 must be the victim");
        };
        assert_eq!((r.cycle(), r.victim()), (&[1, 2][..], 2));
        assert!(t.keys[&b"a".to_vec()].queue.is_empty());
        // The victim keeps tx 1 waiting until it releases what it holds.
        assert!(matches!(t.settle(2, false), Some(Settled::Victim(_))));
        assert_eq!(state(&t, 1), Some(WaitState::Waiting));
        t.release_all(2);
        assert_eq!(state(&t, 1), Some(WaitState::Granted));
    }

    #[test]
    fn a_three_way_cycle_aborts_the_youngest() {
        let mut t = LockTable::new(4);
        for (tx, key) in [(1, b"a"), (2, b"b"), (3, b"c")] {
            t.begin(tx, key);
        }
        assert!(waits(t.begin(3, b"a")));
        assert!(waits(t.begin(1, b"b")));
        assert!(waits(t.begin(2, b"c")));
        let Some(WaitState::Victim(r)) = state(&t, 3) else {
            panic!("tx 3 must be the victim");
        };
        assert_eq!(r.cycle(), &[2, 3, 1]);
        assert_eq!(r.keys(), &[b"c".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(t.cycle_through(2), None, "the cycle is broken");
    }

    #[test]
    fn a_chain_without_a_cycle_just_waits() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        t.begin(2, b"b");
        assert!(waits(t.begin(2, b"a")));
        assert!(waits(t.begin(3, b"b")));
        assert_eq!(t.stats().deadlocks(), 0);
    }

    #[test]
    fn release_all_cancels_a_pending_wait() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        assert!(waits(t.begin(2, b"a")));
        t.release_all(2);
        assert_eq!(state(&t, 2), Some(WaitState::Cancelled));
        assert!(t.keys[&b"a".to_vec()].queue.is_empty());
        t.release_all(1);
        assert!(
            t.keys.is_empty(),
            "the cancelled waiter is not handed the key"
        );
    }

    #[test]
    fn a_timeout_leaves_the_queue() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        assert!(waits(t.begin(2, b"a")));
        assert!(t.settle(2, false).is_none());
        assert!(matches!(
            t.settle(2, true),
            Some(Settled::TimedOut { holder: 1 })
        ));
        assert_eq!(t.stats().timeouts(), 1);
        t.release_all(1);
        assert!(t.keys.is_empty());
    }

    #[test]
    fn a_second_concurrent_wait_of_one_tx_is_refused() {
        let mut t = LockTable::new(4);
        t.begin(1, b"a");
        t.begin(1, b"b");
        assert!(waits(t.begin(2, b"a")));
        assert!(matches!(t.begin(2, b"b"), Begin::Busy { .. }));
    }
}
