//! Raw redb's reads: one read transaction per batch; the last trades of an instrument are a
//! reverse range over the (instrument, ts, id) index plus a row get each; positions a range
//! over the (account, instrument) keys. Its bulk load is one durable write transaction.

use std::path::Path;

use redb::{Durability, ReadableDatabase};

use super::data::{DataSet, PositionRow};
use super::run::Reader;
use crate::Result;
use crate::raw_redb::{
    BY_ACCOUNT_TS, BY_INSTRUMENT_TS, BY_ORDER, NAME, POSITIONS, RawRedb, TRADES,
};
use crate::workload::{TradeRow, decode, encode, keys};

impl RawRedb {
    /// Writes every trade (with its index entries) and position in one durable commit.
    pub fn load(&mut self, data: &DataSet) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut rows = txn.open_table(TRADES)?;
            let mut by_instrument = txn.open_table(BY_INSTRUMENT_TS)?;
            let mut by_account = txn.open_table(BY_ACCOUNT_TS)?;
            let mut by_order = txn.open_table(BY_ORDER)?;
            for t in &data.trades {
                let k = keys(t);
                rows.insert(&k.row[..], &encode(t)[..])?;
                by_instrument.insert(&k.by_instrument_ts[..], ())?;
                by_account.insert(&k.by_account_ts[..], ())?;
                by_order.insert(&k.by_order[..], ())?;
            }
            let mut positions = txn.open_table(POSITIONS)?;
            for p in &data.positions {
                positions.insert(&p.key()[..], &p.encode()[..])?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// The keys from `lead` (inclusive) to `lead + 1` (exclusive) of a big-endian-led key space.
fn bounds(lead: u64) -> ([u8; 8], [u8; 8]) {
    (lead.to_be_bytes(), lead.saturating_add(1).to_be_bytes())
}

impl Reader for RawRedb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn gets(&self, ids: &[u64], out: &mut dyn FnMut(Option<TradeRow>)) -> Result<()> {
        let txn = self.db.begin_read()?;
        let rows = txn.open_table(TRADES)?;
        for &id in ids {
            let got = rows.get(&id.to_be_bytes()[..])?;
            out(got.map(|v| decode(v.value())).transpose()?);
        }
        Ok(())
    }

    fn recent(
        &self,
        instruments: &[u64],
        limit: usize,
        out: &mut dyn FnMut(Vec<TradeRow>),
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(BY_INSTRUMENT_TS)?;
        let rows = txn.open_table(TRADES)?;
        for &i in instruments {
            let (lo, hi) = bounds(i);
            let mut found = Vec::with_capacity(limit);
            for entry in index.range::<&[u8]>(&lo[..]..&hi[..])?.rev().take(limit) {
                let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
                let id = &key.value()[16..24];
                let row = rows
                    .get(id)?
                    .ok_or("an index entry of a missing trade row")?;
                found.push(decode(row.value())?);
            }
            out(found);
        }
        Ok(())
    }

    fn positions(&self, accounts: &[u64], out: &mut dyn FnMut(Vec<PositionRow>)) -> Result<()> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(POSITIONS)?;
        for &a in accounts {
            let (lo, hi) = bounds(a);
            let mut found = Vec::new();
            for entry in table.range::<&[u8]>(&lo[..]..&hi[..])? {
                let (_, v) = entry?;
                found.push(PositionRow::decode(v.value())?);
            }
            out(found);
        }
        Ok(())
    }
}

/// Creates the file in `dir`.
pub fn open(dir: &Path) -> Result<RawRedb> {
    RawRedb::open(dir)
}
