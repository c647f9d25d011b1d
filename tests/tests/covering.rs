//! Covering indexes: entries that carry their row. `trades_by_instrument_ts` is one (an
//! instrument's latest trades are read without a row lookup); an index created at run time
//! can be one. Each entry's copy must follow its row through the overlay, the applier, a
//! reopen and `check`; `check` must notice a copy that differs; a store written in format 1
//! (key-only entries) is upgraded when opened.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tradestore::{Config, IndexScan, ReadOps, Store};
use tradestore_schema::table::builtin_indexes;
use tradestore_schema::{IndexDef, Order, OrderStatus, Side, TableId, Trade, Value};
use tradestore_tests::{
    ACME, ALPHA, BETA, TempStore, TestResult, assert_clean, cancel, fill, limit, seed, seed_orders,
};

const CATALOG: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog");
const COVERING_ENTRIES: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("i.trades_by_instrument_ts");
const KEY_ONLY_ENTRIES: TableDefinition<&[u8], ()> =
    TableDefinition::new("i.trades_by_instrument_ts");

/// The orders of `account` through `index` must be exactly the rows as `get` sees them.
fn orders_through(tx: &impl ReadOps, index: &str, account: u64) -> TestResult<Vec<Order>> {
    let found: Vec<Order> = tx.index_scan(index, &IndexScan::prefix([Value::U64(account)]))?;
    for o in &found {
        assert_eq!(
            Some(o),
            tx.get_id::<Order>(o.id)?.as_ref(),
            "order {}",
            o.id
        );
    }
    Ok(found)
}

/// An instrument's latest trades must be its trades by (ts, id), newest first.
fn latest_match_scan(tx: &impl ReadOps, instrument: u64) -> TestResult<usize> {
    let mut all: Vec<Trade> = tx
        .all::<Trade>()?
        .into_iter()
        .filter(|t| t.instrument == instrument)
        .collect();
    all.sort_by_key(|t| std::cmp::Reverse((t.ts, t.id)));
    for n in [1, 3, 100] {
        let want: Vec<Trade> = all.iter().take(n).cloned().collect();
        assert_eq!(tx.recent_trades(instrument, n)?, want, "last {n}");
    }
    Ok(all.len())
}

#[test]
fn a_covering_entry_follows_its_row_through_the_overlay_the_applier_and_a_reopen() -> TestResult {
    let store = TempStore::new()?;
    seed(&store)?;
    let store = store.reopen()?;
    let def = IndexDef {
        name: "orders_by_account_covering".into(),
        table: TableId::Orders,
        columns: vec!["account".into()],
        unique: false,
        builtin: false,
        covering: true,
    };
    store.create_index(def, "test")?;
    let [buy, ..] = seed_orders();
    // The buy order is filled unit by unit: its row changes, its entry's key does not.
    for (id, ts) in (1..=10).zip(100..) {
        let (seen, rows) = store.write(|tx| {
            tx.record_fill(&fill(id, &buy, 1, "99.5", "0", ts))?;
            // The transaction reads its own change through the index.
            let seen: Vec<Order> = tx.index_scan(
                "orders_by_account_covering",
                &IndexScan::prefix([Value::U64(ALPHA)]),
            )?;
            let mut rows = Vec::new();
            for o in &seen {
                rows.push(tx.get_id::<Order>(o.id)?);
            }
            Ok((seen, rows))
        })?;
        let rows: Vec<Order> = rows.into_iter().flatten().collect();
        assert_eq!(seen, rows);
        let o = seen
            .iter()
            .find(|o| o.id == buy.id)
            .ok_or("buy order missing")?;
        assert_eq!(o.filled_quantity.0, i64::from(id as u32) * 100_000_000);
        // Every snapshot, whatever the applier has moved, reads the latest row.
        let tx = store.read()?;
        let seen = orders_through(&tx, "orders_by_account_covering", ALPHA)?;
        assert_eq!(seen.len(), 2);
        assert_eq!(latest_match_scan(&tx, ACME)?, id as usize);
    }
    let extra = limit(50, BETA, ACME, Side::Buy, 5, "90");
    store.write(|tx| tx.insert(&extra))?;
    cancel(&store, &extra, 2)?;

    let store = store.reopen()?;
    let tx = store.read()?;
    let alpha = orders_through(&tx, "orders_by_account_covering", ALPHA)?;
    let filled = alpha
        .iter()
        .find(|o| o.id == buy.id)
        .ok_or("buy order missing")?;
    assert_eq!(filled.status, OrderStatus::Filled);
    let beta = orders_through(&tx, "orders_by_account_covering", BETA)?;
    assert!(
        beta.iter()
            .any(|o| o.id == 50 && o.status == OrderStatus::Cancelled)
    );
    assert_eq!(latest_match_scan(&tx, ACME)?, 10);
    drop(tx);
    assert_clean(&store)
}

/// Ten fills of the seed's buy order, then the store is closed; returns its directory.
fn closed_store_with_fills() -> TestResult<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Config::default())?;
    seed(&store)?;
    let [buy, ..] = seed_orders();
    for (id, ts) in (1..=10).zip(100..) {
        store.write(|tx| tx.record_fill(&fill(id, &buy, 1, "99.5", "0", ts)))?;
    }
    drop(store);
    Ok(dir)
}

