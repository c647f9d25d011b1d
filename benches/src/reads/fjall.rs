//! fjall's reads: one snapshot per batch; the last trades of an instrument are a reverse
//! prefix scan of the (instrument, ts, id) keyspace plus a row get each; positions a prefix
//! scan of the (account, instrument) keys. Its bulk load writes batches of
//! [`LOAD_BATCH`] trades, each synced with `fdatasync`.

use std::path::Path;

use ::fjall::{PersistMode, Readable};

use super::data::{DataSet, PositionRow};
use super::run::Reader;
use crate::Result;
use crate::fjall::Fjall;
use crate::report::FJALL;
use crate::workload::{TradeRow, decode, encode, keys};

/// Trades per write batch of the bulk load.
pub const LOAD_BATCH: usize = 10_000;

impl Fjall {
    /// Writes every trade (with its index entries) in batches of [`LOAD_BATCH`], then the
    /// positions, each batch synced.
    pub fn load(&mut self, data: &DataSet) -> Result<()> {
        let empty: &[u8] = &[];
        for chunk in data.trades.chunks(LOAD_BATCH) {
            let mut b = self.db.batch().durability(Some(PersistMode::SyncData));
            for t in chunk {
                let k = keys(t);
                b.insert(&self.trades, &k.row[..], &encode(t)[..]);
                b.insert(&self.by_instrument_ts, &k.by_instrument_ts[..], empty);
                b.insert(&self.by_account_ts, &k.by_account_ts[..], empty);
                b.insert(&self.by_order, &k.by_order[..], empty);
            }
            b.commit()?;
        }
        let mut b = self.db.batch().durability(Some(PersistMode::SyncData));
        for p in &data.positions {
            b.insert(&self.positions, &p.key()[..], &p.encode()[..]);
        }
        b.commit()?;
        Ok(())
    }
}

impl Reader for Fjall {
    fn name(&self) -> &'static str {
        FJALL
    }

    fn gets(&self, ids: &[u64], out: &mut dyn FnMut(Option<TradeRow>)) -> Result<()> {
        let snap = self.db.snapshot();
        for &id in ids {
            let got = snap.get(&self.trades, id.to_be_bytes())?;
            out(got.map(|v| decode(&v)).transpose()?);
        }
        Ok(())
    }

    fn recent(
        &self,
        instruments: &[u64],
        limit: usize,
        out: &mut dyn FnMut(Vec<TradeRow>),
    ) -> Result<()> {
        let snap = self.db.snapshot();
        for &i in instruments {
            let mut found = Vec::with_capacity(limit);
            for entry in snap
                .prefix(&self.by_instrument_ts, i.to_be_bytes())
                .rev()
                .take(limit)
            {
                let key = entry.key()?;
                let row = snap
                    .get(&self.trades, &key[16..24])?
                    .ok_or("an index entry of a missing trade row")?;
                found.push(decode(&row)?);
            }
            out(found);
        }
        Ok(())
    }

    fn positions(&self, accounts: &[u64], out: &mut dyn FnMut(Vec<PositionRow>)) -> Result<()> {
        let snap = self.db.snapshot();
        for &a in accounts {
            let mut found = Vec::new();
            for entry in snap.prefix(&self.positions, a.to_be_bytes()) {
                found.push(PositionRow::decode(&entry.value()?)?);
            }
            out(found);
        }
        Ok(())
    }
}

/// Creates the database in `dir`.
pub fn open(dir: &Path) -> Result<Fjall> {
    Fjall::open(dir)
}
