//! Model test: random operations run against the store and against an in-memory model (one
//! `BTreeMap` per table; positions folded with `portfolio::apply_fill`, refusals predicted
//! from `rules` and the foreign keys), with the store closed and reopened between some steps.
//! After every step all tables, every built-in index (by each prefix present) and the
//! lookups built on them must equal the model; at the end the consistency check is clean.
//!
//! Operations run in small batches, one write transaction each, as an application would
//! group them. A batch whose operation is refused (the model must predict the refusal and
//! its kind) is rolled back whole, and the model drops the batch too.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tradestore::{Error, ErrorKind, IndexScan, ReadOps, ReadTx, Store, WriteTx};
use tradestore_schema::table::builtin_indexes;
use tradestore_schema::{
    Account, AccountStatus, AnyRecord, Cash, IndexDef, Instrument, Money, Order, OrderKind,
    OrderStatus, Position, Price, Quantity, Record, Side, TableId, TimeInForce, Trade, Value,
    portfolio, rules,
};
use tradestore_tests::{TempStore, TestResult, assert_clean, expected_scan, index_prefixes};

const SYMBOLS: [&str; 4] = ["AAA", "BBB", "CCC", "DDD"];
/// Ticks of 0.01 and 0.05.
const TICKS: [i64; 2] = [1_000_000, 5_000_000];
/// Lots of 1 and 10 units.
const LOTS: [i64; 2] = [100_000_000, 1_000_000_000];
const STATUSES: [AccountStatus; 3] = [
    AccountStatus::Active,
    AccountStatus::Suspended,
    AccountStatus::Closed,
];

/// How much of an order a fill takes.
#[derive(Clone, Copy, Debug)]
enum FillQty {
    /// What is left.
    Rest,
    /// This many lots, or what is left if that is less.
    Lots(i64),
    /// Nothing (refused).
    Zero,
    /// One lot more than what is left (refused).
    Over,
}

/// Which row an operation names, resolved against the model when it runs.
#[derive(Clone, Copy, Debug)]
enum Id {
    /// One of the rows there are (any id if there are none).
    Existing(usize),
    /// One more than the largest id.
    New,
    /// This id, which may or may not exist.
    Raw(u64),
}

/// A random operation, resolved against the model's current rows when it runs.
#[derive(Clone, Debug)]
enum Op {
    InsertAccount {
        id: Id,
        suspended: bool,
    },
    SetAccountStatus {
        id: Id,
        status: usize,
    },
    InsertInstrument {
        id: Id,
        /// Symbol `S<id>`, or one of [`SYMBOLS`] (which may be taken).
        symbol: Option<usize>,
        tick: usize,
        lot: usize,
        eur: bool,
    },
    InsertOrder {
        account: Id,
        instrument: Id,
        buy: bool,
        market: bool,
        lots: i64,
        ticks: i64,
        off_tick: bool,
        reuse_id: bool,
        rejected: bool,
    },
    Cancel {
        pick: usize,
        any_order: bool,
    },
    Fill {
        pick: usize,
        any_order: bool,
        qty: FillQty,
        better: i64,
        fee: i64,
        stale_id: bool,
        wrong_side: bool,
    },
    Deposit {
        account: Id,
        eur: bool,
        units: i64,
    },
    DeleteAccount {
        id: Id,
    },
    DeleteOrder {
        pick: usize,
    },
    DeleteInstrument {
        id: Id,
    },
}

#[derive(Clone, Debug)]
enum Step {
    /// Operations in one write transaction.
    Batch(Vec<Op>),
    /// Close the store and open it again.
    Reopen,
}

/// A concrete write, the same for the store and the model.
#[derive(Clone, Debug)]
enum Action {
    InsertAccount(Account),
    PutAccount(Account),
    InsertInstrument(Instrument),
    InsertOrder(Order),
    PutOrder(Order),
    Fill(Trade),
    PutCash(Cash),
    DeleteAccount(u64),
    DeleteOrder(u64),
    DeleteInstrument(u64),
}

