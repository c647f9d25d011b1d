//! Backups of a live store: consistency under concurrent writers, restore, verification of
//! damaged backups, refused destinations and the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tradestore_schema::{Account, AccountStatus, Cash, Money, Value};

use super::*;
use crate::{Config, Error, ErrorKind, ReadOps, Result, Store};

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::io("tempdir", e))
}

fn account(id: u64) -> Account {
    Account {
        id,
        name: format!("a{id}"),
        status: AccountStatus::Active,
    }
}

fn cash(account: u64, amount: i64) -> Cash {
    Cash {
        account,
        currency: "USD".into(),
        amount: Money(amount),
    }
}

/// A store with accounts 1..=4 holding 1000 each, and `n` more accounts.
fn seeded(dir: &Path, n: u64) -> Result<Store> {
    let store = Store::open(dir, Config::default())?;
    store.write(|tx| {
        for id in 1..=4 {
            tx.insert(&account(id))?;
            tx.insert(&cash(id, 1000))?;
        }
        for id in 100..100 + n {
            tx.insert(&account(id))?;
        }
        Ok(())
    })?;
    Ok(store)
}

fn dump(store: &Store) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    crate::dump::dump(store, &mut out, &mut |_, _| {})?;
    Ok(out)
}

fn expect_err<T: std::fmt::Debug>(r: Result<T>, kind: ErrorKind, words: &str) -> Result<()> {
    match r {
        Ok(v) => Err(Error::invalid(format!(
            "expected a {kind} error, got {v:?}"
        ))),
        Err(e) if e.kind() == kind && e.to_string().contains(words) => Ok(()),
        Err(e) => Err(Error::invalid(format!(
            "expected a {kind} error saying {words:?}, got: {e}"
        ))),
    }
}

#[test]
fn a_backup_taken_while_writers_commit_is_a_consistent_prefix_holding_every_acked_write()
-> Result<()> {
    let tmp = tempdir()?;
    let store = Arc::new(seeded(&tmp.path().join("store"), 0)?);
    let stop = Arc::new(AtomicBool::new(false));
    // Inserters: thread t inserts ids base+1, base+2, ... in order, each with its twin
    // base+50_000+i in the same transaction. Movers: cash moves between accounts 1..=4.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    // Retried as long as it takes: on a loaded machine two movers of the same four cash
    // rows conflicted more times in a row than the default policy's 16 attempts.
    let policy = crate::RetryPolicy {
        max_attempts: 10_000,
        max_total: std::time::Duration::from_secs(60),
        ..crate::RetryPolicy::default()
    };
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (store, stop, acked) = (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&acked));
        let policy = policy.clone();
        threads.push(std::thread::spawn(move || -> Result<()> {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                if t < 2 {
                    let base = 100_000 * (t + 1);
                    // Retried: on a loaded machine a descheduled transaction can outlive the
                    // short validation history unit tests run with.
                    store.transact(&policy, |tx| {
                        tx.insert(&account(base + i))?;
                        tx.insert(&account(base + 50_000 + i))
                    })?;
                } else {
                    let (a, b) = (1 + (i + t) % 4, 1 + (i + t + 1) % 4);
                    store.transact(&policy, |tx| {
                        let key = |id: u64| [Value::U64(id), Value::Text("USD".into())];
                        let mut from: Cash = tx.get(&key(a))?.unwrap_or_else(|| cash(a, 0));
                        let mut to: Cash = tx.get(&key(b))?.unwrap_or_else(|| cash(b, 0));
                        from.amount = Money(from.amount.0 - 7);
                        to.amount = Money(to.amount.0 + 7);
                        tx.put(&from)?;
                        tx.put(&to)
                    })?;
                }
                acked[t as usize].store(i, Ordering::SeqCst);
            }
            Ok(())
        }));
    }
    // A writer that failed ends the wait (its error is reported below), not only progress.
    while acked.iter().any(|a| a.load(Ordering::SeqCst) < 20)
        && !threads.iter().any(|t| t.is_finished())
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let dest = tmp.path().join("backup");
    let report = store.backup(&dest)?;
    // Writers went on during the backup.
    let during: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join()
            .map_err(|_| Error::invalid("a writer panicked"))??;
    }
    assert!(report.applied_seq > 0);
    assert!(during.iter().zip(&before).all(|(d, b)| d >= b));

    verify_backup(&dest)?;
    let restored = tmp.path().join("restored");
    let done = restore_backup(&dest, &restored)?;
    assert_eq!(done.applied_seq, report.applied_seq);
    assert!(!done.recovery.found_anything(), "{}", done.recovery);
    let copy = Store::open(&restored, Config::default())?;
    let tx = copy.read()?;
    let ids: std::collections::BTreeSet<u64> =
        tx.all::<Account>()?.into_iter().map(|a| a.id).collect();
    for t in 0..2u64 {
        let base = 100_000 * (t + 1);
        let mine: Vec<u64> = ids
            .range(base + 1..base + 50_000)
            .map(|id| id - base)
            .collect();
        let k = mine.len() as u64;
        assert_eq!(mine, (1..=k).collect::<Vec<_>>(), "inserter {t}: a prefix");
        assert!(
            k >= before[t as usize],
            "inserter {t}: {k} < {}",
            before[t as usize]
        );
        let twins = ids.range(base + 50_001..base + 100_000).count() as u64;
        assert_eq!(twins, k, "inserter {t}: each transaction whole");
    }
    let total: i64 = tx.all::<Cash>()?.iter().map(|c| c.amount.0).sum();
    assert_eq!(total, 4000, "cash is conserved in the backup");
    assert_eq!(copy.stats().durable_seq(), report.applied_seq);
    drop(tx);
    // The restored store takes new writes after the backup's last transaction.
    copy.write(|tx| tx.insert(&account(7)))?;
    assert_eq!(copy.stats().durable_seq(), report.applied_seq + 1);
    Ok(())
}

