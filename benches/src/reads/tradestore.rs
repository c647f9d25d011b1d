//! tradestore's reads: `store.read()` once per batch, then `get_id::<Trade>`,
//! `recent_trades` and `positions_of` on that snapshot; its bulk load is
//! `tradestore::dump::restore` of the data set's dump.

use std::path::Path;

use ::tradestore::schema::{Side, Trade};
use ::tradestore::{Config, ReadOps, Store};

use super::data::{DataSet, PositionRow};
use super::run::Reader;
use crate::Result;
use crate::report::TRADESTORE;
use crate::workload::TradeRow;

/// A fresh store to restore into.
pub struct TradestoreReads {
    store: Store,
}

impl TradestoreReads {
    /// Opens a fresh store in `dir`.
    pub fn open(dir: &Path) -> Result<TradestoreReads> {
        Ok(TradestoreReads {
            store: Store::open(dir, Config::default())?,
        })
    }

    /// Restores the data set's dump: every row, every index, checked, in one durable commit.
    pub fn load(&mut self, data: &DataSet) -> Result<()> {
        let mut input = &data.dump[..];
        ::tradestore::dump::restore(&self.store, &mut input, &mut |_| {})?;
        Ok(())
    }
}

/// The workload row of a trade.
pub fn row_of(t: &Trade) -> TradeRow {
    TradeRow {
        id: t.id,
        order_id: t.order_id,
        account: t.account,
        instrument: t.instrument,
        side: u8::from(t.side == Side::Sell),
        price: t.price.0,
        quantity: t.quantity.0,
        fee: t.fee.0,
        ts: t.ts,
    }
}

impl Reader for TradestoreReads {
    fn name(&self) -> &'static str {
        TRADESTORE
    }

    fn gets(&self, ids: &[u64], out: &mut dyn FnMut(Option<TradeRow>)) -> Result<()> {
        let tx = self.store.read()?;
        for &id in ids {
            out(tx.get_id::<Trade>(id)?.as_ref().map(row_of));
        }
        Ok(())
    }

    fn recent(
        &self,
        instruments: &[u64],
        limit: usize,
        out: &mut dyn FnMut(Vec<TradeRow>),
    ) -> Result<()> {
        let tx = self.store.read()?;
        for &i in instruments {
            out(tx.recent_trades(i, limit)?.iter().map(row_of).collect());
        }
        Ok(())
    }

    fn positions(&self, accounts: &[u64], out: &mut dyn FnMut(Vec<PositionRow>)) -> Result<()> {
        let tx = self.store.read()?;
        for &a in accounts {
            out(tx.positions_of(a)?.iter().map(PositionRow::of).collect());
        }
        Ok(())
    }
}
