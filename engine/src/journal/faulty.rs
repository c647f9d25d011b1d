//! A fault injector for crash tests (cargo feature `failpoints`): fails writes and syncs on
//! a countdown, tears a write, and simulates a crash that keeps only what was synced.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::io::{FileIo, JournalFile, JournalIo};

/// A [`JournalIo`] over the real file system ([`FileIo`]) that injects faults.
///
/// It remembers, for every file the journal creates or opens for writing, its contents as
/// of the last successful `sync_data` (a file that existed before counts as synced), and
/// whether its folder entry was synced since it was created. [`crash`](FaultyIo::crash)
/// rewrites each file to those contents (and deletes files whose entry was never synced),
/// so reopening the folder with [`FileIo`] sees what a power cut would have left.
/// Removes and renames are taken as durable at once.
#[derive(Default)]
pub struct FaultyIo {
    inner: FileIo,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    crashed: bool,
    /// Writes (`write_at` calls) left before one fails: 1 = the next one.
    fail_write_in: Option<u64>,
    /// What the failing write says went wrong (`Other` unless told).
    fail_write_kind: Option<io::ErrorKind>,
    /// Syncs (`sync_data` calls) left before one fails: 1 = the next one.
    fail_sync_in: Option<u64>,
    /// Writes left before one is torn (1 = the next one), and how many bytes it keeps.
    tear: Option<(u64, usize)>,
    writes: u64,
    syncs: u64,
    files: BTreeMap<PathBuf, Tracked>,
}

struct Tracked {
    /// The contents as of the last successful sync (plus torn writes, which hit the disk).
    durable: Vec<u8>,
    /// Whether the folder was synced since the file was created.
    entry_durable: bool,
}

fn crashed() -> io::Error {
    io::Error::other("injected fault: the machine has crashed")
}

/// Counts down; true when this call is the one that fails.
fn due(countdown: &mut Option<u64>) -> bool {
    match countdown {
        Some(1) => {
            *countdown = None;
            true
        }
        Some(n) => {
            *n -= 1;
            false
        }
        None => false,
    }
}

impl FaultyIo {
    /// A fault injector with no fault armed.
    pub fn new() -> FaultyIo {
        FaultyIo::default()
    }

    /// Makes the `nth` write from now fail (1 = the next), writing nothing.
    pub fn fail_write(&self, nth: u64) {
        self.fail_write_with(nth, io::ErrorKind::Other);
    }

    /// Like [`fail_write`](FaultyIo::fail_write), the write failing with `kind` (say,
    /// `StorageFull` for a full disk).
    pub fn fail_write_with(&self, nth: u64, kind: io::ErrorKind) {
        let mut st = self.state.lock();
        st.fail_write_in = Some(nth.max(1));
        st.fail_write_kind = Some(kind);
    }

    /// Makes the `nth` `sync_data` from now fail (1 = the next), syncing nothing.
    pub fn fail_sync(&self, nth: u64) {
        self.state.lock().fail_sync_in = Some(nth.max(1));
    }

    /// Makes the next write put only its first `keep` bytes on disk and then fail, as a
    /// power cut in the middle of it would. Those bytes survive [`crash`](FaultyIo::crash).
    pub fn tear_next_write(&self, keep: usize) {
        self.tear_write(1, keep);
    }

    /// Like [`tear_next_write`](FaultyIo::tear_next_write), for the `nth` write from now
    /// (a group that starts a new segment is the second write: the first preallocates).
    pub fn tear_write(&self, nth: u64, keep: usize) {
        self.state.lock().tear = Some((nth.max(1), keep));
    }

    /// Disarms every fault not yet fired.
    pub fn disarm(&self) {
        let mut st = self.state.lock();
        st.fail_write_in = None;
        st.fail_sync_in = None;
        st.tear = None;
    }

