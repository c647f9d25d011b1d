//! Secondary indexes: after a seeded workload every lookup through every built-in index (by
//! each prefix present, forwards, backwards, limited and bounded) returns what filtering a
//! full scan in memory returns, in the same order; the unique symbol index; index entries
//! that move when an order's status changes.

use std::collections::BTreeSet;
use std::ops::{Bound, RangeBounds};

use tradestore::{ErrorKind, IndexScan, ReadOps};
use tradestore_schema::table::builtin_indexes;
use tradestore_schema::{
    Cash, IndexDef, Instrument, Order, OrderStatus, Position, Record, Side, TableId, Trade, Value,
};
use tradestore_tests::{
    ACME, ALPHA, BETA, BOLT, TempStore, TestResult, assert_clean, cancel, expect_err,
    expected_scan, fill, index_key, index_prefixes, instrument, limit, price, seed, seed_orders,
    workload,
};

/// Compares every lookup through `def` with the rows of its table filtered in memory.
/// Returns the number of lookups made.
fn check_index<R: Record>(tx: &impl ReadOps, def: &IndexDef) -> TestResult<usize> {
    let rows: Vec<R> = tx.all()?;
    let name = &def.name;
    let mut scans = 0;
    let mut lookup = |scan: &IndexScan| -> TestResult<Vec<R>> {
        scans += 1;
        Ok(tx.index_scan(name, scan)?)
    };
    assert_eq!(
        lookup(&IndexScan::default())?,
        expected_scan(def, &rows, &[]),
        "{name}: the whole index"
    );
    for prefix in index_prefixes(def, &rows) {
        let expected = expected_scan(def, &rows, &prefix);
        let reversed: Vec<R> = expected.iter().rev().cloned().collect();
        let by_prefix = IndexScan::prefix(prefix.clone());
        assert_eq!(lookup(&by_prefix)?, expected, "{name} by {prefix:?}");
        assert_eq!(
            lookup(&by_prefix.clone().reverse())?,
            reversed,
            "{name} by {prefix:?}, reversed"
        );
        for n in [0, 1, 3] {
            let first_n: Vec<R> = expected.iter().take(n).cloned().collect();
            let last_n: Vec<R> = reversed.iter().take(n).cloned().collect();
            assert_eq!(
                lookup(&by_prefix.clone().limit(n))?,
                first_n,
                "{name} by {prefix:?}, first {n}"
            );
            assert_eq!(
                lookup(&by_prefix.clone().reverse().limit(n))?,
                last_n,
                "{name} by {prefix:?}, last {n}"
            );
        }
        // Bounds apply to the column after the prefix (the primary key after the last one).
        let col = prefix.len();
        let values: Vec<Value> = expected
            .iter()
            .map(|r| index_key(def, r)[col].clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut samples: Vec<&Value> =
            [values.first(), values.get(values.len() / 2), values.last()]
                .into_iter()
                .flatten()
                .collect();
        samples.dedup();
        for v in samples {
            let bounds = [
                (Bound::Included(v.clone()), Bound::Unbounded),
                (Bound::Excluded(v.clone()), Bound::Unbounded),
                (Bound::Unbounded, Bound::Included(v.clone())),
                (Bound::Unbounded, Bound::Excluded(v.clone())),
                (
                    Bound::Included(values[0].clone()),
                    Bound::Excluded(v.clone()),
                ),
                (
                    Bound::Excluded(values[0].clone()),
                    Bound::Included(v.clone()),
                ),
            ];
            for (lower, upper) in bounds {
                let want: Vec<R> = expected
                    .iter()
                    .filter(|r| (lower.as_ref(), upper.as_ref()).contains(&index_key(def, *r)[col]))
                    .cloned()
                    .collect();
                let scan = by_prefix.clone().from(lower.clone()).to(upper.clone());
                assert_eq!(
                    lookup(&scan)?,
                    want,
                    "{name} by {prefix:?} in {lower:?}..{upper:?}"
                );
                let want_rev: Vec<R> = want.iter().rev().take(2).cloned().collect();
                assert_eq!(
                    lookup(&scan.reverse().limit(2))?,
                    want_rev,
                    "{name} by {prefix:?} in {lower:?}..{upper:?}, last 2"
                );
            }
        }
    }
    Ok(scans)
}

/// [`check_index`] over every built-in index.
fn check_all_indexes(tx: &impl ReadOps) -> TestResult<usize> {
    let mut scans = 0;
    for def in builtin_indexes() {
        scans += match def.table {
            TableId::Instruments => check_index::<Instrument>(tx, &def)?,
            TableId::Accounts => check_index::<tradestore_schema::Account>(tx, &def)?,
            TableId::Orders => check_index::<Order>(tx, &def)?,
            TableId::Trades => check_index::<Trade>(tx, &def)?,
            TableId::Positions => check_index::<Position>(tx, &def)?,
            TableId::Cash => check_index::<Cash>(tx, &def)?,
        };
    }
    Ok(scans)
}

#[test]
fn the_store_has_the_builtin_indexes() -> TestResult {
    let store = TempStore::new()?;
    let names: Vec<String> = store.indexes().iter().map(|s| s.def.name.clone()).collect();
    for def in builtin_indexes() {
        assert!(
            names.contains(&def.name),
            "{} missing from {names:?}",
            def.name
        );
        let spec = store.read()?.index(&def.name)?;
        assert_eq!(spec.def, def);
    }
    let tx = store.read()?;
    expect_err(tx.index("no_such_index"), ErrorKind::NotFound)?;
    expect_err(
        tx.index_scan::<Trade>("orders_by_account_status", &IndexScan::default()),
        ErrorKind::Invalid,
    )?;
    Ok(())
}

#[test]
fn index_lookups_agree_with_filtered_scans_after_a_workload() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 7, 50)?;
    let tx = store.read()?;
    assert!(
        tx.count(TableId::Trades)? > 20,
        "the workload made too few fills"
    );
    let scans = check_all_indexes(&tx)?;
    assert!(scans > 1000, "only {scans} lookups");

    // The lookups built on the indexes agree too.
    let trades: Vec<Trade> = tx.all()?;
    let orders: Vec<Order> = tx.all()?;
    let positions: Vec<Position> = tx.all()?;
    for i in tx.all::<Instrument>()? {
        let mut want: Vec<Trade> = trades
            .iter()
            .filter(|t| t.instrument == i.id)
            .cloned()
            .collect();
        want.sort_by_key(|t| (std::cmp::Reverse(t.ts), std::cmp::Reverse(t.id)));
        want.truncate(4);
        assert_eq!(
            tx.recent_trades(i.id, 4)?,
            want,
            "recent trades of {}",
            i.id
        );
    }
    for a in tx.all::<tradestore_schema::Account>()? {
        let open: Vec<Order> = orders
            .iter()
            .filter(|o| o.account == a.id && o.status.is_open())
            .cloned()
            .collect();
        assert_eq!(tx.open_orders_of(a.id)?, open, "open orders of {}", a.id);
        let held: Vec<Position> = positions
            .iter()
            .filter(|p| p.account == a.id)
            .cloned()
            .collect();
        assert_eq!(tx.positions_of(a.id)?, held, "positions of {}", a.id);
    }
    drop(tx);
    assert_clean(&store)
}

