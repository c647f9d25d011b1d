//! Versioned migrations: pending ones apply in dependency order in one durable commit, with
//! their history kept in the store; a failing step leaves the store exactly as it was;
//! changed or missing files, cycles, unknown dependencies and malformed files are refused
//! with a message naming them; writers keep going while a migration applies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tradestore::migrate::{self, MigrateOptions, Migration, MigrationState};
use tradestore::schema::{Account, AccountStatus, TableId, Value};
use tradestore::standby::Standby;
use tradestore::{Config, ErrorKind, ReadOps, RetryPolicy, Store};
use tradestore_tests::{
    ALPHA, DELTA, TestResult, assert_clean, dump_bytes, expect_err, seed, workload,
};

fn write(dir: &Path, name: &str, text: &str) -> TestResult<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn index_names(store: &Store) -> Vec<String> {
    store.indexes().iter().map(|s| s.def.name.clone()).collect()
}

/// A store with the seed data and a few hundred transactions of every kind.
fn populated(dir: &Path) -> TestResult<Store> {
    let store = Store::open(dir, Config::default())?;
    seed(&store)?;
    workload(&store, 7, 300)?;
    Ok(store)
}

fn account_line(id: u64, name: &str, status: &str) -> String {
    format!(
        r#"'{{"table":"accounts","record":{{"id":{id},"name":"{name}","status":"{status}"}}}}'"#
    )
}