#[test]
fn a_restored_backup_holds_the_same_rows_and_checks_clean() -> Result<()> {
    let tmp = tempdir()?;
    let dir = tmp.path().join("store");
    let store = seeded(&dir, 50)?;
    std::fs::write(dir.join("tradestore.toml"), "row_cache_mb = 8\n")
        .map_err(|e| Error::io("write", e))?;
    // A file the store does not list (not one of its archive segments) is not its data.
    let stray = dir.join("archive").join("trades").join("2026-11-01.zst");
    std::fs::create_dir_all(stray.parent().unwrap_or(&dir)).map_err(|e| Error::io("mkdir", e))?;
    std::fs::write(&stray, b"segment bytes").map_err(|e| Error::io("write", e))?;
    let journal_copy = dir.join("archive").join("journal").join("00000001.seg");
    std::fs::create_dir_all(journal_copy.parent().unwrap_or(&dir))
        .map_err(|e| Error::io("mkdir", e))?;
    std::fs::write(&journal_copy, b"journal").map_err(|e| Error::io("write", e))?;

    let report = store.backup(&tmp.path().join("b"))?;
    let manifest = Manifest::read(&report.path)?;
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["tradestore.redb", "tradestore.toml"]);
    assert!(report.path.join("journal").is_dir());
    let accounts = manifest
        .tables
        .iter()
        .find(|t| t.name == "t.accounts")
        .map(|t| t.rows);
    assert_eq!(accounts, Some(54));
    let restored = tmp.path().join("restored");
    // Staging folders: one a killed restore to this target left (its process is gone: no
    // pid is that high), one of a process that runs (pid 1), one of another target.
    for stale in [
        ".restored.restoring-999999999",
        ".restored.restoring-1",
        ".other.restoring-999999999",
    ] {
        let d = tmp.path().join(stale);
        std::fs::create_dir(&d).map_err(|e| Error::io("mkdir", e))?;
        std::fs::write(d.join("tradestore.redb"), b"partial").map_err(|e| Error::io("w", e))?;
    }
    let done = restore_backup(&report.path, &restored)?;
    // Restored beside the target and renamed over it: no staging folder of its own stays
    // behind, and the abandoned one of the same target is gone.
    let mut leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .map_err(|e| Error::io("read_dir", e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restoring"))
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        [".other.restoring-999999999", ".restored.restoring-1"]
    );
    assert_eq!(done.checked_rows, 58, "54 accounts and 4 cash rows");
    assert!(!restored.join("archive/trades/2026-11-01.zst").exists());
    assert!(
        !restored
            .join("archive/journal")
            .join("00000001.seg")
            .exists()
    );
    let copy = Store::open_dir(&restored)?;
    assert_eq!(
        copy.config().row_cache_mb,
        8,
        "the configuration came along"
    );
    assert_eq!(dump(&copy)?, dump(&store)?);
    drop(copy);
    // A restore never overwrites, nor writes into the backup.
    expect_err(
        restore_backup(&report.path, &restored),
        ErrorKind::Invalid,
        "is not empty",
    )?;
    let before = snapshot_files(&report.path)?;
    expect_err(
        restore_backup(&report.path, &report.path.join("inner")),
        ErrorKind::Invalid,
        "is inside the backup",
    )?;
    assert_eq!(snapshot_files(&report.path)?, before);
    Ok(())
}