#[test]
fn index_lookups_inside_a_write_see_its_writes() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 8, 10)?;
    let [buy, ..] = seed_orders();
    let mut inside = Ok(0);
    store.write(|tx| {
        let trade_id = tx.next_id(TableId::Trades)?;
        let order_id = tx.next_id(TableId::Orders)?;
        let account_id = tx.next_id(TableId::Accounts)?;
        tx.insert(&tradestore_tests::account(account_id, "new"))?;
        let sell = limit(order_id, account_id, ACME, Side::Sell, 5, "90");
        tx.insert(&sell)?;
        tx.record_fill(&fill(trade_id, &sell, 2, "95", "0", 5000))?;
        if let Some(o) = tx.get_id::<Order>(buy.id)?.filter(|o| o.status.is_open()) {
            tx.put(&Order {
                status: OrderStatus::Cancelled,
                updated_ts: o.updated_ts.max(5000),
                ..o
            })?;
        }
        tx.insert(&instrument(90, "NEW", "USD"))?;
        inside = check_all_indexes(tx);
        Ok(())
    })?;
    inside?;
    check_all_indexes(&store.read()?)?;
    assert_clean(&store)
}

#[test]
fn the_symbol_index_is_unique() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let by_symbol = |symbol: &str| IndexScan::prefix([Value::from(symbol)]);
    let clash = instrument(9, "ACME", "EUR");
    expect_err(store.write(|tx| tx.insert(&clash)), ErrorKind::Constraint)?;
    let bolt_as_acme = Instrument {
        symbol: "ACME".into(),
        ..store.read()?.get_id::<Instrument>(BOLT)?.ok_or("BOLT")?
    };
    expect_err(
        store.write(|tx| tx.put(&bolt_as_acme)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| {
            tx.insert(&instrument(10, "TWIN", "USD"))?;
            tx.insert(&instrument(11, "TWIN", "USD"))
        }),
        ErrorKind::Constraint,
    )?;
    let tx = store.read()?;
    assert_eq!(
        tx.index_scan::<Instrument>("instruments_by_symbol", &by_symbol("ACME"))?
            .len(),
        1
    );
    assert_eq!(
        tx.index_scan::<Instrument>("instruments_by_symbol", &by_symbol("TWIN"))?,
        []
    );
    assert_eq!(tx.get_id::<Instrument>(9)?, None);
    drop(tx);

    // Renaming frees the old symbol; deleting frees it too.
    store.write(|tx| {
        tx.put(&instrument(ACME, "ACME.OLD", "USD"))?;
        tx.insert(&clash)?;
        tx.insert(&instrument(12, "GONE", "USD"))?;
        tx.delete::<Instrument>(&[Value::U64(12)])?;
        tx.insert(&instrument(13, "GONE", "USD"))
    })?;
    let tx = store.read()?;
    let ids = |symbol: &str| -> TestResult<Vec<u64>> {
        Ok(tx
            .index_scan::<Instrument>("instruments_by_symbol", &by_symbol(symbol))?
            .iter()
            .map(|i| i.id)
            .collect())
    };
    assert_eq!(ids("ACME")?, [9]);
    assert_eq!(ids("ACME.OLD")?, [ACME]);
    assert_eq!(ids("GONE")?, [13]);
    // Rewriting an instrument with its own symbol is not a clash.
    drop(tx);
    store.write(|tx| tx.put(&instrument(13, "GONE", "CHF")))?;
    assert_clean(&store)
}

