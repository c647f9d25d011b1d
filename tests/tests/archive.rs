//! The archive tier: trades moved into compressed segments read exactly as before, through
//! every read path (point gets, scans, index scans, SQL, counts, check, dump), across
//! reopens and while fills keep committing; a damaged or missing segment is an error, never
//! a silent gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tradestore::schema::{IndexDef, Order, Side, TableId, Trade};
use tradestore::{Config, ErrorKind, ReadOps, RetryPolicy, Store};
use tradestore_tests::{
    ACME, ALPHA, TempStore, TestResult, assert_clean, dump_bytes, fill, limit, seed, wait_applied,
};

/// A buy order large enough for every fill of these tests.
const BIG: u64 = 100;

fn prepare(store: &Store) -> TestResult<Order> {
    seed(store)?;
    let order = limit(BIG, ALPHA, ACME, Side::Buy, 1_000_000, "1");
    store.write(|tx| tx.insert(&order))?;
    Ok(order)
}

/// Records `n` one-unit fills of `order`, ten per transaction, with `ts` counting up from
/// `ts0`.
fn record(store: &Store, order: &Order, n: usize, ts0: i64) -> TestResult<Vec<Trade>> {
    let mut out = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(10) {
        let count = (n - chunk * 10).min(10);
        let batch = store.transact(&RetryPolicy::default(), |tx| {
            let mut batch = Vec::with_capacity(count);
            for i in 0..count {
                let ts = ts0 + (chunk * 10 + i) as i64;
                let mut t = fill(0, order, 1, "1", "0", ts);
                t.id = tx.next_id(TableId::Trades)?;
                tx.record_fill(&t)?;
                batch.push(t);
            }
            Ok(batch)
        })?;
        out.extend(batch);
    }
    Ok(out)
}

/// What the tests compare before and after archiving: the whole dump, and the answers of
/// the common reads.
fn answers(store: &Store) -> TestResult<(Vec<u8>, Vec<String>)> {
    let tx = store.read()?;
    let mut out = vec![
        format!("{:?}", tx.recent_trades(ACME, 100)?),
        format!("{:?}", tx.count(TableId::Trades)?),
        format!(
            "{:?}",
            tx.prefix::<Trade>(&[])?.len() // every trade, through the primary key
        ),
    ];
    for sql in [
        "SELECT id, price, ts FROM trades WHERE instrument = 'ACME' ORDER BY ts DESC LIMIT 100",
        "SELECT count(*), sum(quantity) FROM trades",
        "SELECT id FROM trades WHERE order_id = 100 ORDER BY id LIMIT 5",
        "SELECT id, ts FROM trades WHERE id BETWEEN 1990 AND 2010 ORDER BY id",
        "SELECT account, count(*) FROM trades GROUP BY account",
    ] {
        out.push(format!("{:?}", store.query(sql)?.rows));
    }
    Ok((dump_bytes(store)?, out))
}

#[test]
fn archived_trades_read_exactly_as_before_and_after_a_reopen() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    let trades = record(&store, &order, 3000, 10)?;
    wait_applied(&store)?;
    let before = answers(&store)?;

    // Every trade with ts < 2010: the first 2000.
    let report = store.archive_trades(2010)?;
    assert_eq!(report.trades, 2000);
    assert_eq!(report.segments.len(), 1);
    let seg = &report.segments[0];
    assert_eq!((seg.first_id, seg.last_id), (trades[0].id, trades[1999].id));
    assert_eq!((seg.min_ts, seg.max_ts), (10, 2009));
    assert!(seg.file_bytes < seg.raw_bytes, "{seg:?}");
    assert!(store.dir().join(&seg.file).is_file());

    assert_eq!(answers(&store)?, before);
    let tx = store.read()?;
    for t in &trades {
        assert_eq!(tx.get_id::<Trade>(t.id)?.as_ref(), Some(t));
    }
    drop(tx);
    assert_clean(&store)?;
    // A second run finds nothing old enough left.
    assert_eq!(store.archive_trades(2010)?.trades, 0);

    let store = store.reopen()?;
    assert_eq!(store.archive_segments().len(), 1);
    assert_eq!(answers(&store)?, before);
    assert_clean(&store)?;

    // New fills continue the ids; a second segment takes the next oldest.
    let more = record(&store, &order, 500, 5000)?;
    assert!(more[0].id > trades[2999].id);
    wait_applied(&store)?;
    let report = store.archive_trades(5200)?;
    assert_eq!(report.trades, 1000 + 200);
    let all: Vec<Trade> = store.read()?.all()?;
    assert_eq!(all.len(), 3500);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_clean(&store)?;
    let second = answers(&store)?;
    let store = store.reopen()?;
    assert_eq!(store.archive_segments().len(), 2);
    assert_eq!(answers(&store)?, second);
    Ok(())
}

