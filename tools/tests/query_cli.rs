//! The query commands of the `tradestore` binary end to end: `query`, `explain`, `analyze`
//! and `index advise/create/drop/list/log`, each run as a process against a store in a
//! temporary directory, checking exit statuses, output and what the store holds after.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{Run, TestResult, command, output};

/// Runs `tradestore ARGS --dir DIR` (see [`support::command`]).
fn run(dir: &Path, args: &[&str]) -> Result<Run, Box<dyn Error>> {
    output(command(args).arg("--dir").arg(dir))
}

/// Runs a command that must succeed and returns its standard output.
fn stdout_of(dir: &Path, args: &[&str]) -> Result<String, Box<dyn Error>> {
    let r = run(dir, args)?;
    assert!(r.ok(), "{args:?} failed: {}", r.stderr);
    Ok(r.stdout)
}

/// A fresh store in a temporary directory: `(tempdir, store dir)`.
fn new_store() -> Result<(tempfile::TempDir, PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    stdout_of(&dir, &["init"])?;
    Ok((tmp, dir))
}

/// A store filled by the reference trading engine: 300 orders over 50 accounts and 5
/// instruments, so each instrument has dozens of trades.
fn simulated_store() -> Result<(tempfile::TempDir, PathBuf), Box<dyn Error>> {
    let (tmp, dir) = new_store()?;
    stdout_of(
        &dir,
        &[
            "simulate",
            "--orders",
            "300",
            "--seed",
            "1",
            "--accounts",
            "50",
            "--instruments",
            "5",
            "--writers",
            "1",
        ],
    )?;
    Ok((tmp, dir))
}

/// A little book with known values (the one of `tests/cli.rs`): ACME, one account, three
/// orders (the third a market order with no price), two trades: id 1 buys 4 at 99.50 at
/// ts 2, id 2 sells 2 at 101.00 with a 0.50 fee at ts 4.
const BOOK: &str = r#"{"table":"instruments","record":{"id":1,"symbol":"ACME","tick_size":1000000,"lot_size":100000000,"currency":"USD"}}
{"table":"accounts","record":{"id":1,"name":"alpha","status":"active"}}
{"table":"orders","record":{"id":1,"account":1,"instrument":1,"side":"buy","kind":"limit","time_in_force":"gtc","price":10000000000,"quantity":1000000000,"filled_quantity":400000000,"status":"partially_filled","created_ts":1,"updated_ts":2}}
{"table":"orders","record":{"id":2,"account":1,"instrument":1,"side":"sell","kind":"limit","time_in_force":"day","price":10100000000,"quantity":200000000,"filled_quantity":200000000,"status":"filled","created_ts":3,"updated_ts":4}}
{"table":"orders","record":{"id":3,"account":1,"instrument":1,"side":"buy","kind":"market","time_in_force":"ioc","price":null,"quantity":100000000,"filled_quantity":0,"status":"cancelled","created_ts":5,"updated_ts":5}}
{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"buy","price":9950000000,"quantity":400000000,"fee":0,"ts":2}}
{"table":"trades","record":{"id":2,"order_id":2,"account":1,"instrument":1,"side":"sell","price":10100000000,"quantity":200000000,"fee":500000,"ts":4}}
{"table":"positions","record":{"account":1,"instrument":1,"quantity":200000000,"cost_basis":199000000,"realized_pnl":2500000,"updated_ts":4,"last_trade_id":2}}
{"table":"cash","record":{"account":1,"currency":"USD","amount":-196500000}}
{"end":{"rows":9}}
"#;

/// A store holding [`BOOK`].
fn book_store() -> Result<(tempfile::TempDir, PathBuf), Box<dyn Error>> {
    let (tmp, dir) = new_store()?;
    let file = tmp.path().join("book.jsonl");
    std::fs::write(&file, BOOK)?;
    stdout_of(&dir, &["restore", "--in", path_str(&file)?])?;
    Ok((tmp, dir))
}

fn path_str(p: &Path) -> Result<&str, Box<dyn Error>> {
    Ok(p.to_str().ok_or("temporary path is not UTF-8")?)
}

