//! The catalog: index definitions and store metadata, kept in the `catalog` redb table so
//! that indexes created at run time survive restarts.

use redb::ReadableTable;
use tradestore_schema::{IndexDef, table::builtin_indexes};

use crate::error::{Error, Result};
use crate::layout::{CATALOG, IndexSpec};

/// The store format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const FORMAT_KEY: &str = "meta/format_version";
const INDEX_PREFIX: &str = "index/";

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
            if v != FORMAT_VERSION {
                return Err(Error::corruption(format!(
                    "the store has format version {v}; this build reads version {FORMAT_VERSION}"
                )));
            }
        }
    }
    for def in builtin_indexes() {
        let key = format!("{INDEX_PREFIX}{}", def.name);
        if catalog.get(key.as_str())?.is_none() {
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
        defs.push(IndexSpec::new(def));
    }
    Ok(defs)
}
