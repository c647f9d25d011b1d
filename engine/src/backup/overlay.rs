//! A redb storage backend over a file that never writes to it: writes (redb's header
//! updates when it opens a database, and any repair its integrity check makes) land in
//! memory and are read back from there. It lets verification run redb's integrity check,
//! which needs a writable database, on a backup without changing a byte of it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// Granularity of the in-memory copies of written ranges.
const BLOCK: u64 = 4096;

#[derive(Debug)]
pub(crate) struct ReadOnlyOverlay {
    file: Mutex<File>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The length redb sees.
    len: u64,
    /// The file's bytes below this are still the database's (a shrink cuts it down).
    file_valid: u64,
    /// Written blocks, by index.
    blocks: HashMap<u64, Vec<u8>>,
}

impl ReadOnlyOverlay {
    pub(crate) fn open(path: &Path) -> Result<ReadOnlyOverlay> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len();
        Ok(ReadOnlyOverlay {
            file: Mutex::new(file),
            state: Mutex::new(State {
                len,
                file_valid: len,
                blocks: HashMap::new(),
            }),
        })
    }

    /// Fills `out` with the file's bytes from `offset`, zeros past `valid`.
    fn read_file(&self, offset: u64, out: &mut [u8], valid: u64) -> std::io::Result<()> {
        out.fill(0);
        if offset >= valid {
            return Ok(());
        }
        let n = usize::try_from((valid - offset).min(out.len() as u64)).unwrap_or(out.len());
        let mut f = self.file.lock();
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut out[..n])
    }
}

impl redb::StorageBackend for ReadOnlyOverlay {
    fn len(&self) -> std::result::Result<u64, std::io::Error> {
        Ok(self.state.lock().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::result::Result<(), std::io::Error> {
        let st = self.state.lock();
        let mut done = 0usize;
        while done < out.len() {
            let at = offset + done as u64;
            let (block, within) = (at / BLOCK, at % BLOCK);
            let n = usize::try_from(BLOCK - within)
                .unwrap_or(usize::MAX)
                .min(out.len() - done);
            let dst = &mut out[done..done + n];
            match st.blocks.get(&block) {
                Some(b) => {
                    let start = usize::try_from(within).unwrap_or(0);
                    dst.copy_from_slice(&b[start..start + n]);
                }
                None => self.read_file(at, dst, st.file_valid)?,
            }
            done += n;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> std::result::Result<(), std::io::Error> {
        let mut st = self.state.lock();
        if len < st.len {
            st.file_valid = st.file_valid.min(len);
            st.blocks.retain(|b, _| b * BLOCK < len);
            if let Some(b) = st.blocks.get_mut(&(len / BLOCK)) {
                let from = usize::try_from(len % BLOCK).unwrap_or(0);
                b[from..].fill(0);
            }
        }
        st.len = len;
        Ok(())
    }

    fn sync_data(&self) -> std::result::Result<(), std::io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::result::Result<(), std::io::Error> {
        let mut st = self.state.lock();
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let (block, within) = (at / BLOCK, at % BLOCK);
            let n = usize::try_from(BLOCK - within)
                .unwrap_or(usize::MAX)
                .min(data.len() - done);
            if !st.blocks.contains_key(&block) {
                let mut b = vec![0u8; BLOCK as usize];
                self.read_file(block * BLOCK, &mut b, st.file_valid)?;
                st.blocks.insert(block, b);
            }
            if let Some(b) = st.blocks.get_mut(&block) {
                let start = usize::try_from(within).unwrap_or(0);
                b[start..start + n].copy_from_slice(&data[done..done + n]);
            }
            done += n;
        }
        let end = offset + data.len() as u64;
        if end > st.len {
            st.len = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::StorageBackend;

    use super::*;

    #[test]
    fn writes_read_back_from_memory_and_the_file_never_changes() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).map_err(|e| Error::io("write", e))?;
        let o = ReadOnlyOverlay::open(&path)?;
        let io = |e: std::io::Error| Error::io("overlay", e);
        o.write(4000, &[7u8; 200]).map_err(io)?;
        let mut got = vec![0u8; 400];
        o.read(3900, &mut got).map_err(io)?;
        assert_eq!(&got[..100], &original[3900..4000]);
        assert_eq!(&got[100..300], &[7u8; 200][..]);
        assert_eq!(&got[300..], &original[4200..4300]);
        o.set_len(5000).map_err(io)?;
        o.set_len(12_000).map_err(io)?;
        let mut tail = vec![1u8; 2000];
        o.read(4900, &mut tail).map_err(io)?;
        assert_eq!(&tail[..100], &original[4900..5000]);
        assert!(
            tail[100..].iter().all(|b| *b == 0),
            "cut, then grown: zeros"
        );
        assert_eq!(o.len().map_err(io)?, 12_000);
        assert_eq!(
            std::fs::read(&path).map_err(|e| Error::io("read", e))?,
            original
        );
        Ok(())
    }
}
