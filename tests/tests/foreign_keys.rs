//! Foreign keys: children need their parents; deleting a parent is refused while
//! `restrict` children exist and takes its `cascade` children (cash, positions) with it.

use tradestore::{ErrorKind, IndexScan, ReadOps, Store};
use tradestore_schema::{
    Account, Cash, Instrument, Order, OrderStatus, Position, Side, TableId, Trade, Value,
};
use tradestore_tests::{
    ACME, ALPHA, BETA, BOLT, DELTA, GAMMA, TempStore, TestResult, account, assert_clean,
    dump_bytes, expect_err, fill, instrument, limit, market, money, restore_bytes, seed,
    seed_orders, units,
};

/// Refuses `write` with a constraint error and checks the store did not change.
fn refused(
    store: &Store,
    write: impl FnOnce(&mut tradestore::WriteTx) -> tradestore::Result<()>,
) -> TestResult {
    let before = dump_bytes(store)?;
    expect_err(store.write(write), ErrorKind::Constraint)?;
    assert_eq!(dump_bytes(store)?, before);
    Ok(())
}

#[test]
fn orders_need_their_account_and_instrument() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    refused(&store, |tx| {
        tx.insert(&limit(10, 99, ACME, Side::Buy, 1, "1"))
    })?;
    refused(&store, |tx| {
        tx.insert(&limit(10, ALPHA, 99, Side::Buy, 1, "1"))
    })?;
    refused(&store, |tx| tx.insert(&market(10, 98, 99, Side::Buy, 1)))?;
    // With the parents written first in the same transaction, the order goes in.
    store.write(|tx| {
        tx.insert(&account(99, "late"))?;
        tx.insert(&instrument(99, "LATE", "USD"))?;
        tx.insert(&limit(10, 99, 99, Side::Buy, 1, "1"))
    })?;
    assert_clean(&store)
}

#[test]
fn fills_need_their_order() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let ghost = limit(99, ALPHA, ACME, Side::Buy, 5, "100");
    refused(&store, |tx| {
        tx.record_fill(&fill(1, &ghost, 1, "100", "0", 2))
            .map(|_| ())
    })?;
    assert_eq!(store.read()?.count(TableId::Trades)?, 0);
    Ok(())
}

#[test]
fn cash_needs_its_account() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    refused(&store, |tx| {
        tx.put(&Cash {
            account: 99,
            currency: "USD".into(),
            amount: money("1"),
        })
        .map(|_| ())
    })
}

#[test]
fn an_account_with_orders_cannot_be_deleted() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    // ALPHA has open orders and cash; BETA has an order only.
    refused(&store, |tx| {
        tx.delete::<Account>(&[Value::U64(ALPHA)]).map(|_| ())
    })?;
    refused(&store, |tx| {
        tx.delete::<Account>(&[Value::U64(BETA)]).map(|_| ())
    })?;
    // A cancelled order still holds its account: orders are history.
    let [_, _, mkt] = seed_orders();
    store.write(|tx| {
        tx.put(&Order {
            status: OrderStatus::Cancelled,
            updated_ts: 2,
            ..mkt.clone()
        })
    })?;
    refused(&store, |tx| {
        tx.delete::<Account>(&[Value::U64(BETA)]).map(|_| ())
    })?;
    // Once its order is deleted (it has no fills), the account can go.
    store.write(|tx| {
        tx.delete::<Order>(&[Value::U64(mkt.id)])?;
        tx.delete::<Account>(&[Value::U64(BETA)])
    })?;
    assert_eq!(store.read()?.get_id::<Account>(BETA)?, None);
    assert_clean(&store)
}

#[test]
fn deleting_an_account_without_orders_deletes_its_cash() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    assert_eq!(store.read()?.prefix::<Cash>(&[Value::U64(DELTA)])?.len(), 2);
    let gone = store.write(|tx| tx.delete::<Account>(&[Value::U64(DELTA)]))?;
    assert_eq!(gone.map(|a| a.id), Some(DELTA));
    let tx = store.read()?;
    assert_eq!(tx.prefix::<Cash>(&[Value::U64(DELTA)])?, []);
    // Other accounts' cash stays.
    assert_eq!(
        tx.all::<Cash>()?
            .iter()
            .map(|c| c.account)
            .collect::<Vec<_>>(),
        [ALPHA]
    );
    // An account with nothing at all deletes cleanly too.
    drop(tx);
    assert_eq!(
        store
            .write(|tx| tx.delete::<Account>(&[Value::U64(GAMMA)]))?
            .map(|a| a.id),
        Some(GAMMA)
    );
    assert_clean(&store)
}

