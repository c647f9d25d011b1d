//! Every table through the public write API: insert, get, put and delete; duplicate keys;
//! the business rules on orders and the order life cycle; and the derived tables (trades,
//! positions) that only `record_fill` writes.

use tradestore::{ErrorKind, ReadOps, Store};
use tradestore_schema::{
    Account, AccountStatus, Cash, Instrument, Order, OrderKind, OrderStatus, Position, Price,
    Quantity, Record, Side, Trade, Value,
};
use tradestore_tests::{
    ACME, ALPHA, BETA, BOLT, DELTA, GAMMA, TempStore, TestResult, account, dump_bytes, expect_err,
    fill, instrument, limit, market, money, price, seed, units,
};

/// Inserts `first`, replaces it with `second`, deletes it, checking every step through `get`.
fn round_trip<R: Record>(store: &Store, first: &R, second: &R) -> TestResult {
    let key = first.primary_key();
    assert_eq!(key, second.primary_key(), "both versions share a key");
    store.write(|tx| tx.insert(first))?;
    assert_eq!(store.read()?.get::<R>(&key)?.as_ref(), Some(first));

    let old = store.write(|tx| tx.put(second))?;
    assert_eq!(old.as_ref(), Some(first), "put returns the replaced row");
    assert_eq!(store.read()?.get::<R>(&key)?.as_ref(), Some(second));

    let gone = store.write(|tx| tx.delete::<R>(&key))?;
    assert_eq!(
        gone.as_ref(),
        Some(second),
        "delete returns the deleted row"
    );
    assert_eq!(store.read()?.get::<R>(&key)?, None);
    assert_eq!(
        store.write(|tx| tx.delete::<R>(&key))?,
        None,
        "nothing left"
    );
    Ok(())
}

#[test]
fn instruments_round_trip() -> TestResult {
    let store = TempStore::new()?;
    let first = instrument(7, "ZED", "USD");
    let second = Instrument {
        symbol: "ZED.L".into(),
        tick_size: price("0.5"),
        ..first.clone()
    };
    round_trip(&store, &first, &second)?;
    // A new instrument's id is also reachable with get_id.
    store.write(|tx| tx.insert(&first))?;
    assert_eq!(store.read()?.get_id::<Instrument>(7)?, Some(first));
    Ok(())
}

#[test]
fn accounts_round_trip() -> TestResult {
    let store = TempStore::new()?;
    let first = account(7, "seven");
    let second = Account {
        name: "seven (renamed)".into(),
        status: AccountStatus::Closed,
        ..first.clone()
    };
    round_trip(&store, &first, &second)
}

#[test]
fn orders_round_trip() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let first = limit(7, BETA, ACME, Side::Buy, 3, "99.99");
    // An amendment of the price and a cancel in one update.
    let second = Order {
        price: Some(price("98")),
        status: OrderStatus::Cancelled,
        updated_ts: 5,
        ..first.clone()
    };
    round_trip(&store, &first, &second)
}

#[test]
fn cash_round_trip() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let first = Cash {
        account: BETA,
        currency: "JPY".into(),
        amount: money("1000"),
    };
    let second = Cash {
        amount: money("-12.345678"),
        ..first.clone()
    };
    round_trip(&store, &first, &second)?;
    // Cash rows are keyed by account and currency: another currency is another row.
    let tx = store.read()?;
    assert_eq!(
        tx.get::<Cash>(&[DELTA.into(), "USD".into()])?
            .map(|c| c.amount),
        Some(money("500"))
    );
    assert_eq!(
        tx.get::<Cash>(&[DELTA.into(), "EUR".into()])?
            .map(|c| c.amount),
        Some(money("20"))
    );
    assert_eq!(tx.prefix::<Cash>(&[DELTA.into()])?.len(), 2);
    Ok(())
}

