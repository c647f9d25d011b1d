//! Group commit, leader/follower style.
//!
//! A committing transaction validates its read set against every transaction committed
//! since its snapshot, takes the next sequence number and joins the pending group, all
//! under the commit lock. Then the first waiter with no leader running becomes the leader:
//! it takes the whole pending group, appends it to the journal with one write and one
//! fdatasync (the durability point), publishes it into the overlay (the visibility point),
//! hands it to the applier, and wakes everyone whose transaction is now durable. A leader
//! does the work on its own thread: no hand-off sits on the ack path. A failed journal write
//! poisons the store: every waiter and every later commit gets an error until it is reopened.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use redb::ReadableDatabase;
use tradestore_schema::TableId;

use super::applier::ApplyJob;
use super::written::{self, Written};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::Ids;
use crate::journal::Journal;
use crate::keys;
use crate::layout::IndexSpec;
use crate::state::{Entry, OKey, Published, RowChange, record};
use crate::stats::Metrics;
use crate::txn::WriteParts;

/// How many committed transactions' write keys are kept for validation. A transaction whose
/// snapshot is older than all of them gets a conflict. (Unit tests use a short history so
/// that they can outrun it.)
const HISTORY: usize = if cfg!(test) { 64 } else { 1 << 16 };

/// A transaction that passed validation and waits for its group's fsync.
pub(crate) struct Pending {
    seq: u64,
    payload: Vec<u8>,
    entries: BTreeMap<OKey, Entry>,
    changes: Arc<Vec<RowChange>>,
    /// Submitted without waiting: counted as a commit when its group is durable (a waiting
    /// committer counts its own, with its latency).
    submitted: bool,
}

/// Everything under the commit lock.
pub(crate) struct CommitState {
    pub next_seq: u64,
    pub durable: u64,
    /// Bumped by a direct commit (restore): older snapshots can no longer be validated.
    pub epoch: u64,
    history: VecDeque<(u64, Written)>,
    pub(crate) pending: Vec<Pending>,
    /// An emptied group vector, kept for its capacity.
    spare: Vec<Pending>,
    /// Pending transactions whose submitter is not waiting: the flusher leads for them.
    submitted: usize,
    pub(crate) leader: bool,
    /// Threads parked in `wait_durable`, each with the transaction it waits for. A leader
    /// wakes exactly those its group made durable, and the waiter of the oldest pending
    /// transaction to lead the next group: no thundering herd on every group.
    waiters: Vec<(u64, std::thread::Thread)>,
}

impl CommitState {
    pub(crate) fn new(last_seq: u64) -> CommitState {
        CommitState {
            next_seq: last_seq + 1,
            durable: last_seq,
            epoch: 0,
            // Reserved whole (about 6 MB of address space, touched as commits fill it): a
            // growing deque would copy itself under the commit lock, stalling every
            // committer for milliseconds at each doubling.
            history: VecDeque::with_capacity(HISTORY),
            pending: Vec::new(),
            spare: Vec::new(),
            submitted: 0,
            leader: false,
            waiters: Vec::new(),
        }
    }
}

