//! SQLite's reads: one (deferred, read-only) transaction per batch and cached prepared
//! statements; the last trades of an instrument are `ORDER BY ts DESC, id DESC LIMIT ?`
//! served by the (instrument, ts, id) index; positions `WHERE account = ?` on the
//! (account, instrument) primary key. Its bulk load is one transaction of prepared inserts.

use std::path::Path;

use rusqlite::{OptionalExtension, Row, params};

use super::data::{DataSet, PositionRow};
use super::run::Reader;
use crate::Result;
use crate::report::SQLITE;
use crate::sqlite::{INSERT, Sqlite, int};
use crate::workload::TradeRow;

const COLUMNS: &str = "id, order_id, account, instrument, side, price, quantity, fee, ts";
const INSERT_POSITION: &str = "INSERT INTO positions (account, instrument, quantity, \
                               cost_basis, realized_pnl, updated_ts, last_trade_id) \
                               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

impl Sqlite {
    /// Inserts every trade and position in one transaction.
    pub fn load(&mut self, data: &DataSet) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for t in &data.trades {
                insert.execute(params![
                    int(t.id)?,
                    int(t.order_id)?,
                    int(t.account)?,
                    int(t.instrument)?,
                    t.side,
                    t.price,
                    t.quantity,
                    t.fee,
                    t.ts
                ])?;
            }
            let mut insert = tx.prepare_cached(INSERT_POSITION)?;
            for p in &data.positions {
                insert.execute(params![
                    int(p.account)?,
                    int(p.instrument)?,
                    p.quantity,
                    p.cost_basis,
                    p.realized_pnl,
                    p.updated_ts,
                    int(p.last_trade_id)?
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn trade_of(r: &Row<'_>) -> rusqlite::Result<TradeRow> {
    let u = |i: usize| r.get::<_, i64>(i).map(i64::cast_unsigned);
    Ok(TradeRow {
        id: u(0)?,
        order_id: u(1)?,
        account: u(2)?,
        instrument: u(3)?,
        side: r.get(4)?,
        price: r.get(5)?,
        quantity: r.get(6)?,
        fee: r.get(7)?,
        ts: r.get(8)?,
    })
}

fn position_of(r: &Row<'_>) -> rusqlite::Result<PositionRow> {
    let u = |i: usize| r.get::<_, i64>(i).map(i64::cast_unsigned);
    Ok(PositionRow {
        account: u(0)?,
        instrument: u(1)?,
        quantity: r.get(2)?,
        cost_basis: r.get(3)?,
        realized_pnl: r.get(4)?,
        updated_ts: r.get(5)?,
        last_trade_id: u(6)?,
    })
}

impl Reader for Sqlite {
    fn name(&self) -> &'static str {
        SQLITE
    }

    fn gets(&self, ids: &[u64], out: &mut dyn FnMut(Option<TradeRow>)) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut get =
                tx.prepare_cached(&format!("SELECT {COLUMNS} FROM trades WHERE id = ?1"))?;
            for &id in ids {
                out(get.query_row([int(id)?], trade_of).optional()?);
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn recent(
        &self,
        instruments: &[u64],
        limit: usize,
        out: &mut dyn FnMut(Vec<TradeRow>),
    ) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut recent = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM trades WHERE instrument = ?1 \
                 ORDER BY ts DESC, id DESC LIMIT ?2"
            ))?;
            let limit = i64::try_from(limit)?;
            for &i in instruments {
                let rows = recent.query_map(params![int(i)?, limit], trade_of)?;
                out(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn positions(&self, accounts: &[u64], out: &mut dyn FnMut(Vec<PositionRow>)) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        {
            let mut of = tx.prepare_cached(
                "SELECT account, instrument, quantity, cost_basis, realized_pnl, updated_ts, \
                 last_trade_id FROM positions WHERE account = ?1",
            )?;
            for &a in accounts {
                let rows = of.query_map([int(a)?], position_of)?;
                out(rows.collect::<rusqlite::Result<Vec<_>>>()?);
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Creates the database in `dir`.
pub fn open(dir: &Path) -> Result<Sqlite> {
    Sqlite::open(dir)
}
