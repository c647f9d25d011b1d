//! A store's id follows its history (its backups, the stores restored from them, its
//! standbys) and keeps it apart from other stores': a journal folder of another store is
//! refused when a store opens, when a standby follows it and when a point-in-time restore
//! replays it, each before anything is read from it.

use std::path::{Path, PathBuf};

use tradestore::backup::{Manifest, PointInTime, restore_backup_to};
use tradestore::identity::{ID_FILE, of_folder};
use tradestore::standby::Standby;
use tradestore::{Config, ErrorKind, Store};
use tradestore_tests::{TestResult, dump_bytes, expect_err, seed, workload};

fn store(dir: &Path, seed_n: u64) -> TestResult<Store> {
    let store = Store::open(
        dir,
        Config {
            keep_journal: true,
            ..Config::default()
        },
    )?;
    seed(&store)?;
    workload(&store, seed_n, 40)?;
    Ok(store)
}

fn folders(dir: &Path) -> Vec<PathBuf> {
    vec![dir.join("archive/journal"), dir.join("journal")]
}

#[test]
fn a_backup_and_what_is_restored_from_it_keep_the_stores_id() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let a = tmp.path().join("a");
    let store = store(&a, 1)?;
    let id = of_folder(&a.join("journal"))?.ok_or("no id beside the journal")?;
    assert_eq!(
        of_folder(&a.join("archive/journal"))?.as_deref(),
        Some(id.as_str())
    );
    let backup = store.backup(&tmp.path().join("bk"))?;
    assert_eq!(
        Manifest::read(&backup.path)?.store_id.as_deref(),
        Some(id.as_str())
    );
    drop(store);
    // Rolled forward with its own journal: the same history, the same id.
    let restored = tmp.path().join("restored");
    restore_backup_to(
        &backup.path,
        &restored,
        &PointInTime {
            journal: folders(&a),
            ..PointInTime::default()
        },
    )?;
    assert_eq!(of_folder(&restored.join("journal"))?, Some(id));
    // A second store has an id of its own.
    let b = tmp.path().join("b");
    drop(store_at(&b)?);
    assert_ne!(
        of_folder(&b.join("journal"))?,
        of_folder(&a.join("journal"))?
    );
    Ok(())
}

fn store_at(dir: &Path) -> TestResult<Store> {
    store(dir, 7)
}

#[test]
fn another_stores_journal_is_refused_before_anything_is_read() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let sa = store(&a, 1)?;
    let backup = sa.backup(&tmp.path().join("bk"))?;
    let rows_a = dump_bytes(&sa)?;
    drop(sa);
    drop(store(&b, 7)?);

    // A standby of a following b's journal: refused, and no standby is left behind.
    let standby = tmp.path().join("standby");
    let err = expect_err(
        Standby::create(&backup.path, &standby, folders(&b)),
        ErrorKind::Invalid,
    )?;
    assert!(err.to_string().contains("another store's journal"), "{err}");
    assert!(!standby.exists());

    // A point-in-time restore replaying b's journal onto a's backup: refused.
    let restored = tmp.path().join("restored");
    let err = expect_err(
        restore_backup_to(
            &backup.path,
            &restored,
            &PointInTime {
                journal: vec![b.join("journal")],
                ..PointInTime::default()
            },
        ),
        ErrorKind::Invalid,
    )?;
    assert!(err.to_string().contains("another store's journal"), "{err}");
    assert!(!restored.exists());

    // b's journal folder put in place of a's: a refuses to open, and replays nothing.
    let a_journal = a.join("journal");
    std::fs::rename(&a_journal, tmp.path().join("a-journal"))?;
    copy_folder(&b.join("journal"), &a_journal)?;
    let err = expect_err(Store::open_dir(&a).map(|_| ()), ErrorKind::Invalid)?;
    assert!(err.to_string().contains("another store's journal"), "{err}");
    std::fs::remove_dir_all(&a_journal)?;
    std::fs::rename(tmp.path().join("a-journal"), &a_journal)?;
    let sa = Store::open_dir(&a)?;
    assert_eq!(
        dump_bytes(&sa)?,
        rows_a,
        "nothing of b's journal was applied"
    );
    drop(sa);

    // A folder without an id (journals written before stores had ids) is taken as it is,
    // and marked as the store's.
    std::fs::remove_file(a_journal.join(ID_FILE))?;
    let sa = Store::open_dir(&a)?;
    assert!(of_folder(&a_journal)?.is_some());
    assert_eq!(dump_bytes(&sa)?, rows_a);
    Ok(())
}

fn copy_folder(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}
