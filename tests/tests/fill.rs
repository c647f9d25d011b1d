//! Recording fills: one atomic write of the trade, the order, the position and the cash;
//! refused fills and failed transactions leave nothing behind; everything survives a reopen;
//! the consistency check stays clean.

use tradestore::{Error, ErrorKind, ReadOps, Store};
use tradestore_schema::{Cash, Money, Order, OrderStatus, Position, Side, Trade, Value};
use tradestore_tests::{
    ACME, ALPHA, BETA, BOLT, DELTA, TempStore, TestResult, account, assert_clean, dump_bytes,
    expect_err, fill, limit, market, money, seed, seed_orders, units, workload,
};

fn position_of(store: &Store, account: u64, instrument: u64) -> TestResult<Option<Position>> {
    Ok(store
        .read()?
        .get(&[Value::U64(account), Value::U64(instrument)])?)
}

fn cash_of(store: &Store, account: u64, currency: &str) -> TestResult<Option<Money>> {
    let cash: Option<Cash> = store.read()?.get(&[account.into(), currency.into()])?;
    Ok(cash.map(|c| c.amount))
}

#[test]
fn a_fill_writes_trade_order_position_and_cash() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, sell_bolt, _] = seed_orders();

    // Buy 4 of 10 at 99.5 with a fee of 1: cost 398, cash 10000 - 398 - 1.
    let first = fill(1, &buy, 4, "99.5", "1", 20);
    let outcome = store.write(|tx| tx.record_fill(&first))?;
    let expected_order = Order {
        filled_quantity: units(4),
        status: OrderStatus::PartiallyFilled,
        updated_ts: 20,
        ..buy.clone()
    };
    let expected_position = Position {
        account: ALPHA,
        instrument: ACME,
        quantity: units(4),
        cost_basis: money("398"),
        realized_pnl: money("-1"),
        updated_ts: 20,
        last_trade_id: 1,
    };
    assert_eq!(outcome.order, expected_order);
    assert_eq!(outcome.position, expected_position);
    assert_eq!(outcome.cash.amount, money("9601"));
    // What the outcome says is what a new snapshot reads.
    let tx = store.read()?;
    assert_eq!(tx.get_id::<Trade>(1)?, Some(first.clone()));
    assert_eq!(tx.get_id::<Order>(buy.id)?, Some(expected_order));
    assert_eq!(tx.positions_of(ALPHA)?, [expected_position]);
    assert_eq!(
        tx.get::<Cash>(&[ALPHA.into(), "USD".into()])?,
        Some(outcome.cash)
    );
    assert_eq!(tx.recent_trades(ACME, 10)?, [first]);
    drop(tx);

    // The rest at 100, no fee: filled; cost 998; cash 9001.
    let outcome = store.write(|tx| tx.record_fill(&fill(2, &buy, 6, "100", "0", 21)))?;
    assert_eq!(outcome.order.status, OrderStatus::Filled);
    assert_eq!(outcome.order.filled_quantity, units(10));
    assert_eq!(
        (outcome.position.quantity, outcome.position.cost_basis),
        (units(10), money("998"))
    );
    assert_eq!(outcome.cash.amount, money("9001"));
    assert!(
        store
            .read()?
            .open_orders_of(ALPHA)?
            .iter()
            .all(|o| o.id != buy.id)
    );

    // Sell 4 at 110.5, fee 0.5: 4/10 of the basis (399.2) goes, 442 comes in, so the
    // realised P&L is -1 + 42.8 - 0.5 and the cash 9001 + 442 - 0.5.
    let sell = limit(4, ALPHA, ACME, Side::Sell, 4, "110");
    store.write(|tx| tx.insert(&sell))?;
    let outcome = store.write(|tx| tx.record_fill(&fill(3, &sell, 4, "110.5", "0.5", 22)))?;
    assert_eq!(
        outcome.position,
        Position {
            quantity: units(6),
            cost_basis: money("598.8"),
            realized_pnl: money("41.3"),
            updated_ts: 22,
            ..outcome.position.clone()
        }
    );
    assert_eq!(outcome.cash.amount, money("9442.5"));

    // A first fill in another currency opens a short and a EUR balance.
    let outcome =
        store.write(|tx| tx.record_fill(&fill(4, &sell_bolt, 10, "50.05", "0.25", 23)))?;
    assert_eq!(
        (outcome.position.quantity, outcome.position.cost_basis),
        (units(-10), money("-500.5"))
    );
    assert_eq!(cash_of(&store, ALPHA, "EUR")?, Some(money("500.25")));
    assert_eq!(cash_of(&store, ALPHA, "USD")?, Some(money("9442.5")));
    assert_clean(&store)
}

