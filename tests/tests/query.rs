//! Queries end to end through the store: SQL and the typed builder over a seeded workload,
//! symbols for instrument ids, EXPLAIN, the plan cache, analyze, and pointed errors.

use tradestore::ErrorKind;
use tradestore_tests::{TempStore, TestResult, expect_err, seed, workload};

#[test]
fn sql_queries_answer_over_a_workload() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 3, 300)?;
    let r = store.query("SELECT count(*) FROM trades")?;
    println!("{}", r.to_table());
    let r = store.query("SELECT id, instrument, price, ts FROM trades WHERE instrument = 'ACME' ORDER BY ts DESC LIMIT 5")?;
    println!("{}", r.to_table());
    let e = store.explain("SELECT id, instrument, price, ts FROM trades WHERE instrument = 'ACME' ORDER BY ts DESC LIMIT 5", true)?;
    println!("{}", e.text);
    let e = store.explain("SELECT instrument, count(*), vwap(price, quantity) FROM trades WHERE price > 10 AND price > 20 GROUP BY instrument ORDER BY 2 DESC", true)?;
    println!("{}", e.text);
    let e = store.explain("SELECT * FROM trades LATEST ON ts PARTITION BY instrument", true)?;
    println!("{}", e.text);
    let e = store.explain("SELECT * FROM orders WHERE account = 1 AND status IN ('new', 'partially_filled')", true)?;
    println!("{}", e.text);
    store.analyze()?;
    let e = store.explain("SELECT * FROM orders WHERE account = 1 AND status IN ('new', 'partially_filled')", true)?;
    println!("{}", e.text);
    println!("{:?}", store.plan_cache_stats());
    let err = expect_err(store.query("SELECT nope FROM trades"), ErrorKind::Invalid)?;
    println!("{err}");
    Ok(())
}
