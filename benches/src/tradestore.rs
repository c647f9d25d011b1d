//! tradestore through its public API, one `tx.record_fill(..)` per transaction, driven two
//! ways: `store.transact(..)` (durable on return, conflicts retried) from one or many
//! submitter threads sharing an `Arc<Store>`, and `store.submit(..)` pipelined from one
//! thread, many transactions in flight, each one's ticket waited or polled.
//!
//! Each fill is the engine's whole job, not only the row: it reads the order, its
//! instrument, the position and the cash; checks the rules; and writes the trade (with its
//! three indexes `trades_by_instrument_ts`, `trades_by_account_ts`, `trades_by_order`), the
//! order's filled quantity and status, the position and the cash, in one durable commit.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use ::tradestore::schema::{
    Account, AccountStatus, Instrument, Money, Order, OrderKind, OrderStatus, Price, Quantity,
    Side, TableId, TimeInForce, Trade,
};
use ::tradestore::{CommitTicket, Config, RetryPolicy, Stats, Store};
use hdrhistogram::Histogram;

use crate::Result;
use crate::fsync_floor::{FLOOR_MODE, Floor};
use crate::latency::{ROUNDS, Timed, histogram, merge, record_since, slice, timed};
use crate::report::{FLOOR, Measurement, WritePath};
use crate::workload::{
    ACCOUNTS, EPOCH_TS, INSTRUMENTS, MID, ORDERS, SCALE, TICK, TradeRow, order, trade,
};

/// Engine name in the report.
pub const NAME: &str = crate::report::TRADESTORE;

pub use crate::report::{PIPELINED, TRANSACT};
/// Most transactions the pipelined submitter keeps in flight.
pub const PIPELINE_WINDOW: usize = 4096;

/// Units each order is for: more than any run fills.
const ORDER_UNITS: i64 = 1_000_000;

/// One submitter thread's loop: hands `trades` to the store and records, per trade, the time
/// from hand-off until the store acknowledged it as durable. The store picks each trade's
/// id, so ids increase in commit order whatever order the threads win in.
pub type Submitter = fn(&Store, &[TradeRow], &mut Histogram<u64>) -> Result<()>;

/// One way of submitting that is measured.
#[derive(Clone, Copy, Debug)]
pub struct Way {
    /// Its name in the report's mode column.
    pub name: &'static str,
    /// The submitter loop.
    pub submit: Submitter,
    /// Whether it is measured at every thread count of the plan (else with one thread).
    pub concurrent: bool,
}

/// The ways of submitting that are measured.
pub const SUBMITTERS: &[Way] = &[
    Way {
        name: TRANSACT,
        submit: transact_each,
        concurrent: true,
    },
    Way {
        name: PIPELINED,
        submit: submit_pipelined,
        concurrent: false,
    },
];

/// One `store.transact(|tx| tx.record_fill(..))` per trade, waiting for each (conflicts are
/// retried by the store with its default policy).
pub fn transact_each(store: &Store, trades: &[TradeRow], hist: &mut Histogram<u64>) -> Result<()> {
    let policy = RetryPolicy::default();
    for row in trades {
        let start = Instant::now();
        let mut t = to_trade(row);
        store.transact(&policy, |tx| {
            t.id = tx.next_id(TableId::Trades)?;
            tx.record_fill(&t)
        })?;
        record_since(hist, start);
    }
    Ok(())
}

/// Transactions submitted and not yet seen durable, oldest first, each with the time its
/// submission began; tickets become durable in submission order.
struct Window {
    flight: VecDeque<(Instant, CommitTicket)>,
    /// Every transaction up to this sequence number is durable.
    durable: u64,
}

impl Window {
    /// Waits for the oldest ticket and records its submit-to-durable latency.
    fn wait_oldest(&mut self, hist: &mut Histogram<u64>) -> Result<bool> {
        let Some((start, ticket)) = self.flight.pop_front() else {
            return Ok(false);
        };
        let seq = ticket.seq();
        ticket.wait()?;
        record_since(hist, start);
        self.durable = self.durable.max(seq);
        Ok(true)
    }

    /// Records every ticket at the front that is durable already, without blocking.
    fn settle_ready(&mut self, hist: &mut Histogram<u64>) -> Result<()> {
        while let Some((start, ticket)) = self.flight.front() {
            match ticket.poll() {
                None => break,
                Some(done) => {
                    done?;
                    record_since(hist, *start);
                    self.durable = self.durable.max(ticket.seq());
                    self.flight.pop_front();
                }
            }
        }
        Ok(())
    }
}

/// Retries of a pipelined submit that failed with a retryable error, before giving up.
const SUBMIT_RETRIES: u32 = 100;

