//! The tables of the trading domain, their columns, primary keys, built-in secondary
//! indexes and foreign keys. Storage reads these declarations; it adds nothing of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the domain's tables. The discriminant is part of the on-disk format (journal
/// records and catalog entries name tables by it): never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TableId {
    /// Tradable instruments.
    Instruments = 1,
    /// Trading accounts.
    Accounts = 2,
    /// Orders.
    Orders = 3,
    /// Fills.
    Trades = 4,
    /// Positions per account and instrument.
    Positions = 5,
    /// Cash balances per account and currency.
    Cash = 6,
}

impl TableId {
    /// Every table, parents before children (the order restore and dump use).
    pub const ALL: [TableId; 6] = [
        TableId::Instruments,
        TableId::Accounts,
        TableId::Orders,
        TableId::Trades,
        TableId::Positions,
        TableId::Cash,
    ];

    /// The table's name as used in dumps, SQL and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            TableId::Instruments => "instruments",
            TableId::Accounts => "accounts",
            TableId::Orders => "orders",
            TableId::Trades => "trades",
            TableId::Positions => "positions",
            TableId::Cash => "cash",
        }
    }

    /// The table with this on-disk discriminant.
    pub fn from_u8(v: u8) -> Option<TableId> {
        TableId::ALL.into_iter().find(|t| *t as u8 == v)
    }

    /// The table's columns, in record order.
    pub fn columns(self) -> &'static [Column] {
        use ColumnType::*;
        macro_rules! c {
            ($name:literal, $ty:ident) => {
                Column {
                    name: $name,
                    ty: $ty,
                }
            };
        }
        match self {
            TableId::Instruments => &[
                c!("id", Id),
                c!("symbol", Text),
                c!("tick_size", Price),
                c!("lot_size", Quantity),
                c!("currency", Text),
            ],
            TableId::Accounts => &[c!("id", Id), c!("name", Text), c!("status", Enum)],
            TableId::Orders => &[
                c!("id", Id),
                c!("account", Id),
                c!("instrument", Id),
                c!("side", Enum),
                c!("kind", Enum),
                c!("time_in_force", Enum),
                c!("price", Price),
                c!("quantity", Quantity),
                c!("filled_quantity", Quantity),
                c!("status", Enum),
                c!("created_ts", Timestamp),
                c!("updated_ts", Timestamp),
            ],
            TableId::Trades => &[
                c!("id", Id),
                c!("order_id", Id),
                c!("account", Id),
                c!("instrument", Id),
                c!("side", Enum),
                c!("price", Price),
                c!("quantity", Quantity),
                c!("fee", Money),
                c!("ts", Timestamp),
            ],
            TableId::Positions => &[
                c!("account", Id),
                c!("instrument", Id),
                c!("quantity", Quantity),
                c!("cost_basis", Money),
                c!("realized_pnl", Money),
                c!("updated_ts", Timestamp),
                c!("last_trade_id", Id),
            ],
            TableId::Cash => &[c!("account", Id), c!("currency", Text), c!("amount", Money)],
        }
    }

    /// The columns of the primary key, in key order.
    pub fn primary_key(self) -> &'static [&'static str] {
        match self {
            TableId::Positions => &["account", "instrument"],
            TableId::Cash => &["account", "currency"],
            _ => &["id"],
        }
    }

    /// The column with this name, if the table has it.
    pub fn column(self, name: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.name == name)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TableId {
    type Err = UnknownTable;
    fn from_str(s: &str) -> Result<TableId, UnknownTable> {
        TableId::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTable(s.to_owned()))
    }
}

/// A table name that names no table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTable(pub String);

impl fmt::Display for UnknownTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown table {:?}; the tables are ", self.0)?;
        let names: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        f.write_str(&names.join(", "))
    }
}

impl std::error::Error for UnknownTable {}

/// A column of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub ty: ColumnType,
}

