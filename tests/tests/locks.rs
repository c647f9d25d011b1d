//! Pessimistic locks under real threads: transactions locking pairs of keys in opposite
//! orders all finish by retrying deadlock victims, and the locks exclude each other (a
//! counter written only under them loses no update); a ring of waits loses only its youngest
//! transaction; waits under a lock held too long time out and leave nothing behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use tradestore::ErrorKind;
use tradestore::lock::{LockManager, LockOptions, TxId};
use tradestore_tests::{TestResult, expect_err};

/// How long a test waits for its threads before calling it a hang. Far above the
/// milliseconds they need.
const HANG: Duration = Duration::from_secs(60);

fn manager(wait_timeout: Duration) -> Arc<LockManager> {
    Arc::new(LockManager::new(LockOptions {
        wait_timeout,
        deadlock_history: 16,
    }))
}

/// Runs `work` on `n` threads and collects their results, failing instead of hanging.
fn on_threads<T: Send + 'static>(
    n: usize,
    work: impl Fn(usize) -> T + Send + Sync + 'static,
) -> TestResult<Vec<T>> {
    let work = Arc::new(work);
    let (send, receive) = mpsc::channel();
    for i in 0..n {
        let (work, send) = (Arc::clone(&work), send.clone());
        thread::spawn(move || send.send((i, work(i))));
    }
    // Only the threads hold senders now: a panicking one ends the wait below at once.
    drop(send);
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for _ in 0..n {
        let (i, r) = receive
            .recv_timeout(HANG)
            .map_err(|e| format!("a thread panicked or did not finish within {HANG:?}: {e}"))?;
        results[i] = Some(r);
    }
    Ok(results.into_iter().flatten().collect())
}

/// One transaction: locks `keys` in order, then runs `body`; a deadlock victim releases its
/// locks and runs again as a new, younger transaction. `meet` (first attempt only) is
/// reached between the two locks. Returns how many times it was the victim.
fn transact(
    locks: &LockManager,
    ids: &AtomicU64,
    keys: [&[u8]; 2],
    mut meet: Option<&Barrier>,
    body: impl Fn(),
) -> tradestore::Result<u64> {
    let mut victim = 0;
    loop {
        let tx: TxId = ids.fetch_add(1, Ordering::Relaxed);
        let outcome = locks.lock(tx, keys[0]).and_then(|()| {
            if let Some(barrier) = meet.take() {
                barrier.wait();
            }
            locks.lock(tx, keys[1])
        });
        if outcome.is_ok() {
            body();
        }
        locks.release_all(tx);
        match outcome {
            Ok(()) => return Ok(victim),
            Err(e) if e.kind() == ErrorKind::Deadlock => victim += 1,
            Err(e) => return Err(e),
        }
    }
}

/// A read-modify-write that loses updates unless its callers exclude each other.
fn bump(counter: &AtomicU64) {
    let seen = counter.load(Ordering::Relaxed);
    thread::yield_now();
    counter.store(seen + 1, Ordering::Relaxed);
}

#[test]
fn opposite_order_pairs_all_finish_without_lost_updates() -> TestResult {
    const THREADS: usize = 8;
    const ROUNDS: usize = 60;
    const KEYS: usize = 3;
    let locks = manager(Duration::from_secs(10));
    let ids = Arc::new(AtomicU64::new(1));
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let key_names: Vec<Vec<u8>> = (0..KEYS)
        .map(|k| format!("acct/{k}").into_bytes())
        .collect();
    // Threads 2p and 2p+1 first meet in a certain deadlock on keys of their own.
    let barriers: Vec<Arc<Barrier>> = (0..THREADS / 2)
        .map(|_| Arc::new(Barrier::new(2)))
        .collect();

    let victims = {
        let (locks, ids, counters) = (Arc::clone(&locks), Arc::clone(&ids), Arc::clone(&counters));
        on_threads(THREADS, move |t| -> tradestore::Result<u64> {
            let flip = t % 2 == 1;
            let pair = t / 2;
            let own = format!("warm/{pair}/{}", t % 2).into_bytes();
            let partner = format!("warm/{pair}/{}", 1 - t % 2).into_bytes();
            let mut victim =
                transact(&locks, &ids, [&own, &partner], Some(&barriers[pair]), || {})?;
            for round in 0..ROUNDS {
                let (a, b) = (round % KEYS, (round + 1) % KEYS);
                let (first, second) = if flip { (b, a) } else { (a, b) };
                victim += transact(
                    &locks,
                    &ids,
                    [&key_names[first], &key_names[second]],
                    None,
                    || {
                        bump(&counters[first]);
                        bump(&counters[second]);
                    },
                )?;
            }
            Ok(victim)
        })?
    };
    let victims: u64 = victims.into_iter().sum::<tradestore::Result<u64>>()?;

    // Every committed transaction bumped both of its keys exactly once.
    let mut expected = [0u64; KEYS];
    for round in 0..ROUNDS {
        expected[round % KEYS] += THREADS as u64;
        expected[(round + 1) % KEYS] += THREADS as u64;
    }
    let counted: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(counted, expected, "a lost update means two holders at once");

    let stats = locks.stats();
    assert!(
        stats.deadlocks() >= (THREADS / 2) as u64,
        "each pair deadlocks at least once: {stats:?}"
    );
    assert_eq!(victims, stats.deadlocks(), "one victim per deadlock");
    assert_eq!(stats.timeouts(), 0);
    assert_eq!(
        (stats.holders(), stats.locked_keys(), stats.waiters()),
        (0, 0, 0),
        "everything released"
    );
    let history = locks.deadlocks();
    assert_eq!(history.len() as u64, stats.deadlocks().min(16));
    for record in &history {
        assert_eq!(
            Some(&record.victim()),
            record.cycle().iter().max(),
            "{record}"
        );
        assert_eq!(record.cycle().len(), record.keys().len());
        assert!(record.cycle().len() >= 2, "{record}");
    }
    Ok(())
}