/// The state shared by the store handle, committers, the applier and readers.
pub(crate) struct Shared {
    pub db: redb::Database,
    pub config: Config,
    pub indexes: RwLock<Arc<Vec<IndexSpec>>>,
    /// Held by an index creation or drop: one at a time.
    pub index_ddl: Mutex<()>,
    /// Held by a backup: one at a time, so that a backup in the store's `backups/` folder
    /// without its manifest is one a killed process left (see `Store::backup_in_store`).
    pub backing_up: Mutex<()>,
    /// The overlay slot of the next index created.
    pub next_slot: std::sync::atomic::AtomicU16,
    /// Bumped whenever the index list changes (plans naming indexes go stale).
    pub index_gen: std::sync::atomic::AtomicU64,
    /// Rows changed per table (by discriminant) since the store opened: tells the planner's
    /// statistics when they are stale.
    pub row_changes: [std::sync::atomic::AtomicU64; 8],
    pub published: RwLock<Published>,
    /// The redb read view that snapshots share; dropped by every engine redb commit
    /// (`commit_redb`), so the next snapshot begins a fresh one.
    pub view: RwLock<Option<Arc<crate::txn::RedbView>>>,
    /// Generation of the last read view begun (changed under the `view` write lock).
    pub view_gen: AtomicU64,
    /// The row cache, unless configured off (`row_cache_mb = 0`).
    pub rows: Option<Arc<crate::rowcache::RowCache>>,
    /// The newest trades, for reads by id, unless configured off (`recent_trades = 0`).
    pub recent: Option<Arc<crate::recent::RecentTrades>>,
    /// The instruments' newest index entries, unless configured off
    /// (`instrument_tail_mb = 0`).
    pub tails: Option<Arc<crate::tail::InstrumentTails>>,
    /// The archive tier's segments and their cache.
    pub archive: Arc<crate::archive::Archive>,
    /// Bytes of keys and values the overlay holds, changed under the `published` write lock:
    /// committers check it for backpressure without taking the lock a publishing leader
    /// holds.
    pub overlay_bytes: std::sync::atomic::AtomicU64,
    /// Levels out of the overlay that snapshots may still hold (see [`Graveyard`]).
    pub graveyard: Mutex<crate::state::Graveyard>,
    pub commit: Mutex<CommitState>,
    /// `CommitState::durable`, stored after it under the commit lock: a woken waiter and a
    /// ticket's poll read it without taking the lock.
    pub durable: AtomicU64,
    /// The commit time given to the last group written (ns since the Unix epoch): a group's
    /// time is never less than the one before it in this process, even if the clock steps
    /// back. Only leaders write groups, one at a time.
    pub last_commit_ns: AtomicU64,
    /// Signalled for the flusher (submitted transactions pending, nobody waiting on them),
    /// when the store is poisoned, and when overlay space frees up. Committers waiting for
    /// their group park on their own thread instead (`wait_durable`).
    pub commit_cv: Condvar,
    pub journal: Mutex<Journal>,
    pub apply_queue: Mutex<VecDeque<ApplyJob>>,
    pub apply_cv: Condvar,
    pub shutdown: AtomicBool,
    /// Why the store refuses writes (set once, by the first storage failure), and the
    /// advice of the error that caused it.
    pub poison: Mutex<Option<(String, &'static str)>>,
    pub poisoned: AtomicBool,
    pub ids: Arc<Ids>,
    pub metrics: Metrics,
    pub locks: Arc<crate::lock::LockManager>,
    pub breaker: crate::breaker::Breaker,
    pub next_tx: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// A snapshot: the overlay as published now, then a redb read transaction (in that
    /// order, so that together they hold every transaction up to the published one).
    ///
    /// The index list is read first: an index marked ready was completed by a redb commit
    /// that the read transaction, begun after, contains.
    pub(crate) fn snapshot(&self) -> Result<crate::txn::Snapshot> {
        self.breaker.run(|| {
            let indexes = self.indexes.read().clone();
            let (overlay, durable) = {
                let p = self.published.read();
                (p.overlay.clone(), p.durable)
            };
            let view = self.view()?;
            let mut snap = crate::txn::Snapshot::new(view, overlay, durable, indexes);
            snap.reader = Some(crate::stats::ReaderGuard::new(&self.metrics.readers));
            Ok(snap)
        })
    }

    /// The shared redb read view, begun now if the last one was dropped.
    ///
    /// Taken after the overlay (see `snapshot`). A view is begun and installed under the
    /// write lock that `commit_redb` takes after its commit, and the applier drops overlay
    /// entries only after that: so a view installed before a commit is gone before anything
    /// leaves the overlay, and a snapshot never pairs an overlay without a batch with a
    /// redb state without it.
    fn view(&self) -> Result<Arc<crate::txn::RedbView>> {
        if let Some(v) = self.view.read().as_ref() {
            return Ok(Arc::clone(v));
        }
        let mut slot = self.view.write();
        if let Some(v) = slot.as_ref() {
            return Ok(Arc::clone(v));
        }
        let generation = self.view_gen.load(Ordering::SeqCst) + 1;
        // Read before the view begins: a tag published after this read is not used by the
        // view even if its commit made it in, and one published before it made it in.
        let recent = self.recent.as_ref().map(|r| (Arc::clone(r), r.visible()));
        // Also before: a change that begins after this read moves the tails' generation
        // on, so the view uses no group seeded from a state without it (see `crate::tail`).
        let tails = self.tails.as_ref().map(|t| (Arc::clone(t), t.generation()));
        let v = Arc::new(crate::txn::RedbView::new(
            self.db.begin_read()?,
            generation,
            self.rows.clone(),
            recent,
            tails,
            &self.archive,
        )?);
        self.view_gen.store(generation, Ordering::SeqCst);
        *slot = Some(Arc::clone(&v));
        Ok(v)
    }

    /// Commits one of the engine's redb write transactions, then drops the shared read
    /// view so that later snapshots see the commit. Every redb commit made while the store
    /// is open goes through here; one that changes rows brings the row cache's guard, with
    /// each changed row already removed from the cache, and ends it here.
    ///
    /// Such a commit may change the trades index in ways the instruments' tails are not
    /// told of: they are dropped around it. The applier, which hands its index edits to
    /// the tails itself, commits with [`Shared::commit_applied`].
    pub(crate) fn commit_redb(
        &self,
        txn: redb::WriteTransaction,
        rows: Option<crate::rowcache::RowWrite<'_>>,
    ) -> Result<()> {
        let Some(tails) = &self.tails else {
            return self.commit_applied(txn, rows);
        };
        tails.begin_change();
        let done = self.commit_applied(txn, rows);
        tails.end_change();
        done
    }

    /// [`Shared::commit_redb`] for a commit whose index edits the instruments' tails have
    /// been given already (the applier's), or that changes no index entry of trades.
    pub(crate) fn commit_applied(
        &self,
        txn: redb::WriteTransaction,
        rows: Option<crate::rowcache::RowWrite<'_>>,
    ) -> Result<()> {
        txn.commit()?;
        let mut slot = self.view.write();
        *slot = None;
        if let Some(w) = rows {
            w.end(self.view_gen.load(Ordering::SeqCst) + 1);
        }
        Ok(())
    }

    /// After a redb commit that wrote `trades` (id and record), which succeeded: keeps them
    /// in the ring of the newest trades, for read views begun from now on.
    pub(crate) fn remember_trades<'r>(&self, trades: impl Iterator<Item = (u64, &'r [u8])>) {
        let Some(recent) = &self.recent else { return };
        let tag = recent.next_tag();
        for (id, record) in trades {
            recent.put(id, tag, record);
        }
        recent.publish(tag);
    }

    /// Whether the overlay is over half its limit (commits will soon wait for the applier).
    pub(crate) fn overlay_pressed(&self) -> bool {
        self.overlay_bytes.load(Ordering::Relaxed) > (self.config.overlay_max_mb << 20) / 2
    }

    /// Marks the store as failed: writes are refused until it is reopened. `what` failed
    /// with `cause`, whose advice (say, to free space on the disk) the refusals carry.
    pub(crate) fn poison(&self, what: &str, cause: &Error) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some((
                format!("{what} failed: {}: {}", cause.heading(), cause.message()),
                cause.hint(),
            ));
        }
        self.poisoned.store(true, Ordering::SeqCst);
        self.commit_cv.notify_all();
    }

    pub(crate) fn poison_error(&self) -> Error {
        let poison = self.poison.lock().clone();
        let why = poison.as_ref().map_or("", |(why, _)| why.as_str());
        let e = Error::new(
            ErrorKind::Io,
            format!(
                "the store refuses writes after a storage failure ({why}); reopen it. A transaction \
                 in flight when it failed may or may not have become durable: check before redoing it"
            ),
        );
        // The cause's advice: free space, check the store, ...
        match poison {
            Some((_, advice)) => e.advise(advice),
            None => e,
        }
    }

    /// Validates and commits a finished write transaction; returns once it is durable
    /// (`wait`), or right after it joined the pending group (returns its sequence number).
    pub(crate) fn commit(
        &self,
        parts: WriteParts,
        epoch: u64,
        started: Instant,
        wait: bool,
    ) -> Result<u64> {
        if parts.writes.is_empty() {
            return Ok(parts.snapshot_seq);
        }
        let changes = RowChange::of_writes(&parts.writes);
        // Sized up front: growing the buffer byte by byte costs more than the encoding.
        let raw: usize = changes
            .iter()
            .map(|c| c.key.len() + c.value.as_ref().map_or(0, |v| v.len()))
            .sum();
        let size = raw + 8 * changes.len();
        // Refused before it is numbered: a record the journal cannot frame would fail the
        // group's write, which the store must take for a storage failure. The keys and
        // values alone over the bound need no encoding to tell.
        let too_large = |bytes: usize| {
            Error::new(
                ErrorKind::Invalid,
                format!(
                    "the transaction's journal record would be over {bytes} bytes, more than \
                     one record holds ({} MiB): split it into smaller transactions; nothing of \
                     it was written",
                    crate::journal::MAX_PAYLOAD >> 20
                ),
            )
        };
        if raw > crate::journal::MAX_PAYLOAD {
            return Err(too_large(raw));
        }
        // The commit time goes in when the group is written (`write_group`).
        let payload = postcard::to_extend(&changes, record::start(size + 8)).map_err(|e| {
            Error::new(
                ErrorKind::Invalid,
                format!("encoding a journal record: {e}"),
            )
        })?;
        if payload.len() > crate::journal::MAX_PAYLOAD {
            return Err(too_large(payload.len()));
        }
        let written = Written::of(parts.writes.keys());
        let probes = written::probes(&parts.reads);
        let limit = self.config.overlay_max_mb << 20;

        let mut st = self.commit.lock();
        // Backpressure: wait while the applier is too far behind.
        while self.overlay_bytes.load(Ordering::Relaxed) > limit
            && !self.poisoned.load(Ordering::SeqCst)
        {
            self.commit_cv
                .wait_for(&mut st, std::time::Duration::from_millis(10));
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(self.poison_error());
        }
        if epoch != st.epoch {
            crate::stats::Metrics::count(&self.metrics.conflicts);
            return Err(Error::new(
                ErrorKind::Conflict,
                "the store was restored or its indexes changed during this transaction; retry it",
            ));
        }
        if st
            .history
            .front()
            .is_some_and(|(oldest, _)| *oldest > parts.snapshot_seq + 1)
            && st.next_seq > parts.snapshot_seq + 1
        {
            crate::stats::Metrics::count(&self.metrics.conflicts);
            return Err(Error::new(
                ErrorKind::Conflict,
                "the transaction's snapshot is too old to validate; retry it",
            ));
        }
        for (seq, earlier) in st.history.iter().rev() {
            if *seq <= parts.snapshot_seq {
                break;
            }
            if let Some(k) = earlier.conflict(&parts.reads, &probes) {
                crate::stats::Metrics::count(&self.metrics.conflicts);
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "a concurrent transaction (#{seq}) changed {} read by this one; retry it",
                        describe(&k)
                    ),
                ));
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        // Room is made before the push, so the ring never outgrows the capacity it was
        // given at open: no reallocation (a copy of megabytes) under the commit lock.
        while st.history.len() >= HISTORY {
            st.history.pop_front();
        }
        st.history.push_back((seq, written));
        for c in &changes {
            if let Some(n) = self.row_changes.get(usize::from(c.table)) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        st.pending.push(Pending {
            seq,
            payload,
            entries: parts.writes,
            changes: Arc::new(changes),
            submitted: !wait,
        });
        if !wait {
            st.submitted += 1;
            self.commit_cv.notify_all();
            return Ok(seq);
        }
        // Still under the lock: a waiter registers (or leads) without taking it again.
        self.wait_locked(st, seq)?;
        self.metrics.commit(started.elapsed());
        Ok(seq)
    }

    /// Waits until `seq` is durable, leading groups while no one else does.
    ///
    /// A waiter parks only while a leader is running (otherwise it leads); that leader
    /// wakes it when its transaction is durable, when the store is poisoned, or when it is
    /// chosen to lead the next group.
    pub(crate) fn wait_durable(&self, seq: u64) -> Result<()> {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        self.wait_locked(self.commit.lock(), seq)
    }

    /// [`wait_durable`](Self::wait_durable) from under the commit lock.
    fn wait_locked<'a>(&'a self, mut st: MutexGuard<'a, CommitState>, seq: u64) -> Result<()> {
        let me = std::thread::current();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            // A group being written decides its own fate: wait for its leader.
            if self.poisoned.load(Ordering::SeqCst) && !st.leader {
                return Err(self.poison_error());
            }
            if !st.leader && !st.pending.is_empty() {
                st.leader = true;
                let submitted = std::mem::take(&mut st.submitted) > 0;
                let spare = std::mem::take(&mut st.spare);
                let group = std::mem::replace(&mut st.pending, spare);
                drop(st);
                let outcome = self.write_group(group, submitted);
                st = self.commit.lock();
                st.leader = false;
                if let Ok((last, emptied)) = outcome {
                    st.durable = st.durable.max(last);
                    self.durable.store(st.durable, Ordering::Release);
                    if emptied.capacity() > st.spare.capacity() {
                        st.spare = emptied;
                    }
                }
                // Unparked after the lock is released: each unpark is a system call, and
                // committers queue for the lock meanwhile (measured at 64 submitters: a
                // leader held it for every wake of its group).
                let woken = self.wake(&mut st);
                let done = st.durable >= seq;
                drop(st);
                for t in woken {
                    t.unpark();
                }
                if done {
                    return Ok(());
                }
                st = self.commit.lock();
                continue;
            }
            st.waiters.push((seq, me.clone()));
            drop(st);
            std::thread::park();
            // The leader that made it durable took this thread off the waiters before
            // unparking it: nothing to clean up, and no lock to take (a whole group of
            // woken waiters would queue for it). After a spurious wake-up the entry may
            // still be there; that leader removes it and unparks this thread once more,
            // which ends a later park early, and every park here is in a loop.
            if self.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            st = self.commit.lock();
            // Woken or not (parking may end spuriously), no stale entry stays behind.
            let id = me.id();
            st.waiters.retain(|(_, t)| t.id() != id);
        }
    }

    /// After a group: takes off the waiters every one whose transaction is now durable (all
    /// of them if the store is poisoned), and the waiter of the oldest pending transaction,
    /// who leads the next group; returns them, for the caller to unpark once it has released
    /// the lock (the next leader first). Also signals the condvar's waiters (the flusher,
    /// backpressure, drain).
    fn wake(&self, st: &mut CommitState) -> Vec<std::thread::Thread> {
        let durable = st.durable;
        let all = self.poisoned.load(Ordering::SeqCst);
        let mut woken = Vec::new();
        let mut i = 0;
        while i < st.waiters.len() {
            if all || st.waiters[i].0 <= durable {
                woken.push(st.waiters.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        let mut next_leader = false;
        if !st.leader && !st.pending.is_empty() {
            let oldest = st
                .waiters
                .iter()
                .enumerate()
                .min_by_key(|(_, (s, _))| *s)
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                // First to be unparked: the next group starts as soon as possible.
                woken.push(st.waiters.swap_remove(i).1);
                let last = woken.len() - 1;
                woken.swap(0, last);
                next_leader = true;
            }
        }
        // The flusher leads when only submitted transactions (nobody waiting) are pending.
        // The other condvar waits (backpressure, drain) poll on short timers, so no wake
        // (a system call and a cross-core interrupt) sits on every group's ack path.
        if all || (!next_leader && !st.pending.is_empty()) {
            self.commit_cv.notify_all();
        }
        woken
    }

    /// Whether `seq` is durable yet (an error if the store was poisoned first).
    pub(crate) fn poll_durable(&self, seq: u64) -> Option<Result<()>> {
        if self.durable.load(Ordering::Acquire) >= seq {
            return Some(Ok(()));
        }
        let st = self.commit.lock();
        if st.durable >= seq {
            Some(Ok(()))
        } else if self.poisoned.load(Ordering::SeqCst) {
            Some(Err(self.poison_error()))
        } else {
            None
        }
    }

    /// Makes pending groups durable from a background thread, for transactions submitted
    /// without waiting. Returns when shut down.
    pub(crate) fn run_flusher(&self) {
        let mut st = self.commit.lock();
        while !self.shutdown.load(Ordering::SeqCst) {
            if !st.leader && st.submitted > 0 && !self.poisoned.load(Ordering::SeqCst) {
                let target = st.pending.last().map_or(0, |p| p.seq);
                drop(st);
                // Becomes the leader like any waiter; errors reach the submitters' tickets.
                let _ = self.wait_durable(target);
                st = self.commit.lock();
                continue;
            }
            self.commit_cv
                .wait_for(&mut st, std::time::Duration::from_millis(50));
        }
    }

    /// Appends a group to the journal (one write, one fdatasync), then publishes it.
    /// `submitted`: the group holds transactions whose submitters went on without waiting.
    /// Returns the last sequence number it made durable, and the group's emptied vector
    /// (its capacity serves a later group).
    fn write_group(&self, mut group: Vec<Pending>, submitted: bool) -> Result<(u64, Vec<Pending>)> {
        let now = crate::index::now_ns().max(self.last_commit_ns.load(Ordering::Relaxed));
        self.last_commit_ns.store(now, Ordering::Relaxed);
        for p in &mut group {
            record::stamp(&mut p.payload, now);
        }
        let records: Vec<(u64, &[u8])> = group
            .iter()
            .map(|p| (p.seq, p.payload.as_slice()))
            .collect();
        let t = Instant::now();
        let appended = self.journal.lock().append(&records);
        self.breaker.record(appended.is_ok(), Instant::now());
        if let Err(e) = appended {
            self.poison("journal write", &e);
            return Err(e);
        }
        self.metrics.fsync(t.elapsed(), group.len());
        let unwaited = group.iter().filter(|p| p.submitted).count() as u64;
        if unwaited > 0 {
            self.metrics.commits.fetch_add(unwaited, Ordering::Relaxed);
        }
        let last = group.last().map_or(0, |p| p.seq);
        // Published and queued for the applier under one lock: the applier seals the
        // overlay's newest level and takes the queue together, so the level holds exactly
        // the batch it applies, and drops as a whole once applied.
        //
        // A submitter that went on without waiting begins its next transactions (each one a
        // snapshot, under the read lock) while the group is published. When snapshots share
        // the newest level, the inserts copy the nodes they touch anyway: for such a group
        // they go into a copy of the level built without the lock (only leaders publish,
        // one at a time), and the lock is held to put it in place. Otherwise they go in
        // place under the lock. (Measured, scratch driver over `benches`: a pipelining
        // thread 80-89k to 83-110k fills/s; blocking committers, which mostly wait for this
        // very group, lost about 4% to building copies away from the lock, so they do not.)
        let draft = if submitted {
            let p = self.published.read();
            p.overlay.newest_shared().then(|| p.overlay.draft())
        } else {
            None
        };
        // Changed only under the `published` write lock: its loads and stores cannot race.
        let counted = |recounted: u64, (added, removed): (u64, u64)| {
            let bytes = self.overlay_bytes.load(Ordering::Relaxed) + recounted;
            self.overlay_bytes
                .store((bytes + added).saturating_sub(removed), Ordering::Relaxed);
        };
        let (mut published, replaced) = match draft {
            Some(mut draft) => {
                let sizes = move_entries(&mut group, |k, seq, e| draft.insert(k, seq, e));
                let mut published = self.published.write();
                let installed = published.overlay.install(draft);
                counted(installed.recounted, sizes);
                (published, installed.replaced)
            }
            None => {
                let mut published = self.published.write();
                let sizes =
                    move_entries(&mut group, |k, seq, e| published.overlay.insert(k, seq, e));
                counted(0, sizes);
                (published, None)
            }
        };
        published.durable = last;
        let mut q = self.apply_queue.lock();
        drop(published);
        let freed = {
            let mut g = self.graveyard.lock();
            if let Some(level) = replaced {
                g.bury(level);
            }
            g.reap()
        };
        let was_empty = q.is_empty();
        for p in group.drain(..) {
            q.push_back(ApplyJob {
                bytes: p.payload.len() as u64,
                seq: p.seq,
                changes: p.changes,
            });
        }
        // The applier gathers for a while after its first job: wake it for that job, for a
        // full batch, or when commits are about to wait for overlay space, not every group.
        if was_empty || q.len() >= super::applier::FULL_BATCH || self.overlay_pressed() {
            self.apply_cv.notify_one();
        }
        drop(q);
        drop(freed);
        Ok((last, group))
    }
}

/// Moves a group's entries (not needed after publishing) into `insert`, which returns the
/// bytes each added and replaced; returns their sums.
fn move_entries(
    group: &mut [Pending],
    mut insert: impl FnMut(OKey, u64, Entry) -> (u64, u64),
) -> (u64, u64) {
    let (mut added, mut removed) = (0, 0);
    for p in group {
        for (k, e) in std::mem::take(&mut p.entries) {
            let (a, r) = insert(k, p.seq, e);
            added += a;
            removed += r;
        }
    }
    (added, removed)
}

fn describe(k: &OKey) -> String {
    let what = match u8::try_from(k.0).ok().and_then(TableId::from_u8) {
        Some(t) => t.name().to_owned(),
        None => "an index entry".to_owned(),
    };
    match keys::decode(&k.1) {
        Ok(v) => format!("{what} {}", crate::txn::show_values(&v)),
        Err(_) => what,
    }
}

#[cfg(test)]
mod tests {
    use tradestore_schema::{Account, AccountStatus};

    use super::HISTORY;
    use crate::{Config, ErrorKind, ReadOps, Store};

    fn account(id: u64) -> Account {
        Account {
            id,
            name: format!("a{id}"),
            status: AccountStatus::Active,
        }
    }

    /// Commits `others` unrelated transactions while a transaction that read account 1
    /// runs, then commits it.
    fn outrun(store: &Store, first: u64, others: u64) -> crate::Result<()> {
        store.write(|tx| {
            let _: Option<Account> = tx.get_id(1)?;
            for id in first..first + others {
                store.write(|other| other.insert(&account(id)))?;
            }
            tx.insert(&account(first + others))
        })
    }

    /// A transaction whose journal record would be over the most one record holds is
    /// refused before it is numbered, and the store goes on taking writes (it used to fail
    /// the group's journal write, which poisoned the store until reopened).
    #[test]
    fn a_transaction_over_one_journal_record_is_refused_and_writes_go_on() -> crate::Result<()> {
        use std::collections::BTreeMap;
        use std::sync::Arc;

        use crate::state::{Entry, space_of_table};
        use crate::txn::{ReadSet, WriteParts};
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = Store::open(dir.path(), Config::default())?;
        let big: Arc<[u8]> = vec![7u8; 20 << 20].into();
        let writes: BTreeMap<_, _> = (0..4u8)
            .map(|i| {
                let key = (
                    space_of_table(tradestore_schema::TableId::Accounts),
                    vec![i],
                );
                (key, Entry::Put(Arc::clone(&big)))
            })
            .collect();
        let parts = WriteParts {
            writes,
            reads: ReadSet::default(),
            snapshot_seq: store
                .shared
                .durable
                .load(std::sync::atomic::Ordering::Acquire),
        };
        let epoch = store.shared.commit.lock().epoch;
        let err = store
            .shared
            .commit(parts, epoch, std::time::Instant::now(), true)
            .expect_err("a record over 64 MiB");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(err.to_string().contains("smaller transactions"), "{err}");
        assert_eq!(store.stats().poisoned(), None);
        store.write(|tx| tx.insert(&account(1)))?;
        assert!(store.read()?.get_id::<Account>(1)?.is_some());
        Ok(())
    }

    #[test]
    fn a_snapshot_older_than_the_history_conflicts_and_one_within_it_commits() -> crate::Result<()>
    {
        let dir = tempfile::tempdir().map_err(|e| crate::Error::io("tempdir", e))?;
        let store = Store::open(dir.path(), Config::default())?;
        store.write(|tx| tx.insert(&account(1)))?;
        let n = HISTORY as u64;
        // Exactly as many commits as the history keeps: each is still there to validate.
        outrun(&store, 100, n)?;
        // One more: the oldest commit after the snapshot has left the history.
        let err = outrun(&store, 1000, n + 1).expect_err("the snapshot is too old");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("too old"), "{err}");
        assert!(err.is_retryable());
        let tx = store.read()?;
        assert!(tx.get_id::<Account>(100 + n)?.is_some());
        assert!(tx.get_id::<Account>(1000 + n)?.is_some());
        assert!(tx.get_id::<Account>(1000 + n + 1)?.is_none());
        Ok(())
    }
}
