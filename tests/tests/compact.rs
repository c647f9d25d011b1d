//! Compacting the database file: it shrinks once rows are gone, keeps every row that is
//! left, and refuses a store that is open.

use tradestore::schema::{Account, Value};
use tradestore::{Config, ErrorKind, Store};
use tradestore_tests::{TestResult, account, assert_clean, dump_bytes, expect_err, seed, workload};

const FIRST: u64 = 1_000;
const CHURNED: u64 = 20_000;

#[test]
fn compaction_shrinks_a_churned_file_and_keeps_every_row() -> TestResult {
    let dir = tempfile::tempdir()?;
    let reference = {
        let store = Store::open(dir.path(), Config::default())?;
        seed(&store)?;
        workload(&store, 5, 40)?;
        let reference = dump_bytes(&store)?;
        // Twenty thousand accounts with long names, then gone again: their pages are free.
        let name = "n".repeat(200);
        for chunk in (FIRST..FIRST + CHURNED).step_by(5_000) {
            store.write(|tx| {
                for id in chunk..chunk + 5_000 {
                    tx.insert(&account(id, &name))?;
                }
                Ok(())
            })?;
        }
        store.write(|tx| {
            for id in FIRST..FIRST + CHURNED {
                tx.delete::<Account>(&[Value::U64(id)])?;
            }
            Ok(())
        })?;
        assert_eq!(dump_bytes(&store)?, reference);
        reference
    };
    let file = dir.path().join(tradestore::DB_FILE);
    let done = Store::compact(dir.path(), Config::default())?;
    assert!(
        done.after_bytes < done.before_bytes,
        "{} -> {} bytes",
        done.before_bytes,
        done.after_bytes
    );
    assert_eq!(std::fs::metadata(&file)?.len(), done.after_bytes);
    assert_eq!(done.recovery.replayed, 0, "the store was closed cleanly");

    let store = Store::open(dir.path(), Config::default())?;
    assert_eq!(dump_bytes(&store)?, reference);
    assert_clean(&store)?;

    // Open here, so compacting it elsewhere is refused, and nothing changes.
    expect_err(
        Store::compact(dir.path(), Config::default()),
        ErrorKind::Busy,
    )?;
    assert_eq!(std::fs::metadata(&file)?.len(), done.after_bytes);
    assert_eq!(dump_bytes(&store)?, reference);
    Ok(())
}
