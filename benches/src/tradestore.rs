//! tradestore through its public API: one `store.write(|tx| tx.record_fill(..))` per trade,
//! from one or many submitter threads sharing an `Arc<Store>`.
//!
//! Each fill is the engine's whole job, not only the row: it reads the order, its
//! instrument, the last trade id, the position and the cash; checks the rules; and writes
//! the trade (with its three indexes `trades_by_instrument_ts`, `trades_by_account_ts`,
//! `trades_by_order`), the order's filled quantity and status, the position and the cash, in
//! one durable commit.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use ::tradestore::schema::{
    Account, AccountStatus, Instrument, Money, Order, OrderKind, OrderStatus, Price, Quantity,
    Side, TableId, TimeInForce, Trade,
};
use ::tradestore::{Config, Store};
use hdrhistogram::Histogram;

use crate::Result;
use crate::latency::{Timed, histogram, record_since};
use crate::report::Measurement;
use crate::workload::{
    ACCOUNTS, EPOCH_TS, INSTRUMENTS, MID, ORDERS, SCALE, TICK, TradeRow, order, trade,
};

/// Engine name in the report.
pub const NAME: &str = "tradestore";

/// Units each order is for: more than any run fills.
const ORDER_UNITS: i64 = 1_000_000;

/// One submitter thread's loop: hands `trades` to the store and records, per trade, the time
/// from hand-off until the store acknowledged it as durable. The store picks each trade's
/// id, so ids increase in commit order whatever order the threads win in.
///
/// A pipelined variant (a future `store.submit(..)` returning a ticket: keep several in
/// flight, record each from submit to ack) is one more function of this type, listed in
/// [`SUBMITTERS`].
pub type Submitter = fn(&Store, &[TradeRow], &mut Histogram<u64>) -> Result<()>;

/// The ways of submitting that are measured, by name.
pub const SUBMITTERS: &[(&str, Submitter)] = &[("store.write", write_each)];

/// Retries of a write that failed with a retryable error (a conflict), before giving up.
const RETRIES: u32 = 100;

/// One `store.write(|tx| tx.record_fill(..))` per trade, waiting for each.
pub fn write_each(store: &Store, trades: &[TradeRow], hist: &mut Histogram<u64>) -> Result<()> {
    for row in trades {
        let start = Instant::now();
        let mut t = to_trade(row);
        let mut attempt = 0;
        loop {
            let done = store.write(|tx| {
                t.id = tx.next_id(TableId::Trades)?;
                tx.record_fill(&t)
            });
            match done {
                Ok(_) => break,
                Err(e) if e.is_retryable() && attempt < RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
        record_since(hist, start);
    }
    Ok(())
}

/// The schema's trade for a workload row.
pub fn to_trade(t: &TradeRow) -> Trade {
    Trade {
        id: t.id,
        order_id: t.order_id,
        account: t.account,
        instrument: t.instrument,
        side: side(t.side),
        price: Price(t.price),
        quantity: Quantity(t.quantity),
        fee: Money(t.fee),
        ts: t.ts,
    }
}

fn side(s: u8) -> Side {
    if s == 0 { Side::Buy } else { Side::Sell }
}

/// Opens a fresh store in `dir` and creates the instruments, accounts and orders of the
/// workload in one write: buy orders limited at 101.00, sell orders at 99.00, so every fill
/// price (99.50..=100.50, on the 0.01 tick) is within its limit.
pub fn setup(dir: &Path) -> Result<Store> {
    let store = Store::open(dir, Config::default())?;
    store.write(|tx| {
        for id in 1..=INSTRUMENTS {
            tx.insert(&Instrument {
                id,
                symbol: format!("SYM{id}"),
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
                Side::Buy => MID + SCALE,
                Side::Sell => MID - SCALE,
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

/// Measures `submit` with `threads` submitter threads over a fresh store in `dir`: `total`
/// trades split evenly (thread `t` takes the trades `seq ≡ t mod threads`, so threads share
/// no order, account or position), after `warmup` unmeasured trades per thread.
pub fn measure(
    dir: &Path,
    (name, submit): (&str, Submitter),
    threads: usize,
    warmup: u64,
    total: u64,
) -> Result<Measurement> {
    let threads = threads.max(1);
    let store = Arc::new(setup(dir)?);
    let n = threads as u64;
    let per_thread = total.div_ceil(n);
    let start_line = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..n)
        .map(|t| {
            let store = Arc::clone(&store);
            let start_line = Arc::clone(&start_line);
            let seqs = |ks: std::ops::Range<u64>| ks.map(|k| trade(t + k * n)).collect::<Vec<_>>();
            let warm = seqs(0..warmup);
            let main = seqs(warmup..warmup + per_thread);
            thread::spawn(move || -> Result<Histogram<u64>> {
                let warmed = submit(&store, &warm, &mut histogram());
                // Everyone reaches the start line, even after a failure, so no one waits forever.
                start_line.wait();
                warmed?;
                let mut hist = histogram();
                submit(&store, &main, &mut hist)?;
                Ok(hist)
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    let mut hist = histogram();
    for h in handles {
        let h = h
            .join()
            .map_err(|_| format!("a {NAME} submitter thread panicked"))??;
        hist.add(&h)?;
    }
    let timed = Timed {
        hist,
        elapsed: start.elapsed(),
    };
    let mode = format!(
        "{name}, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    Ok(Measurement::new(NAME, mode, threads, 1, &timed))
}

#[cfg(test)]
mod tests {
    use ::tradestore::ReadOps;

    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = setup(dir.path()).unwrap();
        write_each(&store, &[trade(0)], &mut histogram()).unwrap();
        let snap = store.read().unwrap();
        let got: Trade = snap.get_id(1).unwrap().unwrap();
        assert_eq!(got, to_trade(&trade(0)));
        let o: Order = snap.get_id(trade(0).order_id).unwrap().unwrap();
        assert_eq!(o.filled_quantity, Quantity(trade(0).quantity));
        assert_eq!(snap.recent_trades(trade(0).instrument, 10).unwrap(), [got]);
    }

    #[test]
    fn concurrent_submitters_record_every_trade() {
        let dir = tempfile::tempdir().unwrap();
        let m = measure(dir.path(), SUBMITTERS[0], 4, 1, 8).unwrap();
        assert_eq!(m.trades, 8);
        assert_eq!(m.mode, "store.write, 4 threads");
    }
}