#[test]
fn an_index_created_after_archiving_covers_archived_trades() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    record(&store, &order, 600, 10)?;
    wait_applied(&store)?;
    assert_eq!(store.archive_trades(310)?.trades, 300);
    store.create_index(
        IndexDef {
            name: "trades_by_ts".to_owned(),
            table: TableId::Trades,
            columns: vec!["ts".to_owned()],
            unique: false,
            builtin: false,
            covering: false,
        },
        "test",
    )?;
    let rows = store.query("SELECT id FROM trades WHERE ts >= 300 AND ts < 320 ORDER BY ts")?;
    assert_eq!(rows.rows.len(), 20);
    let plan = store.explain(
        "SELECT id FROM trades WHERE ts >= 300 AND ts < 320 ORDER BY ts",
        false,
    )?;
    assert!(format!("{plan:?}").contains("trades_by_ts"), "{plan:?}");
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn archiving_while_fills_commit_loses_and_duplicates_nothing() -> TestResult {
    let store = Arc::new(TempStore::with_config(Config {
        checkpoint_interval_ms: 10,
        ..Config::default()
    })?);
    let order = prepare(&store)?;
    let stop = Arc::new(AtomicBool::new(false));
    let recorded = Arc::new(AtomicU64::new(0));
    let writer = {
        let (store, stop, recorded, order) = (
            Arc::clone(&store),
            Arc::clone(&stop),
            Arc::clone(&recorded),
            order.clone(),
        );
        std::thread::spawn(move || -> Result<(), String> {
            let mut ts = 10;
            while !stop.load(Ordering::SeqCst) {
                let n = record(&store, &order, 20, ts)
                    .map_err(|e| e.to_string())?
                    .len() as u64;
                ts += 20;
                recorded.fetch_add(n, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    let mut archived = 0;
    // Until some trades were archived too: on a loaded machine the writer can record its
    // 3000 before the applier moved any into redb, where archiving takes them from.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (recorded.load(Ordering::SeqCst) < 3000 || archived == 0)
        && std::time::Instant::now() < deadline
    {
        archived += store.archive_trades(i64::MAX)?.trades;
        // Readers see every trade once while segments come and go from redb.
        let tx = store.read()?;
        let ids: Vec<u64> = tx.all::<Trade>()?.iter().map(|t| t.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids.len() as u64, tx.count(TableId::Trades)?);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().map_err(|_| "writer panicked")??;
    assert!(archived > 0);
    let total = recorded.load(Ordering::SeqCst);
    let tx = store.read()?;
    assert_eq!(tx.count(TableId::Trades)?, total);
    assert_eq!(tx.all::<Trade>()?.len() as u64, total);
    drop(tx);
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn a_damaged_or_missing_segment_is_an_error_never_a_gap() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    let trades = record(&store, &order, 400, 10)?;
    wait_applied(&store)?;
    let seg = store.archive_trades(210)?.segments.remove(0);
    let path = store.dir().join(&seg.file);
    let store = store.reopen()?;
    let good = std::fs::read(&path)?;

    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    std::fs::write(&path, &bad)?;
    let store = store.reopen()?;
    let err = store
        .read()?
        .get_id::<Trade>(trades[5].id)
        .expect_err("a damaged segment was read");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // `check` names the segment as a finding (what the corruption error advises running),
    // and says that the rows went unchecked.
    let report = store.check(&mut |_, _| {})?;
    let found: Vec<_> = report.violations.iter().map(|v| v.check).collect();
    assert_eq!(found, ["archive", "archive"], "{:?}", report.violations);
    assert_eq!(
        report.violations[0].key,
        format!("{}..={}", seg.first_id, seg.last_id)
    );
    assert!(
        report.violations[0].message.contains(&seg.file),
        "{:?}",
        report.violations
    );
    assert!(
        report.violations[0].message.contains("checksum"),
        "{:?}",
        report.violations
    );
    assert!(
        report.violations[1].message.contains("not checked"),
        "{:?}",
        report.violations
    );
    assert!(dump_bytes(&store).is_err());
    // Hot trades still read.
    assert_eq!(
        store.read()?.get_id::<Trade>(trades[300].id)?.as_ref(),
        Some(&trades[300])
    );

    std::fs::remove_file(&path)?;
    let store = store.reopen()?;
    let err = store
        .query("SELECT count(*) FROM trades WHERE order_id = 100")
        .expect_err("a missing segment was read");
    assert!(err.to_string().contains("missing"), "{err}");
    let report = store.check(&mut |_, _| {})?;
    assert!(!report.is_clean());
    assert!(
        report.violations[0].message.contains("missing"),
        "{:?}",
        report.violations
    );

    std::fs::write(&path, &good)?;
    let store = store.reopen()?;
    assert_eq!(
        store.read()?.get_id::<Trade>(trades[5].id)?.as_ref(),
        Some(&trades[5])
    );
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn files_left_by_an_interrupted_run_are_removed_by_the_next() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    record(&store, &order, 100, 10)?;
    wait_applied(&store)?;
    let folder = store.dir().join(tradestore::archive::FOLDER);
    std::fs::create_dir_all(&folder)?;
    let stray = folder.join("00000000000000000001-00000000000000000009.seg");
    let tmp = folder.join("00000000000000000001-00000000000000000009.tmp");
    std::fs::write(&stray, b"half written")?;
    std::fs::write(&tmp, b"half written")?;
    let report = store.archive_trades(60)?;
    assert_eq!(report.trades, 50);
    assert_eq!(
        report.removed_orphans.len(),
        2,
        "{:?}",
        report.removed_orphans
    );
    assert!(!stray.exists() && !tmp.exists());
    assert!(store.dir().join(&report.segments[0].file).is_file());
    assert_clean(&store)?;
    Ok(())
}

#[test]
fn the_background_archiver_moves_trades_past_archive_after_s() -> TestResult {
    let store = TempStore::with_config(Config {
        archive_after_s: 1,
        ..Config::default()
    })?;
    let order = prepare(&store)?;
    // Times near 1970: far older than a second.
    let trades = record(&store, &order, 200, 10)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.archive_segments().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing archived in 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let tx = store.read()?;
    for t in &trades {
        assert_eq!(tx.get_id::<Trade>(t.id)?.as_ref(), Some(t));
    }
    drop(tx);
    assert_clean(&store)?;
    let metrics = store.metrics();
    assert!(
        metrics
            .histogram("tradestore_archive_duration_seconds")
            .is_some_and(|h| h.count > 0),
        "no archive run was timed"
    );
    Ok(())
}

#[test]
fn a_backup_carries_the_archive_and_refuses_a_damaged_segment() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    record(&store, &order, 600, 10)?;
    wait_applied(&store)?;
    let seg = store.archive_trades(310)?.segments.remove(0);
    let tmp = tempfile::tempdir()?;
    let backup = store.backup(&tmp.path().join("b"))?;
    assert!(backup.path.join(&seg.file).is_file());
    tradestore::backup::verify_backup(&backup.path)?;
    let restored = tmp.path().join("restored");
    tradestore::backup::restore_backup(&backup.path, &restored)?;
    let copy = Store::open_dir(&restored)?;
    assert_eq!(copy.archive_segments().len(), 1);
    assert_eq!(dump_bytes(&copy)?, dump_bytes(&store)?);
    drop(copy);

    // A damaged segment in the store fails the backup rather than copying the damage.
    let path = store.dir().join(&seg.file);
    let mut bytes = std::fs::read(&path)?;
    bytes[30] ^= 0x10;
    std::fs::write(&path, &bytes)?;
    let err = store
        .backup(&tmp.path().join("b2"))
        .expect_err("a damaged segment was backed up");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(err.to_string().contains(&seg.file), "{err}");
    assert!(!tmp.path().join("b2").join(&seg.file).exists());
    Ok(())
}

#[cfg(unix)]
#[test]
fn an_archive_folder_that_is_a_link_or_a_segment_that_is_not_a_file_is_refused() -> TestResult {
    // Another store's archive, reached through a link, must never be written or cleaned.
    let victim = TempStore::new()?;
    let order = prepare(&victim)?;
    record(&victim, &order, 100, 10)?;
    wait_applied(&victim)?;
    let seg = victim.archive_trades(60)?.segments.remove(0);
    let victim_file = victim.dir().join(&seg.file);

    let store = TempStore::new()?;
    let order = prepare(&store)?;
    record(&store, &order, 100, 10)?;
    wait_applied(&store)?;
    let folder = store.dir().join(tradestore::archive::FOLDER);
    std::fs::create_dir_all(folder.parent().ok_or("no parent")?)?;
    std::os::unix::fs::symlink(victim_file.parent().ok_or("no parent")?, &folder)?;
    let err = store
        .archive_trades(60)
        .expect_err("archived through a link");
    assert!(
        err.to_string().contains("is a link or not a folder"),
        "{err}"
    );
    assert!(
        victim_file.is_file(),
        "the other store's segment was removed"
    );
    assert_eq!(store.read()?.count(TableId::Trades)?, 100);

    // A FIFO in a segment's place: reads fail at once (opening it would wait forever).
    let path = victim_file.clone();
    let good = std::fs::read(&path)?;
    std::fs::remove_file(&path)?;
    let made = std::process::Command::new("mkfifo").arg(&path).status()?;
    assert!(made.success());
    let victim = victim.reopen()?;
    let err = victim
        .query("SELECT count(*) FROM trades")
        .expect_err("read a FIFO as a segment");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    std::fs::remove_file(&path)?;
    std::fs::write(&path, good)?;
    assert_clean(&victim)?;
    Ok(())
}

#[test]
fn a_backup_refuses_a_segment_of_the_wrong_size_before_copying_it() -> TestResult {
    let store = TempStore::new()?;
    let order = prepare(&store)?;
    record(&store, &order, 200, 10)?;
    wait_applied(&store)?;
    let seg = store.archive_trades(110)?.segments.remove(0);
    // Grown (sparse) to 1 GiB: refused by its size, not after copying it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(store.dir().join(&seg.file))?
        .set_len(1 << 30)?;
    let tmp = tempfile::tempdir()?;
    let err = store
        .backup(&tmp.path().join("b"))
        .expect_err("backed up a grown segment");
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    // The size check's message (the check after copying words it otherwise).
    assert!(
        err.to_string().contains("bytes, but it was written with"),
        "{err}"
    );
    assert!(!tmp.path().join("b").exists(), "a failed backup left files");
    Ok(())
}

#[test]
fn a_limited_scan_of_hot_trades_reads_no_segment() -> TestResult {
    // No cache (nor the ring of the newest trades): every read of a segment goes to its
    // file.
    let store = TempStore::with_config(Config {
        archive_cache_mb: 0,
        recent_trades: 0,
        ..Config::default()
    })?;
    let order = prepare(&store)?;
    let trades = record(&store, &order, 600, 10)?;
    wait_applied(&store)?;
    let seg = store.archive_trades(310)?.segments.remove(0);
    let newest: Vec<Trade> = trades.iter().rev().take(100).cloned().collect();
    // A new process knows where the segment's entries lie from the catalog (its fences
    // were written with it), without reading it.
    let store = store.reopen()?;
    std::fs::rename(store.dir().join(&seg.file), store.dir().join("moved-away"))?;
    // The newest 100 are all hot, and come before anything the segment can hold.
    assert_eq!(store.read()?.recent_trades(ACME, 100)?, newest);
    let sql = "SELECT id FROM trades WHERE instrument = 'ACME' ORDER BY ts DESC LIMIT 100";
    assert_eq!(store.query(sql)?.rows.len(), 100);
    assert_eq!(
        store.read()?.get_id::<Trade>(trades[599].id)?.as_ref(),
        Some(&trades[599])
    );
    // Reaching into the archive does read it.
    let err = store
        .read()?
        .recent_trades(ACME, 400)
        .expect_err("read trades of a missing segment");
    assert!(err.to_string().contains("missing"), "{err}");
    let err = store
        .read()?
        .get_id::<Trade>(trades[0].id)
        .expect_err("read a trade of a missing segment");
    assert!(err.to_string().contains("missing"), "{err}");

    std::fs::rename(store.dir().join("moved-away"), store.dir().join(&seg.file))?;
    let all = store.read()?.recent_trades(ACME, 1000)?;
    assert_eq!(all.len(), 600);
    assert!(all.windows(2).all(|w| w[0].ts >= w[1].ts));
    assert_clean(&store)?;
    Ok(())
}
