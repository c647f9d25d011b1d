//! The row cache under the overlay: a point read answered from it must be the row as the
//! reader's snapshot holds it, while writers change the rows and the applier moves them
//! into redb. Point reads are checked against a scan of the same snapshot (scans never use
//! the cache) and against the conserved total of the balances.

use std::sync::atomic::{AtomicBool, Ordering};

use tradestore::schema::{Cash, Money};
use tradestore::{Config, ReadOps, RetryPolicy, Store};
use tradestore_tests::{Rng, TestResult, assert_clean, fund_accounts, transfer, usd, wait_applied};

const ACCOUNTS: u64 = 12;
const INITIAL: i64 = 1_000_000;

fn open(dir: &std::path::Path, row_cache_mb: u64) -> TestResult<Store> {
    let store = Store::open(
        dir,
        Config {
            row_cache_mb,
            // Many small applier batches: many redb commits for readers to race with.
            checkpoint_interval_ms: 10,
            ..Config::default()
        },
    )?;
    fund_accounts(&store, ACCOUNTS, INITIAL)?;
    Ok(store)
}

#[test]
fn a_row_changed_after_it_was_cached_is_read_anew_once_applied() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 4)?;
    wait_applied(&store)?;
    // Read from redb: now cached.
    let first: Cash = store.read()?.get(&usd(1))?.ok_or("no cash")?;
    assert_eq!(first.amount, Money(INITIAL));
    let again: Cash = store.read()?.get(&usd(1))?.ok_or("no cash")?;
    assert_eq!(again, first);
    assert!(
        store.stats().row_cache().hits >= 1,
        "the second read is a hit"
    );
    for round in 1..=5 {
        store.write(|tx| {
            let mut c: Cash = tx.get(&usd(1))?.ok_or_else(|| {
                tradestore::Error::new(tradestore::ErrorKind::NotFound, "no cash")
            })?;
            c.amount = Money(INITIAL + round);
            tx.put(&c)
        })?;
        // Read while the overlay answers, then once redb holds the change (the cached
        // copy from before must be gone), twice (the second from the cache again).
        let seen: Cash = store.read()?.get(&usd(1))?.ok_or("no cash")?;
        assert_eq!(seen.amount, Money(INITIAL + round));
        wait_applied(&store)?;
        for _ in 0..2 {
            let seen: Cash = store.read()?.get(&usd(1))?.ok_or("no cash")?;
            assert_eq!(seen.amount, Money(INITIAL + round), "round {round}");
        }
    }
    let s = store.stats().row_cache();
    assert!(s.hits >= 5 && s.misses >= 5, "{s:?}");
    Ok(())
}

#[test]
fn point_reads_agree_with_scans_while_writers_move_cash() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 1)?;
    let stop = AtomicBool::new(false);
    let total = INITIAL * i64::try_from(ACCOUNTS)?;
    let outcome: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|t| {
                let store = &store;
                s.spawn(move || -> Result<u64, String> {
                    let mut rng = Rng::new(77 + t);
                    let policy = RetryPolicy::default();
                    for _ in 0..400 {
                        let a = rng.below(ACCOUNTS) + 1;
                        let b = (a + rng.below(ACCOUNTS - 1)) % ACCOUNTS + 1;
                        let amount = rng.range(1, 500);
                        store
                            .transact(&policy, |tx| transfer(tx, a, b, amount))
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(0)
                })
            })
            .collect();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (&store, &stop);
                s.spawn(move || -> Result<u64, String> {
                    let mut snapshots = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let tx = store.read().map_err(|e| e.to_string())?;
                        let scanned: Vec<Cash> = tx.all().map_err(|e| e.to_string())?;
                        let mut sum = 0;
                        for c in &scanned {
                            let got: Cash = tx
                                .get(&usd(c.account))
                                .map_err(|e| e.to_string())?
                                .ok_or("cash row gone")?;
                            if got != *c {
                                return Err(format!(
                                    "snapshot {}: point read {got:?}, scan {c:?}",
                                    tx.seq()
                                ));
                            }
                            sum += got.amount.0;
                        }
                        if sum != total {
                            return Err(format!("snapshot {}: total {sum}", tx.seq()));
                        }
                        snapshots += 1;
                    }
                    Ok(snapshots)
                })
            })
            .collect();
        let mut out: Vec<Result<u64, String>> = writers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("writer panicked".into())))
            .collect();
        stop.store(true, Ordering::SeqCst);
        out.extend(
            readers
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("reader panicked".into()))),
        );
        out
    });
    let mut snapshots = 0;
    for r in outcome {
        snapshots += r?;
    }
    assert!(snapshots > 0, "the readers ran");
    let s = store.stats().row_cache();
    assert!(s.hits > 0, "the cache answered reads: {s:?}");
    wait_applied(&store)?;
    let tx = store.read()?;
    let mut sum = 0;
    for id in 1..=ACCOUNTS {
        let c: Cash = tx.get(&usd(id))?.ok_or("cash row gone")?;
        sum += c.amount.0;
    }
    assert_eq!(sum, total);
    drop(tx);
    assert_clean(&store)
}

#[test]
fn the_cache_can_be_turned_off() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 0)?;
    wait_applied(&store)?;
    for _ in 0..3 {
        let c: Cash = store.read()?.get(&usd(2))?.ok_or("no cash")?;
        assert_eq!(c.amount, Money(INITIAL));
    }
    assert_eq!(
        store.stats().row_cache(),
        tradestore::RowCacheStats::default()
    );
    Ok(())
}
