//! The reference trading engine: writer threads, each owning a set of instruments and their
//! books, turn the generated flow into orders, fills and cancels through the store's public
//! API, exactly as a user's engine would embed it.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use tradestore::schema::{
    Account, AccountStatus, Cash, Instrument, Money, Order, OrderKind, OrderStatus, Quantity, Side,
    TableId, TimeInForce, Trade, notional,
};
use tradestore::{IndexScan, ReadOps, RetryPolicy, Store, WriteTx};

/// The writers' retries. Few accounts shared by many writers (`--accounts 2 --writers 16`)
/// make every transaction conflict with some other writer's: the default policy (16
/// attempts, 5 s) can run out in such a storm and end the run with a conflict error, where a
/// trading engine keeps trying. Jittered backoff lets one writer through each round.
const SIM_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 10_000,
    initial_backoff: std::time::Duration::from_micros(100),
    max_backoff: std::time::Duration::from_millis(20),
    max_total: std::time::Duration::from_secs(60),
};

use super::book::{Book, Match, Resting};
use super::flow::{Action, Flow, LOT, NewOrder, TICK};
use super::report::{Latencies, Report};

/// How hard to drive the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadProfile {
    /// Continuous flow from every writer.
    Steady,
    /// Writers alternate 200 ms bursts and 200 ms pauses.
    Burst,
    /// Continuous flow plus reader threads running the common queries.
    Stress,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Stop after this long (unless `orders` is reached first).
    pub duration: Option<Duration>,
    /// Stop after this many new orders.
    pub orders: Option<u64>,
    /// Accounts `1..=accounts`.
    pub accounts: u64,
    /// Instruments `1..=instruments`.
    pub instruments: u64,
    /// Writer threads (capped at the number of instruments).
    pub writers: usize,
    /// Reader threads in the stress profile.
    pub readers: usize,
    /// Seed of the order flow.
    pub seed: u64,
    /// Load profile.
    pub profile: LoadProfile,
    /// Where to append acked trade ids.
    pub ack_log: Option<PathBuf>,
}

/// Counters shared with the progress display.
#[derive(Default)]
pub struct Live {
    /// New orders committed.
    pub orders: AtomicU64,
    /// Trades committed.
    pub trades: AtomicU64,
    /// Commit latency of the last interval.
    pub recent: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// Set to end the run early (Ctrl-C): the writers finish the orders in flight and the
    /// run reports as usual.
    pub interrupt: AtomicBool,
}

/// Starting cash of each account.
const DEPOSIT_UNITS: i64 = 10_000_000;
/// Fee: one basis point of the notional.
const FEE_BPS: i64 = 1;

fn now_ns() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Creates the accounts, instruments and cash the simulation needs, keeping whatever the
/// store already has.
pub fn setup(store: &Store, accounts: u64, instruments: u64) -> Result<()> {
    // In transactions of SETUP_BATCH accounts: millions of accounts in one would be one
    // journal record of hundreds of MiB (over the 64 MiB a record may hold). Each id is
    // created only if missing, so a setup cut short is completed by the next run.
    store.write(|tx| {
        for id in 1..=instruments {
            if tx.get_id::<Instrument>(id)?.is_none() {
                tx.insert(&Instrument {
                    id,
                    symbol: format!("SYM{id:04}"),
                    tick_size: TICK,
                    lot_size: LOT,
                    currency: "USD".into(),
                })?;
            }
        }
        Ok(())
    })?;
    let mut first = 1;
    while first <= accounts {
        let last = first.saturating_add(SETUP_BATCH - 1).min(accounts);
        store.write(|tx| create_accounts(tx, first..=last))?;
        first = last.saturating_add(1);
        if last == u64::MAX {
            break;
        }
    }
    Ok(())
}

/// Accounts created per setup transaction.
const SETUP_BATCH: u64 = 10_000;