fn json(text: &str) -> Result<serde_json::Value, Box<dyn Error>> {
    Ok(serde_json::from_str(text)?)
}

/// The store's rows, as `dump` writes them.
fn dump(dir: &Path) -> Result<String, Box<dyn Error>> {
    stdout_of(dir, &["dump", "--out", "-"])
}

/// The rows of a table, from `inspect --json`.
fn inspected_rows(dir: &Path, table: &str) -> Result<u64, Box<dyn Error>> {
    let v = json(&stdout_of(dir, &["inspect", "--json"])?)?;
    let tables = v["tables"].as_array().ok_or("no tables")?;
    let t = tables
        .iter()
        .find(|t| t["name"] == table)
        .ok_or("table missing")?;
    Ok(t["rows"].as_u64().ok_or("no row count")?)
}

/// Where the error on stderr underlines the statement: (column of the first `^`, 0-based
/// in the statement, and the number of `^`).
fn caret(stderr: &str, sql: &str) -> Result<(usize, usize), Box<dyn Error>> {
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| *l == format!("  {sql}"))
        .ok_or_else(|| format!("the statement is not quoted in:\n{stderr}"))?;
    let marks = lines
        .get(at + 1)
        .and_then(|l| l.strip_prefix("  "))
        .ok_or_else(|| format!("no caret line in:\n{stderr}"))?;
    let start = marks
        .find('^')
        .ok_or_else(|| format!("no caret in:\n{stderr}"))?;
    let width = marks[start..].chars().take_while(|c| *c == '^').count();
    Ok((start, width))
}

#[test]
fn query_prints_a_table_json_and_csv_with_the_stored_values() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let sql = "SELECT id, price, fee, ts FROM trades ORDER BY id";

    let table = stdout_of(&dir, &["query", sql])?;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines,
        [
            "id  price  fee  ts",
            "--  -----  ---  ------------------------------",
            "1   99.5   0    1970-01-01T00:00:00.000000002Z",
            "2   101    0.5  1970-01-01T00:00:00.000000004Z",
            "(2 rows)",
        ],
        "{table}"
    );

    let v = json(&stdout_of(&dir, &["query", sql, "--json"])?)?;
    assert_eq!(
        v["columns"],
        serde_json::json!(["id", "price", "fee", "ts"])
    );
    let rows = v["rows"].as_array().ok_or("no rows")?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["id"], 1);
    assert_eq!(rows[0]["price"], "99.5");
    assert_eq!(rows[1]["fee"], "0.5");
    assert_eq!(rows[1]["ts"], "1970-01-01T00:00:00.000000004Z");

    let csv = stdout_of(&dir, &["query", sql, "--csv"])?;
    assert_eq!(
        csv,
        "id,price,fee,ts\n\
         1,99.5,0,1970-01-01T00:00:00.000000002Z\n\
         2,101,0.5,1970-01-01T00:00:00.000000004Z\n"
    );
    // NULL is an empty field (order 3 is a market order), text is quoted when needed.
    let csv = stdout_of(
        &dir,
        &["query", "SELECT id, price FROM orders ORDER BY id", "--csv"],
    )?;
    assert_eq!(csv, "id,price\n1,100\n2,101\n3,\n");
    let csv = stdout_of(
        &dir,
        &[
            "query",
            "SELECT side, count(*) AS \"n, fills\" FROM trades GROUP BY side ORDER BY side",
            "--csv",
        ],
    )?;
    assert_eq!(csv, "side,\"n, fills\"\nbuy,1\nsell,1\n");

    let r = run(&dir, &["query", sql, "--json", "--csv"])?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    Ok(())
}

