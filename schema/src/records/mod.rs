//! The records of the domain's tables.

mod enums;
mod rows;

pub use enums::{AccountStatus, OrderKind, OrderStatus, Side, TimeInForce, UnknownVariant};
pub use rows::{Account, AnyRecord, Cash, Instrument, Order, Position, Record, Trade};
