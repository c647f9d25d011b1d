//! Write transactions: every write validates the business rules and foreign keys and
//! maintains the secondary indexes in the same redb transaction as the row.

use std::ops::Bound;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata, Table};
use tradestore_schema::{
    AnyRecord, Cash, FOREIGN_KEYS, ForeignKey, Instrument, Money, OnDelete, Order, OrderStatus,
    Position, Record, TableId, Trade, Value, codec, portfolio, rules,
};

use super::ops::{ReadOps, Source, Visit, primary_keys_in};
use super::read::find_index;
use super::walk;
use crate::error::{Error, ErrorKind, Result};
use crate::keys;
use crate::layout::{self, IndexSpec};

/// Who is writing: the public API enforces the domain's life cycle; a restore loads rows
/// as they were; a fill and a cascade are the engine's own derived writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Api,
    Fill,
    Restore,
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

/// A write transaction. Created by [`Store::write`](crate::Store::write); its changes
/// become visible and durable together when the closure returns `Ok`, and vanish if it
/// returns `Err`.
pub struct WriteTx {
    txn: redb::WriteTransaction,
    indexes: Arc<Vec<IndexSpec>>,
    max_value_bytes: usize,
    mode: Mode,
}

impl WriteTx {
    pub(crate) fn new(
        txn: redb::WriteTransaction,
        indexes: Arc<Vec<IndexSpec>>,
        max_value_bytes: usize,
    ) -> WriteTx {
        WriteTx {
            txn,
            indexes,
            max_value_bytes,
            mode: Mode::Api,
        }
    }

    pub(crate) fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    pub(crate) fn into_inner(self) -> redb::WriteTransaction {
        self.txn
    }

    fn table(&self, t: TableId) -> Result<Table<'_, &'static [u8], &'static [u8]>> {
        Ok(self.txn.open_table(layout::data_table(t))?)
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

    /// The next unused id of a table keyed by `id` (one more than the largest).
    pub fn next_id(&self, table: TableId) -> Result<u64> {
        if table.primary_key() != ["id"] {
            return Err(Error::invalid(format!("{table} is not keyed by an id")));
        }
        match self.last_id(table)? {
            None => Ok(1),
            Some(id) => id
                .checked_add(1)
                .ok_or_else(|| Error::new(ErrorKind::Capacity, format!("{table} ids are used up"))),
        }
    }

    fn last_id(&self, table: TableId) -> Result<Option<u64>> {
        let mut last = None;
        self.raw_range(
            Source::Table(table),
            (Bound::Unbounded, Bound::Unbounded),
            true,
            &mut |k, _| {
                last = keys::decode(k)?.first().and_then(Value::as_u64);
                Ok(false)
            },
        )?;
        Ok(last)
    }

