//! The journal: the durability point of the write path.
//!
//! A group of records is appended with one write and one fdatasync, and a caller
//! acknowledges the group only after [`Journal::append`] returns. At open the journal is
//! scanned and the records after the last checkpoint are handed back for replay. The byte
//! layout of segments is in the `frame` module's source (`journal/frame.rs`).
//!
//! ```
//! use std::sync::Arc;
//! use tradestore::journal::{FileIo, Journal, JournalOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, recovery) =
//!     Journal::open(dir.path(), JournalOptions::default(), Arc::new(FileIo), 0)?;
//! assert!(recovery.records.is_empty());
//! journal.append(&[(1, b"first".as_slice()), (2, b"second".as_slice())])?;
//! drop(journal);
//!
//! let (journal, recovery) =
//!     Journal::open(dir.path(), JournalOptions::default(), Arc::new(FileIo), 1)?;
//! assert_eq!(recovery.records, vec![(2, b"second".to_vec())]);
//! assert_eq!(journal.last_seq(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(any(test, feature = "failpoints"))]
mod faulty;
mod frame;
mod io;
mod options;
mod prune;
mod recover;
mod scan;
mod segment;
mod writer;

#[cfg(any(test, feature = "failpoints"))]
pub use faulty::FaultyIo;
pub use frame::MAX_PAYLOAD;
pub use io::{FileIo, JournalFile, JournalIo};
pub use options::JournalOptions;
pub use prune::{PruneReport, prune_kept};
pub use recover::{Recovery, TornTail};
pub(crate) use scan::{
    REPLAY_BATCH_BYTES, Stop, Until, later_frame_after, read_from, replay_after, segments_in,
    starts_with,
};
pub use scan::{SegmentSummary, summarize, summarize_bytes};
pub use writer::{Journal, SPARE_NAME, Spare, SpareRequest};
