//! Queries end to end through the store: the access path the planner picks for each kind
//! of filter (and that its rows equal a filtered full read), rewrites listed in EXPLAIN,
//! EXPLAIN ANALYZE actuals, the plan cache's hits and invalidation, prepared statements,
//! symbols and time literals, the builder agreeing with SQL, pointed errors, and the index
//! manager advising, building and dropping indexes (by hand and in auto mode).

use std::time::{Duration, Instant};

use tradestore::query::ast::{AggFunc, Operand};
use tradestore::query::builder::{col, select};
use tradestore::query::plan::{Access, Choice};
use tradestore::schema::{Side, TableId, Trade, Value};
use tradestore::{Config, ErrorKind, ReadOps, Store};
use tradestore_tests::{
    ACME, ALPHA, BETA, DELTA, TempStore, TestResult, expect_err, fill, limit, seed, workload,
};

fn loaded() -> TestResult<TempStore> {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 11, 400)?;
    Ok(store)
}

fn trades(store: &Store) -> TestResult<Vec<Trade>> {
    Ok(store.read()?.all::<Trade>()?)
}

fn ids(rows: &[Vec<Value>]) -> Vec<u64> {
    rows.iter().filter_map(|r| r[0].as_u64()).collect()
}

fn traced(store: &Store, sql: &str) -> TestResult<tradestore::query::Outcome> {
    let q = match store.prepare(sql)?.statement() {
        tradestore::query::ast::Statement::Query(q) => q.clone(),
        other => return Err(format!("not a query: {other:?}").into()),
    };
    Ok(store.run_traced(q, &[])?)
}

#[test]
fn the_planner_picks_the_access_path_the_filter_allows() -> TestResult {
    let store = loaded()?;
    store.analyze()?;
    let all = trades(&store)?;
    assert!(all.len() > 50, "the workload made {} trades", all.len());
    let some = &all[all.len() / 2];

    let o = traced(
        &store,
        &format!("SELECT * FROM trades WHERE id = {}", some.id),
    )?;
    assert_eq!(o.plan.choice, Choice::Get);
    assert_eq!(ids(&o.result.rows), vec![some.id]);

    let o = traced(
        &store,
        &format!(
            "SELECT id FROM trades WHERE instrument = {} ORDER BY ts DESC LIMIT 3",
            some.instrument
        ),
    )?;
    assert!(
        matches!(&o.plan.choice, Choice::Scan { index: Some(i), reverse: true } if i == "trades_by_instrument_ts"),
        "{:?}",
        o.plan.choice
    );
    assert!(o.plan.sort.is_empty(), "the index gives the order");
    assert_eq!(
        o.plan.stop_after,
        Some(3),
        "the limit is pushed into the scan"
    );
    assert!(
        o.actuals.examined <= 3,
        "read {} entries",
        o.actuals.examined
    );
    let mut expected: Vec<&Trade> = all
        .iter()
        .filter(|t| t.instrument == some.instrument)
        .collect();
    expected.sort_by_key(|t| std::cmp::Reverse((t.ts, t.id)));
    let expected: Vec<u64> = expected.iter().take(3).map(|t| t.id).collect();
    assert_eq!(ids(&o.result.rows), expected);

    let o = traced(
        &store,
        &format!("SELECT id FROM trades WHERE order_id = {}", some.order_id),
    )?;
    match &o.plan.access {
        Access::Scan(s) => {
            assert_eq!(s.index.as_deref(), Some("trades_by_order"));
            assert!(s.covering, "id and order_id are both in the index");
        }
        other => return Err(format!("expected an index scan, got {other:?}").into()),
    }
    let mut expected: Vec<u64> = all
        .iter()
        .filter(|t| t.order_id == some.order_id)
        .map(|t| t.id)
        .collect();
    expected.sort();
    assert_eq!(ids(&o.result.rows), expected);

    let o = traced(&store, "SELECT * FROM positions WHERE account = 1")?;
    assert!(
        matches!(&o.plan.access, Access::Scan(s) if s.index.is_none() && s.prefixes == vec![vec![Value::U64(1)]]),
        "{:?}",
        o.plan.access
    );

    let o = traced(&store, "SELECT id FROM trades WHERE quantity > 0")?;
    assert!(matches!(&o.plan.choice, Choice::Scan { index: None, .. }));
    assert_eq!(o.result.rows.len(), all.len());

    let o = traced(&store, "SELECT id FROM trades WHERE id = 1 AND id = 2")?;
    assert_eq!(o.plan.access, Access::Empty);
    assert_eq!(o.actuals.examined, 0);
    assert!(o.result.rows.is_empty());
    assert!(o.rewrites.iter().any(|f| f.rule.name() == "contradiction"));
    Ok(())
}

