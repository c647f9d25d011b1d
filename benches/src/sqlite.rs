//! SQLite through rusqlite (bundled): WAL, `synchronous=FULL`, a `trades` table with the
//! id as its rowid and three indexes, one transaction per commit. Checkpoints run as SQLite
//! runs them by default (automatically every 1000 WAL pages, on the committing thread).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::latency::timed;
use crate::report::{Measurement, SQLITE};
use crate::run::Plan;
use crate::workload::{TradeRow, trades};

const SCHEMA: &str = "
CREATE TABLE trades (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL,
    account INTEGER NOT NULL,
    instrument INTEGER NOT NULL,
    side INTEGER NOT NULL,
    price INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    fee INTEGER NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX trades_by_instrument_ts ON trades (instrument, ts, id);
CREATE INDEX trades_by_account_ts ON trades (account, ts, id);
CREATE INDEX trades_by_order ON trades (order_id, id);
CREATE TABLE positions (
    account INTEGER NOT NULL,
    instrument INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    cost_basis INTEGER NOT NULL,
    realized_pnl INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL,
    last_trade_id INTEGER NOT NULL,
    PRIMARY KEY (account, instrument)
) WITHOUT ROWID;
";

pub(crate) const INSERT: &str = "INSERT INTO trades (id, order_id, account, instrument, side, price, \
                      quantity, fee, ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// A SQLite database with the trades table (and the positions table of the read benchmark).
pub struct Sqlite {
    pub(crate) conn: Connection,
}

impl Sqlite {
    /// Creates `dir/trades.sqlite` in WAL mode with `synchronous=FULL`.
    pub fn open(dir: &Path) -> Result<Sqlite> {
        std::fs::create_dir_all(dir)?;
        let conn = Connection::open(dir.join("trades.sqlite"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode (journal_mode is {mode})").into());
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Sqlite { conn })
    }

    /// Inserts `batch` in one transaction.
    pub fn write(&mut self, batch: &[TradeRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for t in batch {
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
        }
        tx.commit()?;
        Ok(())
    }

    /// The trade with `id`, provided each index finds it.
    pub fn read(&self, id: u64) -> Result<Option<TradeRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, order_id, account, instrument, side, price, quantity, fee, ts \
                 FROM trades WHERE id = ?1",
                [int(id)?],
                |r| {
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
                },
            )
            .optional()?;
        let Some(t) = row else { return Ok(None) };
        let hits: i64 = self.conn.query_row(
            "SELECT (SELECT count(*) FROM trades INDEXED BY trades_by_instrument_ts \
                     WHERE instrument = ?1 AND ts = ?2 AND id = ?5) \
                  + (SELECT count(*) FROM trades INDEXED BY trades_by_account_ts \
                     WHERE account = ?3 AND ts = ?2 AND id = ?5) \
                  + (SELECT count(*) FROM trades INDEXED BY trades_by_order \
                     WHERE order_id = ?4 AND id = ?5)",
            params![
                int(t.instrument)?,
                t.ts,
                int(t.account)?,
                int(t.order_id)?,
                int(t.id)?
            ],
            |r| r.get(0),
        )?;
        Ok((hits == 3).then_some(t))
    }
}

/// An id as SQLite's signed 64-bit integer.
pub(crate) fn int(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| format!("{v} does not fit SQLite's INTEGER").into())
}

/// Measures one trade per transaction (`warmup` + `commits`), then `batches` transactions of
/// `batch` trades, in a fresh database under `dir`.
pub fn measure(dir: &Path, plan: &Plan) -> Result<Vec<Measurement>> {
    let (warmup, commits, batch, batches) = (plan.warmup, plan.per_trade, plan.batch, plan.batches);
    let mut db = Sqlite::open(dir)?;
    let per_trade = timed(warmup, commits, |i| db.write(&trades(i..i + 1)))?;
    let base = warmup + commits;
    let batched = timed(1, batches, |i| {
        let from = base + i * batch;
        db.write(&trades(from..from + batch))
    })?;
    Ok(vec![
        Measurement::new(SQLITE, "1 trade/tx", 1, 1, &per_trade),
        Measurement::new(SQLITE, format!("{batch} trades/tx"), 1, batch, &batched),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::trade;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(dir.path()).unwrap();
        db.write(&[trade(0)]).unwrap();
        assert_eq!(db.read(1).unwrap(), Some(trade(0)));
        assert_eq!(db.read(2).unwrap(), None);
        let rows = measure(&dir.path().join("m"), &Plan::tiny()).unwrap();
        assert_eq!(rows[1].trades, 6);
    }
}