#[test]
fn deleting_an_account_deletes_its_positions() -> TestResult {
    // Fills need orders, and orders keep their account; so the one way to hold a position
    // without orders is a restored flat position (no fills fold to zero).
    let store = TempStore::new()?;
    seed(&store)?;
    let flat = Position {
        account: DELTA,
        instrument: BOLT,
        quantity: units(0),
        cost_basis: money("0"),
        realized_pnl: money("0"),
        updated_ts: 7,
        last_trade_id: 0,
    };
    let line = format!(
        "{{\"table\":\"positions\",\"record\":{{\"account\":{DELTA},\"instrument\":{BOLT},\"quantity\":0,\"cost_basis\":0,\"realized_pnl\":0,\"updated_ts\":7,\"last_trade_id\":0}}}}\n{{\"end\":{{\"rows\":1}}}}\n"
    );
    restore_bytes(&store, line.as_bytes())?;
    let tx = store.read()?;
    assert_eq!(tx.positions_of(DELTA)?, std::slice::from_ref(&flat));
    let by_account = IndexScan::prefix([Value::U64(DELTA)]);
    assert_eq!(
        tx.index_scan::<Position>("positions_by_account", &by_account)?,
        [flat]
    );
    drop(tx);
    assert_clean(&store)?;

    // The position holds its instrument (restrict) but goes with its account (cascade).
    refused(&store, |tx| {
        tx.delete::<Instrument>(&[Value::U64(BOLT)]).map(|_| ())
    })?;
    store.write(|tx| tx.delete::<Account>(&[Value::U64(DELTA)]))?;
    let tx = store.read()?;
    assert_eq!(tx.positions_of(DELTA)?, []);
    assert_eq!(
        tx.index_scan::<Position>("positions_by_account", &by_account)?,
        []
    );
    assert_eq!(tx.prefix::<Cash>(&[Value::U64(DELTA)])?, []);
    drop(tx);
    assert_clean(&store)
}

#[test]
fn an_order_with_fills_cannot_be_deleted() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, sell, _] = seed_orders();
    store.write(|tx| tx.record_fill(&fill(1, &buy, 2, "100", "0", 2)).map(|_| ()))?;
    refused(&store, |tx| {
        tx.delete::<Order>(&[Value::U64(buy.id)]).map(|_| ())
    })?;
    // An order without fills can be deleted, whatever its status, and leaves its indexes.
    let gone = store.write(|tx| tx.delete::<Order>(&[Value::U64(sell.id)]))?;
    assert_eq!(gone, Some(sell.clone()));
    let tx = store.read()?;
    let scan = IndexScan::prefix([Value::U64(ALPHA)]);
    let ids: Vec<u64> = tx
        .index_scan::<Order>("orders_by_account_status", &scan)?
        .iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(ids, [buy.id]);
    assert_eq!(
        tx.index_scan::<Order>(
            "orders_by_instrument_status",
            &IndexScan::prefix([Value::U64(BOLT)])
        )?,
        []
    );
    let trades: Vec<Trade> =
        tx.index_scan("trades_by_order", &IndexScan::prefix([Value::U64(buy.id)]))?;
    assert_eq!(trades.len(), 1);
    drop(tx);
    assert_clean(&store)
}

#[test]
fn an_instrument_with_orders_cannot_be_deleted() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    refused(&store, |tx| {
        tx.delete::<Instrument>(&[Value::U64(ACME)]).map(|_| ())
    })?;
    refused(&store, |tx| {
        tx.delete::<Instrument>(&[Value::U64(BOLT)]).map(|_| ())
    })?;
    // Without orders or positions it can go, and deleting what is not there is no error.
    store.write(|tx| tx.insert(&instrument(9, "NINE", "USD")))?;
    let gone = store.write(|tx| tx.delete::<Instrument>(&[Value::U64(9)]))?;
    assert_eq!(gone.map(|i| i.symbol), Some("NINE".to_owned()));
    assert_eq!(
        store.write(|tx| tx.delete::<Instrument>(&[Value::U64(9)]))?,
        None
    );
    assert_eq!(
        store.write(|tx| tx.delete::<Account>(&[Value::U64(77)]))?,
        None
    );
    assert_eq!(
        store.write(|tx| tx.delete::<Order>(&[Value::U64(77)]))?,
        None
    );
    assert_clean(&store)
}
