//! `tradestore migrate` end to end: a folder of migration files applies in dependency order
//! in one commit, `status` and `history` report it, a changed file is refused; every hostile
//! or failing file is an error that names it, with a non-zero status, and the store's rows
//! and history stay as they were.

use std::error::Error;
use std::path::{Path, PathBuf};

mod support;
use support::{Run, TestResult, dump, run, s};

fn json(r: &Run) -> Result<serde_json::Value, Box<dyn Error>> {
    Ok(serde_json::from_str(&r.stdout)?)
}

/// A store after a small simulation (20 accounts): `(tempdir, store)`.
fn store() -> Result<(tempfile::TempDir, PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let r = run(&["init", "--dir", s(&dir)?])?;
    assert_eq!(r.status, Some(0), "init: {}", r.stderr);
    let r = run(&[
        "simulate",
        "--dir",
        s(&dir)?,
        "--orders",
        "300",
        "--accounts",
        "20",
        "--json",
    ])?;
    assert_eq!(r.status, Some(0), "simulate: {}", r.stderr);
    Ok((tmp, dir))
}

const INDEX: &str = r#"
version = 1
description = "orders by price"
[[step]]
create_index = { name = "orders_by_price", table = "orders", columns = ["price"] }
"#;

const VENUE: &str = r#"
version = 2
description = "venue b"
depends_on = [1]
[[step]]
insert = ['{"table":"accounts","record":{"id":9000,"name":"venue-b","status":"active"}}']
[[step]]
put = ['{"table":"accounts","record":{"id":1,"name":"account-1","status":"suspended"}}']
"#;

