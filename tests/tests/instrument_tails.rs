//! The instruments' newest trades index entries held in memory, which answer newest-first
//! walks of `trades_by_instrument_ts` within one instrument (`recent_trades`): an answer
//! must be what the reader's snapshot holds. Every answer is checked against an
//! oldest-first walk of the same snapshot (those never use the tails), reversed: with
//! trades out of time order, with limits past what a tail holds, for snapshots older than
//! later commits, while the applier moves fills into redb, and after a restore.

use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};

use tradestore::schema::{Order, Side, TableId, Trade, Value};
use tradestore::{Config, IndexScan, ReadOps, ReadTx, RetryPolicy, Store};
use tradestore_tests::{
    TestResult, account, dump_bytes, fill, instrument, limit, restore_bytes, wait_applied,
};

const INDEX: &str = "trades_by_instrument_ts";
const INSTRUMENTS: u64 = 3;

fn open(dir: &std::path::Path, instrument_tail_mb: u64) -> TestResult<Store> {
    Ok(Store::open(
        dir,
        Config {
            instrument_tail_mb,
            // Many small applier batches: many redb commits for readers to race with.
            checkpoint_interval_ms: 10,
            ..Config::default()
        },
    )?)
}

/// Instruments 1..=INSTRUMENTS, account 1, and a large buy order per instrument (order id
/// = instrument id).
fn prepare(store: &Store) -> TestResult<Vec<Order>> {
    let orders: Vec<Order> = (1..=INSTRUMENTS)
        .map(|i| limit(i, 1, i, Side::Buy, 1_000_000, "1"))
        .collect();
    store.write(|tx| {
        tx.insert(&account(1, "alpha"))?;
        for i in 1..=INSTRUMENTS {
            tx.insert(&instrument(i, &format!("I{i}"), "USD"))?;
        }
        for o in &orders {
            tx.insert(o)?;
        }
        Ok(())
    })?;
    Ok(orders)
}

/// Records fills `from..to`: fill `n` goes to instrument `n % INSTRUMENTS + 1`, at a time
/// that jumps back and forth (and repeats), one transaction each.
fn record(store: &Store, orders: &[Order], from: u64, to: u64) -> TestResult {
    for n in from..to {
        let ts = ((n * 7919) % 1000) as i64;
        record_at(store, &orders[(n % INSTRUMENTS) as usize], ts)?;
    }
    Ok(())
}

/// Records one fill of `order` at time `ts`, in a transaction of its own.
fn record_at(store: &Store, order: &Order, ts: i64) -> TestResult {
    let mut t = fill(0, order, 1, "1", "0", ts);
    store.transact(&RetryPolicy::default(), |tx| {
        t.id = tx.next_id(TableId::Trades)?;
        tx.record_fill(&t).map(|_| ())
    })?;
    Ok(())
}

/// The scan's answer, and the same range walked oldest first and reversed (no tail).
fn both(snap: &ReadTx, scan: &IndexScan) -> TestResult<(Vec<Trade>, Vec<Trade>)> {
    let got: Vec<Trade> = snap.index_scan(INDEX, scan)?;
    let mut forward = scan.clone();
    forward.reverse = false;
    forward.limit = None;
    let mut want: Vec<Trade> = snap.index_scan(INDEX, &forward)?;
    want.reverse();
    want.truncate(scan.limit.unwrap_or(usize::MAX));
    Ok((got, want))
}

/// Every instrument's newest trades at several limits, and bounded walks, as `snap` holds
/// them; returns how many trades the snapshot holds.
fn check(snap: &ReadTx) -> TestResult<usize> {
    let mut total = 0;
    for i in 1..=INSTRUMENTS + 1 {
        for n in [0, 1, 7, 100, 256, 300, 5000] {
            let got = snap.recent_trades(i, n)?;
            let (scanned, want) =
                both(snap, &IndexScan::prefix([Value::U64(i)]).reverse().limit(n))?;
            if got != want || scanned != want {
                let ids =
                    |v: &[Trade]| -> Vec<(u64, i64)> { v.iter().map(|t| (t.id, t.ts)).collect() };
                let first_diff = |v: &[Trade]| {
                    v.iter().zip(&want).position(|(a, b)| a != b).map(|p| {
                        (
                            p,
                            ids(&v[p..(p + 3).min(v.len())]),
                            ids(&want[p..(p + 3).min(want.len())]),
                        )
                    })
                };
                return Err(format!(
                    "instrument {i}, limit {n}: {} trades, {} scanned, want {}; recent_trades \
                     first differs at {:?}; index_scan at {:?}",
                    got.len(),
                    scanned.len(),
                    want.len(),
                    first_diff(&got),
                    first_diff(&scanned),
                )
                .into());
            }
            if n == 5000 {
                total += want.len();
            }
        }
        for (lo, hi) in [(100, 900), (0, 10), (500, 500), (990, 2000)] {
            let scan = IndexScan::prefix([Value::U64(i)])
                .from(Bound::Included(Value::I64(lo)))
                .to(Bound::Excluded(Value::I64(hi)))
                .reverse()
                .limit(150);
            let (got, want) = both(snap, &scan)?;
            if got != want {
                return Err(format!("instrument {i}, ts {lo}..{hi}: differs").into());
            }
        }
    }
    Ok(total)
}