/// Creates the missing accounts of `ids`, each with its opening cash.
fn create_accounts(tx: &mut WriteTx, ids: std::ops::RangeInclusive<u64>) -> tradestore::Result<()> {
    for id in ids {
        if tx.get_id::<Account>(id)?.is_none() {
            tx.insert(&Account {
                id,
                name: format!("account-{id}"),
                status: AccountStatus::Active,
            })?;
            tx.put(&Cash {
                account: id,
                currency: "USD".into(),
                amount: Money(DEPOSIT_UNITS * Money::SCALE),
            })?;
        }
    }
    Ok(())
}

/// The books of `instruments`, loaded with the open limit orders already in the store, so
/// that a second run continues where the first stopped.
fn load_books(store: &Store, instruments: &[u64]) -> Result<Vec<Book>> {
    let tx = store.read()?;
    let mut books = Vec::new();
    for &inst in instruments {
        let mut book = Book::default();
        let mut open = Vec::new();
        for status in [OrderStatus::New, OrderStatus::PartiallyFilled] {
            let scan = IndexScan::prefix([inst.into(), status.name().into()]);
            open.extend(tx.index_scan::<Order>("orders_by_instrument_status", &scan)?);
        }
        open.sort_by_key(|o| o.id);
        for o in open {
            if let Some(price) = o.price {
                book.insert(Resting {
                    id: o.id,
                    account: o.account,
                    side: o.side,
                    price,
                    open: Quantity(o.quantity.0 - o.filled_quantity.0),
                });
            }
        }
        books.push(book);
    }
    Ok(books)
}

/// Runs the simulation and returns its report. `live` is updated as it goes.
pub fn run(store: Arc<Store>, cfg: &SimConfig, live: Arc<Live>) -> Result<Report> {
    setup(&store, cfg.accounts, cfg.instruments).context("setting up accounts and instruments")?;
    let writers = cfg.writers.clamp(1, cfg.instruments.max(1) as usize);
    let ack_log = match &cfg.ack_log {
        Some(p) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening ack log {}", p.display()))?,
        ))),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(cfg.orders.unwrap_or(u64::MAX)));
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..writers {
        let instruments: Vec<u64> = (1..=cfg.instruments)
            .filter(|i| (*i - 1) as usize % writers == w)
            .collect();
        let books = load_books(&store, &instruments)?;
        let mut worker = Writer {
            store: Arc::clone(&store),
            flow: Flow::new(
                cfg.seed
                    .wrapping_add(w as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15),
                instruments,
                cfg.accounts,
            ),
            books,
            ack_log: ack_log.clone(),
            live: Arc::clone(&live),
            lat: Latencies::default(),
            counts: Counts::default(),
            retry: SIM_RETRY,
        };
        let stop = Arc::clone(&stop);
        let budget = Arc::clone(&budget);
        let profile = cfg.profile;
        handles.push(std::thread::spawn(
            move || -> Result<(Latencies, Counts)> {
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if profile == LoadProfile::Burst && (t0.elapsed().as_millis() / 200) % 2 == 1 {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    if worker.step(&budget)?.is_break() {
                        break;
                    }
                }
                Ok((worker.lat, worker.counts))
            },
        ));
    }
    let mut reader_handles = Vec::new();
    if cfg.profile == LoadProfile::Stress {
        for r in 0..cfg.readers.max(1) {
            let store = Arc::clone(&store);
            let stop = Arc::clone(&stop);
            let (accounts, instruments) = (cfg.accounts, cfg.instruments);
            let seed = cfg.seed ^ (0xABCD + r as u64);
            reader_handles.push(std::thread::spawn(move || -> Result<Latencies> {
                let mut rng = fastrand::Rng::with_seed(seed);
                let mut lat = Latencies::default();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let tx = store.read()?;
                    match rng.u8(..3) {
                        0 => {
                            tx.positions_of(rng.u64(1..=accounts))?;
                            lat.record("read_positions_of_account", t.elapsed());
                        }
                        1 => {
                            tx.recent_trades(rng.u64(1..=instruments), 100)?;
                            lat.record("read_last_100_trades", t.elapsed());
                        }
                        _ => {
                            tx.open_orders_of(rng.u64(1..=accounts))?;
                            lat.record("read_open_orders_of_account", t.elapsed());
                        }
                    }
                }
                Ok(lat)
            }));
        }
    }
    let deadline = cfg.duration.map(|d| started + d);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        let all_done = handles.iter().all(|h| h.is_finished());
        if out_of_time || all_done || live.interrupt.load(Ordering::SeqCst) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat = Latencies::default();
    let mut counts = Counts::default();
    for h in handles {
        let (l, c) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread failed: {}", crate::last_panic()))??;
        lat.merge(&l);
        counts.add(&c);
    }
    for h in reader_handles {
        let l = h
            .join()
            .map_err(|_| anyhow::anyhow!("a reader thread failed: {}", crate::last_panic()))??;
        lat.merge(&l);
    }
    let elapsed = started.elapsed();
    let mut report = Report::new(
        cfg,
        writers,
        elapsed,
        &counts,
        &lat,
        store.file_size()?,
        store.stats(),
    );
    report.interrupted = live.interrupt.load(Ordering::SeqCst);
    Ok(report)
}

