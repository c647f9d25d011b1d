//! fjall (an LSM tree): a trades keyspace and three index keyspaces, each commit one
//! cross-keyspace write batch whose journal write is followed by `fdatasync`
//! (`PersistMode::SyncData`).

use std::path::Path;

use ::fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use crate::Result;
use crate::latency::measure_peer;
use crate::report::{FJALL, Measurement};
use crate::run::Plan;
use crate::workload::{TradeRow, decode, encode, keys};

/// A fjall database with the four keyspaces (and the positions keyspace of the read
/// benchmark).
pub struct Fjall {
    pub(crate) db: Database,
    pub(crate) trades: Keyspace,
    pub(crate) by_instrument_ts: Keyspace,
    pub(crate) by_account_ts: Keyspace,
    pub(crate) by_order: Keyspace,
    pub(crate) positions: Keyspace,
}

impl Fjall {
    /// Creates the database in `dir/fjall`.
    pub fn open(dir: &Path) -> Result<Fjall> {
        std::fs::create_dir_all(dir)?;
        let db = Database::builder(dir.join("fjall")).open()?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Fjall {
            trades: ks("trades")?,
            by_instrument_ts: ks("by_instrument_ts")?,
            by_account_ts: ks("by_account_ts")?,
            by_order: ks("by_order")?,
            positions: ks("positions")?,
            db,
        })
    }

    /// Writes `batch` (rows and index entries) as one batch synced with `fdatasync`.
    pub fn write(&self, batch: &[TradeRow]) -> Result<()> {
        let mut b = self.db.batch().durability(Some(PersistMode::SyncData));
        let empty: &[u8] = &[];
        for t in batch {
            let k = keys(t);
            b.insert(&self.trades, &k.row[..], &encode(t)[..]);
            b.insert(&self.by_instrument_ts, &k.by_instrument_ts[..], empty);
            b.insert(&self.by_account_ts, &k.by_account_ts[..], empty);
            b.insert(&self.by_order, &k.by_order[..], empty);
        }
        b.commit()?;
        Ok(())
    }

    /// The trade with `id`, provided all three of its index entries exist.
    pub fn read(&self, id: u64) -> Result<Option<TradeRow>> {
        let Some(v) = self.trades.get(id.to_be_bytes())? else {
            return Ok(None);
        };
        let t = decode(&v)?;
        let k = keys(&t);
        let indexed = self.by_instrument_ts.contains_key(k.by_instrument_ts)?
            && self.by_account_ts.contains_key(k.by_account_ts)?
            && self.by_order.contains_key(k.by_order)?;
        Ok(indexed.then_some(t))
    }
}

/// Measures one trade per batch (`warmup` + `commits`), then `batches` batches of `batch`
/// trades, in a fresh database under `dir`.
pub fn measure(dir: &Path, plan: &Plan) -> Result<Vec<Measurement>> {
    let db = Fjall::open(dir)?;
    measure_peer(FJALL, "batch", plan, &|t| db.write(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::trade;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let db = Fjall::open(dir.path()).unwrap();
        db.write(&[trade(0)]).unwrap();
        assert_eq!(db.read(1).unwrap(), Some(trade(0)));
        assert_eq!(db.read(2).unwrap(), None);
        let rows = measure(&dir.path().join("m"), &Plan::tiny()).unwrap();
        assert_eq!(rows[1].trades, 6);
    }
}
