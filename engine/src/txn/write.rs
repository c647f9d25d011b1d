//! Write transactions: every write validates the business rules and foreign keys and
//! maintains the secondary indexes in the same redb transaction as the row.

use std::ops::Bound;
use std::sync::Arc;

use std::cell::RefCell;
use std::collections::BTreeMap;
use tradestore_schema::{
    AnyRecord, Cash, FOREIGN_KEYS, ForeignKey, Instrument, Money, OnDelete, Order, OrderStatus,
    Position, Record, TableId, Trade, Value, codec, portfolio, rules,
};

use super::ops::{ReadOps, Source, Visit, primary_keys_in};
use super::read::find_index;
use super::snapshot::Snapshot;
use crate::commit::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::keys;
use crate::layout::IndexSpec;
use crate::lock::{LockManager, TxId};
use crate::state::{Entry, OKey, space_of_table};

/// Who is writing: the public API enforces the domain's life cycle; a cascade is the
/// engine's own derived write. (A fill writes its rows through `record_fill`'s own checks,
/// a restore through [`crate::bulk`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Api,
    Cascade,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Absent,
    Any,
}

/// What recording a fill changed, all in one atomic write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillOutcome {
    /// The order after the fill (filled quantity and status).
    pub order: Order,
    /// The account's position in the instrument after the fill.
    pub position: Position,
    /// The account's cash in the instrument's currency after the fill.
    pub cash: Cash,
}

/// A key range a transaction scanned: space, lower and upper bound.
pub(crate) type ScannedRange = (u16, Bound<Vec<u8>>, Bound<Vec<u8>>);

/// What a write transaction read: the keys it looked up and the key ranges it scanned.
/// Commit validates it against every transaction committed since the snapshot.
#[derive(Default, Debug)]
pub(crate) struct ReadSet {
    /// Keys read one by one, each with what the snapshot held: a second read of the same
    /// row (a fill's foreign keys name rows it has just read) is answered from here.
    pub points: BTreeMap<OKey, Option<Arc<[u8]>>>,
    pub ranges: Vec<ScannedRange>,
}

impl ReadSet {
    /// Whether a write of `key` in `space` falls in a range that was scanned.
    pub(crate) fn scanned(&self, space: u16, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(s, lo, hi)| *s == space && in_range(key, lo, hi))
    }
}

/// A write transaction. Created by [`Store::write`](crate::Store::write); it runs on the
/// caller's thread against a snapshot, with a private write set (its reads see its own
/// writes). Its changes become visible and durable together when the closure returns `Ok`
/// and the commit validates; they vanish if it returns `Err`.
pub struct WriteTx {
    locks: LockGuard,
    snap: Snapshot,
    writes: BTreeMap<OKey, Entry>,
    /// Row writes so far (inserts, replacements, deletes; index entries aside), each one
    /// counted even when it rewrites a row this transaction already wrote.
    row_writes: u64,
    reads: RefCell<ReadSet>,
    shared: Arc<Shared>,
    max_value_bytes: usize,
    mode: Mode,
}

/// The pessimistic locks of one transaction: released when dropped (after its commit, or
/// when it aborts or panics).
pub(crate) struct LockGuard {
    pub manager: Arc<LockManager>,
    pub tx: TxId,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.manager.release_all(self.tx);
    }
}

/// The parts of a finished write transaction that commit needs.
pub(crate) struct WriteParts {
    pub writes: BTreeMap<OKey, Entry>,
    pub reads: ReadSet,
    pub snapshot_seq: u64,
}

impl WriteTx {
    pub(crate) fn new(
        snap: Snapshot,
        shared: Arc<Shared>,
        max_value_bytes: usize,
        locks: LockGuard,
    ) -> WriteTx {
        WriteTx {
            locks,
            snap,
            writes: BTreeMap::new(),
            row_writes: 0,
            reads: RefCell::new(ReadSet::default()),
            shared,
            max_value_bytes,
            mode: Mode::Api,
        }
    }

