//! Concurrent writers: threads moving cash between accounts, optimistically (conflicts
//! retried) and under pessimistic locks taken in clashing orders (deadlocks retried); one
//! thread pipelining thousands of submits; and a burst of writes surviving drop and reopen.
//! Totals must be conserved and every account must end at its start plus exactly the
//! transfers that were acknowledged.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tradestore::schema::{Cash, Money, Value};
use tradestore::{CommitTicket, Config, ErrorKind, ReadOps, RetryPolicy, Store, WriteTx};
use tradestore_tests::{Rng, TestResult, account, assert_clean, fund_accounts, transfer, usd};

/// Accounts `1..=ACCOUNTS` hold USD and trade it among themselves.
const ACCOUNTS: u64 = 8;
const THREADS: u64 = 8;
const TRANSFERS: usize = 200;
/// Each account's balance before the transfers (raw money).
const INITIAL: i64 = 1_000_000;

/// A committed transfer: from, to, amount.
type Transfer = (u64, u64, i64);

fn config() -> Config {
    Config {
        // Lock waits in a busy debug run can be long; a timeout is not what is tested here.
        lock_timeout_ms: 60_000,
        ..Config::default()
    }
}

fn open_with_accounts(dir: &Path) -> TestResult<Store> {
    let store = Store::open(dir, config())?;
    fund_accounts(&store, ACCOUNTS, INITIAL)?;
    Ok(store)
}

/// A random pair of distinct accounts and an amount.
fn pick(rng: &mut Rng) -> Transfer {
    let a = rng.below(ACCOUNTS) + 1;
    let b = (a + rng.below(ACCOUNTS - 1)) % ACCOUNTS + 1;
    (a, b, rng.range(1, 1000))
}

/// Every account ends at its start plus the committed transfers, and the total is kept.
fn assert_balances(store: &Store, committed: &[Transfer]) -> TestResult {
    let mut expected = vec![INITIAL; usize::try_from(ACCOUNTS + 1)?];
    for &(a, b, amount) in committed {
        expected[usize::try_from(a)?] -= amount;
        expected[usize::try_from(b)?] += amount;
    }
    let tx = store.read()?;
    let mut total = 0;
    for id in 1..=ACCOUNTS {
        let cash: Cash = tx.get(&usd(id))?.ok_or("a cash row is gone")?;
        total += cash.amount.0;
        let want = expected[usize::try_from(id)?];
        if cash.amount.0 != want {
            return Err(format!(
                "account {id}: balance {} but start + committed transfers = {want} (lost update)",
                cash.amount.0
            )
            .into());
        }
    }
    let want_total = INITIAL * i64::try_from(ACCOUNTS)?;
    if total != want_total {
        return Err(format!("total {total}, expected {want_total}").into());
    }
    drop(tx);
    assert_clean(store)
}

/// Runs `THREADS` threads of `TRANSFERS` transfers each through `run`, which returns
/// `Ok(true)` for a committed transfer and `Ok(false)` for one given up on; returns every
/// committed transfer.
fn run_threads(
    seed: u64,
    run: &(dyn Fn(Transfer) -> tradestore::Result<bool> + Sync),
) -> TestResult<Vec<Transfer>> {
    let per_thread: Vec<tradestore::Result<Vec<Transfer>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut rng = Rng::new(seed * 1000 + t);
                    let mut done = Vec::new();
                    for _ in 0..TRANSFERS {
                        let tr = pick(&mut rng);
                        if run(tr)? {
                            done.push(tr);
                        }
                    }
                    Ok(done)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a transfer thread panicked"))
            })
            .collect()
    });
    let mut all = Vec::new();
    for r in per_thread {
        all.extend(r?);
    }
    Ok(all)
}

