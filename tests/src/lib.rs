//! Shared helpers for tradestore's whole-system tests (the files in `tests/`).
//!
//! - [`TempStore`]: a store in a temporary directory that can be closed and reopened.
//! - Record builders ([`account`], [`instrument`], [`limit`], [`market`], [`fill`]) that take
//!   whole units and decimal strings, so a test reads like the trades it describes.
//! - [`seed`]: a small fixed data set (two instruments, four accounts, three orders, cash).
//! - [`dump_bytes`] / [`restore_bytes`]: dumps as byte vectors, to compare stores exactly.
//! - [`expect_err`] and [`assert_clean`]: the outcomes most tests assert.
//! - [`index_key`], [`index_prefixes`], [`expected_scan`]: what an index scan must return,
//!   computed from rows in memory.
//! - [`Rng`] and [`workload`]: a deterministic, seeded stream of valid operations.

pub mod faulty_redb;

use std::collections::BTreeSet;
use std::ops::Deref;

use tempfile::TempDir;
use tradestore::dump::{self, Summary};
use tradestore::{Config, Error, ErrorKind, ReadOps, Store, WriteTx};
use tradestore_schema::{
    Account, AccountStatus, Cash, IndexDef, Instrument, Money, Order, OrderKind, OrderStatus,
    Price, Quantity, Record, Side, TableId, TimeInForce, Trade, Value,
};

/// The error type of tests: anything that displays.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// A store in a temporary directory. Dereferences to the [`Store`]; the directory is removed
/// when it is dropped (after the store is closed).
pub struct TempStore {
    // Field order matters: the store closes before its directory is removed.
    store: Store,
    config: Config,
    dir: TempDir,
}

impl TempStore {
    /// A new, empty store with the default configuration.
    pub fn new() -> tradestore::Result<TempStore> {
        TempStore::with_config(Config::default())
    }

    /// A new, empty store with `config` (kept for [`TempStore::reopen`]).
    pub fn with_config(config: Config) -> tradestore::Result<TempStore> {
        let dir = tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
        let store = Store::open(dir.path(), config.clone())?;
        Ok(TempStore { store, config, dir })
    }

    /// Closes the store and opens it again from its directory, with the same configuration.
    pub fn reopen(self) -> tradestore::Result<TempStore> {
        let TempStore { store, config, dir } = self;
        drop(store);
        let store = Store::open(dir.path(), config.clone())?;
        Ok(TempStore { store, config, dir })
    }
}

impl Deref for TempStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// `n` whole units of an instrument.
pub fn units(n: i64) -> Quantity {
    Quantity::from_units(n).expect("test quantities are small")
}

/// A price written as a decimal, e.g. `"100.25"`.
pub fn price(s: &str) -> Price {
    s.parse().expect("test prices are valid decimals")
}

/// An amount of money written as a decimal, e.g. `"-1002.5"`.
pub fn money(s: &str) -> Money {
    s.parse().expect("test amounts are valid decimals")
}

/// An active account.
pub fn account(id: u64, name: &str) -> Account {
    Account {
        id,
        name: name.to_owned(),
        status: AccountStatus::Active,
    }
}

/// The key of an account's USD cash row.
pub fn usd(account: u64) -> [Value; 2] {
    [Value::U64(account), Value::Text("USD".into())]
}

/// Accounts `1..=accounts`, each holding `initial` (raw money) in USD, in one transaction.
pub fn fund_accounts(store: &Store, accounts: u64, initial: i64) -> tradestore::Result<()> {
    store.write(|tx| {
        for id in 1..=accounts {
            tx.insert(&account(id, &format!("acct-{id}")))?;
            tx.insert(&Cash {
                account: id,
                currency: "USD".into(),
                amount: Money(initial),
            })?;
        }
        Ok(())
    })
}

/// Reads both USD balances and writes both back, `amount` moved from `a` to `b`.
pub fn transfer(tx: &mut WriteTx, a: u64, b: u64, amount: i64) -> tradestore::Result<()> {
    let missing = |id| Error::new(ErrorKind::NotFound, format!("no USD for {id}"));
    let mut from: Cash = tx.get(&usd(a))?.ok_or_else(|| missing(a))?;
    let mut to: Cash = tx.get(&usd(b))?.ok_or_else(|| missing(b))?;
    from.amount = Money(from.amount.0 - amount);
    to.amount = Money(to.amount.0 + amount);
    tx.put(&from)?;
    tx.put(&to)?;
    Ok(())
}