/// What a write returned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Effect {
    /// An insert.
    Inserted,
    /// A put or a delete, with the row it replaced or removed.
    Replaced(Option<AnyRecord>),
    /// A fill, with the order, position and cash after it.
    Filled(Order, Position, Cash),
}

/// Every model refusal is a constraint error.
type Expected = Result<Effect, ErrorKind>;

fn refuse<T>() -> Result<T, ErrorKind> {
    Err(ErrorKind::Constraint)
}

#[derive(Clone, Debug, Default)]
struct Model {
    instruments: BTreeMap<u64, Instrument>,
    accounts: BTreeMap<u64, Account>,
    orders: BTreeMap<u64, Order>,
    trades: BTreeMap<u64, Trade>,
    positions: BTreeMap<(u64, u64), Position>,
    cash: BTreeMap<(u64, String), Cash>,
}

fn nth<T>(items: impl ExactSizeIterator<Item = T>, pick: usize) -> Option<T> {
    let n = items.len();
    let mut items = items;
    if n == 0 { None } else { items.nth(pick % n) }
}

impl Model {
    fn next_id<V>(rows: &BTreeMap<u64, V>) -> u64 {
        rows.last_key_value().map_or(1, |(k, _)| k + 1)
    }

    fn id<V>(rows: &BTreeMap<u64, V>, id: Id) -> u64 {
        match id {
            Id::Existing(pick) => nth(rows.keys().copied(), pick).unwrap_or(1),
            Id::New => Self::next_id(rows),
            Id::Raw(id) => id,
        }
    }

