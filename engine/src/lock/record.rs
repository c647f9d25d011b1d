//! What the lock manager reports: the deadlocks it broke and its counters.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;

use super::TxId;

/// A deadlock the lock manager detected and broke.
///
/// The cycle is listed in wait order: `cycle()[i]` waits for the lock on `keys()[i]`, which
/// `cycle()[i + 1]` holds (and the last transaction waits for the first). It starts with
/// the transaction whose wait closed the cycle. As JSON (serde's default shapes):
/// `{"at":{"secs_since_epoch":..,"nanos_since_epoch":..},"cycle":[4,9],"keys":[[97],[98]],"victim":9}`,
/// keys as arrays of bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlockRecord {
    at: SystemTime,
    cycle: Vec<TxId>,
    keys: Vec<Vec<u8>>,
    victim: TxId,
}

impl DeadlockRecord {
    pub(super) fn new(cycle: Vec<TxId>, keys: Vec<Vec<u8>>, victim: TxId) -> DeadlockRecord {
        DeadlockRecord {
            at: SystemTime::now(),
            cycle,
            keys,
            victim,
        }
    }

    /// When the cycle was detected.
    pub fn at(&self) -> SystemTime {
        self.at
    }

    /// The transactions of the cycle, in wait order (each waits for the next).
    pub fn cycle(&self) -> &[TxId] {
        &self.cycle
    }

    /// The key each transaction of [`cycle`](Self::cycle) waits for, at the same position.
    pub fn keys(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// The transaction chosen to break the cycle: the youngest (largest id) in it.
    pub fn victim(&self) -> TxId {
        self.victim
    }
}

impl fmt::Display for DeadlockRecord {
    /// `tx 4 waits for tx 9 on key "a", tx 9 waits for tx 4 on key "b"; victim tx 9`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tx, key)) in self.cycle.iter().zip(&self.keys).enumerate() {
            let next = self.cycle[(i + 1) % self.cycle.len()];
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "tx {tx} waits for tx {next} on key {}", show_key(key))?;
        }
        write!(f, "; victim tx {}", self.victim)
    }
}

/// The lock manager's counters, since it was created, and its current occupancy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LockStats {
    pub(super) waits: u64,
    pub(super) deadlocks: u64,
    pub(super) timeouts: u64,
    pub(super) holders: usize,
    pub(super) locked_keys: usize,
    pub(super) waiters: usize,
}

impl LockStats {
    /// Lock requests that found the key held by another transaction.
    pub fn waits(&self) -> u64 {
        self.waits
    }

    /// Deadlocks detected (each broken by aborting one transaction).
    pub fn deadlocks(&self) -> u64 {
        self.deadlocks
    }

    /// Waits that gave up after the wait timeout.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Transactions holding at least one lock now.
    pub fn holders(&self) -> usize {
        self.holders
    }

    /// Keys locked now.
    pub fn locked_keys(&self) -> usize {
        self.locked_keys
    }

    /// Transactions waiting for a lock now.
    pub fn waiters(&self) -> usize {
        self.waiters
    }
}

/// A key for messages: quoted, printable ASCII as is, other bytes as `\xNN`.
pub(super) fn show_key(key: &[u8]) -> String {
    format!("\"{}\"", key.escape_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_walks_the_cycle() {
        let r = DeadlockRecord::new(vec![4, 9], vec![b"a".to_vec(), vec![0, b'b']], 9);
        assert_eq!(
            r.to_string(),
            "tx 4 waits for tx 9 on key \"a\", tx 9 waits for tx 4 on key \"\\x00b\"; victim tx 9"
        );
    }

    #[test]
    fn serializes_to_json() {
        let r = DeadlockRecord::new(vec![4, 9], vec![b"a".to_vec(), b"b".to_vec()], 9);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["cycle"], serde_json::json!([4, 9]));
        assert_eq!(json["keys"], serde_json::json!([[97], [98]]));
        assert_eq!(json["victim"], 9);
        assert!(json["at"]["secs_since_epoch"].as_u64().unwrap() > 0);
    }
}