#[test]
fn newest_first_walks_match_the_snapshot_before_and_after_the_applier() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 64)?;
    let orders = prepare(&store)?;
    let empty = store.read()?;
    record(&store, &orders, 0, 900)?;
    // Right after the commits: some are still in the overlay.
    assert_eq!(check(&store.read()?)?, 900);
    wait_applied(&store)?;
    let applied = store.read()?;
    assert_eq!(check(&applied)?, 900);
    let before = store.stats().instrument_tails();
    assert!(before.reads > 0 && before.instruments >= 3, "{before:?}");
    // Later fills: the older snapshots still see only what they held.
    record(&store, &orders, 900, 1300)?;
    assert_eq!(check(&applied)?, 900);
    assert_eq!(check(&empty)?, 0);
    wait_applied(&store)?;
    assert_eq!(check(&store.read()?)?, 1300);
    let after = store.stats().instrument_tails();
    assert!(after.reads > before.reads, "{after:?}");
    assert!(after.bytes > 0, "{after:?}");
    Ok(())
}

#[test]
fn readers_racing_the_applier_see_exactly_their_snapshot() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 64)?;
    let orders = prepare(&store)?;
    record(&store, &orders, 0, 300)?;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> TestResult {
        let writer = s.spawn(|| {
            let r = record(&store, &orders, 300, 1500).map_err(|e| e.to_string());
            done.store(true, Ordering::SeqCst);
            r
        });
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<usize, String> {
                    let mut rounds = 0;
                    let mut held: Option<(ReadTx, usize)> = None;
                    while !done.load(Ordering::SeqCst) {
                        let snap = store.read().map_err(|e| e.to_string())?;
                        let n = check(&snap).map_err(|e| e.to_string())?;
                        // A snapshot kept across later commits answers as it did.
                        if let Some((old, was)) = &held {
                            let again = check(old).map_err(|e| e.to_string())?;
                            if again != *was {
                                return Err(format!("held snapshot: {was} then {again}"));
                            }
                        }
                        if rounds % 4 == 0 {
                            held = Some((snap, n));
                        }
                        rounds += 1;
                    }
                    Ok(rounds)
                })
            })
            .collect();
        writer.join().map_err(|_| "the writer panicked")??;
        for r in readers {
            let rounds = r.join().map_err(|_| "a reader panicked")??;
            assert!(rounds > 0);
        }
        Ok(())
    })?;
    wait_applied(&store)?;
    assert_eq!(check(&store.read()?)?, 1500);
    Ok(())
}

/// A walk reads its instrument's group a chunk at a time and lets go of it in between.
/// Fills committed meanwhile can trim the group's oldest entries until its floor is above
/// where the walk stopped: the walk then goes on below that point in redb, never again from
/// the new floor (which visited entries twice).
#[test]
fn a_walk_goes_on_below_where_it_was_when_its_group_is_trimmed_under_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open(dir.path(), 64)?;
    let orders = prepare(&store)?;
    let order = &orders[0];
    let put = |from: i64, to: i64| -> TestResult {
        for ts in from..to {
            record_at(&store, order, ts)?;
        }
        Ok(())
    };
    put(0, 300)?;
    wait_applied(&store)?;
    let snap = store.read()?;
    let spec = snap.index(INDEX)?;
    let prefix = tradestore::keys::encode(&[Value::U64(order.instrument)]);
    let end = tradestore::keys::prefix_end(&prefix).ok_or("no end")?;
    let range = (Bound::Included(&prefix[..]), Bound::Excluded(&end[..]));
    // Seeds the group: the instrument's newest entries, held in memory.
    assert_eq!(snap.recent_trades(order.instrument, 10)?.len(), 10);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut failed = None;
    snap.raw_range(
        tradestore::Source::Index(&spec),
        range,
        true,
        &mut |k, _| {
            seen.push(k.to_vec());
            if seen.len() == 128 {
                // Past the first chunk: 200 newer fills trim the group to its newest 256
                // entries, which now end above this point.
                let more = put(1000, 1200).and_then(|()| wait_applied(&store));
                if let Err(e) = more {
                    failed = Some(e.to_string());
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let mut want: Vec<Vec<u8>> = Vec::new();
    snap.raw_range(
        tradestore::Source::Index(&spec),
        range,
        false,
        &mut |k, _| {
            want.push(k.to_vec());
            Ok(true)
        },
    )?;
    want.reverse();
    assert_eq!(want.len(), 300);
    assert_eq!(seen.len(), want.len(), "every entry once");
    assert!(seen == want, "newest first, as the snapshot holds them");
    assert!(store.stats().instrument_tails().reads >= 2);
    Ok(())
}

#[test]
fn a_restore_replaces_what_the_tails_held() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = open(&dir.path().join("source"), 0)?;
    let orders = prepare(&source)?;
    record(&source, &orders, 0, 400)?;
    let dump = dump_bytes(&source)?;
    // The tails can be off: the walks read redb, with the same answers.
    assert_eq!(check(&source.read()?)?, 400);
    assert_eq!(
        source.stats().instrument_tails(),
        tradestore::InstrumentTailStats::default()
    );

    let store = open(&dir.path().join("restored"), 64)?;
    let empty = store.read()?;
    // Read before the restore: each instrument's (empty) tail is held.
    assert_eq!(check(&empty)?, 0);
    restore_bytes(&store, &dump)?;
    assert_eq!(check(&empty)?, 0, "a snapshot from before the restore");
    assert_eq!(check(&store.read()?)?, 400);
    // The restored store takes fills of its own on top.
    let mut more = source.read()?.all::<Order>()?;
    more.sort_by_key(|o| o.id);
    record(&store, &more, 400, 500)?;
    assert_eq!(check(&store.read()?)?, 500);
    wait_applied(&store)?;
    assert_eq!(check(&store.read()?)?, 500);
    Ok(())
}
