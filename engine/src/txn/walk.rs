//! The one range walk over redb tables, shared by read and write transactions.

use std::ops::Bound;

use redb::ReadableTable;

use super::ops::Visit;
use crate::error::Result;

type Entry<'a, V> = std::result::Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, V>,
    ),
    redb::StorageError,
>;

/// Whether the range can hold anything (redb refuses a range whose start is after its end).
fn non_empty(range: &(Bound<&[u8]>, Bound<&[u8]>)) -> bool {
    match range {
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Excluded(e)) => s < e,
        _ => true,
    }
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
    let iter = table.range::<&[u8]>(range)?;
    let mut visit = |item: Entry<'_, &'static [u8]>| -> Result<bool> {
        let (k, v) = item?;
        f(k.value(), v.value())
    };
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

/// Walks the entries of an index table.
pub(crate) fn entries<T: ReadableTable<&'static [u8], ()>>(
    table: &T,
    range: (Bound<&[u8]>, Bound<&[u8]>),
    reverse: bool,
    f: &mut Visit<'_>,
) -> Result<()> {
    if !non_empty(&range) {
        return Ok(());
    }
    let iter = table.range::<&[u8]>(range)?;
    let mut visit = |item: Entry<'_, ()>| -> Result<bool> {
        let (k, _) = item?;
        f(k.value(), &[])
    };
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
