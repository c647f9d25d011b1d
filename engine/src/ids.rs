//! Id counters for the tables keyed by `id`: handed out outside transactions so that
//! concurrent writers never conflict on "the largest id", and raised past every id that
//! commits, whoever chose it.

use std::sync::atomic::{AtomicU64, Ordering};

use tradestore_schema::TableId;

use crate::error::{Error, ErrorKind, Result};

/// The next id of each table (indexed by the table's discriminant).
#[derive(Debug, Default)]
pub(crate) struct Ids {
    next: [AtomicU64; 8],
}

impl Ids {
    /// A new id for `table`.
    pub(crate) fn next(&self, table: TableId) -> Result<u64> {
        if table.primary_key() != ["id"] {
            return Err(Error::invalid(format!("{table} is not keyed by an id")));
        }
        let slot = &self.next[table as usize];
        // One atomic step from the counter to the id and past it (ids start at 1): a
        // separate "raise it to 1" step let two first callers both take 1.
        let taken = slot
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.max(1).saturating_add(1))
            })
            .unwrap_or_else(|n| n);
        let id = taken.max(1);
        if id == u64::MAX {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!("{table} ids are used up"),
            ));
        }
        Ok(id)
    }

    /// Notes that `id` is taken in `table`: later ids are larger.
    pub(crate) fn observe(&self, table: TableId, id: u64) {
        self.next[table as usize].fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Ids;
    use tradestore_schema::TableId;

    #[test]
    fn first_ids_taken_at_once_are_distinct() {
        for _ in 0..200 {
            let ids = Ids::default();
            let start = std::sync::Barrier::new(4);
            let mut got: Vec<u64> = std::thread::scope(|s| {
                let takers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            ids.next(TableId::Orders).expect("an id")
                        })
                    })
                    .collect();
                takers
                    .into_iter()
                    .map(|t| t.join().expect("a taker panicked"))
                    .collect()
            });
            got.sort_unstable();
            assert_eq!(got, [1, 2, 3, 4]);
        }
    }

    #[test]
    fn ids_go_past_what_was_observed_and_end_at_the_last() {
        let ids = Ids::default();
        ids.observe(TableId::Trades, 41);
        assert_eq!(ids.next(TableId::Trades).ok(), Some(42));
        ids.observe(TableId::Trades, u64::MAX - 2);
        assert_eq!(ids.next(TableId::Trades).ok(), Some(u64::MAX - 1));
        assert!(ids.next(TableId::Trades).is_err());
        assert!(ids.next(TableId::Trades).is_err());
        assert!(ids.next(TableId::Positions).is_err(), "not keyed by id");
    }
}
