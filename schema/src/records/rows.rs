//! One struct per table, and the [`Record`] trait that storage uses to see their columns.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::enums::{AccountStatus, OrderKind, OrderStatus, Side, TimeInForce};
use crate::fixed::{Money, Price, Quantity};
use crate::table::TableId;
use crate::value::Value;

/// A row of one of the domain's tables.
pub trait Record:
    Serialize + DeserializeOwned + Clone + PartialEq + Debug + Send + Sync + 'static
{
    /// The table this record lives in.
    const TABLE: TableId;

    /// The value of the named column, `None` when the table has no such column.
    fn column(&self, name: &str) -> Option<Value>;

    /// The value of the column at position `i` of the table's columns
    /// ([`TableId::columns`]), `None` past the last: [`Record::column`] without the name
    /// lookup, for rows read by the hundred.
    fn column_at(&self, i: usize) -> Option<Value> {
        Self::TABLE
            .columns()
            .get(i)
            .and_then(|c| self.column(c.name))
    }

    /// The primary key's values, in key order.
    fn primary_key(&self) -> Vec<Value> {
        Self::TABLE
            .primary_key()
            .iter()
            .map(|c| self.column(c).unwrap_or(Value::Null))
            .collect()
    }

    /// Wraps the record in the table-tagged enum.
    fn into_any(self) -> AnyRecord;

    /// Decodes a postcard body without going through serde, for records read by the
    /// hundred (an instrument's latest trades). `None` for anything it does not read to the
    /// last byte; [`crate::codec::decode`] then decodes or refuses the body with postcard,
    /// which stays the reference: a fast path may only ever agree with it.
    fn decode_fast(_body: &[u8]) -> Option<Self> {
        None
    }
}

/// A tradable instrument. Its symbol is unique; orders on it must respect its tick and lot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    /// Primary key.
    pub id: u64,
    /// Unique ticker, e.g. `AAPL`.
    pub symbol: String,
    /// Smallest price increment; limit prices are multiples of it.
    pub tick_size: Price,
    /// Smallest quantity increment; order quantities are multiples of it.
    pub lot_size: Quantity,
    /// The currency its prices are quoted and settled in, e.g. `USD`.
    pub currency: String,
}

/// A trading account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Primary key.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Whether it may trade.
    pub status: AccountStatus,
}

/// An order of an account on an instrument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// Primary key.
    pub id: u64,
    /// The owning account (foreign key).
    pub account: u64,
    /// The instrument (foreign key).
    pub instrument: u64,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub kind: OrderKind,
    /// How long it works.
    pub time_in_force: TimeInForce,
    /// The limit price; `None` for a market order.
    pub price: Option<Price>,
    /// Ordered quantity, > 0.
    pub quantity: Quantity,
    /// Sum of the quantities of its fills, <= quantity.
    pub filled_quantity: Quantity,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// When it was accepted (ns since the epoch, UTC).
    pub created_ts: i64,
    /// When it last changed (ns since the epoch, UTC).
    pub updated_ts: i64,
}

/// A fill: part or all of an order executed at one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trade {
    /// Primary key. Fills are recorded in increasing id order.
    pub id: u64,
    /// The filled order (foreign key).
    pub order_id: u64,
    /// The order's account.
    pub account: u64,
    /// The order's instrument.
    pub instrument: u64,
    /// The order's side.
    pub side: Side,
    /// Execution price.
    pub price: Price,
    /// Executed quantity, > 0.
    pub quantity: Quantity,
    /// Fee charged, in the instrument's currency.
    pub fee: Money,
    /// Execution time (ns since the epoch, UTC).
    pub ts: i64,
}

