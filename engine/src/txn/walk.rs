//! The one range walk over redb tables, shared by read and write transactions.

use std::ops::Bound;

use redb::ReadableTable;

use super::ops::Visit;
use crate::error::Result;
use crate::layout::IndexReader;

/// Whether the range can hold anything (redb refuses a range whose start is after its end).
fn non_empty(range: &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match range {
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e)) => s < e,
        _ => true,
    }
}

/// Feeds `iter` (forwards or backwards) to `visit` until it returns `false`.
fn drive<T>(
    iter: impl DoubleEndedIterator<Item = T>,
    reverse: bool,
    mut visit: impl FnMut(T) -> Result<bool>,
) -> Result<()> {
    // One loop per direction: no boxed iterator, no dynamic call per entry.
    if reverse {
        for item in iter.rev() {
            if !visit(item)? {
                break;
            }
        }
    } else {
        for item in iter {
            if !visit(item)? {
                break;
            }
        }
    }
    Ok(())
}

/// Walks the rows of a data table.
pub(crate) fn rows<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
    f: &mut Visit<'_>,
) -> Result<()> {
    if !non_empty(&range) {
        return Ok(());
    }
    drive(table.range::<&[u8]>(range)?, reverse, |item| {
        let (k, v) = item?;
        f(k.value(), v.value())
    })
}

/// Walks the entries of an index table; a covering index's values are the rows' records,
/// a key-only index's are empty.
pub(crate) fn entries(
    table: &IndexReader,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
    f: &mut Visit<'_>,
) -> Result<()> {
    if !non_empty(&range) {
        return Ok(());
    }
    match table {
        IndexReader::Keys(t) => drive(t.range::<&[u8]>(range)?, reverse, |item| {
            let (k, _) = item?;
            f(k.value(), &[])
        }),
        IndexReader::Rows(t) => rows(t, range, reverse, f),
    }
}
