//! The disk's floor: what one small durable write costs, with nothing else around it.
//!
//! A 4 KiB `pwrite` at offset 0 of a file whose blocks were written (not a sparse file: then
//! every `fdatasync` would also update metadata), followed by `fdatasync`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Result;

/// The floor's mode column.
pub const FLOOR_MODE: &str = "4 KiB pwrite + fdatasync";
/// Bytes written per operation.
pub const BLOCK: usize = 4096;
/// Size of the preallocated file.
const FILE_BYTES: usize = 1 << 20;

/// A preallocated file to sync into.
pub struct Floor {
    file: File,
    buf: Vec<u8>,
}

impl Floor {
    /// Creates `dir/floor.bin`, writes all its blocks and syncs it.
    pub fn open(dir: &Path) -> Result<Floor> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("floor.bin"))?;
        file.write_all_at(&vec![0u8; FILE_BYTES], 0)?;
        file.sync_all()?;
        Ok(Floor {
            file,
            buf: vec![0xa5; BLOCK],
        })
    }

    /// Writes block `i` (its first bytes are `i`) at offset 0 and waits for `fdatasync`.
    pub fn write(&mut self, i: u64) -> Result<()> {
        self.buf[..8].copy_from_slice(&i.to_be_bytes());
        self.file.write_all_at(&self.buf, 0)?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Reads back the block at offset 0.
    pub fn read(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; BLOCK];
        self.file.read_exact_at(&mut out, 0)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Floor::open(dir.path()).unwrap();
        f.write(42).unwrap();
        let b = f.read().unwrap();
        assert_eq!(b[..8], 42u64.to_be_bytes());
        assert_eq!(b[8], 0xa5);
    }
}
