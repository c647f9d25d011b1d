//! The applier: a background thread that moves durable transactions from the overlay into
//! redb in large batches with `Durability::None`, and every `checkpoint_interval_ms` (or
//! when it stops) makes a checkpoint: a `Durability::Immediate` commit (with quick repair)
//! that records the last transaction it contains, after which the journal segments it
//! covers are released. A failed redb commit poisons the store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::Durability;
use tradestore_schema::TableId;

use super::pipeline::Shared;
use crate::error::Result;
use crate::state::{RowChange, apply_rows, write_acked_seq, write_applied_seq};
use crate::stats::Metrics;

/// Largest number of transactions applied in one redb commit.
const MAX_BATCH: usize = 50_000;
/// A batch this large is applied at once.
pub(super) const FULL_BATCH: usize = 8_192;
/// How long the applier gathers a batch after the first job arrives.
const GATHER: Duration = Duration::from_millis(50);

/// One durable transaction waiting to be applied.
pub(crate) struct ApplyJob {
    pub seq: u64,
    pub changes: Arc<Vec<RowChange>>,
    /// Size of its journal record.
    pub bytes: u64,
}

/// Runs until the store shuts down, then applies what is left and checkpoints.
pub(crate) fn run_applier(shared: &Shared, mut checkpointed: u64) {
    shared
        .metrics
        .checkpointed_seq
        .store(checkpointed, Ordering::Relaxed);
    let interval = Duration::from_millis(shared.config.checkpoint_interval_ms);
    let mut last_checkpoint = Instant::now();
    let mut applied = checkpointed;
    let bytes_limit = shared.config.checkpoint_mb << 20;
    let mut bytes_since = 0u64;
    loop {
        let stopping = shared.shutdown.load(Ordering::SeqCst);
        let batch: Vec<ApplyJob> = {
            // Every redb commit copies the pages it touches, so wait for a large batch: until
            // GATHER has passed since the first job arrived, the queue holds FULL_BATCH jobs,
            // or commits are waiting for overlay space.
            let mut q = shared.apply_queue.lock();
            let started = Instant::now();
            while !stopping && !shared.shutdown.load(Ordering::SeqCst) && q.len() < FULL_BATCH {
                let waited = started.elapsed();
                let gather = if q.is_empty() {
                    interval.min(Duration::from_millis(20))
                } else {
                    GATHER
                };
                if waited >= gather || shared.overlay_pressed() {
                    break;
                }
                shared.apply_cv.wait_for(&mut q, gather - waited);
                if q.is_empty() {
                    break;
                }
            }
            // Seal the overlay's newest level and take the batch together (the publisher
            // queues under the same lock order: `published`, then the queue), so that the
            // sealed levels hold exactly what is taken, unless the batch is capped.
            drop(q);
            let mut published = shared.published.write();
            let mut q = shared.apply_queue.lock();
            published.overlay.seal();
            drop(published);
            let n = q.len().min(MAX_BATCH);
            q.drain(..n).collect()
        };
        bytes_since += batch.iter().map(|j| j.bytes).sum::<u64>();
        let due = last_checkpoint.elapsed() >= interval || bytes_since >= bytes_limit || stopping;
        if batch.is_empty() {
            // Idle: levels whose last snapshot has gone since the last batch are freed.
            let freed = shared.graveyard.lock().reap();
            drop(freed);
        }
        if batch.is_empty() && !(due && applied > checkpointed) {
            if stopping && shared.apply_queue.lock().is_empty() {
                return;
            }
            continue;
        }
        let checkpoint = due;
        let t = Instant::now();
        let outcome = apply(shared, &batch, checkpoint, applied);
        shared.breaker.record(outcome.is_ok(), Instant::now());
        match outcome {
            Ok(last) => applied = last,
            Err(e) => {
                shared.poison("applying to the database", &e);
                return;
            }
        }
        shared.metrics.apply(t.elapsed());
        remove_applied(shared, &batch, applied);
        prepare_spare(shared);
        if checkpoint {
            last_checkpoint = Instant::now();
            bytes_since = 0;
            checkpointed = applied;
            shared
                .metrics
                .checkpointed_seq
                .store(checkpointed, Ordering::Relaxed);
            Metrics::count(&shared.metrics.checkpoints);
            shared
                .metrics
                .last_checkpoint_ns
                .store(crate::index::now_ns(), std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = shared.journal.lock().release(applied) {
                shared.poison("releasing journal segments", &e);
                return;
            }
        }
    }
}

fn apply(shared: &Shared, batch: &[ApplyJob], checkpoint: bool, applied: u64) -> Result<u64> {
    let mut txn = shared.db.begin_write()?;
    if checkpoint {
        txn.set_durability(Durability::Immediate)?;
        txn.set_quick_repair(true);
    } else {
        txn.set_durability(Durability::None)?;
    }
    let indexes = shared.indexes.read().clone();
    let tail_edits = apply_rows(
        &txn,
        &indexes,
        batch.iter().flat_map(|job| job.changes.iter()),
        shared.tails.as_ref().map(|_| crate::tail::TAIL_INDEX),
    )?;
    let last = batch.last().map_or(applied, |job| job.seq);
    write_applied_seq(&txn, last)?;
    if checkpoint {
        // Every seq up to `durable` was synced to the journal and may have been acknowledged:
        // from now on the journal must reach it, or acknowledged records were lost.
        write_acked_seq(
            &txn,
            shared.durable.load(std::sync::atomic::Ordering::Acquire),
        )?;
    }
    let rows = shared.rows.as_deref().map(|cache| {
        let w = cache.begin_write();
        for c in batch.iter().flat_map(|job| job.changes.iter()) {
            if let Some(t) = TableId::from_u8(c.table) {
                w.forget(t, &c.key);
            }
        }
        w
    });
    // Before the commit: a read view that contains the batch finds its entries there (see
    // `crate::tail`).
    if let Some(tails) = &shared.tails {
        tails.apply(&tail_edits, last);
    }
    shared.commit_applied(txn, rows)?;
    let trades = TableId::Trades as u8;
    shared.remember_trades(
        batch
            .iter()
            .flat_map(|job| job.changes.iter())
            .filter(|c| c.table == trades)
            .filter_map(|c| Some((crate::keys::id_of(&c.key)?, c.value.as_deref()?))),
    );
    Ok(last)
}

/// Preallocates the journal's next segment here, off the ack path, once the active one is
/// half full. A failed write or sync of it is a failed journal write: it poisons the store,
/// like one on the ack path would.
fn prepare_spare(shared: &Shared) {
    let request = shared.journal.lock().wants_spare();
    let Some(request) = request else { return };
    let made = crate::journal::Journal::make_spare(request);
    shared.breaker.record(made.is_ok(), Instant::now());
    match made {
        Ok(spare) => shared.journal.lock().install_spare(spare),
        Err(e) => shared.poison("preparing the next journal segment", &e),
    }
}

/// Drops from the overlay the levels redb now holds. A level that also holds later writes
/// (the batch was capped) stays until a later batch has applied them.
fn remove_applied(shared: &Shared, batch: &[ApplyJob], applied: u64) {
    if batch.is_empty() {
        return;
    }
    let done = {
        let mut published = shared.published.write();
        let (freed, done) = published.overlay.take_applied(applied);
        let bytes = shared.overlay_bytes.load(Ordering::Relaxed);
        shared
            .overlay_bytes
            .store(bytes.saturating_sub(freed), Ordering::Relaxed);
        done
    };
    shared.commit_cv.notify_all();
    // Freed here once no snapshot holds them, outside the lock that snapshots and
    // publishers take.
    let freed = {
        let mut g = shared.graveyard.lock();
        g.bury_all(done);
        g.reap()
    };
    drop(freed);
}
