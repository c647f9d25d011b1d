//! The trades every peer writes, and their encodings.
//!
//! Trade `seq` (0, 1, 2, ...) has id `seq + 1` and fills order `1 + seq % ORDERS`. Orders map
//! to accounts and instruments by remainder, so the trades of `seq ≡ t (mod T)` touch only
//! orders, accounts and positions of their own when `T` divides [`ACCOUNTS`]: concurrent
//! submitters that split the trades that way never write the same order or position.
//!
//! Keys are big-endian (signed values with the sign bit flipped), so byte order equals
//! value order:
//!
//! | key space | key | value |
//! |---|---|---|
//! | trades | id | postcard of [`TradeRow`] |
//! | by instrument, ts | instrument, ts, id | empty |
//! | by account, ts | account, ts, id | empty |
//! | by order | order_id, id | empty |

use serde::{Deserialize, Serialize};

/// Orders the trades are spread over.
pub const ORDERS: u64 = 1024;
/// Accounts owning the orders; a multiple of every submitter count measured.
pub const ACCOUNTS: u64 = 128;
/// Instruments the orders are on.
pub const INSTRUMENTS: u64 = 16;
/// Fixed-point scale of prices and quantities (10^-8, as in `tradestore-schema`).
pub const SCALE: i64 = 100_000_000;
/// Price tick: 0.01.
pub const TICK: i64 = SCALE / 100;
/// Every fill's price is within this many ticks of [`MID`].
pub const SPREAD_TICKS: i64 = 50;
/// The price around which trades print: 100.00.
pub const MID: i64 = 100 * SCALE;
/// Timestamp of trade 0, in nanoseconds since the epoch.
pub const EPOCH_TS: i64 = 1_764_000_000_000_000_000;

/// A trade as the peers store it: the columns of `tradestore_schema::Trade`, as integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeRow {
    /// Primary key.
    pub id: u64,
    /// The filled order.
    pub order_id: u64,
    /// The order's account.
    pub account: u64,
    /// The order's instrument.
    pub instrument: u64,
    /// 0 buy, 1 sell.
    pub side: u8,
    /// Execution price, 10^-8.
    pub price: i64,
    /// Executed quantity, 10^-8.
    pub quantity: i64,
    /// Fee, 10^-6.
    pub fee: i64,
    /// Execution time, ns since the epoch.
    pub ts: i64,
}

/// What order `id` (1-based) looks like: its account, instrument and side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderShape {
    /// Order id.
    pub id: u64,
    /// Owning account, `1..=ACCOUNTS`.
    pub account: u64,
    /// Instrument, `1..=INSTRUMENTS`.
    pub instrument: u64,
    /// 0 buy, 1 sell.
    pub side: u8,
}

/// The shape of order `id`.
pub fn order(id: u64) -> OrderShape {
    let k = id - 1;
    OrderShape {
        id,
        account: 1 + k % ACCOUNTS,
        instrument: 1 + k % INSTRUMENTS,
        side: u8::from((k / ACCOUNTS) % 2 == 1),
    }
}

/// Trade number `seq` of the workload.
pub fn trade(seq: u64) -> TradeRow {
    let o = order(1 + seq % ORDERS);
    let ticks = i64::try_from(seq.wrapping_mul(7919) % 101).unwrap_or(0) - SPREAD_TICKS;
    let small = i64::try_from(seq % 10).unwrap_or(0);
    TradeRow {
        id: seq + 1,
        order_id: o.id,
        account: o.account,
        instrument: o.instrument,
        side: o.side,
        price: MID + ticks * TICK,
        quantity: (1 + small) * SCALE,
        fee: 1_000 + small * 37,
        ts: EPOCH_TS.saturating_add(i64::try_from(seq).unwrap_or(i64::MAX / 1_000) * 1_000),
    }
}

/// The trades `seq` in `range`.
pub fn trades(range: std::ops::Range<u64>) -> Vec<TradeRow> {
    range.map(trade).collect()
}

/// Big-endian bytes of a signed value whose byte order is its numeric order.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    (v.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

/// The row's encoded value.
pub fn encode(t: &TradeRow) -> Vec<u8> {
    postcard::to_allocvec(t).unwrap_or_else(|e| unreachable!("a plain struct encodes: {e}"))
}

/// Decodes a row's value.
pub fn decode(bytes: &[u8]) -> Result<TradeRow, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// The keys of one trade: its row and its three index entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keys {
    /// Row key: id.
    pub row: [u8; 8],
    /// (instrument, ts, id).
    pub by_instrument_ts: [u8; 24],
    /// (account, ts, id).
    pub by_account_ts: [u8; 24],
    /// (order_id, id).
    pub by_order: [u8; 16],
}

/// The keys of `t`.
pub fn keys(t: &TradeRow) -> Keys {
    let id = t.id.to_be_bytes();
    let ts = ordered_i64(t.ts);
    let three = |lead: u64| {
        let mut k = [0u8; 24];
        k[..8].copy_from_slice(&lead.to_be_bytes());
        k[8..16].copy_from_slice(&ts);
        k[16..].copy_from_slice(&id);
        k
    };
    let mut by_order = [0u8; 16];
    by_order[..8].copy_from_slice(&t.order_id.to_be_bytes());
    by_order[8..].copy_from_slice(&id);
    Keys {
        row: id,
        by_instrument_ts: three(t.instrument),
        by_account_ts: three(t.account),
        by_order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_value_order() {
        let vals = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in vals.windows(2) {
            assert!(ordered_i64(w[0]) < ordered_i64(w[1]));
        }
        let a = keys(&trade(0));
        let b = keys(&trade(ORDERS));
        assert_eq!(a.by_order[..8], b.by_order[..8]);
        assert!(a.by_order < b.by_order);
        assert!(a.by_instrument_ts < b.by_instrument_ts);
    }

    #[test]
    fn split_submitters_touch_disjoint_accounts() {
        for threads in [1u64, 4, 16, 64] {
            for seq in 0..2 * ORDERS {
                let t = trade(seq);
                assert_eq!((t.account - 1) % threads, seq % threads);
                assert_eq!((t.order_id - 1) % threads, seq % threads);
            }
        }
    }

    #[test]
    fn rows_round_trip() {
        let t = trade(12_345);
        assert_eq!(decode(&encode(&t)).unwrap(), t);
        assert_eq!(t.price % TICK, 0);
        assert_eq!(t.quantity % SCALE, 0);
    }
}