    fn resolve(&self, op: &Op, clock: i64) -> Option<Action> {
        Some(match *op {
            Op::InsertAccount { id, suspended } => {
                let id = Self::id(&self.accounts, id);
                Action::InsertAccount(Account {
                    id,
                    name: format!("account {id}"),
                    status: if suspended {
                        AccountStatus::Suspended
                    } else {
                        AccountStatus::Active
                    },
                })
            }
            Op::SetAccountStatus { id, status } => {
                let id = Self::id(&self.accounts, id);
                Action::PutAccount(Account {
                    id,
                    name: format!("account {id}"),
                    status: STATUSES[status % STATUSES.len()],
                })
            }
            Op::InsertInstrument {
                id,
                symbol,
                tick,
                lot,
                eur,
            } => {
                let id = Self::id(&self.instruments, id);
                Action::InsertInstrument(Instrument {
                    id,
                    symbol: symbol.map_or_else(
                        || format!("S{id}"),
                        |s| SYMBOLS[s % SYMBOLS.len()].to_owned(),
                    ),
                    tick_size: Price(TICKS[tick % TICKS.len()]),
                    lot_size: Quantity(LOTS[lot % LOTS.len()]),
                    currency: if eur { "EUR" } else { "USD" }.to_owned(),
                })
            }
            Op::InsertOrder {
                account,
                instrument,
                buy,
                market,
                lots,
                ticks,
                off_tick,
                reuse_id,
                rejected,
            } => {
                let account = Self::id(&self.accounts, account);
                let instrument = Self::id(&self.instruments, instrument);
                let (tick, lot) = self
                    .instruments
                    .get(&instrument)
                    .map_or((TICKS[0], LOTS[0]), |i| (i.tick_size.0, i.lot_size.0));
                let id = match nth(
                    self.orders.keys().copied(),
                    usize::try_from(ticks).unwrap_or(0),
                ) {
                    Some(existing) if reuse_id => existing,
                    _ => Self::next_id(&self.orders),
                };
                Action::InsertOrder(Order {
                    id,
                    account,
                    instrument,
                    side: if buy { Side::Buy } else { Side::Sell },
                    kind: if market {
                        OrderKind::Market
                    } else {
                        OrderKind::Limit
                    },
                    time_in_force: TimeInForce::Gtc,
                    price: (!market).then(|| Price(tick * ticks + i64::from(off_tick))),
                    quantity: Quantity(lot * lots),
                    filled_quantity: Quantity::ZERO,
                    status: if rejected {
                        OrderStatus::Rejected
                    } else {
                        OrderStatus::New
                    },
                    created_ts: clock,
                    updated_ts: clock,
                })
            }
            Op::Cancel { pick, any_order } => {
                let o = self.pick_order(pick, any_order)?;
                Action::PutOrder(Order {
                    status: OrderStatus::Cancelled,
                    updated_ts: o.updated_ts.max(clock),
                    ..o.clone()
                })
            }
            Op::Fill {
                pick,
                any_order,
                qty,
                better,
                fee,
                stale_id,
                wrong_side,
            } => {
                let o = if any_order {
                    nth(self.orders.values(), pick)?
                } else {
                    let open: Vec<&Order> = self
                        .orders
                        .values()
                        .filter(|o| o.status.is_open())
                        .collect();
                    nth(open.into_iter(), pick)?
                };
                let inst = self.instruments.get(&o.instrument)?;
                let (tick, lot) = (inst.tick_size.0, inst.lot_size.0);
                let rest = o.quantity.0 - o.filled_quantity.0;
                let quantity = match qty {
                    FillQty::Rest => rest,
                    FillQty::Lots(n) => (n * lot).min(rest),
                    FillQty::Zero => 0,
                    FillQty::Over => rest + lot,
                };
                let base = o.price.map_or(tick * 10_000, |p| p.0);
                let id = match self.trades.last_key_value() {
                    Some((last, _)) if stale_id => *last,
                    _ => Self::next_id(&self.trades),
                };
                Action::Fill(Trade {
                    id,
                    order_id: o.id,
                    account: o.account,
                    instrument: o.instrument,
                    side: if wrong_side {
                        o.side.opposite()
                    } else {
                        o.side
                    },
                    // Better than the limit by `better` ticks (worse when negative).
                    price: Price(match o.side {
                        Side::Buy => base - better * tick,
                        Side::Sell => base + better * tick,
                    }),
                    quantity: Quantity(quantity),
                    fee: Money(fee),
                    ts: clock,
                })
            }
            Op::Deposit {
                account,
                eur,
                units,
            } => {
                let account = Self::id(&self.accounts, account);
                let currency = if eur { "EUR" } else { "USD" }.to_owned();
                let old = self
                    .cash
                    .get(&(account, currency.clone()))
                    .map_or(0, |c| c.amount.0);
                Action::PutCash(Cash {
                    account,
                    currency,
                    amount: Money(old + units * 1_000_000),
                })
            }
            Op::DeleteAccount { id } => Action::DeleteAccount(Self::id(&self.accounts, id)),
            Op::DeleteOrder { pick } => {
                Action::DeleteOrder(nth(self.orders.keys().copied(), pick).unwrap_or(1))
            }
            Op::DeleteInstrument { id } => {
                Action::DeleteInstrument(Self::id(&self.instruments, id))
            }
        })
    }

    /// An open order, or any order.
    fn pick_order(&self, pick: usize, any_order: bool) -> Option<&Order> {
        if any_order {
            nth(self.orders.values(), pick)
        } else {
            let open: Vec<&Order> = self
                .orders
                .values()
                .filter(|o| o.status.is_open())
                .collect();
            nth(open.into_iter(), pick)
        }
    }