/// Every file under `dir` with its bytes and modification time.
fn snapshot_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>, std::time::SystemTime)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io("read_dir", e))? {
            let p = e.map_err(|e| Error::io("entry", e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let meta = std::fs::metadata(&p).map_err(|e| Error::io("meta", e))?;
                let modified = meta.modified().map_err(|e| Error::io("mtime", e))?;
                out.push((
                    p.clone(),
                    std::fs::read(&p).map_err(|e| Error::io("r", e))?,
                    modified,
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("mkdir", e))?;
    for e in std::fs::read_dir(from).map_err(|e| Error::io("read_dir", e))? {
        let e = e.map_err(|e| Error::io("entry", e))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| Error::io("copy", e))?;
        }
    }
    Ok(())
}

#[test]
fn verify_writes_nothing_and_finds_every_kind_of_damage() -> Result<()> {
    let tmp = tempdir()?;
    let dir = tmp.path().join("store");
    let store = seeded(&dir, 200)?;
    // A configuration file of 5000 bytes (a comment and one key): the second listed file.
    let config = format!("#{}\nrow_cache_mb = 0\n", "x".repeat(4981));
    assert_eq!(config.len(), 5000);
    std::fs::write(dir.join("tradestore.toml"), config).map_err(|e| Error::io("write", e))?;
    let good = store.backup(&tmp.path().join("good"))?.path;
    drop(store);

    let before = snapshot_files(&good)?;
    let v = verify_backup(&good)?;
    assert_eq!(v.files, 2);
    assert!(v.rows >= 204);
    assert_eq!(snapshot_files(&good)?, before, "verify changed the backup");

    let damaged = |name: &str, harm: &dyn Fn(&Path) -> Result<()>| -> Result<Result<()>> {
        let copy = tmp.path().join(name);
        copy_dir(&good, &copy)?;
        harm(&copy)?;
        Ok(verify_backup(&copy).map(|_| ()))
    };
    let io = |e: std::io::Error| Error::io("harm", e);

    // A flipped byte in the middle of the database file.
    let flipped = damaged("flipped", &|b| {
        let p = b.join(crate::DB_FILE);
        let mut bytes = std::fs::read(&p).map_err(io)?;
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&p, bytes).map_err(io)
    })?;
    expect_err(flipped, ErrorKind::Corruption, "tradestore.redb: CRC32C")?;

    let truncated = damaged("truncated", &|b| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(b.join("tradestore.toml"))
            .map_err(io)?;
        f.set_len(4000).map_err(io)
    })?;
    expect_err(
        truncated,
        ErrorKind::Corruption,
        "has 4000 bytes, the manifest lists 5000",
    )?;

    let removed = damaged("removed", &|b| {
        std::fs::remove_file(b.join("tradestore.toml")).map_err(io)
    })?;
    expect_err(
        removed,
        ErrorKind::Corruption,
        "listed in the manifest but missing",
    )?;

    let edit = |name: &str, from: &str, to: &str| -> Result<Result<()>> {
        let (from, to) = (from.to_owned(), to.to_owned());
        damaged(name, &move |b| {
            let p = b.join(MANIFEST_FILE);
            let text = std::fs::read_to_string(&p).map_err(io)?;
            assert!(text.contains(&from), "{from} not in {text}");
            std::fs::write(&p, text.replacen(&from, &to, 1)).map_err(io)
        })
    };
    let seq = format!("\"applied_seq\": {}", v.applied_seq);
    let later = format!("\"applied_seq\": {}", v.applied_seq + 1);
    expect_err(
        edit("seq", &seq, &later)?,
        ErrorKind::Corruption,
        "the manifest says",
    )?;
    let rows = format!(
        "\"rows\": {}",
        v.tables
            .iter()
            .find(|t| t.name == "t.accounts")
            .map_or(0, |t| t.rows)
    );
    expect_err(
        edit("rows", &rows, "\"rows\": 1")?,
        ErrorKind::Corruption,
        "crc32c does not match",
    )?;
    expect_err(
        edit("escape", "\"tradestore.toml\"", "\"../../etc/passwd\"")?,
        ErrorKind::Corruption,
        "is refused",
    )?;
    expect_err(
        edit("json", "{", "[")?,
        ErrorKind::Corruption,
        "not a valid backup manifest",
    )?;
    let gone = damaged("no-manifest", &|b| {
        std::fs::remove_file(b.join(MANIFEST_FILE)).map_err(io)
    })?;
    expect_err(gone, ErrorKind::NotFound, "backup.json does not exist")?;

    // A changed row whose file checksum was updated in the manifest: redb's integrity
    // check (page checksums) or the table's checksum still finds it.
    let resummed = damaged("resummed", &|b| {
        let p = b.join(crate::DB_FILE);
        let mut bytes = std::fs::read(&p).map_err(io)?;
        let at = bytes
            .windows(4)
            .position(|w| w == b"a150")
            .ok_or_else(|| Error::invalid("account a150 not found in the file"))?;
        bytes[at + 3] = b'9';
        std::fs::write(&p, bytes).map_err(io)?;
        let mut m = Manifest::read(b)?;
        let (bytes, crc32c) = files::file_sum(&p)?;
        m.files[0] = FileSum {
            path: crate::DB_FILE.to_owned(),
            bytes,
            crc32c,
        };
        std::fs::write(b.join(MANIFEST_FILE), m.to_json()?).map_err(io)
    })?;
    let e = resummed.err().map(|e| (e.kind(), e.to_string()));
    assert!(
        e.as_ref().is_some_and(|(k, _)| *k == ErrorKind::Corruption),
        "{e:?}"
    );

    // A manifest rewritten to match a changed table (consistent file list) is still caught
    // by the table checksums: here the database of another backup is swapped in.
    let store = Store::open(&dir, Config::default())?;
    store.write(|tx| tx.insert(&account(9)))?;
    let other = store.backup(&tmp.path().join("other"))?.path;
    drop(store);
    let swapped = damaged("swapped", &|b| {
        std::fs::copy(other.join(crate::DB_FILE), b.join(crate::DB_FILE)).map_err(io)?;
        let mut m = Manifest::read(b)?;
        let (bytes, crc32c) = files::file_sum(&b.join(crate::DB_FILE))?;
        m.files[0] = FileSum {
            path: crate::DB_FILE.to_owned(),
            bytes,
            crc32c,
        };
        std::fs::write(b.join(MANIFEST_FILE), m.to_json()?).map_err(io)
    })?;
    expect_err(swapped, ErrorKind::Corruption, "table ")?;

    // A restore of a damaged backup leaves nothing behind.
    let target = tmp.path().join("never");
    assert!(restore_backup(&tmp.path().join("truncated"), &target).is_err());
    assert!(!target.exists());
    Ok(())
}