#[test]
fn count_matches_inspect_on_a_simulated_store() -> TestResult {
    let (_tmp, dir) = simulated_store()?;
    let trades = inspected_rows(&dir, "trades")?;
    assert!(trades > 0);

    let v = json(&stdout_of(
        &dir,
        &["query", "SELECT count(*) FROM trades", "--json"],
    )?)?;
    assert_eq!(v["rows"][0]["count(*)"], trades);
    let text = stdout_of(&dir, &["query", "SELECT count(*) AS n FROM trades"])?;
    assert_eq!(text.lines().nth(2), Some(trades.to_string().as_str()));

    // Per instrument, the counts add up to the whole.
    let v = json(&stdout_of(
        &dir,
        &[
            "query",
            "SELECT instrument, count(*) AS n FROM trades GROUP BY instrument ORDER BY instrument",
            "--json",
        ],
    )?)?;
    let rows = v["rows"].as_array().ok_or("no rows")?;
    assert!(!rows.is_empty() && rows.len() <= 5, "{rows:?}");
    let sum: u64 = rows.iter().filter_map(|r| r["n"].as_u64()).sum();
    assert_eq!(sum, trades);
    let csv = stdout_of(
        &dir,
        &["query", "SELECT id FROM trades ORDER BY id", "--csv"],
    )?;
    assert_eq!(csv.lines().count() as u64, trades + 1);
    Ok(())
}

