//! The catalog: index definitions and store metadata, kept in the `catalog` redb table so
//! that indexes created at run time survive restarts.
//!
//! | key | value |
//! |---|---|
//! | `meta/format_version` | the format version, decimal text (see [`FORMAT_VERSION`]) |
//! | `index/<name>` | the index's [`IndexDef`], JSON |
//! | `building/<name>` | present while an online build of the index is not complete |
//! | `decision/<20-digit ns>` | an [`IndexDecision`], JSON: index creations, completions, drops |
//! | `stats/<table>` | the planner's table statistics, JSON |
//! | `migration/<20-digit version>` | an applied migration ([`crate::migrate`]), JSON |
//! | `audit/<20-digit seq>` | an entry of the audit trail ([`crate::audit`]), JSON |

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use tradestore_schema::{IndexDef, table::builtin_indexes};

use crate::error::{Error, Result};
use crate::layout::{CATALOG, IndexSpec};

/// The store format this build writes and reads.
///
/// - 1: every index entry is a key with an empty value.
/// - 2: covering indexes (`trades_by_instrument_ts`) keep the row in each entry. A version 1
///   store is upgraded when it is opened: the built-in definitions are rewritten and each
///   covering index is rebuilt from its table, in the same durable commit as the version.
pub const FORMAT_VERSION: u32 = 2;

/// The oldest format this build upgrades.
const OLDEST_UPGRADABLE: u32 = 1;

const FORMAT_KEY: &str = "meta/format_version";
const INDEX_PREFIX: &str = "index/";
const BUILDING_PREFIX: &str = "building/";
const DECISION_PREFIX: &str = "decision/";

/// Creates the catalog on first open, checks the format version, makes sure every built-in
/// index is registered, and returns every index definition.
pub(crate) fn init(txn: &redb::WriteTransaction) -> Result<Vec<IndexSpec>> {
    let mut catalog = txn.open_table(CATALOG)?;
    let format = catalog.get(FORMAT_KEY)?.map(|g| g.value().to_vec());
    match format {
        None => {
            let v = FORMAT_VERSION.to_string();
            catalog.insert(FORMAT_KEY, v.as_bytes())?;
        }
        Some(bytes) => {
            let v: u32 = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Error::corruption("the catalog's format version is unreadable"))?;
            if !(OLDEST_UPGRADABLE..=FORMAT_VERSION).contains(&v) {
                return Err(Error::corruption(format!(
                    "the store has format version {v}; this build reads versions \
                     {OLDEST_UPGRADABLE} to {FORMAT_VERSION}"
                )));
            }
            if v < FORMAT_VERSION {
                let v = FORMAT_VERSION.to_string();
                catalog.insert(FORMAT_KEY, v.as_bytes())?;
            }
        }
    }
    // The built-in definitions belong to this build: a store written by an older one gets
    // the current ones (its index tables are converted by `index::convert_layouts`).
    for def in builtin_indexes() {
        let key = format!("{INDEX_PREFIX}{}", def.name);
        let stored: Option<IndexDef> = catalog
            .get(key.as_str())?
            .and_then(|g| serde_json::from_slice(g.value()).ok());
        if stored.as_ref() != Some(&def) {
            let json = serde_json::to_vec(&def)
                .map_err(|e| Error::corruption(format!("encoding index {}: {e}", def.name)))?;
            catalog.insert(key.as_str(), json.as_slice())?;
        }
    }
    let mut defs = Vec::new();
    for item in catalog.range(INDEX_PREFIX..)? {
        let (k, v) = item?;
        if !k.value().starts_with(INDEX_PREFIX) {
            break;
        }
        let def: IndexDef = serde_json::from_slice(v.value())
            .map_err(|e| Error::corruption(format!("catalog entry {}: {e}", k.value())))?;
        defs.push(def);
    }
    let mut specs = Vec::with_capacity(defs.len());
    for (slot, def) in defs.into_iter().enumerate() {
        let building = catalog
            .get(format!("{BUILDING_PREFIX}{}", def.name).as_str())?
            .is_some();
        let slot = u16::try_from(slot)
            .map_err(|_| Error::corruption("the catalog lists too many indexes"))?;
        specs.push(IndexSpec::new(def, slot, !building));
    }
    Ok(specs)
}

