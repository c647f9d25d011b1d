//! tradestore: an embedded storage engine for trading systems, over redb.
//!
//! Typed tables for instruments, accounts, orders, trades (fills), positions and cash, with
//! secondary indexes, business rules and foreign keys checked on every write. Recording a
//! fill is one atomic write of the trade, the order, the position and the cash. Queries go
//! through a SQL subset or a typed builder ([`query`]), a cost-based planner and an adaptive
//! index manager; [`monitor`] has the metrics, health checks, alerts and the HTTP monitor;
//! [`backup`] has online backups ([`Store::backup`]), their verification and restore.
//!
//! ```
//! use tradestore::{Config, ReadOps, Store};
//! use tradestore::schema::*;
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), Config::default())?;
//! store.write(|tx| {
//!     tx.insert(&Account { id: 1, name: "alpha".into(), status: AccountStatus::Active })?;
//!     tx.insert(&Instrument {
//!         id: 1, symbol: "ACME".into(), tick_size: "0.01".parse().unwrap(),
//!         lot_size: Quantity::from_units(1).unwrap(), currency: "USD".into(),
//!     })?;
//!     tx.insert(&Order {
//!         id: 1, account: 1, instrument: 1, side: Side::Buy, kind: OrderKind::Limit,
//!         time_in_force: TimeInForce::Gtc, price: Some("100".parse().unwrap()),
//!         quantity: Quantity::from_units(10).unwrap(), filled_quantity: Quantity::ZERO,
//!         status: OrderStatus::New, created_ts: 1, updated_ts: 1,
//!     })?;
//!     let fill = tx.record_fill(&Trade {
//!         id: 1, order_id: 1, account: 1, instrument: 1, side: Side::Buy,
//!         price: "99.5".parse().unwrap(), quantity: Quantity::from_units(4).unwrap(),
//!         fee: Money(0), ts: 2,
//!     })?;
//!     assert_eq!(fill.order.status, OrderStatus::PartiallyFilled);
//!     assert_eq!(fill.cash.amount, "-398".parse().unwrap());
//!     Ok(())
//! })?;
//! let snapshot = store.read()?;
//! assert_eq!(snapshot.recent_trades(1, 10)?.len(), 1);
//!
//! // The same through SQL: the planner reads the (instrument, ts) index backwards.
//! let rows = store.query(
//!     "SELECT id, price FROM trades WHERE instrument = 'ACME' ORDER BY ts DESC LIMIT 10",
//! )?;
//! assert_eq!(rows.rows.len(), 1);
//! assert_eq!(rows.cell(0, 1), "99.5");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod archive;
pub mod audit;
pub mod backup;
mod breaker;
mod bulk;
mod catalog;
pub mod check;
mod commit;
pub mod config;
pub mod dump;
mod error;
pub mod identity;
mod ids;
pub mod index;
pub mod inspect;
pub mod journal;
pub mod keys;
mod layout;
pub mod lock;
pub mod migrate;
pub mod monitor;
pub mod query;
mod recent;
mod rowcache;
pub mod standby;
mod state;
mod stats;
mod store;
mod tail;
mod txn;

pub use tradestore_schema as schema;

pub use breaker::BreakerState;
pub use catalog::FORMAT_VERSION;
pub use config::{Config, Profile};
pub use error::{Error, ErrorKind, Result};
pub use layout::IndexSpec;
pub use recent::RecentTradesStats;
pub use rowcache::RowCacheStats;
pub use stats::{Stats, Summary};
pub use store::{
    CommitTicket, Compaction, DB_FILE, NEW_DB_FILE, Recovery, RetryPolicy, SUBDIRS, Storage, Store,
    is_unfinished_store,
};
pub use tail::InstrumentTailStats;
pub use txn::{FillOutcome, IndexScan, ReadOps, ReadTx, Source, Visit, WriteTx};