#[test]
fn duplicate_insert_is_a_constraint_error() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let before = dump_bytes(&store)?;
    let other_symbol = Instrument {
        symbol: "OTHER".into(),
        ..instrument(ACME, "ACME", "USD")
    };
    expect_err(
        store.write(|tx| tx.insert(&other_symbol)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| tx.insert(&account(ALPHA, "another alpha"))),
        ErrorKind::Constraint,
    )?;
    let [first_order, ..] = tradestore_tests::seed_orders();
    expect_err(
        store.write(|tx| tx.insert(&first_order)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| {
            tx.insert(&Cash {
                account: DELTA,
                currency: "USD".into(),
                amount: money("1"),
            })
        }),
        ErrorKind::Constraint,
    )?;
    // Twice in one transaction: the second insert sees the first.
    expect_err(
        store.write(|tx| {
            tx.insert(&account(50, "fifty"))?;
            tx.insert(&account(50, "fifty again"))
        }),
        ErrorKind::Constraint,
    )?;
    assert_eq!(
        dump_bytes(&store)?,
        before,
        "refused inserts change nothing"
    );
    Ok(())
}

/// Each order must be refused with a constraint error and leave the store as it was.
fn refuse_orders(store: &Store, orders: &[(&str, Order)], insert: bool) -> TestResult {
    let before = dump_bytes(store)?;
    for (what, o) in orders {
        let result = store.write(|tx| {
            if insert {
                tx.insert(o)
            } else {
                tx.put(o).map(|_| ())
            }
        });
        expect_err(result, ErrorKind::Constraint).map_err(|e| format!("{what}: {e}"))?;
    }
    assert_eq!(dump_bytes(store)?, before);
    Ok(())
}

#[test]
fn order_rules_are_enforced_on_insert() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let ok = limit(10, BETA, ACME, Side::Buy, 2, "100");
    let bolt = limit(10, BETA, BOLT, Side::Sell, 20, "50");
    refuse_orders(
        &store,
        &[
            (
                "quantity 0",
                Order {
                    quantity: Quantity::ZERO,
                    ..ok.clone()
                },
            ),
            (
                "negative quantity",
                Order {
                    quantity: units(-2),
                    ..ok.clone()
                },
            ),
            (
                "quantity off the lot of 10",
                Order {
                    quantity: units(15),
                    ..bolt.clone()
                },
            ),
            (
                "price off the tick of 0.01",
                Order {
                    price: Some(price("100.005")),
                    ..ok.clone()
                },
            ),
            (
                "price off the tick of 0.05",
                Order {
                    price: Some(price("50.01")),
                    ..bolt.clone()
                },
            ),
            (
                "price 0",
                Order {
                    price: Some(Price(0)),
                    ..ok.clone()
                },
            ),
            (
                "negative price",
                Order {
                    price: Some(price("-1")),
                    ..ok.clone()
                },
            ),
            (
                "limit without price",
                Order {
                    price: None,
                    ..ok.clone()
                },
            ),
            (
                "market with price",
                Order {
                    kind: OrderKind::Market,
                    ..ok.clone()
                },
            ),
            (
                "starts partially filled",
                Order {
                    status: OrderStatus::PartiallyFilled,
                    filled_quantity: units(1),
                    ..ok.clone()
                },
            ),
            (
                "starts cancelled",
                Order {
                    status: OrderStatus::Cancelled,
                    ..ok.clone()
                },
            ),
            (
                "starts filled",
                Order {
                    status: OrderStatus::Filled,
                    filled_quantity: units(2),
                    ..ok.clone()
                },
            ),
            (
                "updated before created",
                Order {
                    created_ts: 5,
                    updated_ts: 4,
                    ..ok.clone()
                },
            ),
            (
                "suspended account",
                Order {
                    account: GAMMA,
                    ..ok.clone()
                },
            ),
        ],
        true,
    )?;
    // The same order with the mistakes fixed goes in, and so does a rejected one and a
    // market order without a price.
    store.write(|tx| {
        tx.insert(&ok)?;
        tx.insert(&Order {
            id: 11,
            status: OrderStatus::Rejected,
            ..ok.clone()
        })?;
        tx.insert(&market(12, BETA, BOLT, Side::Buy, 30))
    })?;
    assert_eq!(store.read()?.get_id::<Order>(10)?, Some(ok));
    Ok(())
}