    pub(crate) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// The transaction's parts for commit, and its locks, to release once the commit is
    /// done.
    pub(crate) fn into_parts(self) -> (WriteParts, LockGuard) {
        let parts = WriteParts {
            snapshot_seq: self.snap.seq,
            writes: self.writes,
            reads: self.reads.into_inner(),
        };
        (parts, self.locks)
    }

    /// Takes an exclusive pessimistic lock on `key` (say `b"account/7"`) until this
    /// transaction commits or aborts, waiting while another transaction holds it. Two
    /// transactions waiting for each other is a deadlock: the younger gets a retryable
    /// [`ErrorKind::Deadlock`]; a wait longer than `lock_timeout_ms` is an
    /// [`ErrorKind::Capacity`] error. Use it around read-modify-write of hot rows
    /// (a transfer between accounts) to wait instead of failing validation.
    ///
    /// Locking before the transaction reads or writes anything also moves its snapshot to
    /// the moment the lock was granted, so it sees what the previous holder committed.
    pub fn lock(&mut self, key: &[u8]) -> Result<()> {
        self.locks.manager.lock(self.locks.tx, key)?;
        let untouched = {
            let reads = self.reads.get_mut();
            self.writes.is_empty() && reads.points.is_empty() && reads.ranges.is_empty()
        };
        if untouched {
            self.snap = self.shared.snapshot()?;
        }
        Ok(())
    }

    fn put_entry(&mut self, space: u16, key: Vec<u8>, entry: Entry) {
        if space < crate::state::INDEX_BASE {
            self.row_writes += 1;
        }
        self.writes.insert((space, key), entry);
    }

    fn index_space(&self, spec: &IndexSpec) -> Result<u16> {
        self.snap.space(Source::Index(spec))
    }

    /// Inserts a new row; a row with the same primary key is a constraint error.
    ///
    /// Trades and positions are derived by [`WriteTx::record_fill`] and cannot be inserted
    /// directly; an order starts `new` (or `rejected`) with nothing filled.
    pub fn insert<R: Record>(&mut self, record: &R) -> Result<()> {
        self.write(record.clone().into_any(), Expect::Absent, self.mode)
            .map(|_| ())
    }

    /// Inserts or replaces a row, returning the previous one. An order update must follow
    /// the status machine and keep its identity; its filled quantity changes only through
    /// fills.
    pub fn put<R: Record>(&mut self, record: &R) -> Result<Option<R>> {
        let old = self.write(record.clone().into_any(), Expect::Any, self.mode)?;
        old.map(|b| codec::decode::<R>(&b).map_err(Error::from))
            .transpose()
    }

    /// Deletes the row with this primary key, returning it. A row referenced under a
    /// `restrict` foreign key cannot be deleted; `cascade` children go with it.
    pub fn delete<R: Record>(&mut self, key: &[Value]) -> Result<Option<R>> {
        let old = self.delete_row(R::TABLE, &keys::encode(key), self.mode)?;
        old.map(|b| codec::decode::<R>(&b).map_err(Error::from))
            .transpose()
    }

    /// Inserts (`replace` false: a row with the key is an error) or puts a record of any
    /// table, validated as [`WriteTx::insert`] and [`WriteTx::put`] validate.
    pub(crate) fn write_any(&mut self, record: AnyRecord, replace: bool) -> Result<()> {
        let expect = if replace { Expect::Any } else { Expect::Absent };
        self.write(record, expect, self.mode).map(|_| ())
    }

    /// Row writes so far: inserts, replacements and deletes (cascaded ones included), each
    /// counted, also when it rewrites a row this transaction wrote before.
    pub(crate) fn row_writes(&self) -> u64 {
        self.row_writes
    }

    /// Deletes the row of `table` with this primary key, as [`WriteTx::delete`] does;
    /// returns whether there was one.
    pub(crate) fn delete_any(&mut self, table: TableId, key: &[Value]) -> Result<bool> {
        Ok(self
            .delete_row(table, &keys::encode(key), self.mode)?
            .is_some())
    }

    /// A new id for a table keyed by `id`, larger than every id committed so far. Ids come
    /// from a counter outside the transaction (so concurrent transactions never conflict on
    /// it): an aborted transaction leaves a gap.
    pub fn next_id(&self, table: TableId) -> Result<u64> {
        self.shared.ids.next(table)
    }

