//! Pessimistic locks: exclusive locks on keys, held by a transaction until it commits or
//! aborts, with deadlock detection.
//!
//! A [`LockManager`] is shared (behind an `Arc`) by the threads running transactions. A
//! transaction, named by a [`TxId`] (smaller = started earlier), calls
//! [`lock`](LockManager::lock) before touching a key and
//! [`release_all`](LockManager::release_all) when it ends.
//!
//! # Algorithm
//!
//! All state sits in one table under one mutex: for each locked key its holder and a FIFO
//! queue of waiting transactions; for each transaction the keys it holds; and for each
//! transaction blocked in `lock` a wait entry with its own condition variable.
//!
//! - **Free key**: taken at once. **Key held by the caller**: returns at once.
//! - **Key held by another**: the caller joins the key's queue. That adds one edge to the
//!   *wait-for graph* (waiter → the key's holder). A blocked transaction waits for one key,
//!   so every node has at most one outgoing edge and the search for a cycle is a walk along
//!   the chain from the caller: it ends at a transaction that is not waiting (no cycle) or
//!   comes back to the caller (a cycle). Because each cycle is broken the moment it forms,
//!   any new cycle passes through the new edge, so this walk finds every deadlock.
//! - **Victim**: the youngest transaction in the cycle (largest id), which has done the
//!   least work. If it is the caller, `lock` returns [`ErrorKind::Deadlock`] at once. If it
//!   is another, waiting, transaction, its edge is removed, its entry is marked and it is
//!   woken: its pending `lock` returns `Deadlock`, and the caller goes on waiting. Either
//!   way the cycle is recorded in a bounded history ([`LockManager::deadlocks`]). The victim
//!   keeps the locks it holds until its owner aborts it and calls `release_all`.
//! - **Release**: `release_all` hands each key to the first transaction in its queue (first
//!   come, first served), marks that waiter's entry granted and wakes it; keys nobody waits
//!   for become free. A wait of the released transaction itself is cancelled.
//! - **Timeout**: a waiter still waiting after [`LockOptions::wait_timeout`] leaves the queue
//!   and gets [`ErrorKind::Capacity`].
//!
//! Every change of a wait entry happens under the mutex, and a waiter checks its entry
//! under the mutex before each wait, so no wake-up is lost; a wake-up that finds the entry
//! unchanged (spurious) waits again. A hand-off never creates a cycle: the new holder was
//! waiting only for that key, so it has no outgoing edge left.
//!
//! ```
//! use std::sync::Arc;
//! use tradestore::ErrorKind;
//! use tradestore::lock::{LockManager, LockOptions};
//!
//! let locks = Arc::new(LockManager::new(LockOptions::default()));
//! locks.lock(1, b"account/1")?;
//! locks.lock(2, b"account/2")?;
//! let older = {
//!     let locks = Arc::clone(&locks);
//!     std::thread::spawn(move || locks.lock(1, b"account/2"))
//! };
//! while locks.stats().waiters() == 0 {
//!     std::thread::yield_now();
//! }
//! // Tx 2 would close the cycle 2 -> 1 -> 2 and is the younger: it is the victim.
//! let err = locks.lock(2, b"account/1").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Deadlock);
//! locks.release_all(2); // abort tx 2; tx 1 gets account/2
//! older.join().unwrap()?;
//! locks.release_all(1);
//! assert_eq!(locks.deadlocks()[0].victim(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`ErrorKind::Deadlock`]: crate::ErrorKind::Deadlock
//! [`ErrorKind::Capacity`]: crate::ErrorKind::Capacity

mod manager;
mod record;
mod table;

pub use manager::{LockManager, LockOptions};
pub use record::{DeadlockRecord, LockStats};

/// A transaction's id. Smaller ids are older (started earlier); a deadlock aborts the
/// youngest transaction of the cycle.
pub type TxId = u64;
