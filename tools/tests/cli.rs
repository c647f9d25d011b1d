//! The `tradestore` binary end to end: each test runs it as a process against a store in a
//! temporary directory and checks exit statuses, output and what the store holds after.

use std::error::Error;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

type TestResult = Result<(), Box<dyn Error>>;

/// What one run of the binary did.
struct Run {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// Runs `tradestore ARGS --dir DIR`, with `stdin` piped in when given, and with no
/// `TRADESTORE_*` variable of the test's own environment leaking into the store's config.
fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Run, Box<dyn Error>> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    cmd.args(args).arg("--dir").arg(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRADESTORE_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(bytes)?;
    }
    let out = child.wait_with_output()?;
    Ok(Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

fn run(dir: &Path, args: &[&str]) -> Result<Run, Box<dyn Error>> {
    run_in(dir, args, None)
}

/// A fresh store in a temporary directory: `(tempdir, store dir)`.
fn new_store() -> Result<(tempfile::TempDir, std::path::PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let r = run(&dir, &["init"])?;
    assert!(r.ok(), "init failed: {}", r.stderr);
    Ok((tmp, dir))
}

/// The store's dump, read from standard output.
fn dump(dir: &Path) -> Result<String, Box<dyn Error>> {
    let r = run(dir, &["dump", "--out", "-"])?;
    assert!(r.ok(), "dump failed: {}", r.stderr);
    Ok(r.stdout)
}

/// A consistent little book, in canonical dump order (tables parents first, rows by key,
/// fields in declaration order). ACME ticks at 0.01 (price raw 1e6) in lots of 1 (quantity
/// raw 1e8). Account 1 buys 4 at 99.50 (order 1, partly filled) then sells 2 at 101.00 with
/// a 0.50 fee (order 2, filled); order 3 is a cancelled market order. The position is the
/// fold at average cost: 2 left at cost 199, realised 202 - 199 - 0.50 = 2.50; cash is
/// -398 + 202 - 0.50 = -196.50.
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
fn book_store() -> Result<(tempfile::TempDir, std::path::PathBuf), Box<dyn Error>> {
    let (tmp, dir) = new_store()?;
    let file = tmp.path().join("book.jsonl");
    std::fs::write(&file, BOOK)?;
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert!(r.ok(), "restore failed: {}", r.stderr);
    Ok((tmp, dir))
}

fn path_str(p: &Path) -> Result<&str, Box<dyn Error>> {
    Ok(p.to_str().ok_or("temporary path is not UTF-8")?)
}

fn json(text: &str) -> Result<serde_json::Value, Box<dyn Error>> {
    Ok(serde_json::from_str(text)?)
}

#[test]
fn init_creates_config_database_and_folders() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("a").join("store");
    let r = run(&dir, &["init", "--profile", "test"])?;
    assert!(r.ok(), "{}", r.stderr);
    for file in ["tradestore.toml", "tradestore.redb"] {
        assert!(dir.join(file).is_file(), "{file} missing");
        assert!(r.stdout.contains(file), "{}", r.stdout);
    }
    for sub in ["journal", "archive", "backups"] {
        assert!(dir.join(sub).is_dir(), "{sub}/ missing");
    }
    let toml = std::fs::read_to_string(dir.join("tradestore.toml"))?;
    assert!(toml.contains("profile = \"test\""), "{toml}");
    assert!(r.stdout.contains("profile test"), "{}", r.stdout);
    Ok(())
}

#[test]
fn init_again_keeps_the_store_and_refuses_another_profile() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let config = std::fs::read_to_string(dir.join("tradestore.toml"))?;

    let r = run(&dir, &["init"])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("nothing created"), "{}", r.stdout);
    let r = run(&dir, &["init", "--profile", "dev"])?;
    assert!(r.ok(), "{}", r.stderr);

    let r = run(&dir, &["init", "--profile", "prod"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("profile dev, not prod"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.join("tradestore.toml"))?,
        config
    );
    assert_eq!(dump(&dir)?, BOOK);
    Ok(())
}

#[test]
fn init_rejects_an_unknown_profile() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let r = run(&dir, &["init", "--profile", "staging"])?;
    assert_eq!(r.status, Some(2));
    assert!(r.stderr.contains("staging"), "{}", r.stderr);
    assert!(!dir.exists());
    Ok(())
}

