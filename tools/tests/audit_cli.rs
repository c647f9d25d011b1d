//! `tradestore audit` end to end: index changes, a migration and notes made through the CLI
//! are listed with their actor; `verify` prints a head and holds it; an entry edited in the
//! file makes `verify` and `check` exit 1 naming it; bad arguments exit non-zero and append
//! nothing.

use std::error::Error;
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod support;
use support::{Run, TestResult, command, output, s};

use redb::{ReadableTable, TableDefinition};

/// Runs `tradestore ARGS` (see [`support::command`]) as the actor `ops-test`.
fn run(args: &[&str]) -> Result<Run, Box<dyn Error>> {
    output(command(args).env("TRADESTORE_ACTOR", "ops-test"))
}

fn ok(args: &[&str]) -> Result<Run, Box<dyn Error>> {
    let r = run(args)?;
    assert_eq!(r.status, Some(0), "{args:?}: {}\n{}", r.stdout, r.stderr);
    Ok(r)
}

fn entries(d: &str) -> Result<Vec<serde_json::Value>, Box<dyn Error>> {
    let r = ok(&["audit", "list", "--dir", d, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    Ok(v["entries"].as_array().ok_or("no entries")?.clone())
}

fn store() -> Result<(tempfile::TempDir, PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    ok(&["init", "--dir", s(&dir)?])?;
    ok(&["simulate", "--dir", s(&dir)?, "--orders", "300", "--json"])?;
    Ok((tmp, dir))
}

#[test]
fn changes_are_listed_verified_and_tampering_is_found() -> TestResult {
    let (tmp, dir) = store()?;
    let d = s(&dir)?;
    let r = ok(&["audit", "list", "--dir", d])?;
    assert!(r.stdout.contains("no audit entry"), "{}", r.stdout);

    ok(&[
        "index",
        "create",
        "by_price",
        "--table",
        "trades",
        "--columns",
        "price",
        "--dir",
        d,
    ])?;
    ok(&["index", "drop", "by_price", "--dir", d])?;
    let m = tmp.path().join("migrations");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("one.toml"),
        "version = 1\n[[step]]\ncreate_index = { name = \"orders_by_price\", table = \"orders\", columns = [\"price\"] }\n",
    )?;
    ok(&[
        "migrate",
        "apply",
        "--dir",
        d,
        "--migrations",
        s(&m)?,
        "--no-backup",
    ])?;
    // A detail with terminal escapes is stored as given and printed without them.
    ok(&[
        "audit",
        "note",
        "--dir",
        d,
        "--action",
        "kill-switch.on",
        "desk 4 \u{1b}[31mhalted",
    ])?;

    let list = entries(d)?;
    let actions: Vec<&str> = list.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions,
        [
            "index.create",
            "index.ready",
            "index.drop",
            "index.create",
            "migrate",
            "kill-switch.on"
        ]
    );
    assert!(list.iter().all(|e| e["actor"] == "ops-test"));
    assert_eq!(list[5]["detail"], "desk 4 \u{1b}[31mhalted");
    let r = ok(&["audit", "list", "--dir", d])?;
    assert!(
        !r.stdout.contains('\u{1b}'),
        "an escape reached the terminal"
    );
    assert!(
        r.stdout.contains("by_price on trades(price)"),
        "{}",
        r.stdout
    );
    let r = ok(&["audit", "list", "--dir", d, "--after", "4", "--json"])?;
    assert_eq!(r.stdout.matches("\"seq\"").count(), 2, "{}", r.stdout);

    let r = ok(&["audit", "verify", "--dir", d, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(v["intact"], true);
    assert_eq!(v["entries"], 6);
    let head = v["head"].as_str().ok_or("no head")?.to_owned();
    assert!(head.starts_with("6:"), "{head}");
    let r = ok(&["inspect", "--dir", d, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(v["lifecycle"]["audit_head"], head.as_str());
    assert_eq!(v["lifecycle"]["migrations"], serde_json::json!([1]));
    let r = ok(&["audit", "verify", "--dir", d, "--head", &head])?;
    assert!(
        r.stdout.contains("audit trail intact: 6 entries"),
        "{}",
        r.stdout
    );
    // A head this trail never held.
    let other = format!("6:{}", "ab".repeat(32));
    let r = run(&["audit", "verify", "--dir", d, "--head", &other])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(r.stdout.contains("is not in the trail"), "{}", r.stdout);

    // Edit the migration's entry in the file.
    {
        const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
        let db = redb::Database::open(dir.join("tradestore.redb"))?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(CATALOG)?;
            let key = format!("audit/{:020}", 5);
            let mut e: serde_json::Value =
                serde_json::from_slice(t.get(key.as_str())?.ok_or("no entry 5")?.value())?;
            e["detail"] = "nothing to see".into();
            let bytes = serde_json::to_vec(&e)?;
            t.insert(key.as_str(), bytes.as_slice())?;
        }
        txn.commit()?;
    }
    let r = run(&["audit", "verify", "--dir", d])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(
        r.stdout.contains("audit/00000000000000000005: altered"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("audit trail BROKEN"), "{}", r.stdout);
    let r = run(&["check", "--dir", d])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(r.stdout.contains("audit"), "{}", r.stdout);
    Ok(())
}

#[test]
fn bad_arguments_exit_non_zero_and_append_nothing() -> TestResult {
    let (tmp, dir) = store()?;
    let d = s(&dir)?;
    let big = "x".repeat(70_000);
    for (args, status) in [
        (
            vec!["audit", "note", "--dir", d, "--action", "Bad Action", "x"],
            1,
        ),
        (vec!["audit", "note", "--dir", d, "--action", "", "x"], 1),
        (
            vec!["audit", "note", "--dir", d, "--action", "migrate", "x"],
            1,
        ),
        (
            vec!["audit", "note", "--dir", d, "--action", "index.drop", "x"],
            1,
        ),
        (vec!["audit", "note", "--dir", d, "--action", "ok", &big], 1),
        (vec!["audit", "verify", "--dir", d, "--head", "nonsense"], 2),
        (vec!["audit", "verify", "--dir", d, "--head", "0:00"], 2),
        (vec!["audit", "list", "--dir", d, "--limit", "-1"], 2),
    ] {
        let r = run(&args)?;
        assert_eq!(r.status, Some(status), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("error"), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    let missing = tmp.path().join("absent");
    let r = run(&["audit", "verify", "--dir", s(&missing)?])?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let r = run(&["audit", "list", "--dir", s(&missing)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(!missing.exists());
    assert!(entries(d)?.is_empty());
    Ok(())
}

#[test]
fn the_process_variables_are_not_taken_for_store_settings() -> TestResult {
    let (_tmp, dir) = store()?;
    for var in ["TRADESTORE_BACKTRACE", "TRADESTORE_ACTOR"] {
        let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
            .args(["inspect", "--dir", s(&dir)?])
            .env(var, "1")
            .stdin(Stdio::null())
            .output()?;
        assert!(
            out.status.success(),
            "{var}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .args(["inspect", "--dir", s(&dir)?])
        .env("TRADESTORE_NO_SUCH_SETTING", "1")
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TRADESTORE_NO_SUCH_SETTING"));
    Ok(())
}
