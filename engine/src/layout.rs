//! Where things live in the redb file.
//!
//! | redb table | key | value |
//! |---|---|---|
//! | `t.<table>` (one per domain table) | encoded primary key ([`crate::keys`]) | record: version byte + postcard |
//! | `i.<index>` (one per secondary index) | encoded index columns, then encoded primary key | `()` |
//! | `catalog` | `index/<name>`, `meta/<name>` | JSON |

use redb::TableDefinition;
use tradestore_schema::{IndexDef, TableId, Value};

use crate::keys;

/// The redb table holding a domain table's rows.
pub(crate) fn data_table(t: TableId) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(match t {
        TableId::Instruments => "t.instruments",
        TableId::Accounts => "t.accounts",
        TableId::Orders => "t.orders",
        TableId::Trades => "t.trades",
        TableId::Positions => "t.positions",
        TableId::Cash => "t.cash",
    })
}

/// The catalog: index definitions and store metadata.
pub(crate) const CATALOG: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("catalog");

/// A secondary index as the engine uses it: its definition, its redb table's name, its
/// overlay slot and whether it is complete.
#[derive(Clone, Debug)]
pub struct IndexSpec {
    /// The definition from the catalog.
    pub def: IndexDef,
    table_name: String,
    /// The index's overlay space is `INDEX_BASE + slot`. Slots are handed out once per open
    /// store and never reused, so overlay entries of a dropped index can never be read as
    /// entries of a later one.
    pub(crate) slot: u16,
    /// `false` while an online build is backfilling it: writes maintain it, but reads
    /// (queries, foreign key checks) must not rely on it yet.
    pub(crate) ready: bool,
}

impl IndexSpec {
    pub(crate) fn new(def: IndexDef, slot: u16, ready: bool) -> IndexSpec {
        let table_name = format!("i.{}", def.name);
        IndexSpec {
            def,
            table_name,
            slot,
            ready,
        }
    }

    /// Whether the index is complete and usable by reads (not still being built online).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// The redb table of this index.
    pub(crate) fn redb_table(&self) -> TableDefinition<'_, &'static [u8], ()> {
        TableDefinition::new(&self.table_name)
    }

    /// The encoded values of the indexed columns (the prefix of every entry of the row).
    pub(crate) fn prefix_of(&self, values: impl Fn(&str) -> Option<Value>) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        for c in &self.def.columns {
            keys::encode_value(&mut out, &values(c).unwrap_or(Value::Null));
        }
        out
    }

    /// Whether the index's first column is `column`.
    pub(crate) fn leads_with(&self, column: &str) -> bool {
        self.def.columns.first().is_some_and(|c| c == column)
    }
}