#[test]
fn params_fill_dollar_n_in_order() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let sql = "SELECT id FROM trades WHERE side = $1 AND price >= $2 ORDER BY id";
    let csv = stdout_of(
        &dir,
        &["query", sql, "--param", "sell", "--param", "100", "--csv"],
    )?;
    assert_eq!(csv, "id\n2\n");
    let csv = stdout_of(
        &dir,
        &["query", sql, "--param", "buy", "--param", "99.5", "--csv"],
    )?;
    assert_eq!(csv, "id\n1\n");
    // A symbol stands for an instrument id; a timestamp is text; LIMIT takes one too.
    let csv = stdout_of(
        &dir,
        &[
            "query",
            "SELECT id FROM trades WHERE instrument = $1 AND ts > $2 ORDER BY id LIMIT $3",
            "--param",
            "ACME",
            "--param",
            "1970-01-01T00:00:00.000000001Z",
            "--param",
            "1",
            "--csv",
        ],
    )?;
    assert_eq!(csv, "id\n1\n");
    // A negative number is a value, not an option.
    let csv = stdout_of(
        &dir,
        &[
            "query",
            "SELECT account FROM cash WHERE amount < $1",
            "--param",
            "-100",
            "--csv",
        ],
    )?;
    assert_eq!(csv, "account\n1\n");
    let v = json(&stdout_of(
        &dir,
        &[
            "query",
            "SELECT amount FROM cash WHERE amount < $1",
            "--param",
            "-100",
            "--json",
        ],
    )?)?;
    assert_eq!(v["rows"][0]["amount"], "-196.5");

    let r = run(&dir, &["query", sql, "--param", "sell"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("$2"), "{}", r.stderr);
    let r = run(
        &dir,
        &[
            "query", sql, "--param", "sell", "--param", "1", "--param", "2",
        ],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("3 --param values"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let r = run(&dir, &["query", sql, "--param", "hold", "--param", "1"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("'hold'"), "{}", r.stderr);
    Ok(())
}

#[test]
fn explain_names_the_access_path() -> TestResult {
    let (_tmp, dir) = simulated_store()?;
    let sql = "SELECT * FROM trades WHERE instrument = 1 ORDER BY ts DESC LIMIT 10";

    let text = stdout_of(&dir, &["explain", sql])?;
    assert!(text.contains("IndexScan trades_by_instrument_ts"), "{text}");
    assert!(text.starts_with("Plan for trades"), "{text}");
    assert!(text.contains("Why: "), "{text}");
    assert!(!text.contains("actual"), "{text}");

    let text = stdout_of(&dir, &["explain", "--analyze", sql])?;
    assert!(text.contains("actual examined=10 rows=10"), "{text}");
    assert!(text.contains("Actual: 10 rows"), "{text}");

    // The same report from `query "EXPLAIN ..."`, and as JSON.
    let text = stdout_of(&dir, &["query", &format!("EXPLAIN {sql}")])?;
    assert!(text.contains("IndexScan trades_by_instrument_ts"), "{text}");
    let text = stdout_of(&dir, &["query", &format!("EXPLAIN ANALYZE {sql}")])?;
    assert!(text.contains("Actual: 10 rows"), "{text}");
    let v = json(&stdout_of(&dir, &["explain", sql, "--json"])?)?;
    let access = v["access"].as_str().ok_or("no access")?;
    assert!(
        access.starts_with("CoveringIndexScan trades_by_instrument_ts"),
        "{access}"
    );
    assert_eq!(v["table"], "trades");
    assert_eq!(v["limit"], 10);
    assert!(v["actual"].is_null());
    let v = json(&stdout_of(
        &dir,
        &["query", &format!("EXPLAIN ANALYZE {sql}"), "--json"],
    )?)?;
    assert_eq!(v["actual"]["rows"], 10);

    // A full scan when no index helps.
    let text = stdout_of(&dir, &["explain", "SELECT * FROM trades WHERE fee > 0"])?;
    assert!(text.contains("FullScan"), "{text}");
    Ok(())
}

#[test]
fn bad_statements_exit_1_point_at_the_offending_text_and_change_nothing() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let before = dump(&dir)?;
    // (statement, part of the message, the text the carets must underline)
    let cases = [
        ("SELEC * FROM trades", "syntax error", "SELEC"),
        (
            "SELECT * FROM trades JOIN orders ON trades.order_id = orders.id",
            "joins are not supported",
            "JOIN",
        ),
        (
            "SELECT * FROM trades WHERE pricee > 100",
            "unknown column \"pricee\"",
            "pricee",
        ),
        ("SELECT * FROM trade", "unknown table \"trade\"", "trade"),
        (
            "SELECT * FROM trades; DELETE FROM trades",
            "only one statement",
            "DELETE",
        ),
        (
            "DELETE FROM trades WHERE id = 1",
            "DELETE statement is not supported",
            "DELETE",
        ),
    ];
    for (sql, message, part) in cases {
        for cmd in ["query", "explain"] {
            let r = run(&dir, &[cmd, sql])?;
            assert_eq!(r.status, Some(1), "{cmd} {sql}: {}", r.stderr);
            assert_eq!(r.stdout, "", "{cmd} {sql}");
            assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
            assert!(r.stderr.contains(message), "{cmd} {sql}: {}", r.stderr);
            let (start, width) = caret(&r.stderr, sql)?;
            let at = sql.find(part).ok_or("part not in statement")?;
            assert_eq!(
                (start, width),
                (at, part.len()),
                "{cmd} {sql}: {}",
                r.stderr
            );
        }
    }
    // Formats do not matter: an error prints nothing on standard output.
    for format in ["--json", "--csv"] {
        let r = run(&dir, &["query", "SELEC * FROM trades", format])?;
        assert_eq!(r.status, Some(1));
        assert_eq!(r.stdout, "");
    }
    assert_eq!(dump(&dir)?, before);
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}", r.stdout);
    Ok(())
}

#[test]
fn analyze_then_explain() -> TestResult {
    let (_tmp, dir) = simulated_store()?;
    let trades = inspected_rows(&dir, "trades")?;

    let v = json(&stdout_of(&dir, &["analyze", "--json"])?)?;
    let tables = v["tables"].as_array().ok_or("no tables")?;
    assert_eq!(tables.len(), 6);
    let t = tables
        .iter()
        .find(|t| t["table"] == "trades")
        .ok_or("no trades")?;
    assert_eq!(t["rows"], trades);
    let columns = t["columns"].as_array().ok_or("no columns")?;
    let id = columns.iter().find(|c| c["name"] == "id").ok_or("no id")?;
    assert_eq!(id["distinct"], trades);
    assert_eq!(id["nulls"], 0);
    assert_eq!(id["sampled_min"], "1");
    let instrument = columns
        .iter()
        .find(|c| c["name"] == "instrument")
        .ok_or("no instrument")?;
    let instruments = instrument["distinct"].as_u64().ok_or("no distinct")?;
    assert!((1..=5).contains(&instruments), "{instrument}");
    let index = t["indexes"]
        .as_array()
        .ok_or("no indexes")?
        .iter()
        .find(|i| i["name"] == "trades_by_instrument_ts")
        .ok_or("no trades_by_instrument_ts")?;
    assert_eq!(index["columns"], serde_json::json!(["instrument", "ts"]));
    assert_eq!(index["distinct_prefixes"][0], instruments);
    // Market orders have no price.
    let orders = tables
        .iter()
        .find(|t| t["table"] == "orders")
        .ok_or("no orders")?;
    let price = orders["columns"]
        .as_array()
        .ok_or("no columns")?
        .iter()
        .find(|c| c["name"] == "price")
        .ok_or("no price")?;
    let market = json(&stdout_of(
        &dir,
        &[
            "query",
            "SELECT count(*) AS n FROM orders WHERE price IS NULL",
            "--json",
        ],
    )?)?;
    assert_eq!(price["nulls"], market["rows"][0]["n"]);

    let text = stdout_of(&dir, &["analyze"])?;
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("trades: {trades} rows"))),
        "{text}"
    );
    assert!(text.contains("DISTINCT PREFIXES"), "{text}");

    // The planner now works from the statistics: same access path, and an equality on the
    // instrument is estimated at the rows per instrument.
    let sql = "SELECT * FROM trades WHERE instrument = 1 ORDER BY ts DESC LIMIT 10";
    let text = stdout_of(&dir, &["explain", sql])?;
    assert!(text.contains("IndexScan trades_by_instrument_ts"), "{text}");
    let v = json(&stdout_of(
        &dir,
        &[
            "explain",
            "SELECT * FROM trades WHERE instrument = 1",
            "--json",
        ],
    )?)?;
    let examined = v["estimate"]["examined"].as_f64().ok_or("no estimate")?;
    let per_instrument = trades as f64 / instruments as f64;
    assert!((examined - per_instrument).abs() < 1.0, "{v}");
    Ok(())
}