/// A failed init leaves the directory as it was: a file named like the database that is not
/// one is never replaced, and what the run created (the configuration, the folders, the
/// directory itself) is removed again, so no half store is left behind.
#[test]
fn a_failed_init_leaves_the_directory_as_it_was() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("tradestore.redb"), b"my notes")?;
    let r = run(&dir, &["init"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    for part in [
        "was there before init",
        "never replaces",
        "nothing was changed",
    ] {
        assert!(r.stderr.contains(part), "{part:?} missing: {}", r.stderr);
    }
    assert!(!r.stderr.contains("tradestore check"), "{}", r.stderr);
    let mut left: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    left.sort();
    assert_eq!(left, ["tradestore.redb"]);
    assert_eq!(std::fs::read(dir.join("tradestore.redb"))?, b"my notes");

    // A setting that does not parse: the directory init would have made is not there.
    let fresh = tmp.path().join("fresh");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    cmd.args(["init", "--dir", path_str(&fresh)?])
        .env("TRADESTORE_CACHE_SIZE_MB", "lots");
    let out = cmd.output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cache_size_mb"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fresh.exists());
    Ok(())
}

#[test]
fn inspect_json_lists_tables_indexes_and_files() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let r = run(&dir, &["inspect", "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let v = json(&r.stdout)?;
    let tables = v["tables"].as_array().ok_or("no tables")?;
    let names: Vec<&str> = tables.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "instruments",
            "accounts",
            "orders",
            "trades",
            "positions",
            "cash"
        ]
    );
    let rows: Vec<u64> = tables.iter().filter_map(|t| t["rows"].as_u64()).collect();
    assert_eq!(rows, [1, 1, 3, 2, 1, 1]);
    let indexes = v["indexes"].as_array().ok_or("no indexes")?;
    assert_eq!(indexes.len(), 7);
    let symbol = indexes
        .iter()
        .find(|i| i["name"] == "instruments_by_symbol")
        .ok_or("no instruments_by_symbol")?;
    assert_eq!(symbol["unique"], true);
    assert_eq!(symbol["covering"], false);
    assert_eq!(symbol["entries"], 1);
    // The latest-trades index keeps each trade: its bytes are keys plus the rows.
    let latest = indexes
        .iter()
        .find(|i| i["name"] == "trades_by_instrument_ts")
        .ok_or("no trades_by_instrument_ts")?;
    let by_account = indexes
        .iter()
        .find(|i| i["name"] == "trades_by_account_ts")
        .ok_or("no trades_by_account_ts")?;
    assert_eq!(latest["covering"], true);
    assert_eq!(latest["entries"], 2);
    let trade_bytes = tables
        .iter()
        .find(|t| t["name"] == "trades")
        .and_then(|t| t["stored_bytes"].as_u64())
        .ok_or("no trades bytes")?;
    let key_bytes = by_account["stored_bytes"].as_u64().ok_or("no bytes")?;
    assert!(
        latest["stored_bytes"].as_u64().ok_or("no bytes")? > key_bytes + trade_bytes / 2,
        "{latest} vs {by_account}"
    );
    let files = v["files"].as_array().ok_or("no files")?;
    assert!(files.iter().any(|f| f["path"] == "tradestore.redb"));
    assert_eq!(v["profile"], "dev");
    Ok(())
}

#[test]
fn inspect_prints_tables_for_people() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let r = run(&dir, &["inspect"])?;
    assert!(r.ok(), "{}", r.stderr);
    let orders = r
        .stdout
        .lines()
        .find(|l| l.starts_with("orders "))
        .ok_or("no orders row")?;
    assert_eq!(orders.split_whitespace().nth(1), Some("3"), "{orders}");
    assert!(r.stdout.contains("trades_by_order"), "{}", r.stdout);
    assert!(r.stdout.contains("KiB"), "{}", r.stdout);
    Ok(())
}

#[test]
fn check_of_an_empty_store_is_clean() -> TestResult {
    let (_tmp, dir) = new_store()?;
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("no violations"), "{}", r.stdout);
    // Piped stderr: no progress bar, nothing at all.
    assert_eq!(r.stderr, "");
    Ok(())
}