    /// Records a fill as one atomic write: the trade row, the order's filled quantity and
    /// status, the account's position (quantity, cost basis, realised P&L) and its cash in
    /// the instrument's currency. The fills of one position must come in increasing id
    /// order: a position is the fold of its fills in id order.
    pub fn record_fill(&mut self, trade: &Trade) -> Result<FillOutcome> {
        let old_order: Order = self.get_id(trade.order_id)?.ok_or_else(|| {
            Error::constraint(format!(
                "trade {}: order {} does not exist",
                trade.id, trade.order_id
            ))
        })?;
        let instrument: Instrument = self.get_id(old_order.instrument)?.ok_or_else(|| {
            Error::corruption(format!(
                "order {} references missing instrument {}",
                old_order.id, old_order.instrument
            ))
        })?;
        rules::validate_fill(trade, &old_order, &instrument)?;
        let order = rules::order_after_fill(&old_order, trade);
        rules::validate_order(&order, &instrument)?;
        let old_position: Option<Position> =
            self.get(&[Value::U64(trade.account), Value::U64(trade.instrument)])?;
        let position = portfolio::apply_fill(old_position.as_ref(), trade)?;
        let cash_key = [
            Value::U64(trade.account),
            Value::Text(instrument.currency.clone()),
        ];
        let old_cash: Option<Cash> = self.get(&cash_key)?;
        let delta = portfolio::cash_delta(trade)?;
        let amount = old_cash
            .as_ref()
            .map_or(Money::ZERO, |c| c.amount)
            .checked_add(delta)
            .ok_or_else(|| {
                Error::constraint(format!(
                    "trade {}: cash of account {} would overflow",
                    trade.id, trade.account
                ))
            })?;
        let cash = Cash {
            account: trade.account,
            currency: instrument.currency,
            amount,
        };
        rules::validate_cash(&cash)?;
        // Every row this fill writes, with the old row it read above: no row is read or
        // decoded twice. The foreign keys need no lookups either. The trade names the order
        // (read above); the order, the position and the cash name the order's account and
        // instrument (`validate_fill` checked the trade's), and the instrument was read. The
        // account exists because the order does: an account with orders cannot be deleted
        // (restrict). Any transaction that deletes or changes the order conflicts with this
        // one, which read it.
        let trade_pk = keys::id_key(trade.id).to_vec();
        if self.get_shared(TableId::Trades, &trade_pk, |b| Ok(b.is_some()))? {
            return Err(Error::constraint(format!(
                "trades {}: a row with this key already exists",
                trade.id
            )));
        }
        // All four are encoded, their sizes and unique indexes checked, before the first is
        // written: a refused fill leaves no part of itself in the transaction.
        let rows = [
            (trade.clone().into_any(), trade_pk, None),
            (
                order.clone().into_any(),
                keys::id_key(order.id).to_vec(),
                Some(old_order.into_any()),
            ),
            (
                position.clone().into_any(),
                keys::encode(&position.primary_key()),
                old_position.map(Position::into_any),
            ),
            (
                cash.clone().into_any(),
                keys::encode(&cash.primary_key()),
                old_cash.map(Cash::into_any),
            ),
        ];
        let mut encoded = Vec::with_capacity(rows.len());
        for (new, pk, old) in &rows {
            encoded.push(self.encoded(new)?);
            self.check_unique_entries(new, pk, old.as_ref())?;
        }
        for ((new, pk, old), bytes) in rows.into_iter().zip(encoded) {
            self.put_row(&new, bytes, pk, old.as_ref())?;
        }
        Ok(FillOutcome {
            order,
            position,
            cash,
        })
    }

