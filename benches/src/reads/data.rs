//! The data set every engine reads: the workload's first `n` trades as tradestore recorded
//! them (fills of the workload's orders), its dump, and the positions the fills left.
//!
//! The positions of the peers are keyed (account, instrument), both big-endian; the value is
//! the postcard of a [`PositionRow`].

use std::path::Path;

use ::tradestore::ReadOps;
use ::tradestore::schema::{Position, TableId};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::workload::{ACCOUNTS, INSTRUMENTS, TradeRow, trades};

/// Fills per transaction while the scratch store is being filled.
const FILL_BATCH: u64 = 2_000;

/// A position as the peers store it: the columns of `tradestore_schema::Position`, as
/// integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRow {
    /// Part of the key.
    pub account: u64,
    /// Part of the key.
    pub instrument: u64,
    /// Signed quantity, 10^-8.
    pub quantity: i64,
    /// Cost basis, 10^-6.
    pub cost_basis: i64,
    /// Realised profit, 10^-6.
    pub realized_pnl: i64,
    /// Time of the last fill.
    pub updated_ts: i64,
    /// Id of the last fill.
    pub last_trade_id: u64,
}

impl PositionRow {
    /// The row of a tradestore position.
    pub fn of(p: &Position) -> PositionRow {
        PositionRow {
            account: p.account,
            instrument: p.instrument,
            quantity: p.quantity.0,
            cost_basis: p.cost_basis.0,
            realized_pnl: p.realized_pnl.0,
            updated_ts: p.updated_ts,
            last_trade_id: p.last_trade_id,
        }
    }

    /// Its key: (account, instrument), big-endian.
    pub fn key(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.account.to_be_bytes());
        k[8..].copy_from_slice(&self.instrument.to_be_bytes());
        k
    }

    /// Its encoded value.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_else(|e| unreachable!("a plain struct encodes: {e}"))
    }

    /// Decodes a value.
    pub fn decode(bytes: &[u8]) -> Result<PositionRow> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

/// What every engine loads.
pub struct DataSet {
    /// The trades, `id` = 1..=n.
    pub trades: Vec<TradeRow>,
    /// The positions the trades left, in key order.
    pub positions: Vec<PositionRow>,
    /// The dump (JSON Lines) of the tradestore that recorded them.
    pub dump: Vec<u8>,
}

impl DataSet {
    /// Records the workload's first `n` trades as fills into a scratch store in `dir`
    /// (removed afterwards), and dumps it.
    pub fn build(dir: &Path, n: u64) -> Result<DataSet> {
        let out = Self::build_in(dir, n);
        let _ = std::fs::remove_dir_all(dir);
        out
    }

    fn build_in(dir: &Path, n: u64) -> Result<DataSet> {
        let store = crate::tradestore::setup(dir)?;
        let rows = trades(0..n);
        // The peers load the rows with the workload's ids: the store must pick the same.
        let mut mismatch = None;
        for chunk in rows.chunks(FILL_BATCH as usize) {
            store.write(|tx| {
                for row in chunk {
                    let mut t = crate::tradestore::to_trade(row);
                    t.id = tx.next_id(TableId::Trades)?;
                    if t.id != row.id {
                        mismatch = mismatch.or(Some((row.id, t.id)));
                    }
                    tx.record_fill(&t)?;
                }
                Ok(())
            })?;
        }
        if let Some((want, got)) = mismatch {
            return Err(format!("the scratch store gave trade {want} the id {got}").into());
        }
        let mut dump = Vec::new();
        ::tradestore::dump::dump(&store, &mut dump, &mut |_, _| {})?;
        let positions = store
            .read()?
            .all::<Position>()?
            .iter()
            .map(PositionRow::of)
            .collect();
        Ok(DataSet {
            trades: rows,
            positions,
            dump,
        })
    }
}

/// `n` pseudo-random values in `1..=max` from `seed` (splitmix64), the same in every run.
pub fn picks(n: u64, max: u64, seed: u64) -> Vec<u64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            1 + z % max.max(1)
        })
        .collect()
}

/// The operations of one run: trade ids to get, instruments and accounts to read.
pub struct Picks {
    /// Trade ids, `1..=trades`.
    pub ids: Vec<u64>,
    /// Instruments, `1..=INSTRUMENTS`.
    pub instruments: Vec<u64>,
    /// Accounts, `1..=ACCOUNTS`.
    pub accounts: Vec<u64>,
}

impl Picks {
    /// `gets` ids among `trades`, `recents` instruments and `positions` accounts.
    pub fn new(trades: u64, gets: u64, recents: u64, positions: u64) -> Picks {
        Picks {
            ids: picks(gets, trades, 1),
            instruments: picks(recents, INSTRUMENTS, 2),
            accounts: picks(positions, ACCOUNTS, 3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_stay_in_range_and_repeat() {
        let a = picks(1_000, 16, 7);
        assert!(a.iter().all(|v| (1..=16).contains(v)));
        assert_eq!(a, picks(1_000, 16, 7));
        assert!((1..=16).all(|v| a.contains(&v)));
    }

    #[test]
    fn data_set_matches_the_workload() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataSet::build(&dir.path().join("scratch"), 300).unwrap();
        assert_eq!(data.trades.len(), 300);
        // Each account trades one instrument (16 divides 128).
        assert_eq!(data.positions.len() as u64, ACCOUNTS);
        let text = String::from_utf8(data.dump).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.contains("\"trades\"")).count(),
            300
        );
        let p = data.positions[0];
        assert_eq!(PositionRow::decode(&p.encode()).unwrap(), p);
        assert!(!dir.path().join("scratch").exists());
    }
}
