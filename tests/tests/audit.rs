//! The audit trail: every change outside the trading write path appends an entry in its own
//! commit (and a failed one appends nothing); the hash chain survives reopening and backups;
//! an entry edited, removed or unreadable in the file breaks the chain where it is, `check`
//! reports it, and a head recorded earlier shows a trail cut short.

use std::path::Path;

use redb::{ReadableTable, TableDefinition};
use tradestore::audit::{AuditEntry, AuditHead};
use tradestore::backup::restore_backup;
use tradestore::migrate::{MigrateOptions, Migration};
use tradestore::schema::{IndexDef, TableId};
use tradestore::{Config, ErrorKind, Store};
use tradestore_tests::{TestResult, dump_bytes, expect_err, restore_bytes, seed, workload};

const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");

fn by_price() -> IndexDef {
    IndexDef {
        name: "trades_by_price".to_owned(),
        table: TableId::Trades,
        columns: vec!["price".to_owned()],
        unique: false,
        builtin: false,
        covering: false,
    }
}

fn all(store: &Store) -> TestResult<Vec<AuditEntry>> {
    Ok(store.audit_entries(0, usize::MAX)?)
}

fn actions(store: &Store) -> TestResult<Vec<String>> {
    Ok(all(store)?.into_iter().map(|e| e.action).collect())
}

fn migration(dir: &Path, text: &str) -> TestResult<Vec<Migration>> {
    let path = dir.join("m.toml");
    Ok(vec![Migration::parse(&path, text.as_bytes())?])
}

/// A store whose trail holds: index.create, index.ready, index.drop, migrate (with its own
/// index.create), archive, restore-free; returns the store.
fn audited(dir: &Path, scratch: &Path) -> TestResult<Store> {
    let store = Store::open(dir, Config::default())?;
    seed(&store)?;
    workload(&store, 3, 200)?;
    assert!(all(&store)?.is_empty(), "ordinary writes are not audited");
    store.create_index(by_price(), "for the desk's report")?;
    store.drop_index("trades_by_price", "report retired")?;
    let m = migration(
        scratch,
        r#"
        version = 1
        description = "orders by price"
        [[step]]
        create_index = { name = "orders_by_price", table = "orders", columns = ["price"] }
        "#,
    )?;
    store.migrate(
        &m,
        &MigrateOptions {
            dry_run: false,
            backup: false,
        },
    )?;
    assert!(store.archive_trades(i64::MAX)?.trades > 0);
    store.audit_note("kill-switch.on", "desk 4 halted by hand")?;
    Ok(store)
}

#[test]
fn every_change_is_chained_in_its_own_commit_and_survives_reopen_and_backup() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let store = audited(&dir, tmp.path())?;
    assert_eq!(
        actions(&store)?,
        [
            "index.create",
            "index.ready",
            "index.drop",
            "index.create",
            "migrate",
            "archive",
            "kill-switch.on"
        ]
    );
    let entries = all(&store)?;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.hash.len(), 64);
        let prev = if i == 0 {
            "0".repeat(64)
        } else {
            entries[i - 1].hash.clone()
        };
        assert_eq!(e.prev, prev, "entry {} does not chain", e.seq);
        assert!(i == 0 || e.at_ns >= entries[i - 1].at_ns);
        assert!(!e.actor.is_empty());
    }
    assert!(
        entries[0]
            .detail
            .contains("trades_by_price on trades(price)")
    );
    assert!(entries[0].detail.contains("for the desk's report"));
    assert!(entries[4].detail.contains("version 1 (m, sha256:"));
    assert!(entries[4].detail.contains("created index orders_by_price"));
    assert!(entries[5].detail.contains("trades (ids "));
    assert_eq!(entries[6].detail, "desk 4 halted by hand");
    // Paging.
    let page = store.audit_entries(2, 3)?;
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);

    let report = store.verify_audit()?;
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.entries, 7);
    let head = report.head.clone().ok_or("no head")?;
    assert_eq!(head.hash, entries[6].hash);
    assert!(report.contains(&head));
    assert!(report.contains(&AuditHead {
        seq: 3,
        hash: entries[2].hash.clone()
    }));
    assert!(!report.contains(&AuditHead {
        seq: 3,
        hash: entries[3].hash.clone()
    }));
    assert!(store.check(&mut |_, _| {})?.is_clean());

    // A dump restored into another store is audited there.
    let other = Store::open(tmp.path().join("other"), Config::default())?;
    restore_bytes(&other, &dump_bytes(&store)?)?;
    let restored = all(&other)?;
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].action, "restore");
    assert!(restored[0].detail.contains("rows loaded (instruments "));

    // A backup and a store restored from it hold the same chain.
    let backup = tmp.path().join("backup");
    store.backup(&backup)?;
    drop(store);
    let copy = tmp.path().join("copy");
    restore_backup(&backup, &copy)?;
    let store = Store::open(&dir, Config::default())?;
    assert_eq!(all(&store)?, entries);
    let copy = Store::open(&copy, Config::default())?;
    let copied = all(&copy)?;
    assert_eq!(copied[..entries.len()], entries[..]);
    assert_eq!(copied.len(), entries.len() + 1);
    assert_eq!(copied[7].action, "backup.restore");
    assert!(copied[7].detail.starts_with("restored from the backup "));
    assert!(copy.verify_audit()?.is_intact());
    // Appending goes on from the head.
    let next = store.audit_note("limit.raised", "desk 2: 5M")?;
    assert_eq!(next.seq, 8);
    assert_eq!(next.prev, head.hash);
    Ok(())
}