#[test]
fn optimistic_transfers_conserve_cash_and_lose_no_update() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let policy = RetryPolicy::default();
    let committed = run_threads(1, &|(a, b, amount)| {
        match store.transact(&policy, |tx| transfer(tx, a, b, amount)) {
            Ok(()) => Ok(true),
            // Retries ran out: this transfer did not commit.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    })?;
    assert_balances(&store, &committed)?;
    // Conflicts are expected under this contention but a quiet run may have none.
    let stats = store.stats();
    eprintln!(
        "optimistic: {} of {} committed, {} conflicts, {} retries",
        committed.len(),
        THREADS as usize * TRANSFERS,
        stats.conflicts(),
        stats.retries()
    );
    Ok(())
}

#[test]
fn pessimistic_transfers_in_clashing_lock_orders_resolve_deadlocks() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let policy = RetryPolicy {
        max_attempts: 100_000,
        max_total: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let deadlocks = AtomicU64::new(0);
    let committed = run_threads(2, &|(a, b, amount)| {
        store
            .transact(&policy, |tx| {
                for key in [a, b] {
                    tx.lock(format!("cash/{key}").as_bytes()).inspect_err(|e| {
                        if e.kind() == ErrorKind::Deadlock {
                            deadlocks.fetch_add(1, Ordering::Relaxed);
                        }
                    })?;
                }
                transfer(tx, a, b, amount)
            })
            .map(|()| true)
    })?;
    // Every thread finished every transfer (the limits are generous).
    assert_eq!(committed.len(), THREADS as usize * TRANSFERS);
    assert_balances(&store, &committed)?;
    let seen = deadlocks.load(Ordering::Relaxed);
    let stats = store.stats();
    assert_eq!(
        stats.deadlocks(),
        seen,
        "stats count every deadlock error a transaction returned"
    );
    if seen > 0 {
        assert!(
            !store.deadlocks().is_empty(),
            "{seen} deadlock errors but no deadlock record"
        );
    }
    eprintln!(
        "pessimistic: {seen} deadlocks, {} conflicts, {} retries",
        stats.conflicts(),
        stats.retries()
    );
    Ok(())
}

/// Opens account `id` with `amount` USD: a blind insert, so pipelined submits of different
/// ids never conflict.
fn open_account(tx: &mut WriteTx, id: u64, amount: i64) -> tradestore::Result<()> {
    tx.insert(&account(id, &format!("deposit-{id}")))?;
    tx.insert(&Cash {
        account: id,
        currency: "USD".into(),
        amount: Money(amount),
    })
}

const FIRST_DEPOSIT: u64 = 1_000;

fn assert_deposits(store: &Store, ids: std::ops::Range<u64>) -> TestResult {
    let tx = store.read()?;
    for id in ids {
        let cash: Option<Cash> = tx.get(&usd(id))?;
        let amount = i64::try_from(id)?;
        if cash.as_ref().map(|c| c.amount) != Some(Money(amount)) {
            return Err(format!("deposit {id}: found {cash:?}").into());
        }
    }
    Ok(())
}

#[test]
fn pipelined_submits_all_become_durable() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let n = 2000;
    let ids = FIRST_DEPOSIT..FIRST_DEPOSIT + n;
    let mut tickets: Vec<CommitTicket> = Vec::new();
    for id in ids.clone() {
        let amount = i64::try_from(id)?;
        let ((), ticket) = store.submit(|tx| open_account(tx, id, amount))?;
        tickets.push(ticket);
    }
    let seqs: Vec<u64> = tickets.iter().map(CommitTicket::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs grow: {seqs:?}");
    let last = tickets.last().ok_or("no tickets")?;
    let started = Instant::now();
    let polled = loop {
        if let Some(r) = last.poll() {
            break r;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the last ticket was not durable after 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    polled?;
    for t in tickets {
        t.wait()?;
    }
    assert_deposits(&store, ids)?;
    assert_clean(&store)
}

/// One thread pipelines transfers (each group is then published while that thread begins
/// its next transactions) as readers sum the balances of every snapshot: a group shows
/// whole or not at all, so every snapshot holds the total. Every acknowledged transfer is
/// in the balances at the end.
#[test]
fn pipelined_transfers_are_published_whole_to_concurrent_readers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let want_total = INITIAL * i64::try_from(ACCOUNTS)?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let snapshots = AtomicU64::new(0);
    let committed = std::thread::scope(|s| -> TestResult<Vec<Transfer>> {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    let total_of = || -> TestResult<i64> {
                        let tx = store.read()?;
                        let mut total = 0;
                        for id in 1..=ACCOUNTS {
                            let cash: Cash = tx.get(&usd(id))?.ok_or("a cash row is gone")?;
                            total += cash.amount.0;
                        }
                        Ok(total)
                    };
                    while !done.load(Ordering::SeqCst) {
                        let total = total_of().map_err(|e| e.to_string())?;
                        if total != want_total {
                            return Err(format!("a snapshot holds {total}, not {want_total}"));
                        }
                        snapshots.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let mut rng = Rng::new(91);
        let mut flight: std::collections::VecDeque<(Transfer, CommitTicket)> = Default::default();
        let mut committed = Vec::new();
        let settle = |flight: &mut std::collections::VecDeque<(Transfer, CommitTicket)>| {
            flight
                .pop_front()
                .map(|(t, ticket)| ticket.wait().map(|()| t))
        };
        let mut outcome: TestResult = Ok(());
        'transfers: for _ in 0..3000 {
            let (a, b, amount) = pick(&mut rng);
            loop {
                match store.submit(|tx| transfer(tx, a, b, amount)) {
                    Ok(((), ticket)) => {
                        flight.push_back(((a, b, amount), ticket));
                        break;
                    }
                    // It read a row a transfer in flight changes: let the oldest land.
                    Err(e) if e.is_retryable() => match settle(&mut flight) {
                        Some(t) => committed.push(t?),
                        None => std::thread::yield_now(),
                    },
                    Err(e) => {
                        outcome = Err(e.into());
                        break 'transfers;
                    }
                }
            }
            if flight.len() >= 64
                && let Some(t) = settle(&mut flight)
            {
                committed.push(t?);
            }
        }
        while let Some(t) = settle(&mut flight) {
            committed.push(t?);
        }
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().unwrap_or_else(|_| panic!("a reader panicked"))?;
        }
        outcome?;
        Ok(committed)
    })?;
    assert_eq!(committed.len(), 3000);
    assert!(snapshots.load(Ordering::Relaxed) > 0, "the readers read");
    assert_balances(&store, &committed)
}

/// One thread pipelines transfers among a few accounts through `submit_transact`: nearly
/// every one reads a balance that a transfer still in flight changes, and is run again once
/// that one is durable instead of failing. Every transfer is ordered, and every balance is
/// exact at the end.
#[test]
fn submit_transact_runs_again_after_conflicts_with_transfers_in_flight() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    // One thread: once what it conflicted with is durable, the next attempt cannot
    // conflict, so the default policy is enough.
    let policy = RetryPolicy::default();
    let mut rng = Rng::new(17);
    let mut committed = Vec::new();
    let mut tickets = Vec::new();
    let commits_before = store.stats().commits();
    for _ in 0..500 {
        let (a, b, amount) = pick(&mut rng);
        let ((), ticket) = store.submit_transact(&policy, |tx| transfer(tx, a, b, amount))?;
        committed.push((a, b, amount));
        tickets.push(ticket);
    }
    let seqs: Vec<u64> = tickets.iter().map(CommitTicket::seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs grow: {seqs:?}");
    for t in tickets {
        t.wait()?;
    }
    // Submitted commits are counted once durable, as waited ones are.
    assert_eq!(store.stats().commits() - commits_before, 500);
    assert_balances(&store, &committed)
}

#[test]
fn a_burst_survives_drop_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let policy = RetryPolicy::default();
    let n = 500;
    let ids = FIRST_DEPOSIT..FIRST_DEPOSIT + n;
    let (committed, kept) = std::thread::scope(|s| -> TestResult<_> {
        let transfers = s.spawn(|| {
            let mut rng = Rng::new(77);
            let mut done = Vec::new();
            for _ in 0..100 {
                let (a, b, amount) = pick(&mut rng);
                store.transact(&policy, |tx| transfer(tx, a, b, amount))?;
                done.push((a, b, amount));
            }
            Ok::<_, tradestore::Error>(done)
        });
        // Submitted and never waited for: dropping the store must make them durable.
        let mut tickets = Vec::new();
        for id in ids.clone() {
            let amount = i64::try_from(id)?;
            let ((), ticket) = store.submit(|tx| open_account(tx, id, amount))?;
            tickets.push(ticket);
        }
        let committed = transfers
            .join()
            .unwrap_or_else(|_| panic!("the transfer thread panicked"))?;
        let kept = tickets.pop().ok_or("no tickets")?;
        Ok((committed, kept))
    })?;
    drop(store);
    // A ticket that outlived its store reports the durability that the drop provided.
    kept.wait()?;
    let store = Store::open(dir.path(), config())?;
    assert_balances(&store, &committed)?;
    assert_deposits(&store, ids)?;
    Ok(())
}

/// `WriteTx::lock` promises that a read-modify-write under a lock waits instead of failing
/// validation. A transaction that begins, then waits for a lock held by another that
/// commits a change to the locked row, must read that change and commit at its first try.
#[test]
fn a_transaction_that_waited_for_a_lock_reads_the_holders_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let (locked, wait_locked) = std::sync::mpsc::channel();
    let second = std::thread::scope(|s| {
        let holder = s.spawn(|| {
            store.write(|tx| {
                tx.lock(b"cash/1")?;
                let _ = locked.send(());
                // Long enough for the other transaction to begin and queue for the lock.
                std::thread::sleep(Duration::from_millis(200));
                transfer(tx, 1, 2, 10)
            })
        });
        let _ = wait_locked.recv();
        let second = store.write(|tx| {
            tx.lock(b"cash/1")?;
            transfer(tx, 1, 3, 5)
        });
        let first = holder
            .join()
            .unwrap_or_else(|_| panic!("the lock holder panicked"));
        first.map(|()| second)
    })?;
    second?;
    assert_balances(&store, &[(1, 2, 10), (1, 3, 5)])
}

