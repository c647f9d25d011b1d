//! How a journal is set up.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Settings of a [`Journal`](super::Journal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size of a segment file, preallocated when the segment is created. A group larger
    /// than this gets a segment of its own size. Default 64 MiB; at least 64 KiB.
    pub segment_bytes: u64,
    /// Where released segments go instead of being deleted, to keep them for point-in-time
    /// recovery. Must be on the same file system as the journal (they are renamed).
    /// Default `None`: released segments are deleted.
    pub keep_released: Option<PathBuf>,
    /// Open even when the journal lost records that were acknowledged (see
    /// [`Journal::open_acked`](super::Journal::open_acked)), or ends inside a frame: the
    /// damage at the end is cut like a torn write and the loss is reported in
    /// [`Recovery::lost`](super::Recovery::lost). Default `false`: such a journal is refused.
    pub accept_loss: bool,
    /// Append through `O_DIRECT | O_DSYNC` where the file system has it (Linux): each
    /// group is one write the device makes durable, instead of a buffered write and an
    /// fdatasync. Default `true`; `false` keeps buffered writes and fdatasync everywhere.
    pub direct: bool,
}

impl JournalOptions {
    /// The default segment size: 64 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// The smallest segment size accepted: 64 KiB.
    pub const MIN_SEGMENT_BYTES: u64 = 64 << 10;

    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_bytes < Self::MIN_SEGMENT_BYTES {
            return Err(Error::config(format!(
                "journal segment_bytes is {}; it must be at least {} (64 KiB)",
                self.segment_bytes,
                Self::MIN_SEGMENT_BYTES
            )));
        }
        Ok(())
    }
}

impl Default for JournalOptions {
    fn default() -> JournalOptions {
        JournalOptions {
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            keep_released: None,
            accept_loss: false,
            direct: true,
        }
    }
}