#[test]
fn orders_on_suspended_or_closed_accounts_are_refused() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let o = limit(10, GAMMA, ACME, Side::Buy, 1, "1");
    expect_err(store.write(|tx| tx.insert(&o)), ErrorKind::Constraint)?;
    store.write(|tx| {
        tx.put(&Account {
            status: AccountStatus::Closed,
            ..account(GAMMA, "gamma")
        })
    })?;
    expect_err(store.write(|tx| tx.insert(&o)), ErrorKind::Constraint)?;
    assert_eq!(store.read()?.get_id::<Order>(10)?, None);
    // Reactivated, it may trade again; suspending it later leaves its orders alone.
    store.write(|tx| tx.put(&account(GAMMA, "gamma")))?;
    store.write(|tx| tx.insert(&o))?;
    store.write(|tx| {
        tx.put(&Account {
            status: AccountStatus::Suspended,
            ..account(GAMMA, "gamma")
        })
    })?;
    let cancelled = Order {
        status: OrderStatus::Cancelled,
        updated_ts: 2,
        ..o
    };
    store.write(|tx| tx.put(&cancelled))?;
    assert_eq!(store.read()?.get_id::<Order>(10)?, Some(cancelled));
    Ok(())
}

#[test]
fn order_updates_follow_the_life_cycle() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, sell, mkt] = tradestore_tests::seed_orders();
    // Order 1 partially filled, order 2 cancelled, order 3 filled, order 4 rejected, order 5
    // new.
    store.write(|tx| {
        tx.record_fill(&fill(1, &buy, 4, "100", "0", 2))?;
        tx.put(&Order {
            status: OrderStatus::Cancelled,
            updated_ts: 2,
            ..sell.clone()
        })?;
        tx.record_fill(&fill(2, &mkt, 5, "101", "0", 2))?;
        tx.insert(&Order {
            id: 4,
            status: OrderStatus::Rejected,
            ..buy.clone()
        })?;
        tx.insert(&Order {
            id: 5,
            ..buy.clone()
        })
    })?;
    let tx = store.read()?;
    let partial: Order = tx.get_id(1)?.ok_or("order 1")?;
    let cancelled: Order = tx.get_id(2)?.ok_or("order 2")?;
    let filled: Order = tx.get_id(3)?.ok_or("order 3")?;
    let rejected: Order = tx.get_id(4)?.ok_or("order 4")?;
    let new: Order = tx.get_id(5)?.ok_or("order 5")?;
    drop(tx);
    assert_eq!(partial.status, OrderStatus::PartiallyFilled);
    assert_eq!(filled.status, OrderStatus::Filled);
    refuse_orders(
        &store,
        &[
            // Bad transitions between open states.
            (
                "partially filled back to new",
                Order {
                    status: OrderStatus::New,
                    ..partial.clone()
                },
            ),
            (
                "partially filled to rejected",
                Order {
                    status: OrderStatus::Rejected,
                    ..partial.clone()
                },
            ),
            (
                "new to partially filled by put",
                Order {
                    status: OrderStatus::PartiallyFilled,
                    ..new.clone()
                },
            ),
            (
                "new to filled by put",
                Order {
                    status: OrderStatus::Filled,
                    ..new.clone()
                },
            ),
            // Terminal states never change.
            (
                "cancelled back to new",
                Order {
                    status: OrderStatus::New,
                    updated_ts: 3,
                    ..cancelled.clone()
                },
            ),
            (
                "cancelled amended",
                Order {
                    price: Some(price("51")),
                    ..cancelled.clone()
                },
            ),
            (
                "rejected to new",
                Order {
                    status: OrderStatus::New,
                    ..rejected.clone()
                },
            ),
            (
                "rejected to cancelled",
                Order {
                    status: OrderStatus::Cancelled,
                    ..rejected.clone()
                },
            ),
            (
                "filled to cancelled",
                Order {
                    status: OrderStatus::Cancelled,
                    ..filled.clone()
                },
            ),
            // The filled quantity moves only with fills, even when the status would fit.
            (
                "filled quantity raised",
                Order {
                    filled_quantity: units(6),
                    ..partial.clone()
                },
            ),
            (
                "filled quantity lowered",
                Order {
                    filled_quantity: units(2),
                    ..partial.clone()
                },
            ),
            (
                "filled by put",
                Order {
                    filled_quantity: units(10),
                    status: OrderStatus::Filled,
                    ..partial.clone()
                },
            ),
            (
                "rejected order marked partially filled",
                Order {
                    filled_quantity: units(3),
                    status: OrderStatus::PartiallyFilled,
                    ..rejected.clone()
                },
            ),
            // Identity fields are immutable.
            (
                "account changed",
                Order {
                    account: BETA,
                    ..partial.clone()
                },
            ),
            (
                "instrument changed",
                Order {
                    instrument: BOLT,
                    price: Some(price("50")),
                    ..partial.clone()
                },
            ),
            (
                "side changed",
                Order {
                    side: Side::Sell,
                    ..partial.clone()
                },
            ),
            (
                "kind changed",
                Order {
                    kind: OrderKind::Market,
                    price: None,
                    ..partial.clone()
                },
            ),
            (
                "created_ts changed",
                Order {
                    created_ts: 0,
                    ..partial.clone()
                },
            ),
        ],
        false,
    )?;
    // Writing back an unchanged terminal order is a no-op, and cancelling a partially filled
    // order is allowed.
    store.write(|tx| tx.put(&filled))?;
    let done = Order {
        status: OrderStatus::Cancelled,
        updated_ts: 9,
        ..partial
    };
    store.write(|tx| tx.put(&done))?;
    assert_eq!(store.read()?.get_id::<Order>(1)?, Some(done));
    Ok(())
}