/// An instrument with a tick of 0.01 and a lot of one unit.
pub fn instrument(id: u64, symbol: &str, currency: &str) -> Instrument {
    Instrument {
        id,
        symbol: symbol.to_owned(),
        tick_size: price("0.01"),
        lot_size: units(1),
        currency: currency.to_owned(),
    }
}

/// A new good-till-cancelled limit order for `qty` whole units at `limit_price`, created at
/// time 1.
pub fn limit(
    id: u64,
    account: u64,
    instrument: u64,
    side: Side,
    qty: i64,
    limit_price: &str,
) -> Order {
    Order {
        id,
        account,
        instrument,
        side,
        kind: OrderKind::Limit,
        time_in_force: TimeInForce::Gtc,
        price: Some(price(limit_price)),
        quantity: units(qty),
        filled_quantity: Quantity::ZERO,
        status: OrderStatus::New,
        created_ts: 1,
        updated_ts: 1,
    }
}

/// Cancels an order at `ts`: the same order, status `cancelled`.
pub fn cancel(store: &Store, order: &Order, ts: i64) -> tradestore::Result<()> {
    store.write(|tx| {
        tx.put(&Order {
            status: OrderStatus::Cancelled,
            updated_ts: ts,
            ..order.clone()
        })
        .map(|_| ())
    })
}

/// A new market order for `qty` whole units, created at time 1.
pub fn market(id: u64, account: u64, instrument: u64, side: Side, qty: i64) -> Order {
    Order {
        kind: OrderKind::Market,
        price: None,
        ..limit(id, account, instrument, side, qty, "1")
    }
}

/// A fill of `qty` whole units of `order` at `fill_price`, with a fee, at time `ts`.
pub fn fill(id: u64, order: &Order, qty: i64, fill_price: &str, fee: &str, ts: i64) -> Trade {
    Trade {
        id,
        order_id: order.id,
        account: order.account,
        instrument: order.instrument,
        side: order.side,
        price: price(fill_price),
        quantity: units(qty),
        fee: money(fee),
        ts,
    }
}

/// Instrument 1 of [`seed`]: quoted in USD, tick 0.01, lot 1.
pub const ACME: u64 = 1;
/// Instrument 2 of [`seed`]: quoted in EUR, tick 0.05, lot 10.
pub const BOLT: u64 = 2;
/// Account 1 of [`seed`]: active, has orders 1 and 2 and 10000 USD.
pub const ALPHA: u64 = 1;
/// Account 2 of [`seed`]: active, has order 3.
pub const BETA: u64 = 2;
/// Account 3 of [`seed`]: suspended, no orders.
pub const GAMMA: u64 = 3;
/// Account 4 of [`seed`]: active, no orders, 500 USD and 20 EUR.
pub const DELTA: u64 = 4;

/// The orders of [`seed`]: a buy of 10 ACME at 100 and a sell of 20 BOLT at 50 for
/// [`ALPHA`], a market sell of 5 ACME for [`BETA`].
pub fn seed_orders() -> [Order; 3] {
    [
        limit(1, ALPHA, ACME, Side::Buy, 10, "100"),
        limit(2, ALPHA, BOLT, Side::Sell, 20, "50"),
        market(3, BETA, ACME, Side::Sell, 5),
    ]
}

/// Writes the seed data set in one transaction: instruments [`ACME`] and [`BOLT`], accounts
/// [`ALPHA`], [`BETA`], [`GAMMA`] and [`DELTA`], the [`seed_orders`], and some cash.
pub fn seed(store: &Store) -> tradestore::Result<()> {
    store.write(|tx| {
        tx.insert(&instrument(ACME, "ACME", "USD"))?;
        tx.insert(&Instrument {
            tick_size: price("0.05"),
            lot_size: units(10),
            ..instrument(BOLT, "BOLT", "EUR")
        })?;
        tx.insert(&account(ALPHA, "alpha"))?;
        tx.insert(&account(BETA, "beta"))?;
        tx.insert(&Account {
            status: AccountStatus::Suspended,
            ..account(GAMMA, "gamma")
        })?;
        tx.insert(&account(DELTA, "delta"))?;
        for o in seed_orders() {
            tx.insert(&o)?;
        }
        for (acct, currency, amount) in [
            (ALPHA, "USD", "10000"),
            (DELTA, "USD", "500"),
            (DELTA, "EUR", "20"),
        ] {
            tx.insert(&Cash {
                account: acct,
                currency: currency.to_owned(),
                amount: money(amount),
            })?;
        }
        Ok(())
    })
}