    /// Records a fill as one atomic write: the trade row, the order's filled quantity and
    /// status, the account's position (quantity, cost basis, realised P&L) and its cash in
    /// the instrument's currency. Trade ids must increase: positions are folds of fills in
    /// id order.
    pub fn record_fill(&mut self, trade: &Trade) -> Result<FillOutcome> {
        let order: Order = self.get_id(trade.order_id)?.ok_or_else(|| {
            Error::constraint(format!(
                "trade {}: order {} does not exist",
                trade.id, trade.order_id
            ))
        })?;
        let instrument: Instrument = self.get_id(order.instrument)?.ok_or_else(|| {
            Error::corruption(format!(
                "order {} references missing instrument {}",
                order.id, order.instrument
            ))
        })?;
        if let Some(last) = self.last_id(TableId::Trades)?
            && trade.id <= last
        {
            return Err(Error::constraint(format!(
                "trade {}: trade ids must increase, and trade {last} is already recorded",
                trade.id
            )));
        }
        rules::validate_fill(trade, &order, &instrument)?;
        let order = rules::order_after_fill(&order, trade);
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
        self.write(trade.clone().into_any(), Expect::Absent, Mode::Fill)?;
        self.write(order.clone().into_any(), Expect::Any, Mode::Fill)?;
        self.write(position.clone().into_any(), Expect::Any, Mode::Fill)?;
        self.write(cash.clone().into_any(), Expect::Any, Mode::Fill)?;
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
        let bytes = codec::encode_any(&new);
        if bytes.len() > self.max_value_bytes {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!(
                    "{table} {}: encoded record is {} bytes, over max_value_bytes = {}",
                    show_key(&new),
                    bytes.len(),
                    self.max_value_bytes
                ),
            ));
        }
        let indexes = Arc::clone(&self.indexes);
        for spec in indexes.iter().filter(|s| s.def.table == table) {
            let new_key = entry_key(spec, &new, &pk);
            let old_key = old.as_ref().map(|o| entry_key(spec, o, &pk));
            if old_key.as_ref() == Some(&new_key) {
                continue;
            }
            if spec.def.unique {
                self.check_unique(spec, &new, &pk)?;
            }
            let mut t = self.txn.open_table(spec.redb_table())?;
            if let Some(k) = old_key {
                t.remove(k.as_slice())?;
            }
            t.insert(new_key.as_slice(), ())?;
        }
        self.table(table)?.insert(pk.as_slice(), bytes.as_slice())?;
        Ok(old_bytes)
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
            if self
                .raw_get(fk.parent, &keys::encode(std::slice::from_ref(&value)))?
                .is_none()
            {
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
                if mode == Mode::Restore {
                    let order: Order = self.get_id(t.order_id)?.ok_or_else(|| {
                        Error::constraint(format!(
                            "trade {}: order {} does not exist",
                            t.id, t.order_id
                        ))
                    })?;
                    let instrument: Instrument =
                        self.get_id(order.instrument)?.ok_or_else(|| {
                            Error::constraint(format!(
                                "order {}: instrument {} does not exist",
                                order.id, order.instrument
                            ))
                        })?;
                    // A historical fill is checked as if it were the order's first one; the
                    // totals are checked over the whole store once every row is in.
                    let fresh = Order {
                        status: OrderStatus::New,
                        filled_quantity: tradestore_schema::Quantity::ZERO,
                        ..order
                    };
                    rules::validate_fill(t, &fresh, &instrument)?;
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
        let indexes = Arc::clone(&self.indexes);
        for spec in indexes.iter().filter(|s| s.def.table == table) {
            let k = entry_key(spec, &old, pk);
            self.txn
                .open_table(spec.redb_table())?
                .remove(k.as_slice())?;
        }
        self.table(table)?.remove(pk)?;
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
            .indexes
            .iter()
            .find(|s| s.def.table == fk.child && s.leads_with(fk.column))
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

    /// The number of entries of an index.
    pub fn index_len(&self, spec: &IndexSpec) -> Result<u64> {
        Ok(self.txn.open_table(spec.redb_table())?.len()?)
    }
}

impl ReadOps for WriteTx {
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table(table)?.get(key)?.map(|g| g.value().to_vec()))
    }

    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()> {
        match source {
            Source::Table(t) => walk::rows(&self.table(t)?, range, reverse, f),
            Source::Index(spec) => {
                walk::entries(&self.txn.open_table(spec.redb_table())?, range, reverse, f)
            }
        }
    }

    fn count(&self, table: TableId) -> Result<u64> {
        Ok(self.table(table)?.len()?)
    }

    fn index(&self, name: &str) -> Result<IndexSpec> {
        find_index(&self.indexes, name)
    }
}

pub(crate) fn entry_key(spec: &IndexSpec, r: &AnyRecord, pk: &[u8]) -> Vec<u8> {
    let mut k = spec.prefix_of(|c| r.column(c));
    k.extend_from_slice(pk);
    k
}

fn show_key(r: &AnyRecord) -> String {
    show_values(&r.primary_key())
}

pub(crate) fn show_values(v: &[Value]) -> String {
    let parts: Vec<String> = v.iter().map(|v| v.to_string()).collect();
    parts.join("/")
}