#[test]
fn migrations_apply_in_order_and_status_and_history_report_them() -> TestResult {
    let (tmp, dir) = store()?;
    let d = s(&dir)?;
    let m = tmp.path().join("migrations");
    std::fs::create_dir(&m)?;
    // Version 2 sorts first by name; its dependency still goes first.
    std::fs::write(m.join("a_venue.toml"), VENUE)?;
    std::fs::write(m.join("b_index.toml"), INDEX)?;
    std::fs::write(m.join("README.md"), "not a migration")?;
    let ms = s(&m)?;

    let r = run(&["migrate", "history", "--dir", d])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("no migration applied"), "{}", r.stdout);

    let r = run(&[
        "migrate",
        "status",
        "--dir",
        d,
        "--migrations",
        ms,
        "--json",
    ])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v = json(&r)?;
    let list = v["migrations"].as_array().ok_or("no migrations")?;
    assert_eq!(list.len(), 2, "{v}");
    assert_eq!(list[0]["version"], 1);
    assert_eq!(list[0]["state"], "pending");
    assert_eq!(list[0]["order"], 1);
    assert_eq!(list[1]["order"], 2);

    let before = dump(&dir)?;
    let r = run(&[
        "migrate",
        "apply",
        "--dir",
        d,
        "--migrations",
        ms,
        "--dry-run",
    ])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("dry run: 2 migrations"), "{}", r.stdout);
    assert_eq!(dump(&dir)?, before, "a dry run wrote");

    let r = run(&["migrate", "apply", "--dir", d, "--migrations", ms, "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v = json(&r)?;
    let applied = v["applied"].as_array().ok_or("no applied")?;
    let versions: Vec<u64> = applied
        .iter()
        .filter_map(|a| a["version"].as_u64())
        .collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(applied[1]["rows_changed"], 2);
    let backup = v["backup"].as_str().ok_or("no backup")?;
    assert!(Path::new(backup).join("backup.json").is_file(), "{backup}");

    let after = dump(&dir)?;
    assert!(
        after.contains(r#""id":9000,"name":"venue-b""#),
        "venue-b is missing"
    );
    assert!(after.contains(r#""id":1,"name":"account-1","status":"suspended""#));
    let r = run(&[
        "query",
        "--dir",
        d,
        "EXPLAIN SELECT * FROM orders WHERE price = 100",
    ])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("orders_by_price"), "{}", r.stdout);

    let r = run(&["migrate", "history", "--dir", d, "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let v = json(&r)?;
    let h = v["history"].as_array().ok_or("no history")?;
    assert_eq!(h.len(), 2, "{v}");
    assert_eq!(h[0]["created_indexes"][0], "orders_by_price");
    let r = run(&["migrate", "apply", "--dir", d, "--migrations", ms])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("up to date"), "{}", r.stdout);

    // An applied file that changed is refused by apply and shown by status.
    std::fs::write(m.join("b_index.toml"), format!("{INDEX}\n# edited\n"))?;
    let r = run(&["migrate", "apply", "--dir", d, "--migrations", ms])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("changed"), "{}", r.stderr);
    let r = run(&["migrate", "status", "--dir", d, "--migrations", ms])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("changed"), "{}", r.stdout);
    assert!(r.stdout.contains("apply refuses to run"), "{}", r.stdout);
    assert_eq!(dump(&dir)?, after);
    Ok(())
}

#[test]
fn hostile_and_failing_migrations_exit_non_zero_and_change_nothing() -> TestResult {
    let (tmp, dir) = store()?;
    let d = s(&dir)?;
    let before = dump(&dir)?;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not utf-8", b"version = 1\n\xff\xfe\n".to_vec()),
        ("not toml", b"version = = 1\n".to_vec()),
        ("unknown key", b"version = 1\nfrobnicate = true\n".to_vec()),
        ("no step", b"version = 1\n".to_vec()),
        (
            "version 0",
            b"version = 0\n[[step]]\ndrop_index = \"x\"\n".to_vec(),
        ),
        (
            "negative version",
            b"version = -3\n[[step]]\ndrop_index = \"x\"\n".to_vec(),
        ),
        (
            "depends on itself",
            b"version = 1\ndepends_on = [1]\n[[step]]\ndrop_index = \"x\"\n".to_vec(),
        ),
        (
            "unknown dependency",
            b"version = 1\ndepends_on = [7]\n[[step]]\ncreate_index = { name = \"i\", table = \"orders\", columns = [\"price\"] }\n".to_vec(),
        ),
        (
            "two kinds in one step",
            b"version = 1\n[[step]]\ndrop_index = \"x\"\nput = []\n".to_vec(),
        ),
        (
            "unknown table",
            b"version = 1\n[[step]]\ninsert = ['{\"table\":\"nope\",\"record\":{}}']\n".to_vec(),
        ),
        (
            "malformed row",
            b"version = 1\n[[step]]\nput = ['{\"table\":\"accounts\",\"record\":{\"id\":\"x\"}}']\n"
                .to_vec(),
        ),
        (
            "unknown column",
            b"version = 1\n[[step]]\ncreate_index = { name = \"i\", table = \"orders\", columns = [\"colour\"] }\n".to_vec(),
        ),
        (
            "drop of an index that does not exist",
            b"version = 1\n[[step]]\ndrop_index = \"no_such_index\"\n".to_vec(),
        ),
        (
            "drop of a built-in index",
            b"version = 1\n[[step]]\ndrop_index = \"trades_by_order\"\n".to_vec(),
        ),
        (
            "insert of a key that exists",
            b"version = 1\n[[step]]\ninsert = ['{\"table\":\"accounts\",\"record\":{\"id\":1,\"name\":\"x\",\"status\":\"active\"}}']\n".to_vec(),
        ),
        (
            "foreign key",
            b"version = 1\n[[step]]\nput = ['{\"table\":\"cash\",\"record\":{\"account\":987654,\"currency\":\"USD\",\"amount\":5}}']\n".to_vec(),
        ),
        (
            "delete of a key with no row",
            b"version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [[987654]] }\n".to_vec(),
        ),
        (
            "delete key of the wrong type",
            b"version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [[\"one\"]] }\n".to_vec(),
        ),
        (
            "description over 4 KiB",
            format!(
                "version = 1\ndescription = \"{}\"\n[[step]]\ndrop_index = \"x\"\n",
                "d".repeat(5000)
            )
            .into_bytes(),
        ),
        (
            "a good step then a failing one",
            b"version = 1\n[[step]]\nput = ['{\"table\":\"accounts\",\"record\":{\"id\":2,\"name\":\"changed\",\"status\":\"active\"}}']\n[[step]]\ndelete = { table = \"accounts\", keys = [[987654]] }\n".to_vec(),
        ),
    ];
    for (what, bytes) in &cases {
        let m = tmp.path().join(format!("m-{}", what.replace(' ', "-")));
        std::fs::create_dir(&m)?;
        std::fs::write(m.join("hostile.toml"), bytes)?;
        let r = run(&["migrate", "apply", "--dir", d, "--migrations", s(&m)?])?;
        assert_eq!(r.status, Some(1), "{what}: {}\n{}", r.stdout, r.stderr);
        assert!(!r.stderr.trim().is_empty(), "{what}: no message");
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("hostile.toml"),
            "{what}: the file is not named: {}",
            r.stderr
        );
        if *what == "two kinds in one step" {
            assert!(r.stderr.contains("exactly one of"), "{}", r.stderr);
        }
        let r = run(&["migrate", "status", "--dir", d, "--migrations", s(&m)?])?;
        assert!(
            !r.stderr.contains("panicked"),
            "{what} (status): {}",
            r.stderr
        );
    }
    // Two files with one version, and a dependency cycle.
    let m = tmp.path().join("m-pairs");
    std::fs::create_dir(&m)?;
    std::fs::write(m.join("a.toml"), INDEX)?;
    std::fs::write(m.join("b.toml"), INDEX)?;
    let r = run(&["migrate", "apply", "--dir", d, "--migrations", s(&m)?])?;
    assert_eq!(r.status, Some(1), "duplicate versions: {}", r.stdout);
    std::fs::write(
        m.join("b.toml"),
        VENUE.replace("version = 2", "version = 3"),
    )?;
    std::fs::write(
        m.join("a.toml"),
        INDEX.replace("version = 1", "version = 1\ndepends_on = [3]"),
    )?;
    let r = run(&["migrate", "apply", "--dir", d, "--migrations", s(&m)?])?;
    assert_eq!(r.status, Some(1), "cycle: {}", r.stdout);
    assert!(r.stderr.contains("cycle"), "{}", r.stderr);

    // A folder that is not there, and a store that is not there.
    let missing = tmp.path().join("absent");
    let r = run(&["migrate", "apply", "--dir", d, "--migrations", s(&missing)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("cannot be read"), "{}", r.stderr);
    assert!(!r.stderr.contains("refuses writes"), "{}", r.stderr);
    let m = tmp.path().join("m-good");
    std::fs::create_dir(&m)?;
    std::fs::write(m.join("index.toml"), INDEX)?;
    let r = run(&[
        "migrate",
        "apply",
        "--dir",
        s(&missing)?,
        "--migrations",
        s(&m)?,
    ])?;
    assert_eq!(r.status, Some(1));
    assert!(!missing.exists(), "apply created a store");

    assert_eq!(dump(&dir)?, before, "a refused migration changed rows");
    // Every run above failed before its backup: none is left behind.
    let r = run(&["backup", "list", "--dir", d, "--json"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let backups: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(backups, serde_json::json!([]), "{}", r.stdout);
    let r = run(&["migrate", "history", "--dir", d])?;
    assert!(r.stdout.contains("no migration applied"), "{}", r.stdout);
    let r = run(&["index", "list", "--dir", d])?;
    assert!(!r.stdout.contains("orders_by_price"), "{}", r.stdout);
    Ok(())
}