/// Inserts accounts `ids` with names padded to about 250 bytes: about 2.6 KB of journal per
/// ten accounts, so that tests fill small journal segments quickly.
pub fn insert_long_named_accounts(
    tx: &mut WriteTx,
    ids: impl IntoIterator<Item = u64>,
) -> tradestore::Result<()> {
    let pad = "x".repeat(240);
    for id in ids {
        tx.insert(&account(id, &format!("{id}-{pad}")))?;
    }
    Ok(())
}

/// Waits until redb holds every durable transaction (the overlay no longer answers).
pub fn wait_applied(store: &Store) -> TestResult {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = store.stats();
        if s.applied_seq() >= s.durable_seq() && s.overlay_bytes() == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err("the applier did not catch up in 30 s".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The whole store as a dump.
pub fn dump_bytes(store: &Store) -> tradestore::Result<Vec<u8>> {
    let mut out = Vec::new();
    dump::dump(store, &mut out, &mut |_, _| {})?;
    Ok(out)
}

/// Restores a dump held in memory.
pub fn restore_bytes(store: &Store, bytes: &[u8]) -> tradestore::Result<Summary> {
    dump::restore(store, &mut &*bytes, &mut |_| {})
}

/// Fails, listing the violations, unless the store's consistency check is clean.
pub fn assert_clean(store: &Store) -> TestResult {
    let report = store.check(&mut |_, _| {})?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(format!("check found violations: {:#?}", report.violations).into())
    }
}

/// The error of `result`, which must have failed with `kind`.
pub fn expect_err<T: std::fmt::Debug>(
    result: tradestore::Result<T>,
    kind: ErrorKind,
) -> TestResult<Error> {
    match result {
        Ok(v) => Err(format!("expected a {kind} error, got Ok({v:?})").into()),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(format!("expected a {kind} error, got {e}").into()),
    }
}

/// The key an index orders a row by: the indexed columns, then the primary key.
pub fn index_key<R: Record>(def: &IndexDef, row: &R) -> Vec<Value> {
    def.columns
        .iter()
        .map(|c| row.column(c).unwrap_or(Value::Null))
        .chain(row.primary_key())
        .collect()
}

/// Every prefix of the indexed columns' values present among `rows`, of every length from
/// none to all of the columns.
pub fn index_prefixes<R: Record>(def: &IndexDef, rows: &[R]) -> BTreeSet<Vec<Value>> {
    let mut out = BTreeSet::new();
    for row in rows {
        let key = index_key(def, row);
        for n in 0..=def.columns.len() {
            out.insert(key[..n].to_vec());
        }
    }
    out
}

/// What a scan of the index by `prefix` must return: the rows whose indexed columns start
/// with `prefix`, in index order.
pub fn expected_scan<R: Record>(def: &IndexDef, rows: &[R], prefix: &[Value]) -> Vec<R> {
    let mut keyed: Vec<(Vec<Value>, &R)> = rows
        .iter()
        .map(|r| (index_key(def, r), r))
        .filter(|(k, _)| k.starts_with(prefix))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, r)| r.clone()).collect()
}