    /// Applies `action` if the store must accept it; leaves the model as it was if not.
    fn apply(&mut self, action: &Action) -> Expected {
        match action {
            Action::InsertAccount(a) => {
                if self.accounts.contains_key(&a.id) {
                    return refuse();
                }
                rules::validate_account(a).or_else(|_| refuse())?;
                self.accounts.insert(a.id, a.clone());
                Ok(Effect::Inserted)
            }
            Action::PutAccount(a) => {
                let old = self.accounts.get(&a.id).cloned();
                if old.as_ref() != Some(a) {
                    rules::validate_account(a).or_else(|_| refuse())?;
                    self.accounts.insert(a.id, a.clone());
                }
                Ok(Effect::Replaced(old.map(Record::into_any)))
            }
            Action::InsertInstrument(i) => {
                if self.instruments.contains_key(&i.id)
                    || self.instruments.values().any(|x| x.symbol == i.symbol)
                {
                    return refuse();
                }
                rules::validate_instrument(i).or_else(|_| refuse())?;
                self.instruments.insert(i.id, i.clone());
                Ok(Effect::Inserted)
            }
            Action::InsertOrder(o) => {
                if self.orders.contains_key(&o.id) {
                    return refuse();
                }
                self.check_new_order(o)?;
                self.orders.insert(o.id, o.clone());
                Ok(Effect::Inserted)
            }
            Action::PutOrder(o) => {
                let Some(old) = self.orders.get(&o.id).cloned() else {
                    self.check_new_order(o)?;
                    self.orders.insert(o.id, o.clone());
                    return Ok(Effect::Replaced(None));
                };
                if &old != o {
                    let inst = self
                        .instruments
                        .get(&o.instrument)
                        .ok_or(ErrorKind::Constraint)?;
                    if !self.accounts.contains_key(&o.account) {
                        return refuse();
                    }
                    rules::validate_order(o, inst).or_else(|_| refuse())?;
                    rules::validate_order_update(&old, o).or_else(|_| refuse())?;
                    if old.filled_quantity != o.filled_quantity {
                        return refuse();
                    }
                    self.orders.insert(o.id, o.clone());
                }
                Ok(Effect::Replaced(Some(old.into_any())))
            }
            Action::Fill(t) => self.fill(t),
            Action::PutCash(c) => {
                let key = (c.account, c.currency.clone());
                let old = self.cash.get(&key).cloned();
                if old.as_ref() != Some(c) {
                    if !self.accounts.contains_key(&c.account) {
                        return refuse();
                    }
                    rules::validate_cash(c).or_else(|_| refuse())?;
                    self.cash.insert(key, c.clone());
                }
                Ok(Effect::Replaced(old.map(Record::into_any)))
            }
            Action::DeleteAccount(id) => {
                if !self.accounts.contains_key(id) {
                    return Ok(Effect::Replaced(None));
                }
                if self.orders.values().any(|o| o.account == *id) {
                    return refuse();
                }
                self.cash.retain(|(a, _), _| a != id);
                self.positions.retain(|(a, _), _| a != id);
                Ok(Effect::Replaced(
                    self.accounts.remove(id).map(Record::into_any),
                ))
            }
            Action::DeleteOrder(id) => {
                if !self.orders.contains_key(id) {
                    return Ok(Effect::Replaced(None));
                }
                if self.trades.values().any(|t| t.order_id == *id) {
                    return refuse();
                }
                Ok(Effect::Replaced(
                    self.orders.remove(id).map(Record::into_any),
                ))
            }
            Action::DeleteInstrument(id) => {
                if !self.instruments.contains_key(id) {
                    return Ok(Effect::Replaced(None));
                }
                if self.orders.values().any(|o| o.instrument == *id)
                    || self.positions.keys().any(|(_, i)| i == id)
                {
                    return refuse();
                }
                Ok(Effect::Replaced(
                    self.instruments.remove(id).map(Record::into_any),
                ))
            }
        }
    }

    /// A new order: parents exist, the rules hold, it starts new or rejected, and its
    /// account is active.
    fn check_new_order(&self, o: &Order) -> Result<(), ErrorKind> {
        let (Some(account), Some(inst)) = (
            self.accounts.get(&o.account),
            self.instruments.get(&o.instrument),
        ) else {
            return refuse();
        };
        rules::validate_order(o, inst).or_else(|_| refuse())?;
        if !matches!(o.status, OrderStatus::New | OrderStatus::Rejected)
            || account.status != AccountStatus::Active
        {
            return refuse();
        }
        Ok(())
    }