#[test]
fn a_fill_can_flip_a_position() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let short = market(10, BETA, ACME, Side::Sell, 10);
    let cover = market(11, BETA, ACME, Side::Buy, 14);
    store.write(|tx| {
        tx.insert(&short)?;
        tx.insert(&cover)?;
        tx.record_fill(&fill(1, &short, 10, "100", "0", 5))?;
        // Closes 10 (basis -1000, cost 900: +100) and opens 4 long at 90.
        tx.record_fill(&fill(2, &cover, 14, "90", "0", 6))
    })?;
    let p = position_of(&store, BETA, ACME)?.ok_or("no position")?;
    assert_eq!(
        (p.quantity, p.cost_basis, p.realized_pnl),
        (units(4), money("360"), money("100"))
    );
    // Cash: +1000 then -1260, starting from no BETA cash row.
    assert_eq!(cash_of(&store, BETA, "USD")?, Some(money("-260")));
    assert_clean(&store)
}

#[test]
fn refused_fills_change_nothing() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, sell_bolt, mkt] = seed_orders();
    store.write(|tx| {
        tx.record_fill(&fill(5, &buy, 4, "99", "0", 2))?;
        tx.put(&Order {
            status: OrderStatus::Cancelled,
            updated_ts: 3,
            ..sell_bolt.clone()
        })
    })?;
    let good = fill(6, &buy, 1, "99", "0", 4);
    let bad = [
        ("overfill", fill(6, &buy, 7, "99", "0", 4)),
        (
            "wrong side",
            Trade {
                side: Side::Sell,
                ..good.clone()
            },
        ),
        (
            "wrong account",
            Trade {
                account: BETA,
                ..good.clone()
            },
        ),
        (
            "missing account",
            Trade {
                account: 99,
                ..good.clone()
            },
        ),
        (
            "wrong instrument",
            Trade {
                instrument: BOLT,
                ..good.clone()
            },
        ),
        (
            "same trade id as the last",
            Trade {
                id: 5,
                ..good.clone()
            },
        ),
        (
            "smaller trade id",
            Trade {
                id: 2,
                ..good.clone()
            },
        ),
        ("above the buy limit", fill(6, &buy, 1, "100.01", "0", 4)),
        ("price off the tick", fill(6, &buy, 1, "99.001", "0", 4)),
        ("price 0", fill(6, &buy, 1, "0", "0", 4)),
        ("quantity 0", fill(6, &buy, 0, "99", "0", 4)),
        ("negative fee", fill(6, &buy, 1, "99", "-1", 4)),
        ("cancelled order", fill(6, &sell_bolt, 10, "50", "0", 4)),
        (
            "order of another account",
            Trade {
                order_id: mkt.id,
                ..good.clone()
            },
        ),
        (
            "missing order",
            Trade {
                order_id: 99,
                ..good.clone()
            },
        ),
    ];
    let before = dump_bytes(&store)?;
    for (what, trade) in &bad {
        expect_err(
            store.write(|tx| tx.record_fill(trade)),
            ErrorKind::Constraint,
        )
        .map_err(|e| format!("{what}: {e}"))?;
        assert_eq!(dump_bytes(&store)?, before, "{what} left a trace");
    }

    // Inside a transaction that goes on and commits, a refused fill leaves no part of itself
    // (no trade, order, position or cash change) next to the writes around it.
    store.write(|tx| {
        tx.insert(&account(9, "nine"))?;
        for (what, trade) in &bad {
            if tx.record_fill(trade).is_ok() {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("{what} was accepted"),
                ));
            }
        }
        tx.insert(&account(10, "ten"))
    })?;
    let reference = TempStore::new()?;
    tradestore_tests::restore_bytes(&reference, &before)?;
    reference.write(|tx| {
        tx.insert(&account(9, "nine"))?;
        tx.insert(&account(10, "ten"))
    })?;
    assert_eq!(dump_bytes(&store)?, dump_bytes(&reference)?);

    // The good fill still goes through afterwards.
    store.write(|tx| tx.record_fill(&good))?;
    assert_clean(&store)
}

