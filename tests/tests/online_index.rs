//! Indexes created and dropped at run time: an online build under concurrent writes ends
//! with exactly the entries a full scan implies, is used only once complete, survives a
//! reopen, and a drop removes it; every decision is recorded. Invalid definitions are
//! refused without changing anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tradestore::schema::{IndexDef, Order, OrderStatus, Side, TableId, Trade};
use tradestore::{ErrorKind, IndexScan, ReadOps, RetryPolicy, Store};
use tradestore_tests::{
    ACME, ALPHA, BETA, DELTA, Rng, TempStore, TestResult, assert_clean, expect_err, expected_scan,
    fill, limit, seed,
};

fn def(name: &str, table: TableId, columns: &[&str]) -> IndexDef {
    IndexDef {
        name: name.to_owned(),
        table,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        unique: false,
        builtin: false,
        covering: false,
    }
}

/// One writer transaction: a new order, and a fill or a cancel of a random earlier one.
fn write_one(store: &Store, rng: &mut Rng) -> tradestore::Result<()> {
    let policy = RetryPolicy {
        max_attempts: 1000,
        max_total: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let account = [ALPHA, BETA, DELTA][rng.below(3) as usize];
    let px = format!("{}", 90 + rng.below(20));
    let pick = rng.next_u64();
    let action = rng.below(10);
    store.transact(&policy, |tx| {
        let id = tx.next_id(TableId::Orders)?;
        tx.insert(&limit(id, account, ACME, Side::Buy, 5, &px))?;
        let other = 1 + pick % id;
        let Some(mut o) = tx.get_id::<Order>(other)? else {
            return Ok(());
        };
        if !o.status.is_open() || o.instrument != ACME {
            return Ok(());
        }
        if action < 6 {
            let trade_id = tx.next_id(TableId::Trades)?;
            let p = o.price.map_or("100".to_owned(), |p| p.to_string());
            tx.record_fill(&fill(trade_id, &o, 1, &p, "0", 10 + id as i64))?;
        } else if action < 8 {
            o.status = OrderStatus::Cancelled;
            o.updated_ts = 10 + id as i64;
            tx.put(&o)?;
        }
        Ok(())
    })
}

fn assert_index_matches<R: tradestore::schema::Record>(store: &Store, d: &IndexDef) -> TestResult {
    let tx = store.read()?;
    let rows: Vec<R> = tx.all()?;
    let got: Vec<R> = tx.index_scan(&d.name, &IndexScan::default())?;
    assert_eq!(got.len(), rows.len(), "{}: one entry per row", d.name);
    assert_eq!(got, expected_scan(d, &rows, &[]), "{}: entries", d.name);
    Ok(())
}

#[test]
fn online_build_under_concurrent_writes_matches_a_full_scan() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    // Enough rows that the backfill takes several chunks.
    for batch in 0..12u64 {
        store.write(|tx| {
            for _ in 0..500 {
                let id = tx.next_id(TableId::Orders)?;
                let px = format!("{}", 90 + (id + batch) % 20);
                tx.insert(&limit(id, ALPHA, ACME, Side::Buy, 5, &px))?;
            }
            Ok(())
        })?;
    }
    let by_price = def(
        "orders_by_status_price",
        TableId::Orders,
        &["status", "price"],
    );
    let by_qty = def("trades_by_quantity", TableId::Trades, &["quantity"]);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|s| -> TestResult {
        let writer = s.spawn(|| -> tradestore::Result<()> {
            let mut rng = Rng::new(7);
            while !stop.load(Ordering::SeqCst) {
                write_one(&store, &mut rng)?;
                written.fetch_add(1, Ordering::SeqCst);
            }
            // And some more once both builds are done.
            for _ in 0..50 {
                write_one(&store, &mut rng)?;
            }
            Ok(())
        });
        while written.load(Ordering::SeqCst) < 20 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let report = store.create_index(by_price.clone(), "test")?;
        assert!(report.chunks >= 2, "backfilled in chunks: {report:?}");
        assert!(report.backfilled >= 6000, "{report:?}");
        let during = written.load(Ordering::SeqCst);
        store.create_index(by_qty.clone(), "test")?;
        // The index is usable as soon as its build returned.
        assert_index_matches::<Order>(&store, &by_price)?;
        stop.store(true, Ordering::SeqCst);
        writer.join().map_err(|_| "writer panicked")??;
        assert!(written.load(Ordering::SeqCst) > during, "writes continued");
        Ok(())
    })?;
    assert_index_matches::<Order>(&store, &by_price)?;
    assert_index_matches::<Trade>(&store, &by_qty)?;
    assert_clean(&store)?;

    let store = store.reopen()?;
    assert_index_matches::<Order>(&store, &by_price)?;
    assert!(store.indexes().iter().all(|s| s.is_ready()));
    store.drop_index(&by_price.name, "no longer used")?;
    expect_err(store.read()?.index(&by_price.name), ErrorKind::NotFound)?;
    // Writes after the drop do not recreate it.
    let mut rng = Rng::new(9);
    for _ in 0..20 {
        write_one(&store, &mut rng)?;
    }
    assert_clean(&store)?;
    let store = store.reopen()?;
    assert!(store.indexes().iter().all(|s| s.def.name != by_price.name));
    assert_index_matches::<Trade>(&store, &by_qty)?;

    let log: Vec<(String, String)> = store
        .index_decisions()?
        .into_iter()
        .map(|d| (d.action, d.index))
        .collect();
    let want = [
        ("create", &by_price.name),
        ("ready", &by_price.name),
        ("create", &by_qty.name),
        ("ready", &by_qty.name),
        ("drop", &by_price.name),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, n)| ((*a).to_owned(), (*n).clone()))
        .collect();
    assert_eq!(log, want);
    Ok(())
}

#[test]
fn invalid_definitions_are_refused() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let before = store.indexes().len();
    let cases = [
        (
            def("bad name", TableId::Orders, &["price"]),
            ErrorKind::Invalid,
        ),
        (def("x", TableId::Orders, &["nope"]), ErrorKind::Invalid),
        (def("x", TableId::Orders, &[]), ErrorKind::Invalid),
        (
            def("x", TableId::Orders, &["price", "price"]),
            ErrorKind::Invalid,
        ),
        (
            IndexDef {
                unique: true,
                ..def("x", TableId::Orders, &["price"])
            },
            ErrorKind::Invalid,
        ),
        (
            def("trades_by_order", TableId::Trades, &["price"]),
            ErrorKind::Constraint,
        ),
        (
            def("again", TableId::Trades, &["order_id"]),
            ErrorKind::Constraint,
        ),
    ];
    for (d, kind) in cases {
        expect_err(store.create_index(d.clone(), "test"), kind)?;
    }
    expect_err(
        store.drop_index("trades_by_order", "test"),
        ErrorKind::Invalid,
    )?;
    expect_err(store.drop_index("missing", "test"), ErrorKind::NotFound)?;
    assert_eq!(store.indexes().len(), before);
    assert!(store.index_decisions()?.is_empty());
    assert_clean(&store)?;
    Ok(())
}
