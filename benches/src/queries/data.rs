//! The data set of the query benchmark: [`INSTRUMENTS`] instruments, [`ACCOUNTS`]
//! accounts with [`ORDERS_PER_ACCOUNT`] orders each, and `n` fills of those orders recorded
//! by tradestore (so its positions, orders and cash are the ones the fills left); then the
//! same trades and positions loaded into SQLite with the read benchmark's schema and loader.
//!
//! Everything is derived from the trade's sequence number by a fixed hash, so every run
//! builds the same data. Instrument `i` trades around `50 + i` (51.00 to 150.00), within
//! ±0.50 in ticks of 0.01; one trade every millisecond.

use std::path::Path;
use std::time::{Duration, Instant};

use ::tradestore::schema::{
    Account, AccountStatus, Instrument, Order, OrderKind, OrderStatus, Position, Price, Quantity,
    Side, TableId, TimeInForce,
};
use ::tradestore::{Config, ReadOps, Store};

use crate::Result;
use crate::reads::{DataSet, PositionRow};
use crate::sqlite::Sqlite;
use crate::workload::{EPOCH_TS, OrderShape, SCALE, TICK, TradeRow};

/// Instruments of the data set.
pub const INSTRUMENTS: u64 = 100;
/// Accounts of the data set.
pub const ACCOUNTS: u64 = 1_000;
/// Orders of each account, each on an instrument of its own (by hash, so an account may
/// have two orders on one instrument).
pub const ORDERS_PER_ACCOUNT: u64 = 5;
/// Orders of the data set.
pub const ORDERS: u64 = ACCOUNTS * ORDERS_PER_ACCOUNT;
/// Time between two trades, in nanoseconds.
pub const STEP_NS: i64 = 1_000_000;
/// Fills are within this many ticks of their instrument's mid price.
pub const SPREAD_TICKS: i64 = 50;
/// Fills per write transaction while the store is filled.
const FILL_BATCH: usize = 2_000;
/// Units each order is for: more than any run fills.
const ORDER_UNITS: i64 = 1_000_000_000;

/// The splitmix64 finalizer: a fixed, well-mixed hash of `x`.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small value of `x` in `0..n`, as `i64`.
fn below(x: u64, n: u64) -> i64 {
    i64::try_from(x % n.max(1)).unwrap_or(0)
}

/// The mid price of instrument `i`: `50 + i`, raw (10^-8).
pub fn mid(instrument: u64) -> i64 {
    (50 + i64::try_from(instrument).unwrap_or(0)) * SCALE
}

/// The shape of order `id` (1-based): account `1 + (id - 1) % ACCOUNTS`, an instrument
/// by hash, buy on even rounds over the accounts and sell on odd ones.
pub fn order(id: u64) -> OrderShape {
    let k = id - 1;
    OrderShape {
        id,
        account: 1 + k % ACCOUNTS,
        instrument: 1 + mix(k ^ 0x5eed) % INSTRUMENTS,
        side: u8::from((k / ACCOUNTS) % 2 == 1),
    }
}

/// Trade number `seq` (id `seq + 1`): a fill of an order picked by hash, at a price within
/// [`SPREAD_TICKS`] of its instrument's mid, of 1 to 10 units, at `EPOCH_TS + seq` ms.
pub fn trade(seq: u64) -> TradeRow {
    let h = mix(seq);
    let o = order(1 + h % ORDERS);
    let ticks = below(h >> 20, 2 * SPREAD_TICKS.unsigned_abs() + 1) - SPREAD_TICKS;
    let units = 1 + below(h >> 40, 10);
    TradeRow {
        id: seq + 1,
        order_id: o.id,
        account: o.account,
        instrument: o.instrument,
        side: o.side,
        price: mid(o.instrument) + ticks * TICK,
        quantity: units * SCALE,
        fee: 1_000 + units * 37,
        ts: EPOCH_TS.saturating_add(i64::try_from(seq).unwrap_or(0).saturating_mul(STEP_NS)),
    }
}

fn side(s: u8) -> Side {
    if s == 0 { Side::Buy } else { Side::Sell }
}