/// What an account holds of an instrument: the fold of its fills.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// Part of the primary key.
    pub account: u64,
    /// Part of the primary key.
    pub instrument: u64,
    /// Signed: positive long, negative short.
    pub quantity: Quantity,
    /// Cost of the open quantity at average cost, signed like the quantity.
    pub cost_basis: Money,
    /// Profit realised by closing fills, net of all fees.
    pub realized_pnl: Money,
    /// Time of the last fill applied.
    pub updated_ts: i64,
    /// Id of the last fill applied; fills of a position are applied in increasing id order.
    pub last_trade_id: u64,
}

/// An account's balance in one currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cash {
    /// Part of the primary key.
    pub account: u64,
    /// Part of the primary key, e.g. `USD`.
    pub currency: String,
    /// The balance; may go negative (margin).
    pub amount: Money,
}

fn opt_price(p: Option<Price>) -> Value {
    p.map_or(Value::Null, |p| Value::I64(p.0))
}

impl Record for Instrument {
    const TABLE: TableId = TableId::Instruments;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => Value::U64(self.id),
            "symbol" => Value::Text(self.symbol.clone()),
            "tick_size" => Value::I64(self.tick_size.0),
            "lot_size" => Value::I64(self.lot_size.0),
            "currency" => Value::Text(self.currency.clone()),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Instruments(self)
    }
}

impl Record for Account {
    const TABLE: TableId = TableId::Accounts;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => Value::U64(self.id),
            "name" => Value::Text(self.name.clone()),
            "status" => Value::from(self.status.name()),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Accounts(self)
    }
}

impl Record for Order {
    const TABLE: TableId = TableId::Orders;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => Value::U64(self.id),
            "account" => Value::U64(self.account),
            "instrument" => Value::U64(self.instrument),
            "side" => Value::from(self.side.name()),
            "kind" => Value::from(self.kind.name()),
            "time_in_force" => Value::from(self.time_in_force.name()),
            "price" => opt_price(self.price),
            "quantity" => Value::I64(self.quantity.0),
            "filled_quantity" => Value::I64(self.filled_quantity.0),
            "status" => Value::from(self.status.name()),
            "created_ts" => Value::I64(self.created_ts),
            "updated_ts" => Value::I64(self.updated_ts),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Orders(self)
    }
}

impl Record for Trade {
    const TABLE: TableId = TableId::Trades;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "id" => Value::U64(self.id),
            "order_id" => Value::U64(self.order_id),
            "account" => Value::U64(self.account),
            "instrument" => Value::U64(self.instrument),
            "side" => Value::from(self.side.name()),
            "price" => Value::I64(self.price.0),
            "quantity" => Value::I64(self.quantity.0),
            "fee" => Value::I64(self.fee.0),
            "ts" => Value::I64(self.ts),
            _ => return None,
        })
    }
    fn column_at(&self, i: usize) -> Option<Value> {
        Some(match i {
            0 => Value::U64(self.id),
            1 => Value::U64(self.order_id),
            2 => Value::U64(self.account),
            3 => Value::U64(self.instrument),
            4 => Value::from(self.side.name()),
            5 => Value::I64(self.price.0),
            6 => Value::I64(self.quantity.0),
            7 => Value::I64(self.fee.0),
            8 => Value::I64(self.ts),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Trades(self)
    }

    fn decode_fast(body: &[u8]) -> Option<Trade> {
        let mut r = Varints(body);
        let trade = Trade {
            id: r.u64()?,
            order_id: r.u64()?,
            account: r.u64()?,
            instrument: r.u64()?,
            side: match r.variant()? {
                0 => Side::Buy,
                1 => Side::Sell,
                _ => return None,
            },
            price: Price(r.i64()?),
            quantity: Quantity(r.i64()?),
            fee: Money(r.i64()?),
            ts: r.i64()?,
        };
        r.0.is_empty().then_some(trade)
    }
}

impl Record for Position {
    const TABLE: TableId = TableId::Positions;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "account" => Value::U64(self.account),
            "instrument" => Value::U64(self.instrument),
            "quantity" => Value::I64(self.quantity.0),
            "cost_basis" => Value::I64(self.cost_basis.0),
            "realized_pnl" => Value::I64(self.realized_pnl.0),
            "updated_ts" => Value::I64(self.updated_ts),
            "last_trade_id" => Value::U64(self.last_trade_id),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Positions(self)
    }

    fn decode_fast(body: &[u8]) -> Option<Position> {
        let mut r = Varints(body);
        let position = Position {
            account: r.u64()?,
            instrument: r.u64()?,
            quantity: Quantity(r.i64()?),
            cost_basis: Money(r.i64()?),
            realized_pnl: Money(r.i64()?),
            updated_ts: r.i64()?,
            last_trade_id: r.u64()?,
        };
        r.0.is_empty().then_some(position)
    }
}