#[test]
fn check_reports_a_covering_entry_whose_copy_differs_from_its_row() -> TestResult {
    let dir = closed_store_with_fills()?;
    {
        let db = redb::Database::open(dir.path().join(tradestore::DB_FILE))?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(COVERING_ENTRIES)?;
            let (first_key, second_row) = {
                let mut it = t.iter()?;
                let (k, _) = it.next().ok_or("no entry")??;
                let (_, v) = it.next().ok_or("one entry")??;
                (k.value().to_vec(), v.value().to_vec())
            };
            // The first trade's entry now carries the second trade.
            t.insert(first_key.as_slice(), second_row.as_slice())?;
        }
        txn.commit()?;
    }
    let store = Store::open(dir.path(), Config::default())?;
    let report = store.check(&mut |_, _| {})?;
    assert!(
        report.violations.iter().any(|v| v.check == "index_mismatch"
            && v.table == "index trades_by_instrument_ts"
            && v.message.contains("copy of the row")),
        "{:#?}",
        report.violations
    );
    Ok(())
}

#[test]
fn a_format_1_store_is_upgraded_when_opened() -> TestResult {
    let dir = closed_store_with_fills()?;
    // Make it what a format 1 build wrote: key-only entries, the index not covering.
    {
        let db = redb::Database::open(dir.path().join(tradestore::DB_FILE))?;
        let txn = db.begin_write()?;
        let keys: Vec<Vec<u8>> = {
            let t = txn.open_table(COVERING_ENTRIES)?;
            let mut keys = Vec::new();
            for item in t.iter()? {
                keys.push(item?.0.value().to_vec());
            }
            keys
        };
        assert_eq!(keys.len(), 10);
        txn.delete_table(COVERING_ENTRIES)?;
        {
            let mut t = txn.open_table(KEY_ONLY_ENTRIES)?;
            for k in &keys {
                t.insert(k.as_slice(), ())?;
            }
            let mut catalog = txn.open_table(CATALOG)?;
            catalog.insert("meta/format_version", b"1".as_slice())?;
            let old = IndexDef {
                covering: false,
                ..builtin_indexes()
                    .into_iter()
                    .find(|d| d.name == "trades_by_instrument_ts")
                    .ok_or("no such built-in index")?
            };
            let mut json: serde_json::Value = serde_json::to_value(&old)?;
            if let Some(fields) = json.as_object_mut() {
                fields.remove("covering");
            }
            catalog.insert(
                "index/trades_by_instrument_ts",
                serde_json::to_vec(&json)?.as_slice(),
            )?;
        }
        txn.commit()?;
    }

    let store = Store::open(dir.path(), Config::default())?;
    {
        let tx = store.read()?;
        assert_eq!(latest_match_scan(&tx, ACME)?, 10);
        let spec = tx
            .indexes()
            .iter()
            .find(|s| s.def.name == "trades_by_instrument_ts")
            .ok_or("index missing")?;
        assert!(spec.def.covering);
    }
    assert_clean(&store)?;
    drop(store);
    let db = redb::Database::open(dir.path().join(tradestore::DB_FILE))?;
    let txn = db.begin_read()?;
    let catalog = txn.open_table(CATALOG)?;
    let version = catalog
        .get("meta/format_version")?
        .ok_or("no format version")?
        .value()
        .to_vec();
    assert_eq!(version, tradestore::FORMAT_VERSION.to_string().as_bytes());
    let t = txn.open_table(COVERING_ENTRIES)?;
    let mut n = 0;
    for item in t.iter()? {
        let (_, row) = item?;
        let trade: Trade = tradestore_schema::codec::decode(row.value())?;
        assert_eq!(trade.instrument, ACME);
        n += 1;
    }
    assert_eq!(n, 10);
    Ok(())
}

#[test]
fn a_store_of_a_newer_format_is_refused_and_left_as_it_is() -> TestResult {
    let dir = closed_store_with_fills()?;
    let future = (tradestore::FORMAT_VERSION + 1).to_string();
    {
        let db = redb::Database::open(dir.path().join(tradestore::DB_FILE))?;
        let txn = db.begin_write()?;
        txn.open_table(CATALOG)?
            .insert("meta/format_version", future.as_bytes())?;
        txn.commit()?;
    }
    let err = match Store::open(dir.path(), Config::default()) {
        Ok(_) => return Err("a newer format was opened".into()),
        Err(e) => e,
    };
    assert!(
        err.to_string()
            .contains(&format!("format version {future}")),
        "{err}"
    );
    // Nothing was converted or rewritten.
    let db = redb::Database::open(dir.path().join(tradestore::DB_FILE))?;
    let txn = db.begin_read()?;
    let version = txn
        .open_table(CATALOG)?
        .get("meta/format_version")?
        .ok_or("no format version")?
        .value()
        .to_vec();
    assert_eq!(version, future.as_bytes());
    assert_eq!(txn.open_table(COVERING_ENTRIES)?.len()?, 10);
    Ok(())
}