    fn fill(&mut self, t: &Trade) -> Expected {
        let Some(order) = self.orders.get(&t.order_id) else {
            return refuse();
        };
        let inst = self
            .instruments
            .get(&order.instrument)
            .ok_or(ErrorKind::Corruption)?;
        if self
            .trades
            .last_key_value()
            .is_some_and(|(last, _)| t.id <= *last)
        {
            return refuse();
        }
        rules::validate_fill(t, order, inst).or_else(|_| refuse())?;
        // The order after the fill, worked out here rather than by `rules::order_after_fill`.
        let filled = order.filled_quantity.0 + t.quantity.0;
        let after = Order {
            filled_quantity: Quantity(filled),
            status: if filled == order.quantity.0 {
                OrderStatus::Filled
            } else {
                OrderStatus::PartiallyFilled
            },
            updated_ts: order.updated_ts.max(t.ts),
            ..order.clone()
        };
        let key = (t.account, t.instrument);
        let position = portfolio::apply_fill(self.positions.get(&key), t).or_else(|_| refuse())?;
        let cash_key = (t.account, inst.currency.clone());
        let delta = portfolio::cash_delta(t).or_else(|_| refuse())?;
        let cash = Cash {
            account: t.account,
            currency: inst.currency.clone(),
            amount: Money(self.cash.get(&cash_key).map_or(0, |c| c.amount.0) + delta.0),
        };
        self.trades.insert(t.id, t.clone());
        self.orders.insert(after.id, after.clone());
        self.positions.insert(key, position.clone());
        self.cash.insert(cash_key, cash.clone());
        Ok(Effect::Filled(after, position, cash))
    }
}

/// Runs `action` in the store.
fn exec(tx: &mut WriteTx, action: &Action) -> tradestore::Result<Effect> {
    let any = |r: Option<_>| Effect::Replaced(r);
    Ok(match action {
        Action::InsertAccount(a) => tx.insert(a).map(|()| Effect::Inserted)?,
        Action::PutAccount(a) => any(tx.put(a)?.map(Record::into_any)),
        Action::InsertInstrument(i) => tx.insert(i).map(|()| Effect::Inserted)?,
        Action::InsertOrder(o) => tx.insert(o).map(|()| Effect::Inserted)?,
        Action::PutOrder(o) => any(tx.put(o)?.map(Record::into_any)),
        Action::Fill(t) => {
            let f = tx.record_fill(t)?;
            Effect::Filled(f.order, f.position, f.cash)
        }
        Action::PutCash(c) => any(tx.put(c)?.map(Record::into_any)),
        Action::DeleteAccount(id) => any(tx
            .delete::<Account>(&[Value::U64(*id)])?
            .map(Record::into_any)),
        Action::DeleteOrder(id) => any(tx
            .delete::<Order>(&[Value::U64(*id)])?
            .map(Record::into_any)),
        Action::DeleteInstrument(id) => any(tx
            .delete::<Instrument>(&[Value::U64(*id)])?
            .map(Record::into_any)),
    })
}

/// Runs one batch in one write transaction, step by step against the model. Commits (and
/// keeps the model's changes) when every operation is accepted; rolls back (and drops the
/// model's changes) at the first refusal the model predicted.
fn run_batch(store: &Store, model: &mut Model, clock: &mut i64, ops: &[Op]) -> TestResult {
    let mut work = model.clone();
    let mut mismatch = None;
    let result = store.write(|tx| {
        for op in ops {
            *clock += 1;
            let Some(action) = work.resolve(op, *clock) else {
                continue;
            };
            // The ids the store hands out are never taken: at least the model's next one
            // (they come from counters outside transactions, so aborted ones leave gaps).
            let ids = (tx.next_id(TableId::Orders)?, tx.next_id(TableId::Trades)?);
            if ids.0 < Model::next_id(&work.orders) || ids.1 < Model::next_id(&work.trades) {
                mismatch = Some(format!("next ids {ids:?} before {action:?}"));
                return Err(Error::new(ErrorKind::Invalid, "model mismatch"));
            }
            let expected = work.apply(&action);
            match (expected, exec(tx, &action)) {
                (Ok(want), Ok(got)) if want == got => {}
                (Err(kind), Err(e)) if e.kind() == kind => return Err(e),
                (want, got) => {
                    mismatch = Some(format!(
                        "{action:?}:\n  model: {want:?}\n  store: {:?}",
                        got.map_err(|e| e.to_string())
                    ));
                    return Err(Error::new(ErrorKind::Invalid, "model mismatch"));
                }
            }
        }
        Ok(())
    });
    if let Some(m) = mismatch {
        return Err(m.into());
    }
    match result {
        Ok(()) => *model = work,
        Err(e) if e.kind() == ErrorKind::Constraint => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn same<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> TestResult {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}:\n  store: {got:?}\n  model: {want:?}").into())
    }
}