impl Record for Cash {
    const TABLE: TableId = TableId::Cash;
    fn column(&self, name: &str) -> Option<Value> {
        Some(match name {
            "account" => Value::U64(self.account),
            "currency" => Value::Text(self.currency.clone()),
            "amount" => Value::I64(self.amount.0),
            _ => return None,
        })
    }
    fn into_any(self) -> AnyRecord {
        AnyRecord::Cash(self)
    }
}

/// A record of any table, tagged with its table's name. Its JSON form is the dump line:
/// `{"table":"trades","record":{...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "table",
    content = "record",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum AnyRecord {
    /// A row of `instruments`.
    Instruments(Instrument),
    /// A row of `accounts`.
    Accounts(Account),
    /// A row of `orders`.
    Orders(Order),
    /// A row of `trades`.
    Trades(Trade),
    /// A row of `positions`.
    Positions(Position),
    /// A row of `cash`.
    Cash(Cash),
}

macro_rules! dispatch {
    ($self:expr, $r:ident => $e:expr) => {
        match $self {
            AnyRecord::Instruments($r) => $e,
            AnyRecord::Accounts($r) => $e,
            AnyRecord::Orders($r) => $e,
            AnyRecord::Trades($r) => $e,
            AnyRecord::Positions($r) => $e,
            AnyRecord::Cash($r) => $e,
        }
    };
}

impl AnyRecord {
    /// The record's table.
    pub fn table(&self) -> TableId {
        match self {
            AnyRecord::Instruments(_) => TableId::Instruments,
            AnyRecord::Accounts(_) => TableId::Accounts,
            AnyRecord::Orders(_) => TableId::Orders,
            AnyRecord::Trades(_) => TableId::Trades,
            AnyRecord::Positions(_) => TableId::Positions,
            AnyRecord::Cash(_) => TableId::Cash,
        }
    }

    /// The value of the named column.
    pub fn column(&self, name: &str) -> Option<Value> {
        dispatch!(self, r => r.column(name))
    }

    /// The value of the column at position `i` of its table's columns.
    pub fn column_at(&self, i: usize) -> Option<Value> {
        dispatch!(self, r => r.column_at(i))
    }

    /// The primary key's values.
    pub fn primary_key(&self) -> Vec<Value> {
        dispatch!(self, r => r.primary_key())
    }
}

/// Reads postcard's integers by its rules (LEB128 varints; zigzag for signed; at most 10
/// bytes for a u64 whose last byte carries 1 bit, 5 for a u32 variant index whose last byte
/// carries 4), for [`Record::decode_fast`].
struct Varints<'a>(&'a [u8]);

impl Varints<'_> {
    #[inline(always)]
    fn varint(&mut self, max_bytes: usize, last_max: u8) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..max_bytes {
            let b = *self.0.get(i)?;
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i == max_bytes - 1 && b > last_max {
                    return None;
                }
                self.0 = &self.0[i + 1..];
                return Some(out);
            }
        }
        None
    }

    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.varint(10, 1)
    }

    #[inline]
    fn i64(&mut self) -> Option<i64> {
        let n = self.u64()?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    #[inline]
    fn variant(&mut self) -> Option<u64> {
        self.varint(5, 15)
    }
}