#[test]
fn refused_destinations_change_nothing_and_count_as_failures() -> Result<()> {
    let tmp = tempdir()?;
    let dir = tmp.path().join("store");
    let store = seeded(&dir, 1)?;
    for inside in [
        dir.clone(),
        dir.join("journal").join("b"),
        dir.join("b"),
        dir.join("backups"),
        dir.join("backups").join("..").join("x"),
        // Through a folder that does not exist yet, `..` still counts.
        dir.join("backups/new/../../journal/y"),
        dir.join("backups/new/../../archive/x"),
    ] {
        expect_err(
            store.backup(&inside),
            ErrorKind::Invalid,
            "inside the store",
        )?;
    }
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).map_err(|e| Error::io("mkdir", e))?;
    std::fs::write(full.join("keep"), b"x").map_err(|e| Error::io("write", e))?;
    expect_err(store.backup(&full), ErrorKind::Invalid, "is not empty")?;
    assert_eq!(
        std::fs::read(full.join("keep")).map_err(|e| Error::io("read", e))?,
        b"x"
    );
    #[cfg(unix)]
    {
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &link)
            .map_err(|e| Error::io("symlink", e))?;
        expect_err(store.backup(&link), ErrorKind::Invalid, "symbolic link")?;
    }
    let m = store.metrics();
    assert_eq!(m.value("tradestore_backup_failures_total"), Some(9.0));
    assert_eq!(store.stats().backup_failures(), 9);
    assert_eq!(store.stats().backup_us().count, 0);

    // Under backups/ is allowed, and so is the default name there.
    let named = store.backup(&dir.join("backups").join("mine"))?;
    assert!(named.path.ends_with("backups/mine"));
    let default = store.backup_in_store()?;
    let name = default
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(default.path.parent(), Some(dir.join("backups").as_path()));
    assert!(
        name.len() == "20261127T231500Z".len() + format!("-seq{}", default.applied_seq).len()
            && name.ends_with(&format!("Z-seq{}", default.applied_seq)),
        "{name}"
    );
    let again = store.backup_in_store()?;
    assert_ne!(
        again.path, default.path,
        "a second backup in the same second"
    );

    std::fs::create_dir(dir.join("backups").join("unfinished"))
        .map_err(|e| Error::io("mkdir", e))?;
    let listed = list_backups(&dir)?;
    assert_eq!(listed.len(), 4);
    let unfinished = listed
        .iter()
        .find(|l| l.path.ends_with("unfinished"))
        .and_then(|l| l.problem.clone())
        .unwrap_or_default();
    assert!(unfinished.contains("does not exist"), "{unfinished}");
    assert!(
        listed
            .iter()
            .filter(|l| l.problem.is_none())
            .all(|l| l.applied_seq == Some(default.applied_seq))
    );

    let stats = store.stats().backup_us();
    assert_eq!(stats.count, 3);
    let text = store.prometheus();
    assert!(
        text.contains("# TYPE tradestore_backup_duration_seconds histogram\n"),
        "{text}"
    );
    assert!(text.contains("tradestore_backup_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert!(text.contains("tradestore_backup_duration_seconds_count 3\n"));
    assert!(text.contains("tradestore_backup_failures_total 9\n"));
    Ok(())
}

#[test]
fn a_table_this_build_does_not_know_fails_the_backup_and_leaves_nothing() -> Result<()> {
    let tmp = tempdir()?;
    let dir = tmp.path().join("store");
    drop(seeded(&dir, 1)?);
    {
        let db = redb::Database::open(dir.join(crate::DB_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(redb::TableDefinition::<u64, u64>::new("x.future"))?
            .insert(1, 2)?;
        txn.commit()?;
    }
    let store = Store::open(&dir, Config::default())?;
    let dest = tmp.path().join("b");
    expect_err(store.backup(&dest), ErrorKind::Corruption, "\"x.future\"")?;
    assert!(!dest.exists());
    Ok(())
}

#[test]
fn process_running_is_false_for_a_gone_or_zombie_process() -> Result<()> {
    assert!(super::process_running(std::process::id()));
    assert!(!super::process_running(999_999_999));
    // Exited but not waited for: a zombie.
    let mut child = std::process::Command::new("true")
        .spawn()
        .map_err(|e| Error::io("spawn", e))?;
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while super::process_running(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(
        !super::process_running(pid),
        "the exited child still counts"
    );
    child.wait().map_err(|e| Error::io("wait", e))?;
    Ok(())
}