fn same_rows<R: Record>(tx: &ReadTx, want: &BTreeMap<impl Ord, R>) -> TestResult {
    let got: Vec<R> = tx.all()?;
    let want: Vec<&R> = want.values().collect();
    if got.iter().collect::<Vec<_>>() != want {
        return Err(format!("{}:\n  store: {got:?}\n  model: {want:?}", R::TABLE).into());
    }
    Ok(())
}

fn same_index<R: Record>(tx: &ReadTx, def: &IndexDef, rows: &BTreeMap<impl Ord, R>) -> TestResult {
    let rows: Vec<R> = rows.values().cloned().collect();
    let mut prefixes = index_prefixes(def, &rows);
    prefixes.insert(Vec::new());
    prefixes.insert(vec![Value::U64(99)]);
    for prefix in prefixes {
        let got: Vec<R> = tx.index_scan(&def.name, &IndexScan::prefix(prefix.clone()))?;
        let want = expected_scan(def, &rows, &prefix);
        if got != want {
            return Err(format!(
                "{} by {prefix:?}:\n  store: {got:?}\n  model: {want:?}",
                def.name
            )
            .into());
        }
    }
    Ok(())
}

/// Every table, every built-in index and the lookups built on them equal the model.
fn compare(store: &Store, model: &Model) -> TestResult {
    let tx = store.read()?;
    same_rows(&tx, &model.instruments)?;
    same_rows(&tx, &model.accounts)?;
    same_rows(&tx, &model.orders)?;
    same_rows(&tx, &model.trades)?;
    same_rows(&tx, &model.positions)?;
    same_rows(&tx, &model.cash)?;
    for def in builtin_indexes() {
        match def.table {
            TableId::Instruments => same_index(&tx, &def, &model.instruments)?,
            TableId::Accounts => same_index(&tx, &def, &model.accounts)?,
            TableId::Orders => same_index(&tx, &def, &model.orders)?,
            TableId::Trades => same_index(&tx, &def, &model.trades)?,
            TableId::Positions => same_index(&tx, &def, &model.positions)?,
            TableId::Cash => same_index(&tx, &def, &model.cash)?,
        }
    }
    for account in model.accounts.keys().copied().chain([99]) {
        let open: Vec<Order> = model
            .orders
            .values()
            .filter(|o| o.account == account && o.status.is_open())
            .cloned()
            .collect();
        same(
            tx.open_orders_of(account)?,
            open,
            &format!("open orders of {account}"),
        )?;
        let held: Vec<Position> = model
            .positions
            .values()
            .filter(|p| p.account == account)
            .cloned()
            .collect();
        same(
            tx.positions_of(account)?,
            held,
            &format!("positions of {account}"),
        )?;
    }
    for instrument in model.instruments.keys().copied().chain([99]) {
        let mut recent: Vec<Trade> = model
            .trades
            .values()
            .filter(|t| t.instrument == instrument)
            .cloned()
            .collect();
        recent.sort_by_key(|t| std::cmp::Reverse((t.ts, t.id)));
        recent.truncate(3);
        same(
            tx.recent_trades(instrument, 3)?,
            recent,
            &format!("recent trades of {instrument}"),
        )?;
    }
    Ok(())
}