#[test]
fn dump_of_an_empty_store_is_its_end_line() -> TestResult {
    let (tmp, dir) = new_store()?;
    const EMPTY: &str = "{\"end\":{\"rows\":0}}\n";
    assert_eq!(dump(&dir)?, EMPTY);
    let file = tmp.path().join("empty.jsonl");
    let r = run(&dir, &["dump", "--out", path_str(&file)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file)?, EMPTY);
    assert!(r.stderr.contains("dumped 0 rows"), "{}", r.stderr);
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("restored 0 rows"), "{}", r.stderr);
    // An empty file is not a dump, unless the end line is not checked.
    std::fs::write(&file, "")?;
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("the dump (0 rows) has no end line"),
        "{}",
        r.stderr
    );
    let r = run(
        &dir,
        &["restore", "--no-end-check", "--in", path_str(&file)?],
    )?;
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(dump(&dir)?, EMPTY);
    Ok(())
}

#[test]
fn restore_then_dump_is_byte_identical() -> TestResult {
    let (tmp, dir) = book_store()?;
    assert_eq!(dump(&dir)?, BOOK);

    let file = tmp.path().join("out").join("book.jsonl");
    std::fs::create_dir(tmp.path().join("out"))?;
    let r = run(&dir, &["dump", "--out", path_str(&file)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file)?, BOOK);
    assert!(r.stderr.contains("dumped 9 rows"), "{}", r.stderr);
    assert!(r.stderr.contains("orders 3"), "{}", r.stderr);
    // Only the finished file: the temporary one was renamed, not left beside it.
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("out"))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["book.jsonl"]);
    Ok(())
}

#[test]
fn restore_reads_standard_input() -> TestResult {
    let (_tmp, dir) = new_store()?;
    let r = run_in(&dir, &["restore", "--in", "-"], Some(BOOK.as_bytes()))?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stderr.contains("restored 9 rows"), "{}", r.stderr);
    assert_eq!(dump(&dir)?, BOOK);
    Ok(())
}

#[test]
fn restore_stops_reading_an_endless_input_of_bad_lines() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .args(["restore", "--in", "-", "--dir"])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
    // Writes bad lines until the reader goes away (a broken pipe) or ten minutes pass.
    let writer = std::thread::spawn(move || {
        let line = b"garbage\n".repeat(1024);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(600);
        while std::time::Instant::now() < until {
            if pipe.write_all(&line).is_err() {
                return true;
            }
        }
        false
    });
    let out = child.wait_with_output()?;
    let stopped = writer.join().map_err(|_| "the writer panicked")?;
    assert!(stopped, "restore read ten minutes of bad lines");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("line 1:"), "{err}");
    assert_eq!(dump(&dir)?, BOOK);
    Ok(())
}

#[test]
fn restore_with_a_bad_line_3_names_it_and_changes_nothing() -> TestResult {
    let (tmp, dir) = book_store()?;
    // Lines 1 and 2 are good new rows; line 3 lacks most of an order's fields.
    let bad = [
        r#"{"table":"instruments","record":{"id":2,"symbol":"BETA","tick_size":1000000,"lot_size":100000000,"currency":"USD"}}"#,
        r#"{"table":"accounts","record":{"id":2,"name":"beta","status":"active"}}"#,
        r#"{"table":"orders","record":{"id":4,"account":2}}"#,
        r#"{"table":"accounts","record":{"id":3,"name":"gamma","status":"active"}}"#,
    ]
    .join("\n");
    let file = tmp.path().join("bad.jsonl");
    std::fs::write(&file, bad)?;
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("line 3"), "{}", r.stderr);
    assert_eq!(dump(&dir)?, BOOK);
    Ok(())
}