/// One thread, one `store.submit(|tx| tx.record_fill(..))` per trade without waiting: up to
/// [`PIPELINE_WINDOW`] tickets in flight (the oldest is waited when full), ready ones
/// polled after every submit, all waited at the end. Each trade's latency runs from its
/// submit to the moment its ticket was seen durable.
///
/// A transaction reads only durable writes, so a fill whose account (its order, position
/// and cash) has a fill still in flight would read stale rows and conflict: the loop first
/// waits for that account's previous fill. With [`ACCOUNTS`] accounts, at most that many
/// fills are in flight at once.
pub fn submit_pipelined(
    store: &Store,
    trades: &[TradeRow],
    hist: &mut Histogram<u64>,
) -> Result<()> {
    let mut w = Window {
        flight: VecDeque::with_capacity(PIPELINE_WINDOW.min(trades.len())),
        durable: 0,
    };
    let mut last_of_account: HashMap<u64, u64> = HashMap::new();
    for row in trades {
        if let Some(&dep) = last_of_account.get(&row.account) {
            while dep > w.durable && w.wait_oldest(hist)? {}
        }
        while w.flight.len() >= PIPELINE_WINDOW {
            w.wait_oldest(hist)?;
        }
        let start = Instant::now();
        let mut t = to_trade(row);
        let mut attempt = 0;
        let ticket = loop {
            let submitted = store.submit(|tx| {
                t.id = tx.next_id(TableId::Trades)?;
                tx.record_fill(&t)
            });
            match submitted {
                Ok((_, ticket)) => break ticket,
                Err(e) if e.is_retryable() && attempt < SUBMIT_RETRIES => {
                    // What it conflicted with is in flight: let the oldest become durable.
                    attempt += 1;
                    if !w.wait_oldest(hist)? {
                        thread::yield_now();
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        last_of_account.insert(row.account, ticket.seq());
        w.flight.push_back((start, ticket));
        w.settle_ready(hist)?;
    }
    while w.wait_oldest(hist)? {}
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

/// Measures `way` with `threads` submitter threads over a fresh store in `dir`: `total`
/// trades split evenly (thread `t` takes the trades `seq ≡ t mod threads`, so threads share
/// no order, account or position), after `warmup` unmeasured trades per thread. The row
/// carries the store's write-path statistics ([`WritePath`]).
pub fn measure(
    dir: &Path,
    way: &Way,
    threads: usize,
    warmup: u64,
    total: u64,
) -> Result<Measurement> {
    let threads = threads.max(1);
    let submit = way.submit;
    let store = Arc::new(setup(dir)?);
    let n = threads as u64;
    let per_thread = total.div_ceil(n);
    // Everyone warms up, the counters are read, then everyone starts.
    let warmed = Arc::new(Barrier::new(threads + 1));
    let start_line = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..n)
        .map(|t| {
            let store = Arc::clone(&store);
            let (warmed, start_line) = (Arc::clone(&warmed), Arc::clone(&start_line));
            let seqs = |ks: std::ops::Range<u64>| ks.map(|k| trade(t + k * n)).collect::<Vec<_>>();
            let warm = seqs(0..warmup);
            let main = seqs(warmup..warmup + per_thread);
            thread::spawn(move || -> Result<Histogram<u64>> {
                let warm = submit(&store, &warm, &mut histogram());
                // Everyone reaches both lines, even after a failure, so no one waits forever.
                warmed.wait();
                start_line.wait();
                warm?;
                let mut hist = histogram();
                submit(&store, &main, &mut hist)?;
                Ok(hist)
            })
        })
        .collect();
    warmed.wait();
    let before = store.stats();
    start_line.wait();
    let start = Instant::now();
    let mut hist = histogram();
    let mut failed = None;
    for h in handles {
        match h.join() {
            Ok(Ok(h)) => hist.add(&h)?,
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(_) => {
                failed = failed.or(Some(format!("a {NAME} submitter thread panicked").into()))
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(e) = failed {
        return Err(e);
    }
    let after = store.stats();
    let timed = Timed { hist, elapsed };
    Ok(
        Measurement::new(NAME, mode(way, threads), threads, 1, &timed)
            .with_write_path(write_path(&before, &after)),
    )
}

/// The report's mode column of `way` with `threads` submitters.
pub fn mode(way: &Way, threads: usize) -> String {
    if way.concurrent {
        format!(
            "{}, {threads} thread{}",
            way.name,
            if threads == 1 { "" } else { "s" }
        )
    } else {
        format!("{}, window {PIPELINE_WINDOW}", way.name)
    }
}

/// One writer's `store.transact` fills (`rows` after the first `warmup`) and the disk's
/// fsync floor (`floor_ops` synced 4 KiB writes), measured in [`ROUNDS`] slices that
/// alternate, the order flipping every round. The target compares their p50s; measured
/// minutes apart, a disk faster in one minute than the next (the floor's p50 was 98 us in
/// one run, 141 us in another) moved the ratio by as much. Returns the floor's row and the
/// writer's.
pub fn one_writer_beside_floor(
    dir: &Path,
    warmup: u64,
    floor_ops: u64,
    trades: u64,
) -> Result<[Measurement; 2]> {
    let mut floor = Floor::open(&dir.join("floor"))?;
    let store = setup(&dir.join("store"))?;
    let rows: Vec<TradeRow> = (0..warmup + trades).map(trade).collect();
    let (warm, main) = rows.split_at(usize::try_from(warmup)?);
    for i in 0..warmup {
        floor.write(i)?;
    }
    transact_each(&store, warm, &mut histogram())?;
    let before = store.stats();
    let blocks: Vec<u64> = (warmup..warmup + floor_ops).collect();
    let (mut synced, mut filled) = (None, None);
    for round in 0..ROUNDS {
        for k in 0..2 {
            if (k + round) % 2 == 0 {
                let ops = slice(&blocks, round);
                let first = ops.first().copied().unwrap_or(0);
                merge(
                    &mut synced,
                    timed(0, ops.len() as u64, |i| floor.write(first + i))?,
                )?;
            } else {
                let mut hist = histogram();
                let start = Instant::now();
                transact_each(&store, slice(main, round), &mut hist)?;
                let elapsed = start.elapsed();
                merge(&mut filled, Timed { hist, elapsed })?;
            }
        }
    }
    let after = store.stats();
    let (Some(synced), Some(filled)) = (synced, filled) else {
        return Err("no rounds were measured".into());
    };
    let way = &SUBMITTERS[0];
    Ok([
        Measurement::new(FLOOR, FLOOR_MODE, 1, 0, &synced),
        Measurement::new(NAME, mode(way, 1), 1, 1, &filled)
            .with_write_path(write_path(&before, &after)),
    ])
}

/// The write path's statistics of a measured run: counters over the measured part (from
/// `before` to `after`); the group size and fsync histograms cover the whole store's life
/// (setup and warm-up included), as `store.stats()` keeps no windowed histograms.
pub fn write_path(before: &Stats, after: &Stats) -> WritePath {
    let (group, fsync, commit) = (after.group_size(), after.fsync_us(), after.commit_us());
    WritePath {
        groups: group.count,
        group_p50: group.p50,
        group_p99: group.p99,
        group_max: group.max,
        fsync_p50_us: fsync.p50,
        fsync_p99_us: fsync.p99,
        commit_p50_us: commit.p50,
        // `commits()` counts only waited commits; the durable sequence number counts
        // submitted ones too.
        commits: after.durable_seq().saturating_sub(before.durable_seq()),
        conflicts: after.conflicts().saturating_sub(before.conflicts()),
        retries: after.retries().saturating_sub(before.retries()),
    }
}

#[cfg(test)]
mod tests {
    use ::tradestore::ReadOps;

    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = setup(dir.path()).unwrap();
        transact_each(&store, &[trade(0)], &mut histogram()).unwrap();
        let snap = store.read().unwrap();
        let got: Trade = snap.get_id(1).unwrap().unwrap();
        assert_eq!(got, to_trade(&trade(0)));
        let o: Order = snap.get_id(trade(0).order_id).unwrap().unwrap();
        assert_eq!(o.filled_quantity, Quantity(trade(0).quantity));
        assert_eq!(snap.recent_trades(trade(0).instrument, 10).unwrap(), [got]);
    }

    #[test]
    fn the_one_writer_and_the_floor_share_every_round() {
        let dir = tempfile::tempdir().unwrap();
        // Fewer operations than rounds: some rounds measure nothing, and nothing is lost.
        let [floor, writer] = one_writer_beside_floor(dir.path(), 2, 5, 11).unwrap();
        assert_eq!((floor.engine, floor.mode.as_str()), (FLOOR, FLOOR_MODE));
        assert_eq!(floor.latency.count, 5);
        assert_eq!(writer.mode, "store.transact, 1 thread");
        assert_eq!(writer.latency.count, 11);
        assert_eq!(writer.trades, 11);
        assert_eq!(writer.write_path.unwrap().commits, 11);
    }

    #[test]
    fn concurrent_submitters_record_every_trade() {
        let dir = tempfile::tempdir().unwrap();
        let m = measure(dir.path(), &SUBMITTERS[0], 4, 1, 8).unwrap();
        assert_eq!(m.trades, 8);
        assert_eq!(m.mode, "store.transact, 4 threads");
        let w = m.write_path.unwrap();
        assert_eq!(w.commits, 8);
        assert!(w.groups > 0 && w.group_max >= 1);
    }

    #[test]
    fn pipelined_submitter_records_every_trade_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = setup(dir.path()).unwrap();
        // Several fills of each account, so the loop must wait for an account's last one.
        let rows: Vec<_> = (0..3 * ACCOUNTS).map(trade).collect();
        let mut hist = histogram();
        submit_pipelined(&store, &rows, &mut hist).unwrap();
        assert_eq!(hist.len(), rows.len() as u64);
        let snap = store.read().unwrap();
        for row in &rows[..ACCOUNTS as usize] {
            let o: Order = snap.get_id(row.order_id).unwrap().unwrap();
            assert_eq!(o.filled_quantity, Quantity(row.quantity));
        }
        assert_eq!(store.stats().conflicts(), 0);
    }
}