/// A small deterministic pseudo-random generator (SplitMix64): the same seed gives the same
/// stream on every platform, so seeded workloads are reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = hi.abs_diff(lo) + 1;
        lo.wrapping_add_unsigned(self.below(span))
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A random element, `None` when `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let n = u64::try_from(items.len()).ok().filter(|n| *n > 0)?;
        items.get(usize::try_from(self.below(n)).ok()?)
    }
}

/// Runs `txns` write transactions of one to five valid operations each, chosen by a generator
/// seeded with `seed`: new accounts (some suspended) and instruments (USD or EUR, various
/// ticks and lots), new limit, market and rejected orders, partial and full fills within the
/// limit, cancels, cash deposits and withdrawals, and account status changes. Ids come from
/// [`WriteTx::next_id`]; timestamps grow from 1000, sometimes repeating.
pub fn workload(store: &Store, seed: u64, txns: usize) -> tradestore::Result<()> {
    let mut rng = Rng::new(seed);
    let mut clock = 1000;
    for _ in 0..txns {
        store.write(|tx| {
            for _ in 0..rng.range(1, 5) {
                clock += rng.range(0, 2);
                workload_op(tx, &mut rng, clock)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn workload_op(tx: &mut WriteTx, rng: &mut Rng, ts: i64) -> tradestore::Result<()> {
    let accounts: Vec<Account> = tx.all()?;
    let active: Vec<&Account> = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Active)
        .collect();
    let instruments: Vec<Instrument> = tx.all()?;
    let open: Vec<Order> = tx
        .all::<Order>()?
        .into_iter()
        .filter(|o| o.status.is_open())
        .collect();
    let mut choice = rng.below(10);
    if instruments.is_empty() {
        choice = 1;
    } else if active.is_empty() {
        choice = 0;
    } else if open.is_empty() && (4..=7).contains(&choice) {
        choice = 2;
    }
    match choice {
        0 => {
            let id = tx.next_id(TableId::Accounts)?;
            let status = if rng.chance(20) {
                AccountStatus::Suspended
            } else {
                AccountStatus::Active
            };
            tx.insert(&Account {
                status,
                ..account(id, &format!("account-{id}"))
            })
        }
        1 => {
            let id = tx.next_id(TableId::Instruments)?;
            let ticks = ["0.01", "0.05", "0.25"];
            let currency = if rng.chance(50) { "USD" } else { "EUR" };
            tx.insert(&Instrument {
                tick_size: price(rng.pick(&ticks).copied().unwrap_or("0.01")),
                lot_size: units(if rng.chance(70) { 1 } else { 10 }),
                ..instrument(id, &format!("S{id}"), currency)
            })
        }
        2 | 3 => {
            let (Some(acct), Some(inst)) = (rng.pick(&active), rng.pick(&instruments)) else {
                return Ok(());
            };
            let id = tx.next_id(TableId::Orders)?;
            let side = if rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            };
            let lots = rng.range(1, 10);
            let mut order = Order {
                quantity: Quantity(inst.lot_size.0 * lots),
                created_ts: ts,
                updated_ts: ts,
                ..market(id, acct.id, inst.id, side, 1)
            };
            if rng.chance(80) {
                order.kind = OrderKind::Limit;
                order.price = Some(Price(inst.tick_size.0 * rng.range(2000, 12000)));
            }
            if rng.chance(5) {
                order.status = OrderStatus::Rejected;
            }
            tx.insert(&order)
        }
        4..=6 => {
            let Some(order) = rng.pick(&open) else {
                return Ok(());
            };
            let Some(inst) = instruments.iter().find(|i| i.id == order.instrument) else {
                return Err(Error::new(
                    ErrorKind::Corruption,
                    "order without instrument",
                ));
            };
            let lot = inst.lot_size.0;
            let remaining_lots = (order.quantity.0 - order.filled_quantity.0) / lot;
            let qty = if rng.chance(40) {
                remaining_lots
            } else {
                rng.range(1, remaining_lots)
            };
            let tick = inst.tick_size.0;
            let fill_price = match order.price {
                Some(p) if order.side == Side::Buy => (p.0 - tick * rng.range(0, 3)).max(tick),
                Some(p) => p.0 + tick * rng.range(0, 3),
                None => tick * rng.range(2000, 12000),
            };
            let id = tx.next_id(TableId::Trades)?;
            tx.record_fill(&Trade {
                id,
                order_id: order.id,
                account: order.account,
                instrument: order.instrument,
                side: order.side,
                price: Price(fill_price),
                quantity: Quantity(qty * lot),
                fee: Money(rng.range(0, 50_000)),
                ts,
            })
            .map(|_| ())
        }
        7 => {
            let Some(order) = rng.pick(&open) else {
                return Ok(());
            };
            tx.put(&Order {
                status: OrderStatus::Cancelled,
                updated_ts: order.updated_ts.max(ts),
                ..order.clone()
            })
            .map(|_| ())
        }
        8 => {
            let Some(acct) = rng.pick(&accounts) else {
                return Ok(());
            };
            let currency = if rng.chance(50) { "USD" } else { "EUR" };
            let old: Option<Cash> = tx.get(&[acct.id.into(), currency.into()])?;
            let amount = old.map_or(0, |c| c.amount.0) + rng.range(-1_000, 5_000) * 1_000_000;
            tx.put(&Cash {
                account: acct.id,
                currency: currency.to_owned(),
                amount: Money(amount),
            })
            .map(|_| ())
        }
        _ => {
            let Some(acct) = rng.pick(&accounts) else {
                return Ok(());
            };
            let status = match acct.status {
                AccountStatus::Active => AccountStatus::Suspended,
                _ => AccountStatus::Active,
            };
            tx.put(&Account {
                status,
                ..acct.clone()
            })
            .map(|_| ())
        }
    }
}

/// Fails unless `promtool check metrics` accepts `text` (a Prometheus exposition). Where
/// promtool is not installed the check is skipped with a note, except in CI (`CI` set),
/// whose `.ci/run` installs it (Debian's prometheus package).
pub fn promtool_check(text: &str) -> TestResult {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed"
        );
        eprintln!("promtool not installed: exposition not checked by it here");
        return Ok(());
    };
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "promtool refused the exposition:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
