//! The ring of the newest trades, which answers reads of a trade by id: a read answered from
//! it must be the trade as the reader's snapshot holds it. Trades come into the ring from
//! the applier and from a restore; a snapshot older than a trade's commit must not see it;
//! a trade whose slot a newer one took is read from redb. Reads by id are checked against
//! scans of the same snapshot (scans never use the ring).

use std::sync::atomic::{AtomicBool, Ordering};

use tradestore::schema::{Order, Side, TableId, Trade};
use tradestore::{Config, ReadOps, ReadTx, RetryPolicy, Store};
use tradestore_tests::{
    ACME, ALPHA, TestResult, dump_bytes, fill, limit, restore_bytes, seed, wait_applied,
};

/// A buy order large enough for every fill of these tests.
const BIG: u64 = 100;

fn open(dir: &std::path::Path, recent_trades: u64) -> TestResult<Store> {
    Ok(Store::open(
        dir,
        Config {
            recent_trades,
            // Many small applier batches: many redb commits for readers to race with.
            checkpoint_interval_ms: 10,
            ..Config::default()
        },
    )?)
}

/// The seed data set and [`BIG`]: 5000 units of ACME for ALPHA at up to 1.00.
fn prepare(store: &Store) -> TestResult<Order> {
    seed(store)?;
    let order = limit(BIG, ALPHA, ACME, Side::Buy, 5000, "1");
    store.write(|tx| tx.insert(&order))?;
    Ok(order)
}

/// Records `n` fills of one unit of `order`, one transaction each; returns them.
fn record(store: &Store, order: &Order, n: usize) -> TestResult<Vec<Trade>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = fill(0, order, 1, "1", "0", 10 + i as i64);
        store.transact(&RetryPolicy::default(), |tx| {
            t.id = tx.next_id(TableId::Trades)?;
            tx.record_fill(&t).map(|_| ())
        })?;
        out.push(t);
    }
    Ok(out)
}

/// Every one of `trades` reads back by id from `after`, and none from `before` (a snapshot
/// older than their commits).
fn assert_read_back(after: &ReadTx, before: Option<&ReadTx>, trades: &[Trade]) -> TestResult {
    for t in trades {
        assert_eq!(after.get_id::<Trade>(t.id)?.as_ref(), Some(t));
        if let Some(before) = before {
            assert_eq!(before.get_id::<Trade>(t.id)?, None, "trade {}", t.id);
        }
    }
    Ok(())
}

#[test]
fn a_snapshot_never_sees_a_trade_committed_after_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 64)?;
    let order = prepare(&store)?;
    wait_applied(&store)?;
    let before = store.read()?;
    let trades = record(&store, &order, 3)?;
    wait_applied(&store)?;
    assert_read_back(&store.read()?, Some(&before), &trades)?;
    let s = store.stats().recent_trades();
    assert_eq!(s.slots, 64);
    assert!(s.hits >= 3, "the newer snapshot reads from the ring: {s:?}");
    assert!(s.misses >= 3, "the older one does not: {s:?}");
    Ok(())
}

#[test]
fn a_trade_whose_slot_was_taken_is_read_from_redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 16)?;
    let order = prepare(&store)?;
    let trades = record(&store, &order, 40)?;
    wait_applied(&store)?;
    let snap = store.read()?;
    assert_read_back(&snap, None, &trades)?;
    assert_eq!(snap.get_id::<Trade>(trades.len() as u64 + 1)?, None);
    let s = store.stats().recent_trades();
    // The newest 16 fill the ring; the first 24 were evicted.
    assert!(s.hits >= 16 && s.misses >= 24, "{s:?}");
    Ok(())
}

#[test]
fn restored_trades_are_read_from_the_ring_and_the_ring_can_be_off() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = open(&dir.path().join("source"), 0)?;
    let order = prepare(&source)?;
    let trades = record(&source, &order, 30)?;
    assert_eq!(source.stats().recent_trades().slots, 0);
    let dump = dump_bytes(&source)?;
    for slots in [0, 1024] {
        let store = open(&dir.path().join(format!("restored-{slots}")), slots)?;
        let before = store.read()?;
        restore_bytes(&store, &dump)?;
        assert_read_back(&store.read()?, Some(&before), &trades)?;
        let s = store.stats().recent_trades();
        if slots == 0 {
            assert_eq!((s.hits, s.misses, s.slots), (0, 0, 0));
        } else {
            assert_eq!(s.hits, trades.len() as u64, "{s:?}");
        }
    }
    Ok(())
}

/// Readers compare every trade they read by id with a scan of the same snapshot while a
/// writer records fills and the applier moves them into redb; ids past the scan's last
/// must not be found.
#[test]
fn reads_by_id_match_the_snapshot_while_trades_are_applied() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 128)?;
    let order = prepare(&store)?;
    let done = AtomicBool::new(false);
    // Threads report errors as text (the tests' error type is not `Send`).
    let check = |snap: &tradestore::ReadTx| -> TestResult<u64> {
        let all: Vec<Trade> = snap.all()?;
        for t in &all {
            let got = snap.get_id::<Trade>(t.id)?;
            if got.as_ref() != Some(t) {
                return Err(format!("trade {}: {got:?}, scan {t:?}", t.id).into());
            }
        }
        let last = all.last().map_or(0, |t| t.id);
        for id in last + 1..last + 4 {
            if let Some(t) = snap.get_id::<Trade>(id)? {
                return Err(format!("trade {id} is past the scan: {t:?}").into());
            }
        }
        Ok(all.len() as u64)
    };
    std::thread::scope(|s| -> TestResult {
        let writer = s.spawn(|| {
            let r = record(&store, &order, 400).map_err(|e| e.to_string());
            done.store(true, Ordering::SeqCst);
            r
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<u64, String> {
                    let mut checked = 0;
                    while !done.load(Ordering::SeqCst) {
                        let snap = store.read().map_err(|e| e.to_string())?;
                        checked += check(&snap).map_err(|e| e.to_string())?;
                    }
                    Ok(checked)
                })
            })
            .collect();
        let written = writer.join().map_err(|_| "the writer panicked")??;
        assert_eq!(written.len(), 400);
        for r in readers {
            r.join().map_err(|_| "a reader panicked")??;
        }
        Ok(())
    })?;
    // Whether the racing readers met published slots depends on timing; once everything
    // is applied, a fresh snapshot reads the newest trades from the ring.
    wait_applied(&store)?;
    let hits = store.stats().recent_trades().hits;
    check(&store.read()?)?;
    let s = store.stats().recent_trades();
    assert!(s.hits > hits, "{s:?}");
    Ok(())
}
