//! Reads shared by read and write transactions: the [`ReadOps`] trait.

use std::ops::Bound;

use tradestore_schema::{Order, OrderStatus, Position, Record, TableId, Trade, Value, codec};

use crate::error::{Error, Result};
use crate::keys;
use crate::layout::IndexSpec;

/// The visitor of a raw range scan: called with each key and value, returns whether to go on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// What a raw range scan walks: a table's rows or an index's entries.
#[derive(Clone, Copy, Debug)]
pub enum Source<'a> {
    /// The rows of a table (key: primary key; value: record).
    Table(TableId),
    /// The entries of an index (key: index columns then primary key; value: empty).
    Index(&'a IndexSpec),
}

/// A range over an index: entries whose leading columns equal `prefix`, optionally bounded on
/// the next column, in ascending or descending order, up to `limit` rows.
#[derive(Clone, Debug, Default)]
pub struct IndexScan {
    /// Values of the index's leading columns.
    pub prefix: Vec<Value>,
    /// Lower bound on the column after the prefix.
    pub lower: Option<Bound<Value>>,
    /// Upper bound on the column after the prefix.
    pub upper: Option<Bound<Value>>,
    /// Newest (largest) first.
    pub reverse: bool,
    /// At most this many rows.
    pub limit: Option<usize>,
}

impl IndexScan {
    /// Every entry whose leading columns equal `prefix`.
    pub fn prefix(prefix: impl Into<Vec<Value>>) -> IndexScan {
        IndexScan {
            prefix: prefix.into(),
            ..IndexScan::default()
        }
    }

    /// Bounds the column after the prefix from below.
    pub fn from(mut self, bound: Bound<Value>) -> IndexScan {
        self.lower = Some(bound);
        self
    }

    /// Bounds the column after the prefix from above.
    pub fn to(mut self, bound: Bound<Value>) -> IndexScan {
        self.upper = Some(bound);
        self
    }

    /// Largest first.
    pub fn reverse(mut self) -> IndexScan {
        self.reverse = true;
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: usize) -> IndexScan {
        self.limit = Some(n);
        self
    }

