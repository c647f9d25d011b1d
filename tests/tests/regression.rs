//! Regressions: a write the public API accepts must leave a store that the consistency
//! check finds clean and whose dump restores. Each test is named after a write that broke
//! this: the engine validated the row written but not the rows that depend on it, which the
//! check (and so restore) validates against the new values. Such writes are now refused.

use tradestore::{ErrorKind, ReadOps, Store};
use tradestore_schema::{Instrument, Order};
use tradestore_tests::{
    ACME, BOLT, TempStore, TestResult, dump_bytes, fill, price, restore_bytes, seed, seed_orders,
    units,
};

/// After `write`, accepted or refused with a constraint error, the store must check clean
/// and its dump must restore into a fresh store.
fn stays_consistent(
    store: &Store,
    write: impl FnOnce(&mut tradestore::WriteTx) -> tradestore::Result<()>,
) -> TestResult {
    match store.write(write) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Constraint => {}
        Err(e) => return Err(e.into()),
    }
    let report = store.check(&mut |_, _| {})?;
    let copy = TempStore::new()?;
    let restored = restore_bytes(&copy, &dump_bytes(store)?);
    assert!(
        report.is_clean() && restored.is_ok(),
        "after the write: check found {:#?}; restoring the dump gave {:?}",
        report.violations,
        restored.err().map(|e| e.to_string())
    );
    Ok(())
}

/// A buy limit 100 filled at 100, then re-priced to 99: the put was accepted, after which
/// check reported trade 1 as breaking the order's (new) limit and the dump did not restore.
#[test]
fn amended_limit_below_an_earlier_fill() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, ..] = seed_orders();
    store.write(|tx| tx.record_fill(&fill(1, &buy, 4, "100", "0", 2)).map(|_| ()))?;
    let partial: Order = store.read()?.get_id(buy.id)?.ok_or("order 1")?;
    stays_consistent(&store, |tx| {
        tx.put(&Order {
            price: Some(price("99")),
            updated_ts: 3,
            ..partial
        })
        .map(|_| ())
    })
}

/// ACME's tick changed from 0.01 to 0.03 while order 1 is priced at 100: was accepted,
/// after which check reported order 1 off the tick and the dump did not restore.
#[test]
fn instrument_tick_changed_under_priced_orders() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let acme: Instrument = store.read()?.get_id(ACME)?.ok_or("ACME")?;
    stays_consistent(&store, |tx| {
        tx.put(&Instrument {
            tick_size: price("0.03"),
            ..acme
        })
        .map(|_| ())
    })
}

/// BOLT's lot changed from 10 to 30 while order 2 is for 20: was accepted, after which
/// check reported order 2 off the lot and the dump did not restore.
#[test]
fn instrument_lot_changed_under_orders() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let bolt: Instrument = store.read()?.get_id(BOLT)?.ok_or("BOLT")?;
    stays_consistent(&store, |tx| {
        tx.put(&Instrument {
            lot_size: units(30),
            ..bolt
        })
        .map(|_| ())
    })
}