#[test]
fn failed_changes_and_dry_runs_append_nothing_and_bad_notes_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path().join("store"), Config::default())?;
    seed(&store)?;
    let failing = migration(
        tmp.path(),
        r#"
        version = 1
        [[step]]
        create_index = { name = "orders_by_price", table = "orders", columns = ["price"] }
        [[step]]
        delete = { table = "accounts", keys = [[987654]] }
        "#,
    )?;
    expect_err(
        store.migrate(&failing, &MigrateOptions::default()),
        ErrorKind::NotFound,
    )?;
    let fine = migration(
        tmp.path(),
        r#"
        version = 1
        [[step]]
        create_index = { name = "orders_by_price", table = "orders", columns = ["price"] }
        "#,
    )?;
    store.migrate(
        &fine,
        &MigrateOptions {
            dry_run: true,
            backup: false,
        },
    )?;
    // A dump line that clashes with a stored row: the restore fails whole.
    let clash = dump_bytes(&store)?;
    assert!(restore_bytes(&store, &clash).is_err());
    expect_err(
        store.drop_index("orders_by_account_status", "built in"),
        ErrorKind::Invalid,
    )?;
    expect_err(store.audit_note("Bad Action", "x"), ErrorKind::Invalid)?;
    expect_err(store.audit_note("", "x"), ErrorKind::Invalid)?;
    expect_err(
        store.audit_note("big", &"x".repeat(tradestore::audit::MAX_DETAIL_BYTES + 1)),
        ErrorKind::Invalid,
    )?;
    assert!(all(&store)?.is_empty(), "{:?}", all(&store)?);
    assert!(store.verify_audit()?.head.is_none());
    Ok(())
}

/// Runs `edit` on the closed store's catalog, then reopens it.
fn tamper(
    dir: &Path,
    edit: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> TestResult,
) -> TestResult<Store> {
    {
        let db = redb::Database::open(dir.join(tradestore::DB_FILE))?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(CATALOG)?;
            edit(&mut t)?;
        }
        txn.commit()?;
    }
    Ok(Store::open(dir, Config::default())?)
}

/// The chain is reported broken at entry `seq` with a message containing `text`.
fn assert_problem(store: &Store, seq: u64, text: &str) -> TestResult {
    let report = store.verify_audit()?;
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.key == key(seq) && p.message.contains(text)),
        "{:?}",
        report.problems
    );
    Ok(())
}

fn key(seq: u64) -> String {
    format!("audit/{seq:020}")
}

fn entry_in(t: &redb::Table<&str, &[u8]>, seq: u64) -> TestResult<AuditEntry> {
    let bytes = t
        .get(key(seq).as_str())?
        .ok_or("no such entry")?
        .value()
        .to_vec();
    Ok(serde_json::from_slice(&bytes)?)
}