    /// The byte range the scan covers.
    pub(crate) fn byte_range(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let prefix = keys::encode(&self.prefix);
        let with = |v: &Value| {
            let mut k = prefix.clone();
            keys::encode_value(&mut k, v);
            k
        };
        let after = |k: Vec<u8>| match keys::prefix_end(&k) {
            Some(e) => Bound::Included(e),
            None => Bound::Unbounded,
        };
        let before = |k: Vec<u8>| match keys::prefix_end(&k) {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let start = match &self.lower {
            None | Some(Bound::Unbounded) => Bound::Included(prefix.clone()),
            Some(Bound::Included(v)) => Bound::Included(with(v)),
            Some(Bound::Excluded(v)) => after(with(v)),
        };
        let end = match &self.upper {
            None | Some(Bound::Unbounded) => before(prefix.clone()),
            Some(Bound::Included(v)) => before(with(v)),
            Some(Bound::Excluded(v)) => Bound::Excluded(with(v)),
        };
        (start, end)
    }
}

/// Reads available in every transaction. Import it to call `get`, `scan` and the index
/// lookups on a [`ReadTx`](crate::ReadTx) or [`WriteTx`](crate::WriteTx).
pub trait ReadOps {
    /// The raw encoded record under `key`.
    fn raw_get(&self, table: TableId, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Calls `f(key, value)` for each entry in the range, in order (or reverse order), until
    /// it returns `false`.
    fn raw_range(
        &self,
        source: Source<'_>,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        f: &mut Visit<'_>,
    ) -> Result<()>;

    /// The number of rows in a table.
    fn count(&self, table: TableId) -> Result<u64>;

    /// The index with this name.
    fn index(&self, name: &str) -> Result<IndexSpec>;

    /// The row under an encoded primary key, decoded.
    fn get_encoded<R: Record>(&self, key: &[u8]) -> Result<Option<R>>
    where
        Self: Sized,
    {
        decode_row(self.raw_get(R::TABLE, key)?)
    }

    /// The row with this primary key.
    fn get<R: Record>(&self, key: &[Value]) -> Result<Option<R>>
    where
        Self: Sized,
    {
        self.get_encoded(&keys::encode(key))
    }

    /// The row with this id (for tables keyed by `id`).
    fn get_id<R: Record>(&self, id: u64) -> Result<Option<R>>
    where
        Self: Sized,
    {
        self.get_encoded(&keys::id_key(id))
    }

    /// Calls `f` on every row of `R`'s table in primary key order until it returns `false`.
    fn scan<R: Record>(&self, mut f: impl FnMut(R) -> Result<bool>) -> Result<()>
    where
        Self: Sized,
    {
        self.raw_range(
            Source::Table(R::TABLE),
            (Bound::Unbounded, Bound::Unbounded),
            false,
            &mut |_, v| f(codec::decode(v)?),
        )
    }

    /// Every row of `R`'s table, in primary key order.
    fn all<R: Record>(&self) -> Result<Vec<R>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        self.scan(|r| {
            out.push(r);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Rows whose primary key starts with `prefix` (positions or cash of an account).
    fn prefix<R: Record>(&self, prefix: &[Value]) -> Result<Vec<R>>
    where
        Self: Sized,
    {
        let start = keys::encode(prefix);
        let end = keys::prefix_end(&start);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::new();
        self.raw_range(
            Source::Table(R::TABLE),
            (Bound::Included(&start), end),
            false,
            &mut |_, v| {
                out.push(codec::decode(v)?);
                Ok(true)
            },
        )?;
        Ok(out)
    }

    /// The primary keys (encoded) of the index entries in `scan`.
    fn index_keys(&self, index: &str, scan: &IndexScan) -> Result<Vec<Vec<u8>>>
    where
        Self: Sized,
    {
        let spec = self.index(index)?;
        let (start, end) = scan.byte_range();
        primary_keys_in(
            self,
            &spec,
            (as_ref(&start), as_ref(&end)),
            scan.reverse,
            scan.limit,
        )
    }

    /// The rows found through an index, in index order.
    fn index_scan<R: Record>(&self, index: &str, scan: &IndexScan) -> Result<Vec<R>>
    where
        Self: Sized,
    {
        let spec = self.index(index)?;
        if spec.def.table != R::TABLE {
            return Err(Error::invalid(format!(
                "index {index} is on {}, not {}",
                spec.def.table,
                R::TABLE
            )));
        }
        let (start, end) = scan.byte_range();
        let n = spec.def.columns.len();
        let limit = scan.limit.unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(scan.limit.map_or(0, |l| l.min(1024)));
        if limit == 0 {
            return Ok(out);
        }
        // A covering index's entries carry the rows; otherwise each entry's row is fetched
        // as the walk reaches it: no list of keys in between.
        let covering = spec.def.covering;
        self.raw_range(
            Source::Index(&spec),
            (as_ref(&start), as_ref(&end)),
            scan.reverse,
            &mut |k, v| {
                if covering {
                    out.push(codec::decode(v)?);
                    return Ok(out.len() < limit);
                }
                let pk = &k[keys::len_of_values(k, n)?..];
                let row = self.get_encoded::<R>(pk)?.ok_or_else(|| {
                    Error::corruption(format!(
                        "index {index} has an entry for a missing {} row",
                        R::TABLE
                    ))
                })?;
                out.push(row);
                Ok(out.len() < limit)
            },
        )?;
        Ok(out)
    }

    /// The last `limit` fills of an instrument, newest first.
    fn recent_trades(&self, instrument: u64, limit: usize) -> Result<Vec<Trade>>
    where
        Self: Sized,
    {
        self.index_scan(
            "trades_by_instrument_ts",
            &IndexScan::prefix([Value::U64(instrument)])
                .reverse()
                .limit(limit),
        )
    }

    /// The positions of an account.
    fn positions_of(&self, account: u64) -> Result<Vec<Position>>
    where
        Self: Sized,
    {
        self.prefix(&[Value::U64(account)])
    }

    /// The open (new or partially filled) orders of an account.
    fn open_orders_of(&self, account: u64) -> Result<Vec<Order>>
    where
        Self: Sized,
    {
        let mut out = Vec::new();
        for status in [OrderStatus::New, OrderStatus::PartiallyFilled] {
            out.extend(self.index_scan::<Order>(
                "orders_by_account_status",
                &IndexScan::prefix([Value::U64(account), Value::from(status.name())]),
            )?);
        }
        out.sort_by_key(|o| o.id);
        Ok(out)
    }
}

fn decode_row<R: Record>(bytes: Option<Vec<u8>>) -> Result<Option<R>> {
    bytes
        .map(|b| codec::decode(&b).map_err(Error::from))
        .transpose()
}

/// The primary keys (encoded) of the entries of `spec` in `range`, at most `limit`.
pub(crate) fn primary_keys_in(
    tx: &impl ReadOps,
    spec: &IndexSpec,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
    limit: Option<usize>,
) -> Result<Vec<Vec<u8>>> {
    let n = spec.def.columns.len();
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    tx.raw_range(Source::Index(spec), range, reverse, &mut |k, _| {
        out.push(k[keys::len_of_values(k, n)?..].to_vec());
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