/// Range estimates after `analyze`, in a later process. Ignored: the engine keeps the
/// statistics' sampled values as untagged JSON, so a stored `I64` (prices, quantities,
/// money, timestamps) comes back as `U64`, which sorts before every `I64`: every range
/// bound then looks above all sampled values, `price > 1` is estimated at 0 rows and
/// `price < 1` at all of them.
#[test]
fn range_estimates_after_analyze_follow_the_data() -> TestResult {
    let (_tmp, dir) = simulated_store()?;
    let trades = inspected_rows(&dir, "trades")?;
    stdout_of(&dir, &["analyze"])?;
    for sql in [
        "SELECT * FROM trades WHERE price > 1",
        "SELECT * FROM trades WHERE ts > '2000-01-01T00:00:00Z'",
    ] {
        let v = json(&stdout_of(&dir, &["explain", sql, "--json"])?)?;
        let rows = v["estimate"]["rows"].as_f64().ok_or("no estimate")?;
        assert!(rows > trades as f64 * 0.9, "{sql}: {v}");
    }
    Ok(())
}

#[test]
fn index_create_list_drop_log_round_trip() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let before = dump(&dir)?;

    let r = run(
        &dir,
        &[
            "index",
            "create",
            "--table",
            "trades",
            "--columns",
            "price,ts",
            // The name may follow the columns: --columns takes one comma-separated value.
            "trades_by_price",
            "--covering",
            "--reason",
            "prices are searched",
        ],
    )?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "built index trades_by_price on trades (price, ts): backfilled 2 entries in 1 chunk"
        ),
        "{}",
        r.stdout
    );

    let v = json(&stdout_of(&dir, &["index", "list", "--json"])?)?;
    let list = v["indexes"].as_array().ok_or("no indexes")?;
    assert_eq!(list.len(), 8);
    let new = list
        .iter()
        .find(|i| i["name"] == "trades_by_price")
        .ok_or("trades_by_price not listed")?;
    assert_eq!(
        new,
        &serde_json::json!({"name": "trades_by_price", "table": "trades",
            "columns": ["price", "ts"], "unique": false, "builtin": false, "covering": true,
            "ready": true})
    );
    let symbol = list
        .iter()
        .find(|i| i["name"] == "instruments_by_symbol")
        .ok_or("instruments_by_symbol not listed")?;
    assert_eq!(symbol["unique"], true);
    assert_eq!(symbol["builtin"], true);
    assert_eq!(symbol["covering"], false);
    let latest = list
        .iter()
        .find(|i| i["name"] == "trades_by_instrument_ts")
        .ok_or("trades_by_instrument_ts not listed")?;
    assert_eq!(latest["covering"], true);
    let text = stdout_of(&dir, &["index", "list"])?;
    let line = text
        .lines()
        .find(|l| l.starts_with("trades_by_price "))
        .ok_or("no line")?;
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        [
            "trades_by_price",
            "trades",
            "price,",
            "ts",
            "no",
            "no",
            "yes",
            "yes"
        ]
    );
    // The new index is consistent and queries can use it.
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}", r.stdout);
    let csv = stdout_of(
        &dir,
        &[
            "query",
            "SELECT id FROM trades WHERE price = 101 ORDER BY id",
            "--csv",
        ],
    )?;
    assert_eq!(csv, "id\n2\n");

    // A second index of the same name, or on the same columns, is refused.
    let r = run(
        &dir,
        &[
            "index",
            "create",
            "trades_by_price",
            "--table",
            "trades",
            "--columns",
            "fee",
        ],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    // The advice fits a repeated creation (not the generic "correct the data").
    assert!(
        r.stderr.contains("nothing was changed") && !r.stderr.contains("correct the data"),
        "{}",
        r.stderr
    );
    let r = run(
        &dir,
        &[
            "index",
            "create",
            "price_again",
            "--table",
            "trades",
            "--columns",
            "price,ts",
        ],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("trades_by_price already indexes"),
        "{}",
        r.stderr
    );
    let r = run(
        &dir,
        &[
            "index",
            "create",
            "bad",
            "--table",
            "trades",
            "--columns",
            "pricee",
        ],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("\"pricee\""), "{}", r.stderr);
    let r = run(
        &dir,
        &[
            "index",
            "create",
            "bad",
            "--table",
            "trade",
            "--columns",
            "price",
        ],
    )?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);

    // A built-in index stays.
    let r = run(&dir, &["index", "drop", "trades_by_order"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("built in"), "{}", r.stderr);
    let r = run(&dir, &["index", "drop", "no_such_index"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("no_such_index"), "{}", r.stderr);

    let out = stdout_of(
        &dir,
        &["index", "drop", "trades_by_price", "--reason", "not needed"],
    )?;
    assert_eq!(out, "dropped index trades_by_price\n");
    let v = json(&stdout_of(&dir, &["index", "list", "--json"])?)?;
    let names: Vec<&str> = v["indexes"]
        .as_array()
        .ok_or("no indexes")?
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names.len(), 7);
    assert!(names.contains(&"trades_by_order"));
    assert!(!names.contains(&"trades_by_price"));

    let v = json(&stdout_of(&dir, &["index", "log", "--json"])?)?;
    let log = v["decisions"].as_array().ok_or("no decisions")?;
    let actions: Vec<&str> = log.iter().filter_map(|d| d["action"].as_str()).collect();
    assert_eq!(actions, ["create", "ready", "drop"]);
    assert!(log.iter().all(|d| d["index"] == "trades_by_price"));
    assert!(log.iter().all(|d| d["table"] == "trades"));
    assert_eq!(log[0]["columns"], serde_json::json!(["price", "ts"]));
    assert_eq!(log[0]["reason"], "prices are searched");
    assert_eq!(log[2]["reason"], "not needed");
    for d in log {
        let time = d["time"].as_str().ok_or("no time")?;
        assert!(
            time.len() == "2026-11-26T10:00:00.000000000Z".len()
                && time.ends_with('Z')
                && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }
    let text = stdout_of(&dir, &["index", "log"])?;
    assert!(text.starts_with("TIME"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.lines()
            .nth(3)
            .is_some_and(|l| l.contains(" drop ") && l.ends_with("not needed"))
    );

    // Indexes change no row.
    assert_eq!(dump(&dir)?, before);
    Ok(())
}

#[test]
fn index_log_of_a_fresh_store_is_empty() -> TestResult {
    let (_tmp, dir) = new_store()?;
    assert_eq!(
        stdout_of(&dir, &["index", "log"])?,
        "no index decisions recorded\n"
    );
    let v = json(&stdout_of(&dir, &["index", "log", "--json"])?)?;
    assert_eq!(v["decisions"], serde_json::json!([]));
    Ok(())
}

#[test]
fn advise_refuses_a_workload_file_beyond_its_bound() -> TestResult {
    let (tmp, dir) = new_store()?;
    let workload = tmp.path().join("huge.sql");
    // 16 MiB and one byte of comment lines: no statement is run, nothing is read past it.
    let line = "-- padding\n".repeat(1 << 10);
    let mut text = line.repeat(((16 << 20) / line.len()) + 1);
    text.truncate((16 << 20) + 1);
    std::fs::write(&workload, text)?;
    let r = run(
        &dir,
        &["index", "advise", "--workload", path_str(&workload)?],
    )?;
    assert!(!r.ok());
    assert!(r.stderr.contains("over 16 MiB"), "{}", r.stderr);
    Ok(())
}

#[test]
fn advise_recommends_an_index_on_price_for_a_workload_filtering_by_price() -> TestResult {
    let (tmp, dir) = simulated_store()?;
    let workload = tmp.path().join("workload.sql");
    std::fs::write(
        &workload,
        "-- the book's expensive trades, often\n\
         \n\
         50|SELECT * FROM trades WHERE price > 104\n\
         5|SELECT * FROM trades WHERE instrument = 1 ORDER BY ts DESC LIMIT 10\n",
    )?;
    let file = path_str(&workload)?;

    let v = json(&stdout_of(
        &dir,
        &["index", "advise", "--workload", file, "--json"],
    )?)?;
    assert_eq!(v["statements"], 2);
    assert_eq!(v["executions"], 55);
    let recs = v["recommendations"]
        .as_array()
        .ok_or("no recommendations")?;
    let first = recs.first().ok_or("nothing recommended")?;
    assert_eq!(first["columns"][0], "price", "{first}");
    assert_eq!(first["table"], "trades");
    assert_eq!(first["executions"], 50);
    assert!(
        first["benefit"].as_f64().is_some_and(|b| b > 0.0),
        "{first}"
    );
    assert!(first["entry_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(first["writes_per_sec"].as_f64().is_some());
    assert_eq!(first["shapes"], serde_json::json!(["trades: price range"]));
    // The instrument query is already served by a built-in index.
    assert!(recs.iter().all(|r| r["columns"][0] == "price"), "{recs:?}");
    let shapes = v["workload"].as_array().ok_or("no workload")?;
    let price = shapes
        .iter()
        .find(|s| s["shape"] == "trades: price range")
        .ok_or("price shape not recorded")?;
    assert_eq!(price["executions"], 50);
    assert_eq!(price["last_access"], "FullScan");
    let trades = inspected_rows(&dir, "trades")?;
    assert_eq!(price["examined"], 50 * trades);

    let text = stdout_of(&dir, &["index", "advise", "--workload", file])?;
    assert!(
        text.starts_with("ran 2 statements (55 executions)"),
        "{text}"
    );
    assert!(text.contains("recommended indexes, best first:"), "{text}");
    let name = first["name"].as_str().ok_or("no name")?;
    let command = format!("tradestore index create {name} --table trades --columns price");
    assert!(text.contains(&command), "{text}");
    assert!(text.contains("SHAPE"), "{text}");

    // Built as advised, the same workload needs nothing more, and uses it.
    let columns = first["columns"]
        .as_array()
        .ok_or("no columns")?
        .iter()
        .filter_map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",");
    stdout_of(
        &dir,
        &[
            "index",
            "create",
            name,
            "--table",
            "trades",
            "--columns",
            &columns,
        ],
    )?;
    let r = run(&dir, &["index", "advise", "--workload", file])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("no index recommended"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("trades: price range") && l.contains(name)),
        "{}",
        r.stdout
    );

    // --query adds statements the same way.
    let v = json(&stdout_of(
        &dir,
        &[
            "index",
            "advise",
            "--query",
            "SELECT * FROM trades WHERE fee > 1",
            "--query",
            "SELECT * FROM trades WHERE fee > 2",
            "--json",
        ],
    )?)?;
    assert_eq!(v["executions"], 2);
    let fee = v["workload"]
        .as_array()
        .and_then(|w| w.iter().find(|s| s["shape"] == "trades: fee range"))
        .ok_or("no fee shape in the workload")?;
    assert_eq!(fee["executions"], 2);
    Ok(())
}

#[test]
fn advise_without_a_workload_recommends_nothing_and_says_why() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let r = run(&dir, &["index", "advise"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("no index recommended"), "{}", r.stdout);
    assert!(r.stderr.contains("--workload"), "{}", r.stderr);
    let r = run(&dir, &["index", "advise", "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v = json(&r.stdout)?;
    assert_eq!(v["recommendations"], serde_json::json!([]));
    assert_eq!(v["workload"], serde_json::json!([]));
    Ok(())
}

#[test]
fn a_bad_workload_line_is_named() -> TestResult {
    let (tmp, dir) = book_store()?;
    let workload = tmp.path().join("workload.sql");
    std::fs::write(
        &workload,
        "SELECT * FROM trades\n-- fine so far\n3|SELECT * FROM trade WHERE id = 1\n",
    )?;
    let r = run(
        &dir,
        &["index", "advise", "--workload", path_str(&workload)?],
    )?;
    assert_eq!(r.status, Some(1));
    assert_eq!(r.stdout, "");
    assert!(r.stderr.contains("workload.sql line 3"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown table \"trade\""), "{}", r.stderr);

    std::fs::write(&workload, "0|SELECT * FROM trades\n")?;
    let r = run(
        &dir,
        &["index", "advise", "--workload", path_str(&workload)?],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);

    let missing = tmp.path().join("missing.sql");
    let r = run(
        &dir,
        &["index", "advise", "--workload", path_str(&missing)?],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("missing.sql"), "{}", r.stderr);

    let r = run(&dir, &["index", "advise", "--query", "SELEC 1"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("--query 1"), "{}", r.stderr);
    Ok(())
}

#[test]
fn the_query_commands_refuse_a_missing_store() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("nowhere");
    let cases: [&[&str]; 9] = [
        &["query", "SELECT * FROM trades"],
        &["explain", "SELECT * FROM trades"],
        &["analyze"],
        &["index", "advise", "--query", "SELECT * FROM trades"],
        &[
            "index",
            "create",
            "x",
            "--table",
            "trades",
            "--columns",
            "fee",
        ],
        &["index", "drop", "x"],
        &["index", "list"],
        &["index", "log"],
        &["index", "list", "--json"],
    ];
    for args in cases {
        let r = run(&dir, args)?;
        assert_eq!(r.status, Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("tradestore init"),
            "{args:?}: {}",
            r.stderr
        );
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(!dir.exists(), "{args:?} created the directory");
    }
    std::fs::create_dir(&dir)?;
    let r = run(&dir, &["query", "SELECT * FROM trades"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("tradestore init"), "{}", r.stderr);
    assert!(!dir.join("tradestore.redb").exists());
    Ok(())
}

#[test]
fn help_documents_the_query_commands() -> TestResult {
    let bin = env!("CARGO_BIN_EXE_tradestore");
    let out = Command::new(bin).arg("--help").output()?;
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout)?;
    for word in ["query", "explain", "analyze", "index"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    let commands: [&[&str]; 9] = [
        &["query"],
        &["explain"],
        &["analyze"],
        &["index", "advise"],
        &["index", "create"],
        &["index", "drop"],
        &["index", "list"],
        &["index", "log"],
        &["index"],
    ];
    for cmd in commands {
        let out = Command::new(bin).args(cmd).arg("--help").output()?;
        assert!(out.status.success(), "{cmd:?} --help");
        let help = String::from_utf8(out.stdout)?;
        if cmd != ["index"] {
            assert!(help.contains("--dir"), "{cmd:?}: {help}");
            assert!(help.contains("TRADESTORE_DIR"), "{cmd:?}: {help}");
        } else {
            for sub in ["advise", "create", "drop", "list", "log"] {
                assert!(help.contains(sub), "{sub} missing from:\n{help}");
            }
        }
    }
    Ok(())
}