#[test]
fn other_rules_are_enforced() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let before = dump_bytes(&store)?;
    for (what, i) in [
        ("empty symbol", instrument(9, "", "USD")),
        ("symbol with a space", instrument(9, "A B", "USD")),
        ("symbol too long", instrument(9, "ABCDEFGHIJKLMNOPQ", "USD")),
        ("empty currency", instrument(9, "NINE", "")),
        (
            "tick 0",
            Instrument {
                tick_size: Price(0),
                ..instrument(9, "NINE", "USD")
            },
        ),
        (
            "lot 0",
            Instrument {
                lot_size: Quantity::ZERO,
                ..instrument(9, "NINE", "USD")
            },
        ),
    ] {
        expect_err(store.write(|tx| tx.insert(&i)), ErrorKind::Constraint)
            .map_err(|e| format!("{what}: {e}"))?;
    }
    expect_err(
        store.write(|tx| tx.insert(&account(9, ""))),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| tx.insert(&account(9, &"x".repeat(257)))),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| {
            tx.insert(&Cash {
                account: ALPHA,
                currency: "U S D".into(),
                amount: money("1"),
            })
        }),
        ErrorKind::Constraint,
    )?;
    assert_eq!(dump_bytes(&store)?, before);
    Ok(())
}

#[test]
fn trades_and_positions_are_written_only_by_fills() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let [buy, ..] = tradestore_tests::seed_orders();
    let trade = fill(1, &buy, 4, "99.5", "1", 2);
    let position = Position {
        account: ALPHA,
        instrument: ACME,
        quantity: units(4),
        cost_basis: money("398"),
        realized_pnl: money("-1"),
        updated_ts: 2,
        last_trade_id: 1,
    };
    let before = dump_bytes(&store)?;
    expect_err(store.write(|tx| tx.insert(&trade)), ErrorKind::Constraint)?;
    expect_err(store.write(|tx| tx.put(&trade)), ErrorKind::Constraint)?;
    expect_err(
        store.write(|tx| tx.insert(&position)),
        ErrorKind::Constraint,
    )?;
    expect_err(store.write(|tx| tx.put(&position)), ErrorKind::Constraint)?;
    assert_eq!(dump_bytes(&store)?, before);

    let outcome = store.write(|tx| tx.record_fill(&trade))?;
    assert_eq!(outcome.position, position);
    let tx = store.read()?;
    assert_eq!(tx.get_id::<Trade>(1)?.as_ref(), Some(&trade));
    assert_eq!(
        tx.get::<Position>(&[ALPHA.into(), ACME.into()])?.as_ref(),
        Some(&position)
    );
    drop(tx);

    let after_fill = dump_bytes(&store)?;
    let edited_trade = Trade {
        price: price("90"),
        ..trade.clone()
    };
    let edited_position = Position {
        quantity: units(5),
        ..position.clone()
    };
    let trade_key = [Value::U64(1)];
    let position_key = [Value::U64(ALPHA), Value::U64(ACME)];
    expect_err(
        store.write(|tx| tx.put(&edited_trade)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| {
            tx.insert(&Trade {
                id: 2,
                ..trade.clone()
            })
        }),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| tx.delete::<Trade>(&trade_key)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| tx.put(&edited_position)),
        ErrorKind::Constraint,
    )?;
    expect_err(
        store.write(|tx| tx.delete::<Position>(&position_key)),
        ErrorKind::Constraint,
    )?;
    assert_eq!(dump_bytes(&store)?, after_fill);
    Ok(())
}

