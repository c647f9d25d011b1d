//! A fault-injecting redb [`StorageBackend`] for crash tests: the database lives in memory,
//! a second copy keeps what the last `sync_data` made durable, writes and syncs can fail on a
//! countdown, and [`FaultyRedb::crash`] hands back the bytes a power cut would have left.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redb::StorageBackend;

/// An in-memory redb backend that injects faults. Clones share one state, so a test keeps a
/// handle while the store owns another.
#[derive(Clone, Debug, Default)]
pub struct FaultyRedb {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// The file as the running database sees it.
    live: Vec<u8>,
    /// The file as of the last successful `sync_data`.
    durable: Vec<u8>,
    /// Writes left before one fails (1 = the next one).
    fail_write_in: Option<u64>,
    /// Syncs left before one fails (1 = the next one).
    fail_sync_in: Option<u64>,
    crashed: bool,
    writes: u64,
    syncs: u64,
}

/// Counts down; true when this call is the one that fails.
fn due(countdown: &mut Option<u64>) -> bool {
    match countdown {
        Some(n) if *n <= 1 => {
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

fn crashed() -> io::Error {
    io::Error::other("injected fault: the machine has crashed")
}

fn index(offset: u64, len: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).map_err(io::Error::other)?;
    let end = start
        .checked_add(len)
        .ok_or_else(|| io::Error::other("offset overflows"))?;
    Ok((start, end))
}

impl FaultyRedb {
    /// An empty backend with no fault armed.
    pub fn new() -> FaultyRedb {
        FaultyRedb::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the `nth` write from now fail (1 = the next), writing nothing.
    pub fn fail_write(&self, nth: u64) {
        self.state().fail_write_in = Some(nth.max(1));
    }

    /// Makes the `nth` `sync_data` from now fail (1 = the next), syncing nothing.
    pub fn fail_sync(&self, nth: u64) {
        self.state().fail_sync_in = Some(nth.max(1));
    }

    /// Disarms every fault not yet fired.
    pub fn disarm(&self) {
        let mut st = self.state();
        st.fail_write_in = None;
        st.fail_sync_in = None;
    }

    /// Simulates a crash: every later operation fails, and the returned bytes are the file
    /// as of the last successful sync.
    pub fn crash(&self) -> Vec<u8> {
        let mut st = self.state();
        st.crashed = true;
        st.durable.clone()
    }

    /// The file as of the last successful sync.
    pub fn durable(&self) -> Vec<u8> {
        self.state().durable.clone()
    }

    /// How many writes were attempted (failed ones included).
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// How many syncs were attempted (failed ones included).
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }
}

impl StorageBackend for FaultyRedb {
    fn len(&self) -> Result<u64, io::Error> {
        let st = self.state();
        if st.crashed {
            return Err(crashed());
        }
        Ok(st.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let st = self.state();
        if st.crashed {
            return Err(crashed());
        }
        let (start, end) = index(offset, out.len())?;
        let src = st
            .live
            .get(start..end)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut st = self.state();
        if st.crashed {
            return Err(crashed());
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        st.live.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut st = self.state();
        if st.crashed {
            return Err(crashed());
        }
        st.syncs += 1;
        if due(&mut st.fail_sync_in) {
            return Err(io::Error::other("injected fault: redb sync failed"));
        }
        st.durable = st.live.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut st = self.state();
        if st.crashed {
            return Err(crashed());
        }
        st.writes += 1;
        if due(&mut st.fail_write_in) {
            return Err(io::Error::other("injected fault: redb write failed"));
        }
        let (start, end) = index(offset, data.len())?;
        if st.live.len() < end {
            st.live.resize(end, 0);
        }
        st.live[start..end].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_returns_the_synced_bytes_and_countdowns_fire_once() -> io::Result<()> {
        let b = FaultyRedb::new();
        b.write(0, b"abc")?;
        b.sync_data()?;
        b.write(3, b"def")?;
        b.fail_write(2);
        b.write(0, b"x")?;
        assert!(b.write(0, b"y").is_err());
        b.write(1, b"z")?;
        b.fail_sync(1);
        assert!(b.sync_data().is_err());
        let mut out = [0u8; 6];
        b.read(0, &mut out)?;
        assert_eq!(&out, b"xzcdef");
        assert_eq!((b.writes(), b.syncs()), (5, 2));
        assert_eq!(b.crash(), b"abc");
        assert!(b.len().is_err() && b.write(0, b"q").is_err());
        Ok(())
    }
}