/// The two engines loaded with the same data set, both analyzed.
pub struct Loaded {
    /// tradestore, in which the fills were recorded.
    pub store: Store,
    /// SQLite with the same trades and positions.
    pub sqlite: Sqlite,
    /// The trades (`id` = 1..=n) and the positions they left (no dump: the store that
    /// recorded them is the one queried).
    pub data: DataSet,
    /// Time to record the fills in tradestore (and analyze it).
    pub tradestore_load: Duration,
    /// Time to load SQLite (and analyze it).
    pub sqlite_load: Duration,
}

/// Opens a fresh store in `dir` and creates the instruments, accounts and orders: buy
/// orders limited 1.00 above their instrument's mid, sell orders 1.00 below, so every fill
/// is within its limit.
fn setup(dir: &Path) -> Result<Store> {
    let store = Store::open(dir, Config::default())?;
    store.write(|tx| {
        for id in 1..=INSTRUMENTS {
            tx.insert(&Instrument {
                id,
                symbol: format!("Q{id}"),
                tick_size: Price(TICK),
                lot_size: Quantity(SCALE),
                currency: "USD".into(),
            })?;
        }
        for id in 1..=ACCOUNTS {
            tx.insert(&Account {
                id,
                name: format!("account-{id}"),
                status: AccountStatus::Active,
            })?;
        }
        for id in 1..=ORDERS {
            let o = order(id);
            let side = side(o.side);
            let limit = match side {
                Side::Buy => mid(o.instrument) + SCALE,
                Side::Sell => mid(o.instrument) - SCALE,
            };
            tx.insert(&Order {
                id,
                account: o.account,
                instrument: o.instrument,
                side,
                kind: OrderKind::Limit,
                time_in_force: TimeInForce::Gtc,
                price: Some(Price(limit)),
                quantity: Quantity(ORDER_UNITS * SCALE),
                filled_quantity: Quantity::ZERO,
                status: OrderStatus::New,
                created_ts: EPOCH_TS - 1,
                updated_ts: EPOCH_TS - 1,
            })?;
        }
        Ok(())
    })?;
    Ok(store)
}

/// Records trades `0..n` as fills into a fresh store in `dir/tradestore`, loads the same
/// trades and positions into SQLite in `dir/sqlite`, and analyzes both (`store.analyze()`,
/// SQLite's `ANALYZE`; SQLite's write-ahead log is then checkpointed into its file).
pub fn load(dir: &Path, n: u64) -> Result<Loaded> {
    let started = Instant::now();
    let store = setup(&dir.join("tradestore"))?;
    let rows: Vec<TradeRow> = (0..n).map(trade).collect();
    let mut mismatch = None;
    for chunk in rows.chunks(FILL_BATCH) {
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
        return Err(format!("the store gave trade {want} the id {got}").into());
    }
    let positions: Vec<PositionRow> = store
        .read()?
        .all::<Position>()?
        .iter()
        .map(PositionRow::of)
        .collect();
    store.analyze()?;
    let tradestore_load = started.elapsed();

    let data = DataSet {
        trades: rows,
        positions,
        dump: Vec::new(),
    };
    let started = Instant::now();
    let mut sqlite = Sqlite::open(&dir.join("sqlite"))?;
    sqlite.load(&data)?;
    sqlite
        .conn
        .execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    let sqlite_load = started.elapsed();
    Ok(Loaded {
        store,
        sqlite,
        data,
        tradestore_load,
        sqlite_load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_fit_their_orders_and_spread() {
        let mut instruments = std::collections::HashSet::new();
        for seq in 0..5_000 {
            let t = trade(seq);
            let o = order(t.order_id);
            assert_eq!(
                (t.account, t.instrument, t.side),
                (o.account, o.instrument, o.side)
            );
            assert!((1..=ORDERS).contains(&t.order_id));
            assert!((t.price - mid(t.instrument)).abs() <= SPREAD_TICKS * TICK);
            assert_eq!(t.price % TICK, 0);
            instruments.insert(t.instrument);
        }
        assert_eq!(instruments.len() as u64, INSTRUMENTS);
        assert_eq!(trade(7), trade(7));
    }
}