/// What a column holds; decides how literals are parsed and values printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// An unsigned identifier.
    Id,
    /// Free text.
    Text,
    /// One of a fixed set of lower-case names.
    Enum,
    /// A [`crate::Price`], raw scaled integer.
    Price,
    /// A [`crate::Quantity`], raw scaled integer.
    Quantity,
    /// A [`crate::Money`] amount, raw scaled integer.
    Money,
    /// Nanoseconds since the Unix epoch, UTC.
    Timestamp,
}

/// A secondary index: a named, ordered list of columns of one table. Its entries are
/// keyed by the indexed columns followed by the primary key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// Unique name, `table_by_col1_col2` for the built-in ones.
    pub name: String,
    /// The indexed table.
    pub table: TableId,
    /// The indexed columns, in key order.
    pub columns: Vec<String>,
    /// A unique index refuses a second row with the same indexed values.
    pub unique: bool,
    /// Built-in indexes belong to the schema and are never dropped.
    pub builtin: bool,
    /// A covering index keeps a copy of each row in its entry, so a read through it needs
    /// no lookup of the row (at the price of writing the row twice).
    #[serde(default)]
    pub covering: bool,
}

/// The built-in secondary indexes.
pub fn builtin_indexes() -> Vec<IndexDef> {
    let def = |name: &str, table, cols: &[&str], unique| IndexDef {
        name: name.to_owned(),
        table,
        columns: cols.iter().map(|c| (*c).to_owned()).collect(),
        unique,
        builtin: true,
        covering: false,
    };
    vec![
        def(
            "instruments_by_symbol",
            TableId::Instruments,
            &["symbol"],
            true,
        ),
        def(
            "orders_by_account_status",
            TableId::Orders,
            &["account", "status"],
            false,
        ),
        def(
            "orders_by_instrument_status",
            TableId::Orders,
            &["instrument", "status"],
            false,
        ),
        // An instrument's latest trades are the hottest read of a trading store: their
        // entries carry the trade, so the read is one range walk.
        IndexDef {
            covering: true,
            ..def(
                "trades_by_instrument_ts",
                TableId::Trades,
                &["instrument", "ts"],
                false,
            )
        },
        def(
            "trades_by_account_ts",
            TableId::Trades,
            &["account", "ts"],
            false,
        ),
        def("trades_by_order", TableId::Trades, &["order_id"], false),
        def(
            "positions_by_account",
            TableId::Positions,
            &["account"],
            false,
        ),
    ]
}

/// What deleting a parent row does to the rows that reference it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// The delete is refused while a child row exists.
    Restrict,
    /// The child rows are deleted with the parent.
    Cascade,
}

/// A foreign key: `child.column` references the primary key of `parent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignKey {
    /// The referencing table.
    pub child: TableId,
    /// The referencing column.
    pub column: &'static str,
    /// The referenced table (by its single-column primary key).
    pub parent: TableId,
    /// What deleting the parent does.
    pub on_delete: OnDelete,
}

/// Every foreign key of the schema.
///
/// Orders and trades are history: an account or instrument with orders cannot be deleted,
/// and neither can an order with fills. Balances are state owned by their account: deleting
/// an account (which needs it to have no orders) deletes its cash and positions with it.
pub const FOREIGN_KEYS: &[ForeignKey] = &[
    ForeignKey {
        child: TableId::Orders,
        column: "account",
        parent: TableId::Accounts,
        on_delete: OnDelete::Restrict,
    },
    ForeignKey {
        child: TableId::Orders,
        column: "instrument",
        parent: TableId::Instruments,
        on_delete: OnDelete::Restrict,
    },
    ForeignKey {
        child: TableId::Trades,
        column: "order_id",
        parent: TableId::Orders,
        on_delete: OnDelete::Restrict,
    },
    ForeignKey {
        child: TableId::Positions,
        column: "account",
        parent: TableId::Accounts,
        on_delete: OnDelete::Cascade,
    },
    ForeignKey {
        child: TableId::Positions,
        column: "instrument",
        parent: TableId::Instruments,
        on_delete: OnDelete::Restrict,
    },
    ForeignKey {
        child: TableId::Cash,
        column: "account",
        parent: TableId::Accounts,
        on_delete: OnDelete::Cascade,
    },
];
