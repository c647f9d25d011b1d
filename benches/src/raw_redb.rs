//! redb used directly: a row table and three index tables, every commit
//! `Durability::Immediate` (redb's defaults otherwise: no quick-repair).

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use crate::Result;
use crate::latency::measure_peer;
use crate::report::Measurement;
use crate::run::Plan;
use crate::workload::{TradeRow, decode, encode, keys};

/// Engine name in the report.
pub const NAME: &str = "redb";

pub(crate) const TRADES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("trades");
pub(crate) const BY_INSTRUMENT_TS: TableDefinition<&[u8], ()> =
    TableDefinition::new("by_instrument_ts");
pub(crate) const BY_ACCOUNT_TS: TableDefinition<&[u8], ()> = TableDefinition::new("by_account_ts");
pub(crate) const BY_ORDER: TableDefinition<&[u8], ()> = TableDefinition::new("by_order");
/// Positions keyed (account, instrument), for the read benchmark.
pub(crate) const POSITIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("positions");

/// A redb file with the four tables (and the positions table of the read benchmark).
pub struct RawRedb {
    pub(crate) db: Database,
}

impl RawRedb {
    /// Creates `dir/raw.redb` with its tables.
    pub fn open(dir: &Path) -> Result<RawRedb> {
        std::fs::create_dir_all(dir)?;
        let db = Database::create(dir.join("raw.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(TRADES)?;
        txn.open_table(BY_INSTRUMENT_TS)?;
        txn.open_table(BY_ACCOUNT_TS)?;
        txn.open_table(BY_ORDER)?;
        txn.open_table(POSITIONS)?;
        txn.commit()?;
        Ok(RawRedb { db })
    }

    /// Writes `batch` (rows and index entries) in one durable commit.
    pub fn write(&self, batch: &[TradeRow]) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut rows = txn.open_table(TRADES)?;
            let mut by_instrument = txn.open_table(BY_INSTRUMENT_TS)?;
            let mut by_account = txn.open_table(BY_ACCOUNT_TS)?;
            let mut by_order = txn.open_table(BY_ORDER)?;
            for t in batch {
                let k = keys(t);
                rows.insert(&k.row[..], &encode(t)[..])?;
                by_instrument.insert(&k.by_instrument_ts[..], ())?;
                by_account.insert(&k.by_account_ts[..], ())?;
                by_order.insert(&k.by_order[..], ())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The trade with `id`, provided all three of its index entries exist.
    pub fn read(&self, id: u64) -> Result<Option<TradeRow>> {
        let txn = self.db.begin_read()?;
        let Some(v) = txn.open_table(TRADES)?.get(&id.to_be_bytes()[..])? else {
            return Ok(None);
        };
        let t = decode(v.value())?;
        let k = keys(&t);
        let indexed = txn
            .open_table(BY_INSTRUMENT_TS)?
            .get(&k.by_instrument_ts[..])?
            .is_some()
            && txn
                .open_table(BY_ACCOUNT_TS)?
                .get(&k.by_account_ts[..])?
                .is_some()
            && txn.open_table(BY_ORDER)?.get(&k.by_order[..])?.is_some();
        Ok(indexed.then_some(t))
    }
}

/// Measures one trade per commit (`warmup` + `commits`), then `batches` commits of `batch`
/// trades, in a fresh file under `dir`.
pub fn measure(dir: &Path, plan: &Plan) -> Result<Vec<Measurement>> {
    let db = RawRedb::open(dir)?;
    measure_peer(NAME, "commit", plan, &|t| db.write(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::trade;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = RawRedb::open(dir.path()).unwrap();
        db.write(&[trade(0)]).unwrap();
        assert_eq!(db.read(1).unwrap(), Some(trade(0)));
        assert_eq!(db.read(2).unwrap(), None);
        let rows = measure(&dir.path().join("m"), &Plan::tiny()).unwrap();
        assert_eq!(rows[1].trades, 6);
    }
}