/// What a writer did.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// New orders committed.
    pub orders: u64,
    /// Trades (fills, one per side) committed.
    pub trades: u64,
    /// Cancels committed (explicit, and remainders of IOC/market orders).
    pub cancels: u64,
    /// Orders rejected (fill-or-kill or market orders that found no liquidity).
    pub rejects: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.orders += o.orders;
        self.trades += o.trades;
        self.cancels += o.cancels;
        self.rejects += o.rejects;
    }
}

struct Writer {
    store: Arc<Store>,
    flow: Flow,
    books: Vec<Book>,
    ack_log: Option<Arc<Mutex<std::fs::File>>>,
    live: Arc<Live>,
    lat: Latencies,
    counts: Counts,
    retry: RetryPolicy,
}

impl Writer {
    fn book_index(&self, instrument: u64) -> usize {
        self.books_for()
            .iter()
            .position(|i| *i == instrument)
            .unwrap_or(0)
    }

    fn books_for(&self) -> &[u64] {
        self.flow.instruments()
    }

    fn step(&mut self, budget: &AtomicU64) -> Result<std::ops::ControlFlow<()>> {
        match self.flow.next() {
            Action::Cancel { instrument, pick } => {
                let b = self.book_index(instrument);
                let n = self.books[b].len();
                if n == 0 {
                    return Ok(std::ops::ControlFlow::Continue(()));
                }
                let Some(id) = self.books[b].ids().nth(pick % n) else {
                    return Ok(std::ops::ControlFlow::Continue(()));
                };
                let t = Instant::now();
                self.store.transact(&self.retry, |tx| {
                    let Some(mut o) = tx.get_id::<Order>(id)? else {
                        return Ok(());
                    };
                    o.status = OrderStatus::Cancelled;
                    o.updated_ts = now_ns().max(o.updated_ts);
                    tx.put(&o)?;
                    Ok(())
                })?;
                self.lat.record("cancel", t.elapsed());
                self.books[b].remove(id);
                self.counts.cancels += 1;
            }
            Action::New(order) => {
                if budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_err()
                {
                    return Ok(std::ops::ControlFlow::Break(()));
                }
                self.new_order(order)?;
            }
        }
        Ok(std::ops::ControlFlow::Continue(()))
    }