fn run_case(steps: &[Step]) -> TestResult {
    // With a small row cache: every read the model checks also checks the cache's rows
    // (evicted, forgotten by the applier, refilled) against the model.
    let mut store = TempStore::with_config(tradestore::Config {
        row_cache_mb: 1,
        ..tradestore::Config::default()
    })?;
    let mut model = Model::default();
    let mut clock = 0;
    let setup = [
        Op::InsertAccount {
            id: Id::New,
            suspended: false,
        },
        Op::InsertAccount {
            id: Id::New,
            suspended: false,
        },
        Op::InsertInstrument {
            id: Id::New,
            symbol: Some(0),
            tick: 0,
            lot: 0,
            eur: false,
        },
        Op::InsertInstrument {
            id: Id::New,
            symbol: Some(1),
            tick: 1,
            lot: 1,
            eur: true,
        },
    ];
    run_batch(&store, &mut model, &mut clock, &setup)?;
    for step in steps {
        match step {
            Step::Batch(ops) => run_batch(&store, &mut model, &mut clock, ops)?,
            Step::Reopen => store = store.reopen()?,
        }
        compare(&store, &model)?;
    }
    assert_clean(&store)
}

/// Mostly a row that exists; sometimes `new` (when new ids are what the operation wants)
/// or any id up to 6.
fn id(new: u32, existing: u32) -> impl Strategy<Value = Id> + Clone {
    prop_oneof![
        new => Just(Id::New),
        existing => any::<usize>().prop_map(Id::Existing),
        1 => (1..=6u64).prop_map(Id::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let fill_qty = prop_oneof![
        8 => Just(FillQty::Rest),
        10 => (1..=3i64).prop_map(FillQty::Lots),
        1 => Just(FillQty::Zero),
        1 => Just(FillQty::Over),
    ];
    let rare = || prop::bool::weighted(0.03);
    let symbol = prop_oneof![9 => Just(None), 1 => (0..4usize).prop_map(Some)];
    prop_oneof![
        1 => (id(8, 1), prop::bool::weighted(0.2))
            .prop_map(|(id, suspended)| Op::InsertAccount { id, suspended }),
        1 => (id(0, 9), prop_oneof![3 => Just(0usize), 1 => 1..3usize])
            .prop_map(|(id, status)| Op::SetAccountStatus { id, status }),
        1 => (id(8, 1), symbol, 0..2usize, 0..2usize, any::<bool>()).prop_map(
            |(id, symbol, tick, lot, eur)| Op::InsertInstrument { id, symbol, tick, lot, eur }
        ),
        8 => (
            (id(0, 20), id(0, 20), any::<bool>(), prop::bool::weighted(0.2)),
            prop_oneof![1 => Just(0i64), 30 => 1..=6i64],
            prop_oneof![1 => Just(0i64), 30 => 1..=400i64],
            (rare(), rare(), rare()),
        )
            .prop_map(
                |((account, instrument, buy, market), lots, ticks, (off_tick, reuse_id, rejected))| {
                    Op::InsertOrder {
                        account, instrument, buy, market, lots, ticks, off_tick, reuse_id, rejected,
                    }
                }
            ),
        2 => (any::<usize>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, any_order)| Op::Cancel { pick, any_order }),
        14 => (
            any::<usize>(),
            prop::bool::weighted(0.05),
            fill_qty,
            prop_oneof![1 => -2..=-1i64, 19 => 0..=3i64],
            0..=20_000i64,
            rare(),
            rare(),
        )
            .prop_map(|(pick, any_order, qty, better, fee, stale_id, wrong_side)| Op::Fill {
                pick, any_order, qty, better, fee, stale_id, wrong_side,
            }),
        2 => (id(0, 9), any::<bool>(), -500..=2000i64)
            .prop_map(|(account, eur, units)| Op::Deposit { account, eur, units }),
        1 => id(0, 3).prop_map(|id| Op::DeleteAccount { id }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteOrder { pick }),
        1 => id(0, 3).prop_map(|id| Op::DeleteInstrument { id }),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        9 => prop::collection::vec(op(), 1..=3).prop_map(Step::Batch),
        1 => Just(Step::Reopen),
    ];
    // With the four setup operations, at most 40 operations a case.
    prop::collection::vec(step, 6..=12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(steps in steps()) {
        run_case(&steps).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}