    /// Validates and writes one row with its index entries. Returns the old row's bytes.
    fn write(&mut self, new: AnyRecord, expect: Expect, mode: Mode) -> Result<Option<Vec<u8>>> {
        let table = new.table();
        let pk = keys::encode(&new.primary_key());
        let old_bytes = self.raw_get(table, &pk)?;
        if expect == Expect::Absent && old_bytes.is_some() {
            return Err(Error::constraint(format!(
                "{table} {}: a row with this key already exists",
                show_key(&new)
            )));
        }
        let old = old_bytes
            .as_deref()
            .map(|b| codec::decode_any(table, b))
            .transpose()?;
        if old.as_ref() == Some(&new) {
            return Ok(old_bytes);
        }
        self.validate(&new, old.as_ref(), mode)?;
        let bytes = self.encoded(&new)?;
        self.check_unique_entries(&new, &pk, old.as_ref())?;
        self.put_row(&new, bytes, pk, old.as_ref())?;
        Ok(old_bytes)
    }

    /// A row's record, encoded, within `max_value_bytes`.
    fn encoded(&self, new: &AnyRecord) -> Result<Arc<[u8]>> {
        let bytes = codec::encode_any(new);
        if bytes.len() > self.max_value_bytes {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!(
                    "{} {}: encoded record is {} bytes, over max_value_bytes = {}",
                    new.table(),
                    show_key(new),
                    bytes.len(),
                    self.max_value_bytes
                ),
            ));
        }
        Ok(Arc::from(bytes))
    }

    /// Checks the unique indexes whose entry `new` adds (a row over `old`, under `pk`).
    fn check_unique_entries(
        &self,
        new: &AnyRecord,
        pk: &[u8],
        old: Option<&AnyRecord>,
    ) -> Result<()> {
        let table = new.table();
        for spec in self
            .snap
            .indexes
            .iter()
            .filter(|s| s.def.table == table && s.def.unique)
        {
            let new_key = entry_key(spec, new, pk);
            if old.map(|o| entry_key(spec, o, pk)) != Some(new_key) {
                self.check_unique(spec, new, pk)?;
            }
        }
        Ok(())
    }

    /// Writes a validated row (`bytes` is its record, its unique indexes checked) over `old` (the row under `pk` as
    /// this transaction sees it), with its index entries: the old row's entries that change
    /// are deleted.
    fn put_row(
        &mut self,
        new: &AnyRecord,
        bytes: Arc<[u8]>,
        pk: Vec<u8>,
        old: Option<&AnyRecord>,
    ) -> Result<()> {
        let table = new.table();
        if old == Some(new) {
            return Ok(());
        }
        let indexes = Arc::clone(&self.snap.indexes);
        for spec in indexes.iter().filter(|s| s.def.table == table) {
            let new_key = entry_key(spec, new, &pk);
            let old_key = old.map(|o| entry_key(spec, o, &pk));
            let space = self.index_space(spec)?;
            if old_key.as_ref() == Some(&new_key) {
                // Same entry; a covering one carries the row, so it takes the new one.
                if spec.def.covering {
                    self.put_entry(space, new_key, Entry::Put(Arc::clone(&bytes)));
                }
                continue;
            }
            if let Some(k) = old_key {
                self.put_entry(space, k, Entry::Del);
            }
            let value = if spec.def.covering {
                Arc::clone(&bytes)
            } else {
                Arc::from(&[][..])
            };
            self.put_entry(space, new_key, Entry::Put(value));
        }
        if let Some(id) = new.column("id").and_then(|v| v.as_u64())
            && table.primary_key() == ["id"]
        {
            self.shared.ids.observe(table, id);
        }
        self.put_entry(space_of_table(table), pk, Entry::Put(bytes));
        Ok(())
    }

    fn check_unique(&self, spec: &IndexSpec, new: &AnyRecord, pk: &[u8]) -> Result<()> {
        let prefix = spec.prefix_of(|c| new.column(c));
        let end = keys::prefix_end(&prefix);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut clash = None;
        self.raw_range(
            Source::Index(spec),
            (Bound::Included(&prefix), end),
            false,
            &mut |k, _| {
                if &k[prefix.len()..] != pk {
                    clash = Some(keys::decode(&k[prefix.len()..])?);
                }
                Ok(clash.is_none())
            },
        )?;
        match clash {
            Some(other) => Err(Error::constraint(format!(
                "{} {}: unique index {} already has this value for the row with key {}",
                new.table(),
                show_key(new),
                spec.def.name,
                show_values(&other)
            ))),
            None => Ok(()),
        }
    }

    fn validate(&self, new: &AnyRecord, old: Option<&AnyRecord>, mode: Mode) -> Result<()> {
        for fk in FOREIGN_KEYS.iter().filter(|fk| fk.child == new.table()) {
            let value = new.column(fk.column).unwrap_or(Value::Null);
            let parent = keys::encode(std::slice::from_ref(&value));
            if !self.get_shared(fk.parent, &parent, |b| Ok(b.is_some()))? {
                return Err(Error::constraint(format!(
                    "{} {}: {} {value} does not exist (foreign key {}.{} -> {})",
                    new.table(),
                    show_key(new),
                    fk.column,
                    fk.child,
                    fk.column,
                    fk.parent
                )));
            }
        }
        match new {
            AnyRecord::Instruments(i) => {
                rules::validate_instrument(i)?;
                if let Some(AnyRecord::Instruments(old)) = old
                    && (old.tick_size, old.lot_size, &old.currency)
                        != (i.tick_size, i.lot_size, &i.currency)
                    && self.is_referenced(TableId::Instruments, &Value::U64(i.id))?
                {
                    return Err(Error::constraint(format!(
                        "instrument {}: tick_size, lot_size and currency cannot change while orders or positions reference it",
                        i.id
                    )));
                }
            }
            AnyRecord::Accounts(a) => rules::validate_account(a)?,
            AnyRecord::Cash(c) => rules::validate_cash(c)?,
            AnyRecord::Orders(o) => {
                let instrument: Instrument = self.get_id(o.instrument)?.ok_or_else(|| {
                    Error::constraint(format!(
                        "order {}: instrument {} does not exist",
                        o.id, o.instrument
                    ))
                })?;
                rules::validate_order(o, &instrument)?;
                if mode == Mode::Api {
                    match old {
                        Some(AnyRecord::Orders(old)) => {
                            rules::validate_order_update(old, o)?;
                            if old.price != o.price && o.filled_quantity.0 > 0 {
                                let scan = super::IndexScan::prefix([Value::U64(o.id)]);
                                for t in self.index_scan::<Trade>("trades_by_order", &scan)? {
                                    rules::fill_within_limit(&t, o)?;
                                }
                            }
                            if old.filled_quantity != o.filled_quantity {
                                return Err(Error::constraint(format!(
                                    "order {}: filled_quantity changes only by recording fills",
                                    o.id
                                )));
                            }
                        }
                        _ => {
                            if !matches!(o.status, OrderStatus::New | OrderStatus::Rejected) {
                                return Err(Error::constraint(format!(
                                    "order {}: a new order starts as new or rejected, not {}",
                                    o.id, o.status
                                )));
                            }
                            let account: tradestore_schema::Account =
                                self.get_id(o.account)?.ok_or_else(|| {
                                    Error::constraint(format!(
                                        "order {}: account {} does not exist",
                                        o.id, o.account
                                    ))
                                })?;
                            if account.status != tradestore_schema::AccountStatus::Active {
                                return Err(Error::constraint(format!(
                                    "order {}: account {} is {} and cannot place orders",
                                    o.id, account.id, account.status
                                )));
                            }
                        }
                    }
                }
            }
            AnyRecord::Trades(t) => {
                if mode == Mode::Api {
                    return Err(Error::constraint(format!(
                        "trade {}: fills are written with record_fill",
                        t.id
                    )));
                }
            }
            AnyRecord::Positions(p) => {
                if mode == Mode::Api {
                    return Err(Error::constraint(format!(
                        "position of account {} in instrument {}: positions change only by recording fills",
                        p.account, p.instrument
                    )));
                }
            }
        }
        Ok(())
    }

    /// Deletes a row, its index entries, and applies the foreign keys' on-delete actions.
    fn delete_row(&mut self, table: TableId, pk: &[u8], mode: Mode) -> Result<Option<Vec<u8>>> {
        if mode == Mode::Api && matches!(table, TableId::Trades | TableId::Positions) {
            return Err(Error::constraint(format!(
                "{table} are history derived from fills and cannot be deleted"
            )));
        }
        let Some(old_bytes) = self.raw_get(table, pk)? else {
            return Ok(None);
        };
        let old = codec::decode_any(table, &old_bytes)?;
        let key_values = old.primary_key();
        for fk in FOREIGN_KEYS.iter().filter(|fk| fk.parent == table) {
            let parent_value = key_values.first().cloned().unwrap_or(Value::Null);
            let limit = if fk.on_delete == OnDelete::Restrict {
                1
            } else {
                usize::MAX
            };
            let children = self.children(fk, &parent_value, limit)?;
            match fk.on_delete {
                OnDelete::Restrict if !children.is_empty() => {
                    return Err(Error::constraint(format!(
                        "{table} {}: still referenced by {} (foreign key {}.{} -> {table} is restrict)",
                        show_values(&key_values),
                        fk.child,
                        fk.child,
                        fk.column
                    )));
                }
                OnDelete::Restrict => {}
                OnDelete::Cascade => {
                    for child in children {
                        self.delete_row(fk.child, &child, Mode::Cascade)?;
                    }
                }
            }
        }
        let indexes = Arc::clone(&self.snap.indexes);
        for spec in indexes.iter().filter(|s| s.def.table == table) {
            let k = entry_key(spec, &old, pk);
            let space = self.index_space(spec)?;
            self.put_entry(space, k, Entry::Del);
        }
        self.put_entry(space_of_table(table), pk.to_vec(), Entry::Del);
        Ok(Some(old_bytes))
    }

    /// Whether any row references this row of `table` through a foreign key.
    fn is_referenced(&self, table: TableId, key: &Value) -> Result<bool> {
        for fk in FOREIGN_KEYS.iter().filter(|fk| fk.parent == table) {
            if !self.children(fk, key, 1)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Primary keys of the rows of `fk.child` whose `fk.column` equals `parent`: through the
    /// child's primary key or an index when one leads with the column, else by a scan.
    fn children(&self, fk: &ForeignKey, parent: &Value, limit: usize) -> Result<Vec<Vec<u8>>> {
        let prefix = keys::encode(std::slice::from_ref(parent));
        let end = keys::prefix_end(&prefix);
        let range = (
            Bound::Included(prefix.as_slice()),
            end.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let mut out = Vec::new();
        if fk.child.primary_key().first() == Some(&fk.column) {
            self.raw_range(Source::Table(fk.child), range, false, &mut |k, _| {
                out.push(k.to_vec());
                Ok(out.len() < limit)
            })?;
        } else if let Some(spec) = self
            .snap
            .indexes
            .iter()
            .find(|s| s.ready && s.def.table == fk.child && s.leads_with(fk.column))
        {
            out = primary_keys_in(self, spec, range, false, Some(limit))?;
        } else {
            let table = fk.child;
            self.raw_range(
                Source::Table(table),
                (Bound::Unbounded, Bound::Unbounded),
                false,
                &mut |k, v| {
                    if codec::decode_any(table, v)?.column(fk.column).as_ref() == Some(parent) {
                        out.push(k.to_vec());
                    }
                    Ok(out.len() < limit)
                },
            )?;
        }
        Ok(out)
    }

    /// The number of entries of an index, as this transaction sees it.
    pub fn index_len(&self, spec: &IndexSpec) -> Result<u64> {
        let mut n = 0u64;
        self.raw_range(
            Source::Index(spec),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |_, _| {
                n += 1;
                Ok(true)
            },
        )?;
        Ok(n)
    }

    /// Records a scanned range in the read set.
    fn note_range(&self, space: u16, range: (Bound<&[u8]>, Bound<&[u8]>)) {
        let (lo, hi) = (range.0.map(<[u8]>::to_vec), range.1.map(<[u8]>::to_vec));
        self.reads.borrow_mut().ranges.push((space, lo, hi));
    }

    fn own_range(&self, space: u16, range: (Bound<&[u8]>, Bound<&[u8]>)) -> Vec<(Vec<u8>, Entry)> {
        let lo = range.0.map(|k| (space, k.to_vec()));
        let hi = match range.1 {
            Bound::Unbounded => Bound::Excluded((space + 1, Vec::new())),
            b => b.map(|k| (space, k.to_vec())),
        };
        let lo = match lo {
            Bound::Unbounded => Bound::Included((space, Vec::new())),
            b => b,
        };
        if !ordered(&lo, &hi) {
            return Vec::new();
        }
        self.writes
            .range((lo, hi))
            .map(|((_, k), e)| (k.clone(), e.clone()))
            .collect()
    }
}

fn in_range(k: &[u8], lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    let above = match lo {
        Bound::Included(l) => k >= l.as_slice(),
        Bound::Excluded(l) => k > l.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match hi {
        Bound::Included(h) => k <= h.as_slice(),
        Bound::Excluded(h) => k < h.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

fn ordered<T: Ord>(lo: &Bound<T>, hi: &Bound<T>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    }
}

impl WriteTx {
    /// `f` of the row's bytes as this transaction sees them: its own write, else what it
    /// read before, else the snapshot's (remembered in the read set). The bytes are shared,
    /// never copied.
    fn get_shared<T>(
        &self,
        table: TableId,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<T>,
    ) -> Result<T> {
        let k = (space_of_table(table), key.to_vec());
        if let Some(e) = self.writes.get(&k) {
            return f(match e {
                Entry::Put(v) => Some(v),
                Entry::Del => None,
            });
        }
        if let Some(seen) = self.reads.borrow().points.get(&k) {
            return f(seen.as_deref());
        }
        let out = self.snap.get_shared(table, key)?;
        let r = f(out.as_deref());
        self.reads.borrow_mut().points.insert(k, out);
        r
    }
}

impl ReadOps for WriteTx {
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_shared(table, key, |b| Ok(b.map(<[u8]>::to_vec)))
    }

    fn get_encoded<R: tradestore_schema::Record>(&self, key: &[u8]) -> Result<Option<R>> {
        self.get_shared(R::TABLE, key, |b| {
            Ok(b.map(codec::decode::<R>).transpose()?)
        })
    }

    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        let space = self.snap.space(source)?;
        let own = self.own_range(space, range);
        let mut upper: std::collections::BTreeMap<Vec<u8>, Entry> =
            self.snap.overlay_range(space, range).into_iter().collect();
        upper.extend(own);
        let stopped =
            self.snap
                .merged_range(source, range, reverse, upper.into_iter().collect(), f)?;
        let extent = match (&stopped, reverse) {
            (None, _) => range,
            (Some(k), false) => (range.0, Bound::Included(k.as_slice())),
            (Some(k), true) => (Bound::Included(k.as_slice()), range.1),
        };
        self.note_range(space, extent);
        Ok(())
    }

    fn count(&self, table: TableId) -> Result<u64> {
        let mut n = i128::from(self.snap.count(table)?);
        for (k, e) in self.own_range(space_of_table(table), (Bound::Unbounded, Bound::Unbounded)) {
            let before = self.snap.get(table, &k)?.is_some();
            match (e, before) {
                (Entry::Put(_), false) => n += 1,
                (Entry::Del, true) => n -= 1,
                _ => {}
            }
        }
        self.note_range(space_of_table(table), (Bound::Unbounded, Bound::Unbounded));
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn index(&self, name: &str) -> Result<IndexSpec> {
        find_index(&self.snap.indexes, name)
    }
}

pub(crate) fn entry_key(spec: &IndexSpec, r: &AnyRecord, pk: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + pk.len());
    write_entry_key(&mut k, spec, r, pk);
    k
}

/// Appends the key of `r`'s entry in `spec` (its indexed values, then its primary key
/// `pk`) to `out`.
pub(crate) fn write_entry_key(out: &mut Vec<u8>, spec: &IndexSpec, r: &AnyRecord, pk: &[u8]) {
    spec.write_prefix(out, |c| r.column(c));
    out.extend_from_slice(pk);
}

fn show_key(r: &AnyRecord) -> String {
    show_values(&r.primary_key())
}

pub(crate) fn show_values(v: &[Value]) -> String {
    let parts: Vec<String> = v.iter().map(|v| v.to_string()).collect();
    parts.join("/")
}