#[test]
fn pending_migrations_apply_in_dependency_order_in_one_commit() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let files = tmp.path().join("migrations");
    std::fs::create_dir(&files)?;
    let dir = tmp.path().join("store");
    let store = populated(&dir)?;

    // 1 waits for 3; 2 is free: the order is 2, 3, 1.
    write(
        &files,
        "0001_suspend_delta.toml",
        &format!(
            "version = 1\ndepends_on = [3]\n[[step]]\nput = [{}]\n",
            account_line(DELTA, "delta", "suspended")
        ),
    )?;
    write(
        &files,
        "0002_orders_by_price.toml",
        "version = 2\ndescription = \"orders by price\"\n[[step]]\n\
         create_index = { name = \"orders_by_price\", table = \"orders\", columns = [\"price\"], covering = true }\n",
    )?;
    write(
        &files,
        "0003_venue.toml",
        &format!(
            "version = 3\n[[step]]\ninsert = [{}, '{}']\n",
            account_line(5000, "venue-b", "active"),
            r#"{"table":"cash","record":{"account":5000,"currency":"USD","amount":25000000}}"#
        ),
    )?;
    write(&files, "README.md", "not a migration")?;
    let list = migrate::load_dir(&files)?;
    assert_eq!(
        list.iter().map(|m| m.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let status = store.migration_status(&list)?;
    let orders: Vec<(u64, Option<usize>)> = status.iter().map(|s| (s.version, s.order)).collect();
    assert_eq!(orders, [(1, Some(3)), (2, Some(1)), (3, Some(2))]);
    assert!(status.iter().all(|s| s.state == MigrationState::Pending));

    // Counted by a full scan, before the index exists.
    let scanned = store.query("SELECT count(*) FROM orders WHERE price = 100")?;
    let report = store.migrate(&list, &MigrateOptions::default())?;
    let applied: Vec<u64> = report.applied.iter().map(|a| a.version).collect();
    assert_eq!(applied, [2, 3, 1]);
    assert_eq!(report.applied[1].rows_changed, 2);
    assert_eq!(report.applied[2].rows_changed, 1);
    assert_eq!(report.applied[0].created_indexes, ["orders_by_price"]);
    let backup = report.backup.clone().ok_or("no backup taken")?;
    assert!(backup.join("backup.json").is_file(), "{}", backup.display());
    // One commit: every entry has the same time.
    assert!(
        report
            .applied
            .iter()
            .all(|a| a.applied_at_ns == report.applied[0].applied_at_ns && a.applied_at_ns > 0)
    );

    let snap = store.read()?;
    let delta: Account = snap.get(&[Value::U64(DELTA)])?.ok_or("delta is gone")?;
    assert_eq!(delta.status, AccountStatus::Suspended);
    assert!(snap.get::<Account>(&[Value::U64(5000)])?.is_some());
    drop(snap);
    assert!(index_names(&store).contains(&"orders_by_price".to_owned()));
    // Ids handed out after the migration are above the ids it inserted.
    assert!(store.write(|tx| tx.next_id(TableId::Accounts))? > 5000);
    // The new index is complete and agrees with the rows (the check reads every entry).
    assert_clean(&store)?;
    let plan = store.query("EXPLAIN SELECT count(*) FROM orders WHERE price = 100")?;
    assert!(
        (0..plan.rows.len()).any(|r| plan.cell(r, 0).contains("orders_by_price")),
        "the new index is not used"
    );
    let priced = store.query("SELECT count(*) FROM orders WHERE price = 100")?;
    assert_eq!(priced.cell(0, 0), scanned.cell(0, 0));
    assert_ne!(
        priced.cell(0, 0),
        "0",
        "the seeded orders have no order at 100"
    );

    // Nothing pending any more; the history survives a reopen.
    assert!(
        store
            .migrate(&list, &MigrateOptions::default())?
            .applied
            .is_empty()
    );
    drop(store);
    let store = Store::open(&dir, Config::default())?;
    let history = store.migration_history()?;
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(history[1].description, "orders by price");
    assert_eq!(history[0].checksum, list[0].checksum);
    let hex = list[0]
        .checksum
        .strip_prefix("sha256:")
        .ok_or("not a SHA-256")?;
    assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(index_names(&store).contains(&"orders_by_price".to_owned()));
    assert!(
        store
            .migration_status(&list)?
            .iter()
            .all(|s| s.state == MigrationState::Applied)
    );
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_failing_step_leaves_the_store_as_it_was() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let files = tmp.path().join("migrations");
    std::fs::create_dir(&files)?;
    let store = populated(&tmp.path().join("store"))?;
    let before = dump_bytes(&store)?;
    let indexes = index_names(&store);

    write(
        &files,
        "1.toml",
        &format!(
            "version = 1\n[[step]]\ncreate_index = {{ name = \"trades_by_fee\", table = \"trades\", columns = [\"fee\"] }}\n\
             [[step]]\ninsert = [{}]\n",
            account_line(6000, "new", "active")
        ),
    )?;
    // Alpha has orders: the restrict foreign key refuses the delete.
    write(
        &files,
        "2.toml",
        &format!(
            "version = 2\n[[step]]\ndelete = {{ table = \"accounts\", keys = [[{ALPHA}]] }}\n"
        ),
    )?;
    let list = migrate::load_dir(&files)?;

    // A dry run finds the same error and writes nothing either way.
    let dry = MigrateOptions {
        dry_run: true,
        backup: true,
    };
    let e = expect_err(store.migrate(&list, &dry), ErrorKind::Constraint)?;
    assert!(e.message().contains("migration 2"), "{e}");
    assert!(e.message().contains("step 1 (delete)"), "{e}");
    let e = expect_err(
        store.migrate(&list, &MigrateOptions::default()),
        ErrorKind::Constraint,
    )?;
    assert!(e.message().contains("migration 2"), "{e}");
    assert_eq!(dump_bytes(&store)?, before);
    assert_eq!(index_names(&store), indexes);
    assert!(store.migration_history()?.is_empty());
    assert!(
        store
            .index_decisions()?
            .iter()
            .all(|d| d.index != "trades_by_fee")
    );

    // A second step creating an index the first one creates: the advice names the step, not
    // an existing index (there is none yet).
    write(
        &files,
        "2.toml",
        "version = 2\n[[step]]\ncreate_index = { name = \"fees_again\", table = \"trades\", columns = [\"fee\"] }\n",
    )?;
    let list = migrate::load_dir(&files)?;
    let e = expect_err(store.migrate(&list, &dry), ErrorKind::Constraint)?;
    assert!(e.to_string().contains("an earlier step"), "{e}");
    assert!(!e.to_string().contains("existing index is in use"), "{e}");
    assert_eq!(index_names(&store), indexes);

    // The first alone applies; a dry run of it first changes nothing.
    std::fs::remove_file(files.join("2.toml"))?;
    let list = migrate::load_dir(&files)?;
    let report = store.migrate(&list, &dry)?;
    assert!(report.dry_run && report.backup.is_none());
    assert_eq!(report.applied.len(), 1);
    assert_eq!(dump_bytes(&store)?, before);
    assert!(store.migration_history()?.is_empty());
    store.migrate(&list, &MigrateOptions::default())?;
    assert_ne!(dump_bytes(&store)?, before);
    assert!(index_names(&store).contains(&"trades_by_fee".to_owned()));
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn files_that_disagree_with_the_history_or_each_other_are_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let files = tmp.path().join("migrations");
    std::fs::create_dir(&files)?;
    let store = populated(&tmp.path().join("store"))?;
    let one = write(
        &files,
        "1.toml",
        &format!(
            "version = 1\n[[step]]\nput = [{}]\n",
            account_line(7000, "x", "active")
        ),
    )?;
    store.migrate(&migrate::load_dir(&files)?, &MigrateOptions::default())?;
    let before = dump_bytes(&store)?;

    // Changed: even a comment changes the checksum.
    std::fs::write(&one, format!("{}# note\n", std::fs::read_to_string(&one)?))?;
    let list = migrate::load_dir(&files)?;
    assert_eq!(
        store.migration_status(&list)?[0].state,
        MigrationState::Changed
    );
    let e = expect_err(
        store.migrate(&list, &MigrateOptions::default()),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("1 (1, changed)"), "{e}");

    // Missing.
    std::fs::remove_file(&one)?;
    write(
        &files,
        "2.toml",
        "version = 2\n[[step]]\ndrop_index = \"nope\"\n",
    )?;
    let list = migrate::load_dir(&files)?;
    let status = store.migration_status(&list)?;
    assert_eq!(status[0].state, MigrationState::Missing);
    let e = expect_err(
        store.migrate(&list, &MigrateOptions::default()),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("1 (1, missing)"), "{e}");

    // A cycle, and an unknown dependency (the history is taken as applied).
    let cyclic = |a: u64, b: u64| -> TestResult<Migration> {
        let text = format!("version = {a}\ndepends_on = [{b}]\n[[step]]\ndrop_index = \"x\"\n");
        Ok(Migration::parse(
            Path::new(&format!("{a}.toml")),
            text.as_bytes(),
        )?)
    };
    let e = expect_err(
        store.migration_status(&[cyclic(8, 9)?, cyclic(9, 8)?]),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("cycle"), "{e}");
    let e = expect_err(
        store.migration_status(&[cyclic(8, 12)?]),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("depends on 12"), "{e}");
    assert!(store.migration_status(&[cyclic(8, 1)?]).is_ok());

    // A drop of an index that does not exist names it.
    let two = migrate::load_dir(&files)?
        .into_iter()
        .find(|m| m.version == 2)
        .ok_or("2.toml")?;
    let fresh = tempfile::tempdir()?;
    let other = populated(fresh.path())?;
    let e = expect_err(
        other.migrate(&[two], &MigrateOptions::default()),
        ErrorKind::NotFound,
    )?;
    assert!(e.message().contains("no index named \"nope\""), "{e}");
    assert_eq!(dump_bytes(&store)?, before);
    Ok(())
}

#[test]
fn malformed_files_are_errors_that_name_them() -> TestResult {
    // Ids beyond TOML's integers are written as decimal text.
    let big = Migration::parse(
        Path::new("big.toml"),
        b"version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [[\"18446744073709551615\"]] }\n",
    )?;
    assert_eq!(big.steps.len(), 1);
    let cases: &[(&str, &str)] = &[
        (
            "version = 0\n[[step]]\ndrop_index = \"x\"\n",
            "version must be 1 or more",
        ),
        ("version = 1\n", "no steps"),
        (
            "version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [[\"-1\"]] }\n",
            "is an id",
        ),
        (
            "version = 1\ndepends_on = [1]\n[[step]]\ndrop_index = \"x\"\n",
            "depends on itself",
        ),
        (
            "version = 1\n[[step]]\nrename_table = \"x\"\n",
            "unknown variant",
        ),
        (
            "version = 1\n[[step]]\ndrop_index = \"x\"\nput = []\n",
            "step",
        ),
        (
            "version = 1\nauthor = \"me\"\n[[step]]\ndrop_index = \"x\"\n",
            "unknown field",
        ),
        ("version = -3\n[[step]]\ndrop_index = \"x\"\n", "version"),
        ("version = 1\n[[step]]\nput = []\n", "no rows"),
        (
            "version = 1\n[[step]]\nput = ['{\"table\":\"accounts\"}']\n",
            "row 1",
        ),
        (
            "version = 1\n[[step]]\ninsert = ['{\"table\":\"ledgers\",\"record\":{}}']\n",
            "row 1",
        ),
        (
            "version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [] }\n",
            "no keys",
        ),
        (
            "version = 1\n[[step]]\ndelete = { table = \"ledgers\", keys = [[1]] }\n",
            "no table \"ledgers\"",
        ),
        (
            "version = 1\n[[step]]\ndelete = { table = \"cash\", keys = [[1]] }\n",
            "2 values expected",
        ),
        (
            "version = 1\n[[step]]\ndelete = { table = \"cash\", keys = [[1, 2]] }\n",
            "is text",
        ),
        (
            "version = 1\n[[step]]\ndelete = { table = \"accounts\", keys = [[-1]] }\n",
            "non-negative integer",
        ),
        (
            "version = 1\n[[step]]\ncreate_index = { name = \"Bad-Name\", table = \"orders\", columns = [\"price\"] }\n",
            "index name",
        ),
        (
            "version = 1\n[[step]]\ncreate_index = { name = \"x\", table = \"orders\", columns = [\"colour\"] }\n",
            "no column \"colour\"",
        ),
        (
            "version = 1\n[[step]]\ncreate_index = { name = \"x\", table = \"orders\", columns = [] }\n",
            "no columns",
        ),
        (
            "version = 1\n[[step]]\ncreate_index = { name = \"x\", table = \"orders\", columns = [\"price\"], unique = true }\n",
            "unknown field",
        ),
        ("[[step]]\ndrop_index = \"x\"\n", "version"),
        ("version = 1\n[[step]\n", "TOML parse error"),
    ];
    for (text, expected) in cases {
        let e = expect_err(
            Migration::parse(Path::new("m/0001_case.toml"), text.as_bytes()),
            ErrorKind::Invalid,
        )?;
        assert!(e.message().contains("m/0001_case.toml"), "{text}: {e}");
        assert!(
            e.message().contains(expected),
            "{text}: expected {expected:?} in {e}"
        );
    }
    let e = expect_err(
        Migration::parse(Path::new("bin.toml"), b"version = 1\xff\n"),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("not UTF-8"), "{e}");

    // Folder-level problems.
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    write(d, "a.toml", "version = 4\n[[step]]\ndrop_index = \"x\"\n")?;
    write(d, "b.toml", "version = 4\n[[step]]\ndrop_index = \"y\"\n")?;
    let e = expect_err(migrate::load_dir(d), ErrorKind::Invalid)?;
    assert!(e.message().contains("both have version 4"), "{e}");
    std::fs::remove_file(d.join("b.toml"))?;
    std::fs::create_dir(d.join("c.toml"))?;
    let e = expect_err(migrate::load_dir(d), ErrorKind::Invalid)?;
    assert!(e.message().contains("not a regular file"), "{e}");
    std::fs::remove_dir(d.join("c.toml"))?;
    let big = std::fs::File::create(d.join("d.toml"))?;
    big.set_len(migrate::MAX_FILE_BYTES + 1)?;
    let e = expect_err(migrate::load_dir(d), ErrorKind::Invalid)?;
    assert!(e.message().contains("d.toml"), "{e}");
    std::fs::remove_file(d.join("d.toml"))?;
    assert_eq!(migrate::load_dir(d)?.len(), 1);
    expect_err(migrate::load_dir(&d.join("absent")), ErrorKind::Invalid)?;
    Ok(())
}

#[test]
fn writers_keep_going_while_a_migration_applies() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let store = Arc::new(populated(&tmp.path().join("store"))?);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || -> tradestore::Result<u64> {
            let mut n = 0;
            // A commit that waited behind the migration (seconds on a loaded machine) still
            // gets its retry: the default 5 s budget counts that wait.
            let policy = RetryPolicy {
                max_total: std::time::Duration::from_secs(300),
                ..RetryPolicy::default()
            };
            while !stop.load(Ordering::SeqCst) {
                store.transact(&policy, |tx| {
                    let id = tx.next_id(TableId::Accounts)?;
                    tx.insert(&Account {
                        id,
                        name: format!("w{id}"),
                        status: AccountStatus::Active,
                    })
                })?;
                n += 1;
            }
            Ok(n)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let m = Migration::parse(
        Path::new("1.toml"),
        b"version = 1\n[[step]]\ncreate_index = { name = \"accounts_by_status\", table = \"accounts\", columns = [\"status\"] }\n\
          [[step]]\ncreate_index = { name = \"trades_by_account_price\", table = \"trades\", columns = [\"account\", \"price\"] }\n",
    )?;
    let report = store.migrate(&[m], &MigrateOptions::default())?;
    assert_eq!(report.applied.len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().map_err(|_| "writer panicked")??;
    assert!(written > 0);
    // The index holds the accounts written before, during and after the migration.
    let snap = store.read()?;
    let spec = store
        .indexes()
        .iter()
        .find(|s| s.def.name == "accounts_by_status")
        .cloned()
        .ok_or("no index")?;
    assert_eq!(snap.index_len(&spec)?, snap.count(TableId::Accounts)?);
    drop(snap);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_standby_refuses_migrations() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let primary_dir = tmp.path().join("primary");
    let store = populated(&primary_dir)?;
    let backup = store.backup(&tmp.path().join("base"))?;
    drop(store);
    let standby_dir = tmp.path().join("standby");
    drop(Standby::create(
        &backup.path,
        &standby_dir,
        vec![primary_dir.join("journal")],
    )?);
    let standby = Store::open(&standby_dir, Config::default())?;
    let before = dump_bytes(&standby)?;
    let m = Migration::parse(
        Path::new("1.toml"),
        format!(
            "version = 1\n[[step]]\nput = [{}]\n",
            account_line(1, "a", "active")
        )
        .as_bytes(),
    )?;
    let e = expect_err(
        standby.migrate(&[m], &MigrateOptions::default()),
        ErrorKind::Invalid,
    )?;
    assert!(e.message().contains("standby"), "{e}");
    assert_eq!(dump_bytes(&standby)?, before);
    assert!(standby.migration_history()?.is_empty());
    Ok(())
}

/// A migration's rows changed are its own steps' row writes: the same whether it is applied
/// in one run with the migration before it (whose rows it rewrites and deletes) or alone.
#[test]
fn rows_changed_do_not_depend_on_how_migrations_are_batched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let both = tmp.path().join("both");
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(&both)?;
    std::fs::create_dir_all(&alone)?;
    let cash = r#"'{"table":"cash","record":{"account":6000,"currency":"USD","amount":1}}'"#;
    let first = format!(
        "version = 1\n[[step]]\ninsert = [{}, {cash}]\n",
        account_line(6000, "new", "active")
    );
    let second = format!(
        "version = 2\ndepends_on = [1]\n[[step]]\nput = [{}]\n[[step]]\n\
         delete = {{ table = \"cash\", keys = [[6000, \"USD\"]] }}\n",
        account_line(6000, "renamed", "suspended")
    );
    write(&both, "0001.toml", &first)?;
    write(&both, "0002.toml", &second)?;
    write(&alone, "0001.toml", &first)?;
    let no_backup = MigrateOptions {
        backup: false,
        ..MigrateOptions::default()
    };

    let together = populated(&tmp.path().join("together"))?;
    let report = together.migrate(&migrate::load_dir(&both)?, &no_backup)?;
    let counts: Vec<u64> = report.applied.iter().map(|a| a.rows_changed).collect();
    assert_eq!(counts, [2, 2]);

    let apart = populated(&tmp.path().join("apart"))?;
    apart.migrate(&migrate::load_dir(&alone)?, &no_backup)?;
    write(&alone, "0002.toml", &second)?;
    let report = apart.migrate(&migrate::load_dir(&alone)?, &no_backup)?;
    let counts: Vec<u64> = report.applied.iter().map(|a| a.rows_changed).collect();
    assert_eq!(counts, [2]);
    assert_eq!(dump_bytes(&together)?, dump_bytes(&apart)?);
    Ok(())
}