/// Registers a new index whose online build starts now.
pub(crate) fn register_building(txn: &redb::WriteTransaction, def: &IndexDef) -> Result<()> {
    let mut catalog = txn.open_table(CATALOG)?;
    let json = serde_json::to_vec(def)
        .map_err(|e| Error::invalid(format!("encoding index {}: {e}", def.name)))?;
    catalog.insert(
        format!("{INDEX_PREFIX}{}", def.name).as_str(),
        json.as_slice(),
    )?;
    catalog.insert(format!("{BUILDING_PREFIX}{}", def.name).as_str(), &[][..])?;
    Ok(())
}

/// Marks an index's build complete.
pub(crate) fn mark_ready(txn: &redb::WriteTransaction, name: &str) -> Result<()> {
    let mut catalog = txn.open_table(CATALOG)?;
    catalog.remove(format!("{BUILDING_PREFIX}{name}").as_str())?;
    Ok(())
}

/// Removes an index's definition.
pub(crate) fn remove_index(txn: &redb::WriteTransaction, name: &str) -> Result<()> {
    let mut catalog = txn.open_table(CATALOG)?;
    catalog.remove(format!("{INDEX_PREFIX}{name}").as_str())?;
    catalog.remove(format!("{BUILDING_PREFIX}{name}").as_str())?;
    Ok(())
}

/// A decision about an index, kept in the catalog: who created or dropped what, when, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDecision {
    /// When, in nanoseconds since the Unix epoch.
    pub at_ns: u64,
    /// `create` (build started), `ready` (build complete), `drop`, or `abandon` (a build
    /// that failed).
    pub action: String,
    /// The index's name.
    pub index: String,
    /// Its table.
    pub table: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Why: the operator's command, or the advisor's estimate.
    pub reason: String,
}

/// Appends a decision, and its entry in the audit trail.
pub(crate) fn record_decision(txn: &redb::WriteTransaction, d: &IndexDecision) -> Result<()> {
    crate::audit::append(
        txn,
        &format!("index.{}", d.action),
        &format!(
            "{} on {}({}): {}",
            d.index,
            d.table,
            d.columns.join(", "),
            d.reason
        ),
    )?;
    let mut catalog = txn.open_table(CATALOG)?;
    let json = serde_json::to_vec(d)
        .map_err(|e| Error::invalid(format!("encoding an index decision: {e}")))?;
    // Two decisions in the same nanosecond keep both: the later one moves up.
    let mut at = d.at_ns;
    loop {
        let key = format!("{DECISION_PREFIX}{at:020}");
        if catalog.get(key.as_str())?.is_none() {
            catalog.insert(key.as_str(), json.as_slice())?;
            return Ok(());
        }
        at += 1;
    }
}

/// Every recorded decision, oldest first.
pub(crate) fn decisions(txn: &redb::ReadTransaction) -> Result<Vec<IndexDecision>> {
    scan_json(txn, DECISION_PREFIX)
}

/// The JSON values of every catalog key under `prefix`, in key order.
pub(crate) fn scan_json<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    prefix: &str,
) -> Result<Vec<T>> {
    let catalog = txn.open_table(CATALOG)?;
    let mut out = Vec::new();
    for item in catalog.range(prefix..)? {
        let (k, v) = item?;
        if !k.value().starts_with(prefix) {
            break;
        }
        out.push(
            serde_json::from_slice(v.value())
                .map_err(|e| Error::corruption(format!("catalog entry {}: {e}", k.value())))?,
        );
    }
    Ok(out)
}

/// The JSON value under `key`, if any.
pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
    txn: &redb::ReadTransaction,
    key: &str,
) -> Result<Option<T>> {
    let catalog = txn.open_table(CATALOG)?;
    catalog
        .get(key)?
        .map(|v| {
            serde_json::from_slice(v.value())
                .map_err(|e| Error::corruption(format!("catalog entry {key}: {e}")))
        })
        .transpose()
}

/// Stores a JSON value under `key`.
pub(crate) fn put_json<T: Serialize>(
    txn: &redb::WriteTransaction,
    key: &str,
    value: &T,
) -> Result<()> {
    let mut catalog = txn.open_table(CATALOG)?;
    let json = serde_json::to_vec(value)
        .map_err(|e| Error::invalid(format!("encoding catalog entry {key}: {e}")))?;
    catalog.insert(key, json.as_slice())?;
    Ok(())
}