/// Snapshots share one redb read view until the engine's next redb commit. While a writer
/// commits and the applier keeps moving the overlay into redb (and dropping what it moved),
/// every new snapshot must still see every write acknowledged before it began.
#[test]
fn readers_see_every_acked_write_while_the_applier_moves_the_overlay() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let n: u64 = 1500;
    let acked = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    let checks = AtomicU64::new(0);
    std::thread::scope(|s| -> TestResult {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    let text = |e: tradestore::Error| e.to_string();
                    while !done.load(Ordering::SeqCst) {
                        let seen = acked.load(Ordering::SeqCst);
                        let tx = store.read().map_err(text)?;
                        if seen > 0 {
                            let id = FIRST_DEPOSIT + seen - 1;
                            let cash: Option<Cash> = tx.get(&usd(id)).map_err(text)?;
                            if cash.is_none() {
                                return Err(format!("deposit {id} was acked, then not seen"));
                            }
                        }
                        let rows = tx.count(tradestore::schema::TableId::Cash).map_err(text)?;
                        if rows < ACCOUNTS + seen {
                            return Err(format!("{rows} cash rows after {seen} acked deposits"));
                        }
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        // At least `n` deposits, and on until the applier has moved several batches and the
        // readers have checked many snapshots (a loaded machine may starve either for a
        // while), up to 20 times as many.
        let enough = || store.stats().apply_us().count > 3 && checks.load(Ordering::Relaxed) > 100;
        let written = (|| -> TestResult {
            for id in FIRST_DEPOSIT..FIRST_DEPOSIT + 20 * n {
                let made = id - FIRST_DEPOSIT;
                if made >= n && made.is_multiple_of(100) && enough() {
                    break;
                }
                let amount = i64::try_from(id)?;
                store.write(|tx| open_account(tx, id, amount))?;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })();
        done.store(true, Ordering::SeqCst);
        for r in readers {
            r.join().map_err(|_| "a reader panicked")??;
        }
        written
    })?;
    // The applier moved batches into redb while the readers ran.
    assert!(
        store.stats().apply_us().count > 3,
        "too few applies to test"
    );
    assert!(
        checks.load(Ordering::Relaxed) > 100,
        "only {} checks ran",
        checks.load(Ordering::Relaxed)
    );
    assert_deposits(&store, FIRST_DEPOSIT..FIRST_DEPOSIT + n)?;
    assert_clean(&store)
}

/// Cash of `account` in `currency`.
fn cash(account: u64, currency: &str, amount: i64) -> Cash {
    Cash {
        account,
        currency: currency.into(),
        amount: Money(amount),
    }
}

/// A transaction fails with a retryable conflict exactly when a transaction that committed
/// after its snapshot changed a row it read or wrote a key inside a range it scanned. The
/// second transaction commits from inside the first one's closure, so the order is fixed.
#[test]
fn a_commit_conflicts_exactly_with_what_it_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = open_with_accounts(dir.path())?;
    let t = |amount| move |tx: &mut WriteTx| transfer(tx, 3, 4, amount);

    // A point read of account 1's cash, changed in between.
    let err = store
        .write(|tx| {
            let _: Option<Cash> = tx.get(&usd(1))?;
            store.write(|other| transfer(other, 1, 2, 5))?;
            t(7)(tx)
        })
        .expect_err("the read row changed");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.is_retryable());

    // A scan of account 1's cash rows, and a new row inside it.
    let err = store
        .write(|tx| {
            let _: Vec<Cash> = tx.prefix(&[Value::U64(1)])?;
            store.write(|other| other.insert(&cash(1, "EUR", 10)))?;
            t(7)(tx)
        })
        .expect_err("a row appeared in the scanned range");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    // The same reads with changes beside them: a row the transaction did not read, and a
    // row outside the scanned range.
    store.write(|tx| {
        let _: Option<Cash> = tx.get(&usd(1))?;
        let _: Vec<Cash> = tx.prefix(&[Value::U64(1)])?;
        store.write(|other| {
            transfer(other, 5, 6, 5)?;
            other.insert(&cash(2, "EUR", 10))
        })?;
        t(7)(tx)
    })?;

    // Nothing of the failed transactions stayed; each committed one did.
    let tx = store.read()?;
    let amount = |id| -> TestResult<i64> {
        let c: Cash = tx.get(&usd(id))?.ok_or("no USD")?;
        Ok(c.amount.0)
    };
    assert_eq!(amount(1)?, INITIAL - 5);
    assert_eq!(amount(2)?, INITIAL + 5);
    assert_eq!(amount(3)?, INITIAL - 7);
    assert_eq!(amount(4)?, INITIAL + 7);
    assert_eq!(amount(5)?, INITIAL - 5);
    let eur: Vec<Cash> = tx.all()?;
    assert_eq!(eur.iter().filter(|c| c.currency == "EUR").count(), 2);
    assert_eq!(store.stats().conflicts(), 2);
    Ok(())
}