    fn new_order(&mut self, o: NewOrder) -> Result<()> {
        let b = self.book_index(o.instrument);
        let mut plan = self.books[b].plan(o.side, o.price, o.quantity);
        let matched: i64 = plan.iter().map(|m| m.quantity.0).sum();
        let kill = o.tif == TimeInForce::Fok && matched < o.quantity.0;
        if kill {
            plan.clear();
        }
        let rests =
            o.kind == OrderKind::Limit && matches!(o.tif, TimeInForce::Gtc | TimeInForce::Day);
        let t = Instant::now();
        let ts = now_ns();
        let (order_id, trade_ids, status) = self.store.transact(&self.retry, |tx| {
            let id = tx.next_id(TableId::Orders)?;
            let rejected = kill || plan.is_empty() && o.kind == OrderKind::Market;
            let mut order = Order {
                id,
                account: o.account,
                instrument: o.instrument,
                side: o.side,
                kind: o.kind,
                time_in_force: o.tif,
                price: o.price,
                quantity: o.quantity,
                filled_quantity: Quantity::ZERO,
                status: if rejected {
                    OrderStatus::Rejected
                } else {
                    OrderStatus::New
                },
                created_ts: ts,
                updated_ts: ts,
            };
            tx.insert(&order)?;
            let mut trade_ids = Vec::with_capacity(plan.len() * 2);
            for m in &plan {
                for (order_id, account, side) in [
                    (id, o.account, o.side),
                    (m.resting.id, m.resting.account, m.resting.side),
                ] {
                    let tid = tx.next_id(TableId::Trades)?;
                    let fill = fill(tid, order_id, account, o.instrument, side, m, ts);
                    let out = tx.record_fill(&fill)?;
                    if order_id == id {
                        order = out.order;
                    }
                    trade_ids.push(tid);
                }
            }
            if !rests && order.status.is_open() {
                order.status = OrderStatus::Cancelled;
                tx.put(&order)?;
            }
            Ok((id, trade_ids, order.status))
        })?;
        let elapsed = t.elapsed();
        self.lat.record("new_order", elapsed);
        if let Some(h) = self.live.recent.lock().as_mut() {
            h.saturating_record(elapsed.as_micros() as u64);
        }
        // Acked: the transaction is durable. Only now may the ids be reported.
        if let Some(log) = &self.ack_log
            && !trade_ids.is_empty()
        {
            let mut text = String::with_capacity(trade_ids.len() * 8);
            for id in &trade_ids {
                text.push_str(&id.to_string());
                text.push('\n');
            }
            log.lock()
                .write_all(text.as_bytes())
                .context("appending to the ack log")?;
        }
        let rest = rests.then(|| Resting {
            id: order_id,
            account: o.account,
            side: o.side,
            price: o.price.unwrap_or(TICK),
            open: Quantity(o.quantity.0 - plan.iter().map(|m| m.quantity.0).sum::<i64>()),
        });
        self.books[b].apply(&plan, rest);
        self.counts.orders += 1;
        self.counts.trades += trade_ids.len() as u64;
        match status {
            OrderStatus::Rejected => self.counts.rejects += 1,
            OrderStatus::Cancelled => self.counts.cancels += 1,
            _ => {}
        }
        self.live.orders.fetch_add(1, Ordering::Relaxed);
        self.live
            .trades
            .fetch_add(trade_ids.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn fill(
    id: u64,
    order_id: u64,
    account: u64,
    instrument: u64,
    side: Side,
    m: &Match,
    ts: i64,
) -> Trade {
    let fee = notional(m.price, m.quantity).map_or(Money::ZERO, |n| Money(n.0 * FEE_BPS / 10_000));
    Trade {
        id,
        order_id,
        account,
        instrument,
        side,
        price: m.price,
        quantity: m.quantity,
        fee,
        ts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_creates_accounts_in_batches_and_completes_a_partial_one() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path(), tradestore::Config::default())?;
        // A setup cut short after its first batch, then a full one over more than two.
        setup(&store, 10, 3)?;
        let accounts = 2 * SETUP_BATCH + 5;
        setup(&store, accounts, 3)?;
        let tx = store.read()?;
        let all: Vec<Account> = tx.all()?;
        assert_eq!(all.len() as u64, accounts);
        assert_eq!(all.last().map(|a| a.id), Some(accounts));
        let cash: Vec<Cash> = tx.all()?;
        assert_eq!(cash.len() as u64, accounts);
        assert!(
            store.stats().commits() >= 4,
            "one instrument write, three account batches"
        );
        Ok(())
    }
}
