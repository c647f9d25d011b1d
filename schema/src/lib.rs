//! The trading domain of tradestore, free of storage: instruments, accounts, orders,
//! trades (fills), positions and cash; fixed-point prices, quantities and money; the
//! business rules; and the record encoding.
//!
//! ```
//! use tradestore_schema::{codec, portfolio, Money, Price, Quantity, Side, Trade};
//!
//! let fill = Trade {
//!     id: 1, order_id: 1, account: 1, instrument: 1, side: Side::Buy,
//!     price: "100.25".parse::<Price>()?, quantity: Quantity::from_units(10).unwrap(),
//!     fee: Money(0), ts: 0,
//! };
//! let position = portfolio::apply_fill(None, &fill)?;
//! assert_eq!(position.cost_basis, "1002.5".parse::<Money>()?);
//! assert_eq!(codec::decode::<Trade>(&codec::encode(&fill))?, fill);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod fixed;
pub mod portfolio;
pub mod records;
pub mod rules;
pub mod table;
pub mod value;

pub use fixed::{Money, Price, Quantity, notional};
pub use records::{
    Account, AccountStatus, AnyRecord, Cash, Instrument, Order, OrderKind, OrderStatus, Position,
    Record, Side, TimeInForce, Trade,
};
pub use rules::RuleViolation;
pub use table::{Column, ColumnType, FOREIGN_KEYS, ForeignKey, IndexDef, OnDelete, TableId};
pub use value::Value;