    /// Simulates a crash: from now on every operation fails, and every file written through
    /// this injector is put back to what was durable (see the type's documentation).
    pub fn crash(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.crashed = true;
        for (path, file) in &st.files {
            if file.entry_durable {
                fs::write(path, &file.durable)?;
            } else {
                match fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// How many writes were attempted (failed ones included).
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// How many `sync_data` calls were attempted (failed ones included).
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    fn check(&self) -> io::Result<()> {
        if self.state.lock().crashed {
            return Err(crashed());
        }
        Ok(())
    }

    fn wrap(&self, path: &Path, inner: Box<dyn JournalFile>) -> Box<dyn JournalFile> {
        Box::new(FaultyFile {
            path: path.to_path_buf(),
            inner,
            state: Arc::clone(&self.state),
        })
    }
}

impl JournalIo for FaultyIo {
    fn create(&self, path: &Path) -> io::Result<Box<dyn JournalFile>> {
        self.check()?;
        let file = self.inner.create(path)?;
        let tracked = Tracked {
            durable: Vec::new(),
            entry_durable: false,
        };
        self.state.lock().files.insert(path.to_path_buf(), tracked);
        Ok(self.wrap(path, file))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn JournalFile>> {
        self.check()?;
        let file = self.inner.open(path)?;
        let mut st = self.state.lock();
        if !st.files.contains_key(path) {
            let tracked = Tracked {
                durable: fs::read(path)?,
                entry_durable: true,
            };
            st.files.insert(path.to_path_buf(), tracked);
        }
        drop(st);
        Ok(self.wrap(path, file))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check()?;
        self.inner.read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.check()?;
        self.inner.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.create_dir_all(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.remove(path)?;
        self.state.lock().files.remove(path);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.rename(from, to)?;
        let mut st = self.state.lock();
        if let Some(tracked) = st.files.remove(from) {
            st.files.insert(to.to_path_buf(), tracked);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check()?;
        self.inner.sync_dir(dir)?;
        let mut st = self.state.lock();
        for (path, file) in st.files.iter_mut() {
            if path.parent() == Some(dir) {
                file.entry_durable = true;
            }
        }
        Ok(())
    }
}

struct FaultyFile {
    path: PathBuf,
    inner: Box<dyn JournalFile>,
    state: Arc<Mutex<State>>,
}

impl JournalFile for FaultyFile {
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.crashed {
            return Err(crashed());
        }
        st.writes += 1;
        if due(&mut st.fail_write_in) {
            let kind = st.fail_write_kind.take().unwrap_or(io::ErrorKind::Other);
            return Err(io::Error::new(kind, "injected fault: write failed"));
        }
        let keep = match &mut st.tear {
            Some((1, keep)) => *keep,
            Some((n, _)) => {
                *n -= 1;
                return self.inner.write_at(offset, data);
            }
            None => return self.inner.write_at(offset, data),
        };
        st.tear = None;
        let keep = keep.min(data.len());
        self.inner.write_at(offset, &data[..keep])?;
        if let Some(file) = st.files.get_mut(&self.path) {
            let start = usize::try_from(offset).map_err(io::Error::other)?;
            if file.durable.len() < start + keep {
                file.durable.resize(start + keep, 0);
            }
            file.durable[start..start + keep].copy_from_slice(&data[..keep]);
        }
        Err(io::Error::other(format!(
            "injected fault: write torn after {keep} of {} bytes",
            data.len()
        )))
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        if st.crashed {
            return Err(crashed());
        }
        st.syncs += 1;
        if due(&mut st.fail_sync_in) {
            return Err(io::Error::other("injected fault: sync failed"));
        }
        self.inner.sync_data()?;
        let contents = fs::read(&self.path)?;
        if let Some(file) = st.files.get_mut(&self.path) {
            file.durable = contents;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_bytes_and_torn_prefixes_only() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let io = FaultyIo::new();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let file = io.create(&a)?;
        file.write_at(0, b"synced")?;
        file.sync_data()?;
        io.sync_dir(dir.path())?;
        file.write_at(6, b" lost")?;
        io.tear_next_write(3);
        assert!(file.write_at(20, b"torn write").is_err());
        // Created, synced, but its folder entry never was: gone after the crash.
        let other = io.create(&b)?;
        other.write_at(0, b"x")?;
        other.sync_data()?;
        io.crash()?;
        let mut expected = b"synced".to_vec();
        expected.resize(20, 0);
        expected.extend_from_slice(b"tor");
        assert_eq!(fs::read(&a)?, expected);
        assert!(!b.exists());
        assert!(file.write_at(0, b"y").is_err() && io.read(&a).is_err());
        Ok(())
    }

    #[test]
    fn countdowns_fail_the_nth_call_once() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let io = FaultyIo::new();
        let file = io.create(&dir.path().join("f"))?;
        io.fail_write(2);
        io.fail_sync(1);
        assert!(file.write_at(0, b"1").is_ok());
        assert!(file.write_at(1, b"2").is_err());
        assert!(file.write_at(1, b"3").is_ok());
        assert!(file.sync_data().is_err());
        assert!(file.sync_data().is_ok());
        assert_eq!((io.writes(), io.syncs()), (3, 2));
        Ok(())
    }
}
