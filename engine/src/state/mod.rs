//! The engine's state between the journal and redb: the overlay of committed writes not yet
//! applied to redb, and the one function that applies row changes to redb.

mod apply;
mod overlay;
pub(crate) mod record;

pub(crate) use apply::{
    RowChange, apply_rows, read_acked_seq, read_applied_seq, read_archive_segments, read_next_id,
    read_standby_seq, read_view_meta, remove_standby_seq, replay_records, write_acked_seq,
    write_applied_seq, write_archive_segments, write_standby_seq,
};
pub(crate) use overlay::{Entry, Graveyard, INDEX_BASE, OKey, Overlay, Published, space_of_table};