fn put_entry(t: &mut redb::Table<&str, &[u8]>, e: &AuditEntry) -> TestResult {
    let json = serde_json::to_vec(e)?;
    t.insert(key(e.seq).as_str(), json.as_slice())?;
    Ok(())
}

#[test]
fn tampering_breaks_the_chain_where_it_happened() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let store = audited(&dir, tmp.path())?;
    let head = store.verify_audit()?.head.ok_or("no head")?;
    let before = all(&store)?;
    drop(store);

    // An entry's detail edited in place.
    let store = tamper(&dir, |t| {
        let mut e = entry_in(t, 3)?;
        e.detail = "nothing happened".to_owned();
        put_entry(t, &e)
    })?;
    let report = store.verify_audit()?;
    assert!(!report.is_intact());
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].key, key(3));
    assert!(report.problems[0].message.contains("altered"));
    let check = store.check(&mut |_, _| {})?;
    assert!(
        check
            .violations
            .iter()
            .any(|v| v.check == "audit" && v.key == key(3)),
        "{:?}",
        check.violations
    );
    drop(store);

    // The edited entry's hash replaced as well: the next entry no longer follows it.
    let store = tamper(&dir, |t| {
        let mut e = entry_in(t, 3)?;
        e.hash = "f".repeat(64);
        put_entry(t, &e)
    })?;
    assert_problem(&store, 4, "does not follow")?;
    drop(store);

    // Restored to the original, then an entry removed from the middle.
    let store = tamper(&dir, |t| {
        put_entry(t, &before[2])?;
        t.remove(key(5).as_str())?;
        Ok(())
    })?;
    assert_problem(&store, 6, "1 entry is missing")?;
    drop(store);

    // Restored, then an unreadable entry: reported, the rest still checked.
    let store = tamper(&dir, |t| {
        put_entry(t, &before[4])?;
        t.insert(key(2).as_str(), &b"\xff{not json"[..])?;
        Ok(())
    })?;
    let report = store.verify_audit()?;
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].message.contains("unreadable"));
    assert_eq!(report.entries, before.len() as u64);
    drop(store);

    // Restored, then the last two entries cut off: a valid, shorter chain that no longer
    // holds the head recorded before.
    let store = tamper(&dir, |t| {
        put_entry(t, &before[1])?;
        t.remove(key(7).as_str())?;
        t.remove(key(6).as_str())?;
        Ok(())
    })?;
    let report = store.verify_audit()?;
    assert!(report.is_intact(), "{:?}", report.problems);
    assert!(!report.contains(&head));
    assert!(report.contains(&AuditHead {
        seq: 5,
        hash: before[4].hash.clone()
    }));
    drop(store);

    // An unreadable last entry: nothing more is chained to it, and the change that would
    // have been audited is not made.
    let store = tamper(&dir, |t| {
        t.insert(key(5).as_str(), &b"garbage"[..])?;
        Ok(())
    })?;
    expect_err(store.audit_note("x", "y"), ErrorKind::Corruption)?;
    expect_err(
        store.create_index(by_price(), "after the damage"),
        ErrorKind::Corruption,
    )?;
    assert!(
        !store
            .indexes()
            .iter()
            .any(|s| s.def.name == "trades_by_price")
    );
    expect_err(
        store.drop_index("orders_by_price", "after the damage"),
        ErrorKind::Corruption,
    )?;
    assert!(
        store
            .indexes()
            .iter()
            .any(|s| s.def.name == "orders_by_price")
    );
    let plan = store.query("EXPLAIN SELECT * FROM orders WHERE price = 100")?;
    assert!(
        (0..plan.rows.len()).any(|r| plan.cell(r, 0).contains("orders_by_price")),
        "the index went out of use"
    );
    // A backup of the damaged store restores: the data decides, and the damage comes along
    // for `verify_audit` to show.
    let backup = tmp.path().join("damaged-backup");
    store.backup(&backup)?;
    let copy = tmp.path().join("damaged-copy");
    restore_backup(&backup, &copy)?;
    let copy = Store::open(&copy, Config::default())?;
    assert!(
        copy.check(&mut |_, _| {})?
            .violations
            .iter()
            .all(|v| v.check == "audit")
    );
    assert!(!copy.verify_audit()?.is_intact());
    Ok(())
}