#[test]
fn next_id_follows_the_largest_id() -> TestResult {
    let store = TempStore::new()?;
    let ids = store.write(|tx| {
        let empty = tx.next_id(tradestore_schema::TableId::Accounts)?;
        tx.insert(&account(41, "forty-one"))?;
        let after = tx.next_id(tradestore_schema::TableId::Accounts)?;
        Ok((empty, after))
    })?;
    assert_eq!(ids, (1, 42));
    expect_err(
        store.write(|tx| tx.next_id(tradestore_schema::TableId::Cash)),
        ErrorKind::Invalid,
    )?;
    Ok(())
}

#[test]
fn seeded_store_reads_back() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let tx = store.read()?;
    assert_eq!(tx.all::<Instrument>()?.len(), 2);
    assert_eq!(
        tx.all::<Account>()?
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        [ALPHA, BETA, GAMMA, DELTA]
    );
    assert_eq!(tx.all::<Order>()?, tradestore_tests::seed_orders());
    assert_eq!(tx.open_orders_of(ALPHA)?.len(), 2);
    assert_eq!(tx.count(tradestore_schema::TableId::Cash)?, 3);
    Ok(())
}

/// `next_id` hands out ids above every id the table has held: the newest row deleted, its
/// id is not handed out again, after a reopen either (nor after a second one).
#[test]
fn a_deleted_rows_id_is_not_handed_out_again_after_a_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let open = || Store::open(dir.path(), tradestore::Config::default());
    let store = open()?;
    let mut newest = 0;
    for name in ["first", "second"] {
        newest = store.write(|tx| {
            let id = tx.next_id(tradestore_schema::TableId::Accounts)?;
            tx.insert(&account(id, name))?;
            Ok(id)
        })?;
    }
    store.write(|tx| tx.delete::<Account>(&[Value::U64(newest)]).map(|_| ()))?;
    drop(store);
    for _ in 0..2 {
        let store = open()?;
        assert!(store.read()?.get_id::<Account>(newest)?.is_none());
        let next = store.write(|tx| tx.next_id(tradestore_schema::TableId::Accounts))?;
        assert!(
            next > newest,
            "id {next} handed out again after {newest} was deleted"
        );
    }
    Ok(())
}

/// A panic in the application's scan visitor is the application's: it reaches the caller
/// as that panic, whether the rows come from redb or from writes not yet applied to it, and
/// is not taken for a damaged database file. The store goes on.
#[test]
fn a_panic_in_a_scan_visitor_reaches_the_caller() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.stats().applied_seq() < store.stats().durable_seq() {
        assert!(
            std::time::Instant::now() < deadline,
            "the applier never caught up"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for (round, id) in [(0u64, BETA), (1, 100)] {
        // Round 0 reads redb alone; round 1's account 100 is a write the applier may not
        // have moved yet.
        if round == 1 {
            store.write(|tx| tx.insert(&account(100, "fresh")))?;
        }
        let snap = store.read()?;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            snap.scan::<Account>(|a| {
                if a.id == id {
                    panic!("visitor bug");
                }
                Ok(true)
            })
        }));
        let payload = caught.err().ok_or("the visitor's panic was swallowed")?;
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"visitor bug"));
    }
    store.write(|tx| tx.insert(&account(101, "after")))?;
    assert_eq!(
        store.read()?.count(tradestore_schema::TableId::Accounts)?,
        6
    );
    Ok(())
}