#[test]
fn restore_of_a_truncated_file_changes_nothing() -> TestResult {
    let (tmp, dir) = new_store()?;
    let file = tmp.path().join("cut.jsonl");

    // Cut in the middle of line 6 (the first trade).
    let cut = BOOK
        .lines()
        .take(5)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        + &BOOK.lines().nth(5).ok_or("short book")?[..40];
    std::fs::write(&file, cut)?;
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("line 6"), "{}", r.stderr);
    assert_eq!(dump(&dir)?, "{\"end\":{\"rows\":0}}\n");

    // Cut at any line end: every line parses, and the end line is missing.
    for n in 0..BOOK.lines().count() {
        let cut: String = BOOK.lines().take(n).map(|l| format!("{l}\n")).collect();
        std::fs::write(&file, cut)?;
        let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
        assert_eq!(r.status, Some(1));
        let wanted = format!("the dump ({n} rows) has no end line");
        assert!(r.stderr.contains(&wanted), "{n}: {}", r.stderr);
        assert_eq!(dump(&dir)?, "{\"end\":{\"rows\":0}}\n");
    }

    // Unchecked, the cut before the trades still fails on the data: orders 1 and 2 (lines
    // 3 and 4) claim fills that are missing.
    let cut: String = BOOK.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, cut)?;
    let r = run(
        &dir,
        &["restore", "--no-end-check", "--in", path_str(&file)?],
    )?;
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("line 3: orders 1") || r.stderr.contains("line 4: orders 2"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("fills sum to 0"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was restored"), "{}", r.stderr);
    assert_eq!(dump(&dir)?, "{\"end\":{\"rows\":0}}\n");
    Ok(())
}

#[test]
fn restore_of_rows_already_there_changes_nothing() -> TestResult {
    let (tmp, dir) = book_store()?;
    let file = tmp.path().join("again.jsonl");
    std::fs::write(&file, BOOK)?;
    let r = run(&dir, &["restore", "--in", path_str(&file)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    // The advice fits a rerun of a restore that finished (a kill after its commit).
    assert!(
        r.stderr
            .contains("the store already holds a row with this key")
            && r.stderr
                .contains("if an earlier restore of this dump finished"),
        "{}",
        r.stderr
    );
    assert_eq!(dump(&dir)?, BOOK);
    Ok(())
}

#[test]
fn check_json_reports_a_clean_store() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let r = run(&dir, &["check", "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v = json(&r.stdout)?;
    assert_eq!(v["rows"], 9);
    // One entry per row of each indexed table: 1 instrument, 2 x 3 orders, 1 position,
    // 3 x 2 trades.
    assert_eq!(v["index_entries"], 14);
    assert_eq!(v["violations"], serde_json::json!([]));
    Ok(())
}

#[test]
fn check_lists_violations_and_exits_1() -> TestResult {
    let (_tmp, dir) = book_store()?;
    // Damage the store behind the engine's back: drop one entry of the trades_by_order
    // index (a redb table named `i.<index>` keyed by index columns then primary key).
    {
        let db = redb::Database::open(dir.join("tradestore.redb"))?;
        let tx = db.begin_write()?;
        {
            let def: redb::TableDefinition<&[u8], ()> =
                redb::TableDefinition::new("i.trades_by_order");
            let mut index = tx.open_table(def)?;
            assert!(index.pop_first()?.is_some());
        }
        tx.commit()?;
    }
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("index_count"))
        .ok_or_else(|| format!("no index_count violation in {}", r.stdout))?;
    assert!(line.contains("index trades_by_order"), "{line}");

    let r = run(&dir, &["check", "--json"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let v = json(&r.stdout)?;
    let violations = v["violations"].as_array().ok_or("no violations")?;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0]["check"], "index_count");
    assert_eq!(violations[0]["table"], "index trades_by_order");
    Ok(())
}

#[test]
fn check_of_a_damaged_file_exits_2() -> TestResult {
    let (_tmp, dir) = new_store()?;
    std::fs::write(dir.join("tradestore.redb"), vec![0x5a; 8192])?;
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(2));
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    Ok(())
}

#[test]
fn an_emptied_database_file_is_refused_not_taken_for_a_new_store() -> TestResult {
    let (_tmp, dir) = book_store()?;
    std::fs::write(dir.join("tradestore.redb"), b"")?;
    for cmd in [&["check"][..], &["inspect"], &["dump", "--out", "-"]] {
        let r = run(&dir, cmd)?;
        assert!(!r.ok(), "{cmd:?} accepted an empty database file");
        assert!(r.stderr.contains("is empty (0 bytes)"), "{}", r.stderr);
    }
    assert_eq!(std::fs::metadata(dir.join("tradestore.redb"))?.len(), 0);
    Ok(())
}

/// A changed byte inside a row (the file still opens, the row still decodes) is caught by
/// redb's checksums: `check`, `dump` and `compact` verify the whole file first and refuse,
/// rather than report, export or rewrite damaged data.
#[test]
fn check_dump_and_compact_refuse_a_file_whose_checksums_fail() -> TestResult {
    let (tmp, dir) = book_store()?;
    let path = dir.join("tradestore.redb");
    let mut bytes = std::fs::read(&path)?;
    let mut hits = 0;
    for i in 0..bytes.len().saturating_sub(5) {
        if &bytes[i..i + 5] == b"alpha" {
            bytes[i + 4] = b'z';
            hits += 1;
        }
    }
    assert!(hits > 0, "the account's name is in the file");
    std::fs::write(&path, &bytes)?;

    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("corrupt"), "{}", r.stderr);
    let out = tmp.path().join("out.jsonl");
    let r = run(&dir, &["dump", "--out", path_str(&out)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(!out.exists());
    let r = run(&dir, &["dump", "--out", "-"])?;
    assert_eq!(r.status, Some(1));
    assert!(!r.stdout.contains("alphz"), "{}", r.stdout);
    let r = run(&dir, &["compact"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("corrupt"), "{}", r.stderr);
    Ok(())
}

/// `compact` keeps every row (the dump is byte-identical), leaves a clean store, reports
/// both sizes (no larger after), and on a damaged file fails and changes nothing.
#[test]
fn compact_keeps_the_rows_and_reports_the_sizes() -> TestResult {
    let (_tmp, dir) = book_store()?;
    let before = dump(&dir)?;
    let r = run(&dir, &["compact", "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let sizes = json(&r.stdout)?;
    let (Some(was), Some(is)) = (
        sizes["before_bytes"].as_u64(),
        sizes["after_bytes"].as_u64(),
    ) else {
        return Err(format!("sizes missing: {}", r.stdout).into());
    };
    assert!(is <= was, "{was} -> {is}");
    assert_eq!(is, std::fs::metadata(dir.join("tradestore.redb"))?.len());
    // The restore closed the store cleanly: nothing was left to replay.
    assert_eq!(sizes["recovery"]["replayed"], 0, "{}", r.stdout);
    assert!(sizes["recovery"]["torn_tail"].is_null(), "{}", r.stdout);
    assert_eq!(dump(&dir)?, before);
    assert_eq!(run(&dir, &["check"])?.status, Some(0));
    let r = run(&dir, &["compact"])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.starts_with("compacted "), "{}", r.stdout);

    let damaged = vec![0x5a; 8192];
    std::fs::write(dir.join("tradestore.redb"), &damaged)?;
    let r = run(&dir, &["compact"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert_eq!(std::fs::read(dir.join("tradestore.redb"))?, damaged);
    Ok(())
}

#[test]
fn an_unknown_config_key_is_named() -> TestResult {
    let (_tmp, dir) = new_store()?;
    let path = dir.join("tradestore.toml");
    let mut text = std::fs::read_to_string(&path)?;
    text.push_str("cache_megabytes = 12\n");
    std::fs::write(&path, text)?;
    for (args, status) in [(&["inspect"][..], 1), (&["check"][..], 2)] {
        let r = run(&dir, args)?;
        assert_eq!(r.status, Some(status), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("cache_megabytes"), "{}", r.stderr);
        assert!(r.stderr.contains("tradestore.toml"), "{}", r.stderr);
    }
    Ok(())
}

/// A configuration file that is not UTF-8 is named as a configuration problem, not a failing
/// disk, and nothing in the store changes.
#[test]
fn a_config_file_that_is_not_text_is_a_config_error() -> TestResult {
    let (_tmp, dir) = new_store()?;
    for file in ["tradestore.toml", "alerts.toml"] {
        let path = dir.join(file);
        let saved = std::fs::read(&path).ok();
        std::fs::write(&path, b"retention = \xff\xfe\n")?;
        let r = run(&dir, &["inspect"])?;
        assert_eq!(r.status, Some(1), "{file}: {}", r.stderr);
        assert!(r.stderr.contains("config error"), "{file}: {}", r.stderr);
        assert!(r.stderr.contains(file), "{file}: {}", r.stderr);
        assert!(r.stderr.contains("not UTF-8"), "{file}: {}", r.stderr);
        match saved {
            Some(text) => std::fs::write(&path, text)?,
            None => std::fs::remove_file(&path)?,
        }
    }
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    Ok(())
}

#[test]
fn a_missing_store_is_not_created_and_points_to_init() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("nowhere");
    let book = tmp.path().join("book.jsonl");
    std::fs::write(&book, BOOK)?;
    let out = tmp.path().join("out.jsonl");
    let cases: [(&[&str], i32); 6] = [
        (&["inspect"], 1),
        (&["compact"], 1),
        (&["inspect", "--json"], 1),
        (&["dump", "--out", path_str(&out)?], 1),
        (&["restore", "--in", path_str(&book)?], 1),
        (&["check"], 2),
    ];
    for (args, status) in cases {
        let r = run(&dir, args)?;
        assert_eq!(r.status, Some(status), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("tradestore init"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!dir.exists(), "{args:?} created the directory");
    }
    assert!(!out.exists());

    // A directory that exists but holds no store is refused the same way.
    std::fs::create_dir(&dir)?;
    let r = run(&dir, &["inspect"])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("tradestore init"), "{}", r.stderr);
    assert!(!dir.join("tradestore.redb").exists());
    Ok(())
}

#[test]
fn dump_never_writes_over_the_stores_files_or_through_special_files() -> TestResult {
    let (tmp, dir) = book_store()?;
    let db = std::fs::read(dir.join("tradestore.redb"))?;
    let config = std::fs::read(dir.join("tradestore.toml"))?;
    // The store's own files, and a new file among them (also through `..`).
    let inside = [
        dir.join("tradestore.redb"),
        dir.join("tradestore.toml"),
        dir.join("journal").join("x.jsonl"),
        dir.join("journal").join("..").join("y.jsonl"),
    ];
    for out in &inside {
        let r = run(&dir, &["dump", "--out", path_str(out)?])?;
        assert_eq!(r.status, Some(1), "{}: {}", out.display(), r.stderr);
        assert!(r.stderr.contains("inside the store"), "{}", r.stderr);
    }
    assert_eq!(std::fs::read(dir.join("tradestore.redb"))?, db);
    assert_eq!(std::fs::read(dir.join("tradestore.toml"))?, config);
    assert!(!dir.join("journal").join("x.jsonl").exists());
    assert!(!dir.join("y.jsonl").exists());
    // A directory, and a link the rename would replace rather than write through.
    let folder = tmp.path().join("folder");
    std::fs::create_dir(&folder)?;
    let r = run(&dir, &["dump", "--out", path_str(&folder)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    #[cfg(unix)]
    {
        let target = tmp.path().join("target.jsonl");
        std::fs::write(&target, "kept\n")?;
        let link = tmp.path().join("link.jsonl");
        std::os::unix::fs::symlink(&target, &link)?;
        let r = run(&dir, &["dump", "--out", path_str(&link)?])?;
        assert_eq!(r.status, Some(1));
        assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
        assert!(std::fs::symlink_metadata(&link)?.file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target)?, "kept\n");
    }
    // An ordinary file beside the store is replaced by the dump, as before.
    let file = tmp.path().join("book.jsonl");
    let r = run(&dir, &["dump", "--out", path_str(&file)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&file)?, BOOK);
    Ok(())
}

#[test]
fn a_failed_dump_leaves_no_file() -> TestResult {
    let (tmp, dir) = book_store()?;
    let out = tmp.path().join("no-such-dir").join("book.jsonl");
    let r = run(&dir, &["dump", "--out", path_str(&out)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("no-such-dir"), "{}", r.stderr);
    assert!(!out.exists());
    Ok(())
}

#[test]
fn help_documents_every_command_and_the_exit_statuses() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .arg("--help")
        .output()?;
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout)?;
    for word in [
        "init",
        "inspect",
        "dump",
        "restore",
        "check",
        "compact",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    for cmd in ["init", "inspect", "dump", "restore", "check", "compact"] {
        let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
            .args([cmd, "--help"])
            .output()?;
        assert!(out.status.success(), "{cmd} --help");
        let help = String::from_utf8(out.stdout)?;
        assert!(help.contains("--dir"), "{cmd}: {help}");
        assert!(help.contains("TRADESTORE_DIR"), "{cmd}: {help}");
    }
    Ok(())
}

#[test]
fn simulate_does_not_turn_a_folder_of_other_files_into_a_store() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("papers");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("notes.txt"), "mine\n")?;
    let r = run(&dir, &["simulate", "--orders", "10"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("holds other files and no store"),
        "{}",
        r.stderr
    );
    let names: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, ["notes.txt"], "nothing was added");
    Ok(())
}

#[test]
fn a_store_whose_creation_was_killed_checks_clean_and_simulate_finishes_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    // What a creation killed before its database was renamed into place leaves.
    for sub in tradestore::SUBDIRS {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(dir.join(tradestore::NEW_DB_FILE), vec![0u8; 4096])?;
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("holds no database yet"), "{}", r.stdout);
    let r = run(&dir, &["inspect"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("creation was interrupted"),
        "{}",
        r.stderr
    );
    let r = run(&dir, &["simulate", "--orders", "200", "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(!dir.join(tradestore::NEW_DB_FILE).exists());
    let r = run(&dir, &["check"])?;
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("no violations"), "{}", r.stdout);
    Ok(())
}