#[test]
fn projected_rows_are_the_same_built_at_the_scan_or_after_a_sort() -> TestResult {
    use tradestore::schema::Record;
    let store = loaded()?;
    let all = trades(&store)?;
    // The instrument with the most trades.
    let mut counts = std::collections::BTreeMap::new();
    for t in &all {
        *counts.entry(t.instrument).or_insert(0usize) += 1;
    }
    let instrument = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(i, _)| *i)
        .ok_or("no trades")?;
    let minute = 60_000_000_000i64;
    let bucket = |ts: i64| Value::I64(ts.div_euclid(minute) * minute);
    let of = |t: &Trade, cols: &[&str]| -> Vec<Value> {
        cols.iter()
            .map(|c| match *c {
                "m" => bucket(t.ts),
                c => t.column(c).unwrap_or(Value::Null),
            })
            .collect()
    };
    let mut newest: Vec<&Trade> = all.iter().filter(|t| t.instrument == instrument).collect();
    newest.sort_by_key(|t| std::cmp::Reverse((t.ts, t.id)));
    let mut by_price = newest.clone();
    by_price.sort_by_key(|t| (t.price, t.id));
    let every: Vec<&str> = TableId::Trades.columns().iter().map(|c| c.name).collect();
    // The index gives the first order (rows are projected as they are read); the second
    // is sorted after the scan (full rows, projected at the end). Both with an offset.
    for (order, sorted, expected) in [("ts DESC", false, &newest), ("price", true, &by_price)] {
        for (select, cols) in [
            ("*", every.clone()),
            ("price, id", vec!["price", "id"]),
            (
                "time_bucket('1m', ts) AS m, id, side",
                vec!["m", "id", "side"],
            ),
        ] {
            let sql = format!(
                "SELECT {select} FROM trades WHERE instrument = {instrument} ORDER BY {order} LIMIT 4 OFFSET 2"
            );
            let o = traced(&store, &sql)?;
            assert_eq!(o.plan.sort.is_empty(), !sorted, "{sql}: {:?}", o.plan.sort);
            let names: Vec<&str> = o.result.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, cols, "{sql}");
            let want: Vec<Vec<Value>> = expected
                .iter()
                .skip(2)
                .take(4)
                .map(|t| of(t, &cols))
                .collect();
            assert_eq!(
                want.len(),
                4,
                "the workload has enough trades of one instrument"
            );
            assert_eq!(o.result.rows, want, "{sql}");
        }
    }
    Ok(())
}