#[test]
fn a_ring_of_waits_loses_only_its_youngest() -> TestResult {
    const RING: usize = 4;
    let locks = manager(Duration::from_secs(10));
    let barrier = Arc::new(Barrier::new(RING));
    let outcomes = {
        let locks = Arc::clone(&locks);
        // Tx i + 1 holds key i, then asks for key i + 1: the last to ask closes the ring.
        on_threads(RING, move |i| {
            let tx = i as TxId + 1;
            let result = locks.lock(tx, &[i as u8]).and_then(|()| {
                barrier.wait();
                locks.lock(tx, &[((i + 1) % RING) as u8])
            });
            locks.release_all(tx);
            result.map_err(|e| e.kind())
        })?
    };
    let mut expected = vec![Ok(()); RING];
    expected[RING - 1] = Err(ErrorKind::Deadlock);
    assert_eq!(
        outcomes, expected,
        "only the youngest, tx {RING}, is aborted"
    );
    let [record] = &locks.deadlocks()[..] else {
        return Err(format!("expected one deadlock: {:?}", locks.deadlocks()).into());
    };
    assert_eq!(record.victim(), RING as TxId);
    let mut members = record.cycle().to_vec();
    members.sort_unstable();
    assert_eq!(members, (1..=RING as TxId).collect::<Vec<_>>(), "{record}");
    Ok(())
}

#[test]
fn waits_under_a_held_lock_time_out_and_leave_nothing_behind() -> TestResult {
    const WAITERS: usize = 4;
    let locks = manager(Duration::from_millis(50));
    locks.lock(1, b"orders/7")?;
    let errors = {
        let locks = Arc::clone(&locks);
        on_threads(WAITERS, move |i| {
            let tx = 10 + i as TxId;
            // Each waiter holds a key of its own, which the timeout does not release.
            locks.lock(tx, format!("own/{i}").as_bytes())?;
            locks.lock(tx, b"orders/7")
        })?
    };
    for (i, result) in errors.into_iter().enumerate() {
        let err = expect_err(result, ErrorKind::Capacity)?;
        let message = err.message();
        for part in [
            format!("tx {}", 10 + i),
            "\"orders/7\"".into(),
            "held by tx 1".into(),
            "50ms".into(),
            "retry".into(),
        ] {
            assert!(message.contains(&part), "{part:?} missing from: {message}");
        }
    }
    let stats = locks.stats();
    assert_eq!(stats.timeouts(), WAITERS as u64);
    assert_eq!(stats.waiters(), 0);
    assert_eq!(
        stats.locked_keys(),
        1 + WAITERS,
        "the waiters keep their own keys"
    );

    // The holder is undisturbed; once it releases, the key is free at once.
    locks.lock(1, b"orders/7")?;
    locks.release_all(1);
    locks.lock(20, b"orders/7")?;
    for i in 0..WAITERS {
        locks.release_all(10 + i as TxId);
    }
    locks.release_all(20);
    assert_eq!(locks.stats().locked_keys(), 0);
    Ok(())
}