#[test]
fn a_status_change_moves_the_order_index_entries() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, ..] = seed_orders();
    let ids_at = |index: &str, owner: u64, status: OrderStatus| -> TestResult<Vec<u64>> {
        let scan = IndexScan::prefix([Value::U64(owner), Value::from(status.name())]);
        Ok(store
            .read()?
            .index_scan::<Order>(index, &scan)?
            .iter()
            .map(|o| o.id)
            .collect())
    };
    let statuses = [
        OrderStatus::New,
        OrderStatus::PartiallyFilled,
        OrderStatus::Filled,
        OrderStatus::Cancelled,
        OrderStatus::Rejected,
    ];
    // Order 1 of ALPHA on ACME is listed under exactly `status` in both order indexes.
    let listed_under = |status: OrderStatus| -> TestResult {
        for s in statuses {
            let by_account = ids_at("orders_by_account_status", ALPHA, s)?.contains(&buy.id);
            let by_instrument = ids_at("orders_by_instrument_status", ACME, s)?.contains(&buy.id);
            assert_eq!(
                (by_account, by_instrument),
                (s == status, s == status),
                "{s} vs {status}"
            );
        }
        Ok(())
    };
    listed_under(OrderStatus::New)?;
    store.write(|tx| tx.record_fill(&fill(1, &buy, 4, "100", "0", 2)))?;
    listed_under(OrderStatus::PartiallyFilled)?;
    store.write(|tx| tx.record_fill(&fill(2, &buy, 6, "100", "0", 3)))?;
    listed_under(OrderStatus::Filled)?;
    assert_eq!(
        ids_at("orders_by_account_status", ALPHA, OrderStatus::New)?,
        [2]
    );

    // A cancel moves order 2 too; its old entry is gone, not duplicated.
    let [_, sell, _] = seed_orders();
    store.write(|tx| {
        tx.put(&Order {
            status: OrderStatus::Cancelled,
            updated_ts: 4,
            ..sell
        })
    })?;
    assert_eq!(
        ids_at("orders_by_account_status", ALPHA, OrderStatus::New)?,
        [0u64; 0]
    );
    assert_eq!(
        ids_at("orders_by_account_status", ALPHA, OrderStatus::Cancelled)?,
        [2]
    );
    assert_eq!(
        ids_at("orders_by_instrument_status", BOLT, OrderStatus::Cancelled)?,
        [2]
    );
    assert_eq!(store.read()?.open_orders_of(ALPHA)?, []);
    check_all_indexes(&store.read()?)?;
    assert_clean(&store)
}

/// The applier writes only each row's last change of a batch into redb. A row in redb
/// changed many times, and a row in redb cancelled, deleted and inserted again, all in quick
/// succession (one apply), end with exactly their final rows and index entries once the store has
/// applied everything and reads come from redb alone.
#[test]
fn rows_changed_many_times_between_applies_keep_only_their_final_index_entries() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    // The seed goes into redb first, so that the changes below move existing entries.
    let store = store.reopen()?;
    let [buy, ..] = seed_orders();
    // One unit at a time: new -> partially filled (nine times) -> filled.
    for (id, ts) in (1..=10).zip(100..) {
        store.write(|tx| tx.record_fill(&fill(id, &buy, 1, "99.5", "0", ts)))?;
    }
    let extra = limit(50, BETA, ACME, Side::Buy, 5, "90");
    store.write(|tx| tx.insert(&extra))?;
    let store = store.reopen()?;
    cancel(&store, &extra, 2)?;
    store.write(|tx| tx.delete::<Order>(&[Value::U64(extra.id)]).map(|_| ()))?;
    let again = Order {
        price: Some(price("91")),
        ..extra.clone()
    };
    store.write(|tx| tx.insert(&again))?;

    // Closing applies the overlay and checkpoints; the reopened store reads redb alone.
    let store = store.reopen()?;
    let tx = store.read()?;
    check_all_indexes(&tx)?;
    let filled = tx.get_id::<Order>(buy.id)?.ok_or("the buy order is gone")?;
    assert_eq!(filled.status, OrderStatus::Filled);
    assert!(tx.open_orders_of(ALPHA)?.iter().all(|o| o.id != buy.id));
    assert_eq!(tx.open_orders_of(BETA)?.last(), Some(&again));
    let cancelled = tx.index_scan::<Order>(
        "orders_by_account_status",
        &IndexScan::prefix([Value::U64(BETA), Value::from("cancelled")]),
    )?;
    assert_eq!(cancelled, []);
    assert_eq!(tx.recent_trades(ACME, 100)?.len(), 10);
    drop(tx);
    assert_clean(&store)
}