#[test]
fn explain_lists_rewrites_and_analyze_reports_actuals() -> TestResult {
    let store = loaded()?;
    let cases = [
        (
            "SELECT * FROM trades WHERE NOT (price > 10 OR side = 'buy')",
            "push_not_down",
        ),
        (
            "SELECT * FROM trades WHERE ts > 5 AND ts > 7 AND ts < 2000",
            "merge_ranges",
        ),
        (
            "SELECT * FROM trades WHERE account = 1 OR account = 2",
            "or_to_in",
        ),
        (
            "SELECT * FROM trades WHERE ts > now() - interval '1 hour'",
            "fold_constants",
        ),
        (
            "SELECT * FROM trades WHERE price BETWEEN 1 AND 2",
            "between_to_range",
        ),
        (
            "SELECT * FROM trades WHERE account = 1 AND account = 2",
            "contradiction",
        ),
    ];
    for (sql, rule) in cases {
        let e = store.explain(sql, false)?;
        assert!(
            e.text.contains(&format!("Rewrite {rule}")),
            "{sql}:\n{}",
            e.text
        );
        let fired: Vec<String> = e.json["rewrites"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["rule"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(fired.iter().any(|r| r == rule), "{sql}: {fired:?}");
    }
    let n = trades(&store)?.len();
    let e = store.explain(
        "EXPLAIN ANALYZE SELECT count(*) FROM trades WHERE quantity > 0",
        false,
    )?;
    assert!(
        e.text.contains(&format!("actual examined={n} rows={n}")),
        "{}",
        e.text
    );
    assert_eq!(e.json["actual"]["rows"], 1);
    let e = store.explain("SELECT * FROM trades WHERE price > 20", false)?;
    assert!(
        e.text.contains("Filter price > 20"),
        "values show in their column's type:\n{}",
        e.text
    );
    assert!(e.json["actual"].is_null());
    Ok(())
}

#[test]
fn the_plan_cache_hits_by_shape_and_is_invalidated() -> TestResult {
    let store = loaded()?;
    let before = store.plan_cache_stats();
    for i in 1..=5 {
        store.query(&format!(
            "SELECT * FROM trades WHERE instrument = {i} ORDER BY ts DESC LIMIT 10"
        ))?;
    }
    let after = store.plan_cache_stats();
    assert_eq!(after.misses - before.misses, 1, "one shape, planned once");
    assert_eq!(after.hits - before.hits, 4);
    store.analyze()?;
    store.query("SELECT * FROM trades WHERE instrument = 9 ORDER BY ts DESC LIMIT 10")?;
    assert_eq!(
        store.plan_cache_stats().misses - after.misses,
        1,
        "new statistics, new plan"
    );
    let mid = store.plan_cache_stats();
    store.create_index(
        tradestore::schema::IndexDef {
            name: "trades_by_price".into(),
            table: TableId::Trades,
            columns: vec!["price".into()],
            unique: false,
            builtin: false,
            covering: false,
        },
        "test",
    )?;
    store.query("SELECT * FROM trades WHERE instrument = 9 ORDER BY ts DESC LIMIT 10")?;
    assert_eq!(
        store.plan_cache_stats().misses - mid.misses,
        1,
        "new index, new plan"
    );
    Ok(())
}

#[test]
fn prepared_statements_symbols_time_literals_and_the_builder() -> TestResult {
    let store = loaded()?;
    let all = trades(&store)?;
    let acme = all.iter().filter(|t| t.instrument == 1).count() as u64;
    let p = store.prepare("SELECT count(*) FROM trades WHERE instrument = $1")?;
    let by_id = store.execute(&p, &[Operand::Number("1".into())])?;
    let by_symbol = store.execute(&p, &[Operand::Text("ACME".into())])?;
    assert_eq!(by_id.rows, vec![vec![Value::U64(acme)]]);
    assert_eq!(by_symbol.rows, by_id.rows);
    expect_err(store.execute(&p, &[]), ErrorKind::Invalid)?;
    expect_err(
        store.query("SELECT * FROM trades WHERE instrument = 'NOPE'"),
        ErrorKind::NotFound,
    )?;

    // Timestamps are nanoseconds; RFC 3339 text is the same instant.
    let late = all.iter().filter(|t| t.ts >= 1_500).count() as u64;
    let r =
        store.query("SELECT count(*) FROM trades WHERE ts >= '1970-01-01T00:00:00.0000015Z'")?;
    assert_eq!(r.rows, vec![vec![Value::U64(late)]]);

    let sql = store.query(
        "SELECT instrument, count(*), vwap(price, quantity) FROM trades WHERE side = 'buy' \
         GROUP BY instrument ORDER BY instrument",
    )?;
    let built = store.run(
        select(TableId::Trades)
            .column("instrument")
            .aggregate(AggFunc::Count, [])
            .aggregate(AggFunc::Vwap, ["price", "quantity"])
            .filter(col("side").eq("buy"))
            .group_by("instrument")
            .order_by("instrument")
            .build(),
        &[],
    )?;
    assert_eq!(sql.rows, built.rows);
    assert!(!sql.rows.is_empty());
    for row in &sql.rows {
        let inst = row[0].as_u64().ok_or("instrument")?;
        let buys: Vec<&Trade> = all
            .iter()
            .filter(|t| t.instrument == inst && t.side == tradestore::schema::Side::Buy)
            .collect();
        let pq: i128 = buys
            .iter()
            .map(|t| i128::from(t.price.0) * i128::from(t.quantity.0))
            .sum();
        let q: i128 = buys.iter().map(|t| i128::from(t.quantity.0)).sum();
        assert_eq!(row[1], Value::U64(buys.len() as u64));
        assert_eq!(row[2], Value::I64(i64::try_from(pq / q)?));
    }
    Ok(())
}

#[test]
fn malformed_and_unsupported_sql_is_refused_with_a_pointer() -> TestResult {
    let store = loaded()?;
    let before = store.read()?.count(TableId::Trades)?;
    for (sql, points_at) in [
        ("SELEC * FROM trades", "SELEC"),
        (
            "SELECT * FROM trades JOIN orders ON trades.order_id = orders.id",
            "JOIN",
        ),
        ("SELECT pricee FROM trades", "pricee"),
        ("SELECT * FROM tardes", "tardes"),
        ("SELECT * FROM trades WHERE price = id", "price = id"),
        ("DELETE FROM trades", "DELETE"),
    ] {
        let err = expect_err(store.query(sql), ErrorKind::Invalid)?;
        let msg = err.to_string();
        let line = msg
            .lines()
            .find(|l| l.trim_start() == sql)
            .ok_or(format!("{sql}: {msg}"))?;
        let caret = msg
            .lines()
            .find(|l| l.trim_start().starts_with('^'))
            .ok_or(format!("{sql}: no caret in {msg}"))?;
        let col = caret.find('^').ok_or("caret")?;
        let at = line.find(points_at).ok_or("offending text")?;
        assert_eq!(col, at, "{sql}: the caret points at {points_at:?}:\n{msg}");
    }
    assert_eq!(store.read()?.count(TableId::Trades)?, before);
    Ok(())
}

fn price_workload(store: &Store, n: usize) -> TestResult {
    for i in 0..n {
        let lo = 20 + (i % 50);
        store.query(&format!(
            "SELECT id, price FROM trades WHERE price > {lo} AND price < {}",
            lo + 2
        ))?;
    }
    Ok(())
}

#[test]
fn the_index_manager_advises_builds_and_drops() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = Config {
        index_auto_min_benefit: 1,
        index_unused_drop_s: 1,
        ..Config::default()
    };
    let store = Store::open(dir.path(), config)?;
    seed(&store)?;
    workload(&store, 5, 400)?;
    store.analyze()?;
    price_workload(&store, 30)?;
    let advice = store.advise_indexes()?;
    let best = advice.first().ok_or("no advice")?;
    assert_eq!(best.def.table, TableId::Trades);
    assert_eq!(best.def.columns, vec!["price".to_owned()]);
    assert_eq!(best.executions, 30);
    assert!(best.benefit > 0.0);
    let review = store.review_indexes()?;
    assert_eq!(review.created, vec![best.def.name.clone()]);
    let o = traced(
        &store,
        "SELECT id, price FROM trades WHERE price > 30 AND price < 32",
    )?;
    assert!(
        matches!(&o.plan.choice, Choice::Scan { index: Some(i), .. } if *i == best.def.name),
        "{:?}",
        o.plan.choice
    );
    assert!(
        store
            .advise_indexes()?
            .iter()
            .all(|a| a.def.columns != best.def.columns)
    );
    std::thread::sleep(Duration::from_millis(1100));
    let review = store.review_indexes()?;
    assert_eq!(review.dropped, vec![best.def.name.clone()]);
    let log: Vec<(String, String)> = store
        .index_decisions()?
        .into_iter()
        .map(|d| (d.action, d.reason.chars().take(5).collect()))
        .collect();
    assert_eq!(
        log,
        vec![
            ("create".to_owned(), "auto:".to_owned()),
            ("ready".to_owned(), "backf".to_owned()),
            ("drop".to_owned(), "auto:".to_owned()),
        ]
    );
    Ok(())
}

#[test]
fn auto_mode_builds_the_recommended_index_in_the_background() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = Config {
        index_auto: true,
        index_auto_interval_ms: 100,
        index_auto_min_benefit: 1,
        ..Config::default()
    };
    let store = Store::open(dir.path(), config)?;
    seed(&store)?;
    workload(&store, 6, 300)?;
    price_workload(&store, 20)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !store
        .indexes()
        .iter()
        .any(|s| s.def.columns == ["price"] && s.is_ready())
    {
        if Instant::now() > deadline {
            return Err("auto mode built no index on trades(price)".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Built-in indexes are never dropped, whatever their use.
    assert_eq!(store.indexes().iter().filter(|s| s.def.builtin).count(), 7);
    Ok(())
}

#[test]
fn the_recorded_workload_outlives_the_process() -> TestResult {
    let store = loaded()?;
    price_workload(&store, 12)?;
    let store = store.reopen()?;
    let shapes = store.workload();
    let price = shapes
        .iter()
        .find(|s| s.shape.starts_with("trades: price range"))
        .ok_or(format!("no price shape in {shapes:?}"))?;
    assert_eq!(price.executions, 12);
    let advice = store.advise_indexes()?;
    assert!(
        advice
            .iter()
            .any(|a| a.def.columns == ["price"] && a.executions == 12),
        "{advice:?}"
    );
    // Queries of the new process add to it.
    price_workload(&store, 3)?;
    let store = store.reopen()?;
    let total: u64 = store
        .workload()
        .iter()
        .filter(|s| s.shape.starts_with("trades: price range"))
        .map(|s| s.executions)
        .sum();
    assert_eq!(total, 15);
    Ok(())
}

#[test]
fn one_shape_with_far_apart_values_is_planned_again_and_skip_scans_narrow_ranges() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    // 3000 fills of ACME, one per order, at ts 10_000 + i.
    for batch in 0..30i64 {
        store.write(|tx| {
            for i in 0..100 {
                let n = batch * 100 + i;
                let id = tx.next_id(TableId::Orders)?;
                let account = [ALPHA, BETA, DELTA][(n % 3) as usize];
                let o = limit(id, account, ACME, Side::Buy, 1, "100");
                tx.insert(&o)?;
                let trade_id = tx.next_id(TableId::Trades)?;
                tx.record_fill(&fill(trade_id, &o, 1, "100", "0", 10_000 + n))?;
            }
            Ok(())
        })?;
    }
    // The planner sizes a table by redb's row count: with the fills still in the overlay it
    // would see an empty table, and whether they were applied yet is a race.
    tradestore_tests::wait_applied(&store)?;
    store.analyze()?;
    let all = trades(&store)?;
    let run = |from: i64| -> TestResult<tradestore::query::Outcome> {
        let o = traced(&store, &format!("SELECT * FROM trades WHERE ts >= {from}"))?;
        let mut expected: Vec<u64> = all.iter().filter(|t| t.ts >= from).map(|t| t.id).collect();
        expected.sort_unstable();
        let mut got = ids(&o.result.rows);
        got.sort_unstable();
        assert_eq!(got, expected, "ts >= {from}");
        Ok(o)
    };
    // Wide first: a scan of everything is cached for the shape.
    let wide = run(0)?;
    assert!(
        matches!(&wide.plan.access, Access::Scan(s) if !s.skip),
        "{:?}",
        wide.plan.access
    );
    assert!(wide.actuals.examined >= all.len() as u64);
    // Narrow next: the filter's estimate is far from the cached one, so it is planned
    // again, and a skip scan of a (key, ts) index reads only the last rows.
    let narrow = run(12_990)?;
    assert!(!narrow.cache_hit, "a far-off estimate is planned again");
    match &narrow.plan.access {
        Access::Scan(s) => assert!(s.skip && s.index.is_some(), "{s:?}"),
        other => return Err(format!("expected a skip scan, got {other:?}").into()),
    }
    assert!(
        narrow.actuals.examined < 50,
        "read {}",
        narrow.actuals.examined
    );
    // A value close to it reuses that plan.
    let again = run(12_980)?;
    assert!(again.cache_hit);
    assert!(matches!(&again.plan.access, Access::Scan(s) if s.skip));
    Ok(())
}

#[test]
fn a_limit_and_offset_past_u64_max_together_mean_every_row_or_none() -> TestResult {
    let store = loaded()?;
    let all = trades(&store)?;
    let mut want: Vec<u64> = all.iter().map(|t| t.id).collect();
    want.sort_unstable();
    let max = u64::MAX;
    // Ordered by the primary key, so the limit is pushed down into the scan.
    let o = traced(
        &store,
        &format!("SELECT id FROM trades ORDER BY id LIMIT {max} OFFSET 1"),
    )?;
    assert_eq!(ids(&o.result.rows), want[1..].to_vec());
    let o = traced(
        &store,
        &format!("SELECT id FROM trades ORDER BY id LIMIT 1 OFFSET {max}"),
    )?;
    assert!(o.result.rows.is_empty());
    Ok(())
}

#[test]
fn sample_by_buckets_the_time_column_and_output_names_are_unique() -> TestResult {
    let store = loaded()?;
    let hour = 3_600_000_000_000i64;
    let all = trades(&store)?;
    let mut expected = std::collections::BTreeMap::<i64, u64>::new();
    for t in &all {
        *expected.entry(t.ts.div_euclid(hour) * hour).or_default() += 1;
    }
    // Named in the list, the time column is the bucket: one row per hour, not per trade.
    for sql in [
        "SELECT ts, count(*) FROM trades SAMPLE BY 1h ORDER BY ts",
        "SELECT count(*) FROM trades SAMPLE BY 1h ORDER BY ts",
    ] {
        let r = store.query(sql)?;
        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["ts", "count(*)"], "{sql}");
        let got: std::collections::BTreeMap<i64, u64> = r
            .rows
            .iter()
            .map(|row| (row[0].as_i64().unwrap_or(-1), row[1].as_u64().unwrap_or(0)))
            .collect();
        assert_eq!(got, expected, "{sql}");
    }
    let r = store.query("SELECT count(*), ts AS hour FROM trades SAMPLE BY 1h")?;
    assert_eq!(r.columns[1].name, "hour");
    assert_eq!(r.rows.len(), expected.len());

    // Results are read by name: two columns of one name are refused, not half lost.
    for sql in [
        "SELECT id, id FROM trades",
        "SELECT id AS price, price FROM trades",
        "SELECT time_bucket('1h', ts) AS ts, ts, count(*) FROM trades SAMPLE BY 1h",
    ] {
        let err = expect_err(store.query(sql), ErrorKind::Invalid)?;
        assert!(
            err.to_string().contains("two output columns are named"),
            "{sql}: {err}"
        );
    }
    Ok(())
}