#[test]
fn a_failed_transaction_leaves_nothing_behind() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, ..] = seed_orders();
    let before = dump_bytes(&store)?;

    // The caller gives up after writing to every table.
    let err = store.write(|tx| -> tradestore::Result<()> {
        tx.insert(&account(9, "nine"))?;
        tx.insert(&tradestore_tests::instrument(9, "NINE", "CHF"))?;
        let o = limit(9, 9, 9, Side::Buy, 3, "10");
        tx.insert(&o)?;
        tx.record_fill(&fill(1, &o, 2, "10", "0.1", 5))?;
        tx.record_fill(&fill(2, &buy, 10, "100", "1", 5))?;
        tx.put(&Cash {
            account: DELTA,
            currency: "USD".into(),
            amount: money("1"),
        })?;
        tx.delete::<tradestore_schema::Account>(&[Value::U64(DELTA)])?;
        Err(Error::new(ErrorKind::Invalid, "the caller gives up"))
    });
    expect_err(err, ErrorKind::Invalid)?;
    assert_eq!(dump_bytes(&store)?, before);

    // An engine error half way through, passed on with `?`, does the same.
    let err = store.write(|tx| {
        tx.record_fill(&fill(1, &buy, 3, "100", "0", 5))?;
        tx.insert(&account(9, "nine"))?;
        tx.insert(&account(9, "nine again"))
    });
    expect_err(err, ErrorKind::Constraint)?;
    assert_eq!(dump_bytes(&store)?, before);

    // And the store goes on accepting writes.
    store.write(|tx| tx.record_fill(&fill(1, &buy, 3, "100", "0", 5)))?;
    assert_eq!(
        position_of(&store, ALPHA, ACME)?.map(|p| p.quantity),
        Some(units(3))
    );
    assert_clean(&store)
}

#[test]
fn reopening_keeps_everything() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 11, 40)?;
    let before = dump_bytes(&store)?;
    let trades = store.read()?.count(tradestore_schema::TableId::Trades)?;
    assert!(trades > 10, "the workload recorded only {trades} fills");

    let store = store.reopen()?;
    assert_eq!(dump_bytes(&store)?, before);
    assert_clean(&store)?;
    // Ids continue after the reopen, and writes keep working.
    workload(&store, 12, 5)?;
    let store = store.reopen()?;
    let after = dump_bytes(&store)?;
    assert!(after.len() > before.len());
    assert_clean(&store)
}

#[test]
fn check_is_clean_after_many_fills() -> TestResult {
    let store = TempStore::new()?;
    workload(&store, 3, 60)?;
    let tx = store.read()?;
    let trades = tx.count(tradestore_schema::TableId::Trades)?;
    let positions = tx.count(tradestore_schema::TableId::Positions)?;
    drop(tx);
    assert!(
        trades > 20 && positions > 3,
        "{trades} fills, {positions} positions"
    );
    assert_clean(&store)
}
