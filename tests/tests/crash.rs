//! Crash consistency of the whole store: a seeded stream of fills, deposits and pipelined
//! account openings runs against a store whose journal ([`FaultyIo`]) and redb file
//! ([`FaultyRedb`]) inject faults; after a failed sync, a failed or torn write, or a plain
//! power cut, the store is "crashed" (each file keeps only its synced bytes), dropped, and
//! reopened from the real files. Every acknowledged transaction must be there, nothing
//! unacknowledged may be half there, the store must check clean and accept new writes.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tradestore::journal::FaultyIo;
use tradestore::schema::{Account, Cash, Money, Order, Side, Trade, Value};
use tradestore::{
    CommitTicket, Config, DB_FILE, Error, ErrorKind, ReadOps, Storage, Store, WriteTx,
};
use tradestore_tests::faulty_redb::FaultyRedb;
use tradestore_tests::{
    ACME, BETA, DELTA, Rng, TestResult, account, assert_clean, limit, money, price, seed, units,
};

/// A buy order of [`BETA`] in [`ACME`] big enough for every fill of a run (one unit each).
const ORDER: u64 = 100;
/// Ids of the accounts that deposits and openings create, as markers, start here.
const FIRST_MARKER: u64 = 10_000;
/// [`DELTA`]'s USD balance in the seed data.
const DELTA_USD: &str = "500";
/// How long dropping a crashed store may take before the test calls it a hang.
const DROP_LIMIT: Duration = Duration::from_secs(30);

/// One transaction of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// A fill of one unit of [`ORDER`] at 100 with this trade id.
    Fill(u64),
    /// Opens marker account `.0` and adds `.1` (raw money) to DELTA's USD, atomically.
    Deposit(u64, i64),
    /// Opens marker account `.0` with `.1` USD in it (a blind insert, so it can be pipelined).
    Open(u64, i64),
    /// Opens [`BULK`] marker accounts from `.0` on, each with long name and its id in USD:
    /// a big transaction, so that the journal fills segments and checkpoints release them.
    Bulk(u64),
}

/// Accounts a [`Op::Bulk`] opens (about 70 KB of journal).
const BULK: u64 = 200;

/// What the writer knows about the transactions it ran.
#[derive(Debug, Default)]
struct Ledger {
    /// Every transaction that may have committed, in commit (journal) order.
    ordered: Vec<Op>,
    /// Those acknowledged: they must survive.
    acked: Vec<Op>,
    next_trade: u64,
    next_marker: u64,
    ts: i64,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            next_trade: 1,
            next_marker: FIRST_MARKER,
            ts: 10,
            ..Ledger::default()
        }
    }

    fn next_op(&mut self, rng: &mut Rng, pipelined: bool) -> Op {
        let marker = self.next_marker;
        if pipelined {
            self.next_marker += 1;
            return Op::Open(marker, rng.range(1, 1_000_000));
        }
        if rng.chance(25) {
            self.next_marker += BULK;
            Op::Bulk(marker)
        } else if rng.chance(60) {
            self.next_trade += 1;
            Op::Fill(self.next_trade - 1)
        } else {
            self.next_marker += 1;
            Op::Deposit(marker, rng.range(1, 1_000_000))
        }
    }
}

fn usd(account: u64) -> [Value; 2] {
    [Value::U64(account), Value::Text("USD".into())]
}

fn missing(what: String) -> Error {
    Error::new(ErrorKind::NotFound, what)
}

fn apply(tx: &mut WriteTx, op: Op, ts: i64) -> tradestore::Result<()> {
    match op {
        Op::Fill(id) => {
            tx.record_fill(&Trade {
                id,
                order_id: ORDER,
                account: BETA,
                instrument: ACME,
                side: Side::Buy,
                price: price("100"),
                quantity: units(1),
                fee: Money(0),
                ts,
            })?;
        }
        Op::Deposit(marker, amount) => {
            tx.insert(&account(marker, &format!("deposit-{marker}")))?;
            let mut cash: Cash = tx
                .get(&usd(DELTA))?
                .ok_or_else(|| missing("DELTA has no USD".into()))?;
            cash.amount = Money(cash.amount.0 + amount);
            tx.put(&cash)?;
        }
        Op::Open(marker, amount) => {
            tx.insert(&account(marker, &format!("open-{marker}")))?;
            tx.insert(&Cash {
                account: marker,
                currency: "USD".into(),
                amount: Money(amount),
            })?;
        }
        Op::Bulk(first) => {
            for id in first..first + BULK {
                tx.insert(&account(id, &bulk_name(id)))?;
                tx.insert(&Cash {
                    account: id,
                    currency: "USD".into(),
                    amount: Money(i64::try_from(id).unwrap_or(0)),
                })?;
            }
        }
    }
    Ok(())
}

/// A 256-byte account name (the longest allowed).
fn bulk_name(id: u64) -> String {
    format!("{id:0>256}")
}

/// Runs one step of the stream: a single write (fill or deposit), or a pipelined batch of
/// openings submitted together and then waited for. Returns the first error.
fn step(store: &Store, rng: &mut Rng, ledger: &mut Ledger) -> tradestore::Result<()> {
    ledger.ts += 1;
    let ts = ledger.ts;
    if rng.chance(80) {
        let op = ledger.next_op(rng, false);
        let mut ran = false;
        let result = store.write(|tx| {
            ran = true;
            apply(tx, op, ts)
        });
        if ran {
            ledger.ordered.push(op);
        }
        result?;
        ledger.acked.push(op);
        return Ok(());
    }
    let mut tickets: Vec<(Op, CommitTicket)> = Vec::new();
    let mut first_err = None;
    for _ in 0..rng.range(2, 12) {
        let op = ledger.next_op(rng, true);
        let mut ran = false;
        let submitted = store.submit(|tx| {
            ran = true;
            apply(tx, op, ts)
        });
        if ran {
            ledger.ordered.push(op);
        }
        match submitted {
            Ok(((), ticket)) => tickets.push((op, ticket)),
            Err(e) => {
                first_err = Some(e);
                break;
            }
        }
    }
    for (op, ticket) in tickets {
        match ticket.wait() {
            Ok(()) => ledger.acked.push(op),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn config(rng: &mut Rng) -> Config {
    Config {
        checkpoint_interval_ms: u64::try_from(rng.range(10, 50)).unwrap_or(10),
        journal_segment_mb: 1,
        cache_size_mb: 4,
        ..Config::default()
    }
}

/// A store over fault injectors, seeded, with the big order in place.
fn open_faulty(dir: &Path, config: Config) -> TestResult<(Store, Arc<FaultyIo>, FaultyRedb)> {
    let journal = Arc::new(FaultyIo::new());
    let redb = FaultyRedb::new();
    let storage = Storage {
        journal: journal.clone(),
        redb: Some(Box::new(redb.clone())),
    };
    let store = Store::open_with(dir, config, storage)?;
    seed(&store)?;
    store.write(|tx| tx.insert(&limit(ORDER, BETA, ACME, Side::Buy, 1_000_000, "100")))?;
    Ok((store, journal, redb))
}

/// Drops the store on another thread; fails if that panics or takes longer than `limit`.
fn drop_within(store: Store, limit: Duration) -> TestResult {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        drop(store);
        let _ = done.send(());
    });
    match wait.recv_timeout(limit) {
        Ok(()) => Ok(()),
        Err(RecvTimeoutError::Timeout) => Err("dropping the crashed store hung".into()),
        Err(RecvTimeoutError::Disconnected) => Err("dropping the crashed store panicked".into()),
    }
}

/// Crashes both files, drops the store, writes the redb crash image where the real file
/// goes, and reopens the directory from the real files.
fn crash_and_reopen(
    dir: &Path,
    store: Store,
    journal: &FaultyIo,
    redb: &FaultyRedb,
) -> TestResult<Store> {
    let image = redb.crash();
    journal.crash()?;
    drop_within(store, DROP_LIMIT)?;
    std::fs::write(dir.join(DB_FILE), image)?;
    let config = Config {
        check_on_open: true,
        ..Config::default()
    };
    Ok(Store::open(dir, config)?)
}

/// Whether `op` is in the store, failing if it is there only in part.
fn present(tx: &tradestore::ReadTx, op: Op) -> TestResult<bool> {
    Ok(match op {
        Op::Fill(id) => tx.get_id::<Trade>(id)?.is_some(),
        Op::Deposit(marker, _) => tx.get_id::<Account>(marker)?.is_some(),
        Op::Open(marker, amount) => {
            let acct = tx.get_id::<Account>(marker)?.is_some();
            let cash = tx.get::<Cash>(&usd(marker))?;
            if acct != cash.is_some() {
                return Err(format!("{op:?} half applied: account {acct}, cash {cash:?}").into());
            }
            if let Some(c) = cash
                && c.amount != Money(amount)
            {
                return Err(format!("{op:?}: cash is {}", c.amount).into());
            }
            acct
        }
        Op::Bulk(first) => {
            let mut found = 0;
            for id in first..first + BULK {
                let acct = tx.get_id::<Account>(id)?;
                let cash = tx.get::<Cash>(&usd(id))?;
                match (acct, cash) {
                    (Some(a), Some(c))
                        if a.name == bulk_name(id)
                            && c.amount == Money(i64::try_from(id).unwrap_or(0)) =>
                    {
                        found += 1;
                    }
                    (None, None) => {}
                    other => return Err(format!("{op:?}: account {id} is {other:?}").into()),
                }
            }
            if found != 0 && found != BULK {
                return Err(format!("{op:?} half applied: {found} of {BULK} accounts").into());
            }
            found == BULK
        }
    })
}

/// The assertions after a crash: acked transactions survive, the transactions present are
/// a prefix of the commit order, derived rows match them, the check is clean, and the store
/// takes new writes.
fn verify(store: &Store, ledger: &Ledger, context: &str) -> TestResult {
    let tx = store.read()?;
    let mut flags = Vec::with_capacity(ledger.ordered.len());
    for op in &ledger.ordered {
        flags.push(present(&tx, *op)?);
    }
    for op in &ledger.acked {
        let i = ledger.ordered.iter().position(|o| o == op);
        if !i.is_some_and(|i| flags[i]) {
            return Err(format!("{context}: acked {op:?} is missing after the crash").into());
        }
    }
    let kept = flags.iter().take_while(|f| **f).count();
    if let Some(hole) = flags[kept..].iter().position(|f| *f) {
        return Err(format!(
            "{context}: {:?} survived but the earlier {:?} did not",
            ledger.ordered[kept + hole],
            ledger.ordered[kept]
        )
        .into());
    }
    let survivors = &ledger.ordered[..kept];
    let fills: Vec<u64> = survivors
        .iter()
        .filter_map(|op| match op {
            Op::Fill(id) => Some(*id),
            _ => None,
        })
        .collect();
    let trades: Vec<u64> = tx.all::<Trade>()?.into_iter().map(|t| t.id).collect();
    if trades != fills {
        return Err(format!("{context}: trades {trades:?}, expected {fills:?}").into());
    }
    let n = i64::try_from(fills.len())?;
    let order: Order = tx.get_id(ORDER)?.ok_or("the big order is gone")?;
    if order.filled_quantity != units(n) {
        return Err(format!(
            "{context}: order filled {}, {n} fills",
            order.filled_quantity
        )
        .into());
    }
    let beta = tx.get::<Cash>(&usd(BETA))?.map_or(Money(0), |c| c.amount);
    if beta != Money(-money("100").0 * n) {
        return Err(format!("{context}: BETA's cash is {beta} after {n} fills").into());
    }
    let deposits: i64 = survivors
        .iter()
        .filter_map(|op| match op {
            Op::Deposit(_, amount) => Some(*amount),
            _ => None,
        })
        .sum();
    let delta = tx.get::<Cash>(&usd(DELTA))?.ok_or("DELTA's USD is gone")?;
    if delta.amount != Money(money(DELTA_USD).0 + deposits) {
        return Err(format!(
            "{context}: DELTA's cash {} != 500 + {deposits}",
            delta.amount
        )
        .into());
    }
    drop(tx);
    assert_clean(store).map_err(|e| format!("{context}: {e}"))?;
    let ts = ledger.ts + 1;
    let next_trade = ledger.next_trade;
    store.write(|tx| apply(tx, Op::Fill(next_trade), ts))?;
    store.write(|tx| apply(tx, Op::Deposit(ledger.next_marker, 7), ts))?;
    if store.read()?.get_id::<Trade>(next_trade)?.is_none() {
        return Err(format!("{context}: a write after recovery is not visible").into());
    }
    assert_clean(store).map_err(|e| format!("{context}: after new writes: {e}"))?;
    Ok(())
}

/// The faults a run can arm.
#[derive(Clone, Copy, Debug)]
enum Fault {
    JournalSync(u64),
    JournalWrite(u64),
    JournalTear(u64, usize),
    RedbWrite(u64),
    RedbSync(u64),
}

impl Fault {
    fn pick(rng: &mut Rng) -> Fault {
        let n = rng.below(3) + 1;
        match rng.below(5) {
            0 => Fault::JournalSync(n),
            1 => Fault::JournalWrite(n),
            2 => Fault::JournalTear(
                rng.below(2) + 1,
                usize::try_from(rng.below(700)).unwrap_or(0),
            ),
            3 => Fault::RedbWrite(rng.below(30) + 1),
            _ => Fault::RedbSync(n),
        }
    }

    fn arm(self, journal: &FaultyIo, redb: &FaultyRedb) {
        match self {
            Fault::JournalSync(n) => journal.fail_sync(n),
            Fault::JournalWrite(n) => journal.fail_write(n),
            Fault::JournalTear(n, keep) => journal.tear_write(n, keep),
            Fault::RedbWrite(n) => redb.fail_write(n),
            Fault::RedbSync(n) => redb.fail_sync(n),
        }
    }
}

/// How many seeded runs each scenario makes; `TRADESTORE_CRASH_RUNS` overrides.
fn runs(default: u64) -> u64 {
    std::env::var("TRADESTORE_CRASH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fault_run(seed_value: u64) -> TestResult {
    let mut rng = Rng::new(seed_value);
    let dir = tempfile::tempdir()?;
    let (store, journal, redb) = open_faulty(dir.path(), config(&mut rng))?;
    let mut ledger = Ledger::new();
    let fault = Fault::pick(&mut rng);
    let context = format!("seed {seed_value}, {fault:?}");
    for _ in 0..rng.range(0, 80) {
        step(&store, &mut rng, &mut ledger)
            .map_err(|e| format!("{context}: before the fault: {e}"))?;
    }
    fault.arm(&journal, &redb);
    let started = Instant::now();
    let err = loop {
        if let Err(e) = step(&store, &mut rng, &mut ledger) {
            break e;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("{context}: no write failed within 10 s of the fault").into());
        }
    };
    if err.kind() != ErrorKind::Io {
        return Err(format!("{context}: the fault surfaced as {err}").into());
    }
    // Poisoned: writes are refused with an I/O error, without running the transaction.
    let mut ran = false;
    let refused = store.write(|tx| {
        ran = true;
        apply(tx, Op::Deposit(u64::MAX, 1), 0)
    });
    match refused {
        Err(e) if e.kind() == ErrorKind::Io && !ran => {}
        other => {
            return Err(format!("{context}: a write after the failure gave {other:?}").into());
        }
    }
    if store.stats().poisoned().is_none() {
        return Err(format!("{context}: stats do not say the store is poisoned").into());
    }
    // Reads keep working and see every acked transaction.
    let tx = store
        .read()
        .map_err(|e| format!("{context}: read after the failure: {e}"))?;
    for op in &ledger.acked {
        if !present(&tx, *op)? {
            return Err(format!("{context}: acked {op:?} not visible after the failure").into());
        }
    }
    drop(tx);
    let store = crash_and_reopen(dir.path(), store, &journal, &redb)
        .map_err(|e| format!("{context}: reopening: {e}"))?;
    verify(&store, &ledger, &context)
}

#[test]
fn faults_then_crash_keep_every_acked_transaction_and_nothing_half_done() -> TestResult {
    for seed_value in 0..runs(60) {
        fault_run(seed_value)?;
    }
    Ok(())
}

fn power_cut_run(seed_value: u64) -> TestResult {
    let mut rng = Rng::new(seed_value ^ 0x5EED_0FC0_FFEE);
    let dir = tempfile::tempdir()?;
    let (store, journal, redb) = open_faulty(dir.path(), config(&mut rng))?;
    let context = format!("power cut, seed {seed_value}");
    let cut_after = Duration::from_millis(rng.below(400) + 1);
    let writer_rng = Rng::new(rng.next_u64());
    let ((ledger, err), crashed) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = writer_rng;
            let mut ledger = Ledger::new();
            let started = Instant::now();
            loop {
                if let Err(e) = step(&store, &mut rng, &mut ledger) {
                    return (ledger, Some(e));
                }
                if started.elapsed() > Duration::from_secs(20) {
                    return (ledger, None);
                }
            }
        });
        std::thread::sleep(cut_after);
        // Both injectors freeze here: nothing reaches their durable bytes from now on.
        redb.crash();
        let crashed = journal.crash();
        writer.join().map(|out| (out, crashed))
    })
    .map_err(|_| format!("{context}: the writer panicked"))?;
    crashed?;
    let Some(err) = err else {
        return Err(format!("{context}: writes kept succeeding after the crash").into());
    };
    if err.kind() != ErrorKind::Io {
        return Err(format!("{context}: the crash surfaced as {err}").into());
    }
    let image = redb.crash();
    drop_within(store, DROP_LIMIT)?;
    std::fs::write(dir.path().join(DB_FILE), image)?;
    let config = Config {
        check_on_open: true,
        ..Config::default()
    };
    let store =
        Store::open(dir.path(), config).map_err(|e| format!("{context}: reopening: {e}"))?;
    verify(&store, &ledger, &context)
}

#[test]
fn a_power_cut_at_a_random_moment_keeps_every_acked_transaction() -> TestResult {
    for seed_value in 0..runs(30) {
        power_cut_run(seed_value)?;
    }
    Ok(())
}

/// A store's creation killed at any point leaves what the next open finishes: its folders,
/// and at most a half-made `tradestore.redb.new` (an empty file, a partial header, or a
/// whole database not yet renamed), never a half-made `tradestore.redb`.
#[test]
fn an_interrupted_creation_is_finished_by_the_next_open() -> TestResult {
    for leftover in [
        None,
        Some(Vec::new()),
        Some(b"redb\x1a\x0a\xa9\x0d\x0a".to_vec()),
        Some(vec![0xAB; 73_728]),
    ] {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("store");
        for sub in tradestore::SUBDIRS {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        if let Some(bytes) = &leftover {
            std::fs::write(dir.join(tradestore::NEW_DB_FILE), bytes)?;
        }
        assert!(tradestore::is_unfinished_store(&dir));
        let store = Store::open(&dir, Config::default())?;
        store.write(|tx| tx.insert(&account(7, "seven")))?;
        drop(store);
        assert!(!dir.join(tradestore::NEW_DB_FILE).exists());
        assert!(!tradestore::is_unfinished_store(&dir));
        let store = Store::open(&dir, Config::default())?;
        assert!(
            store.read()?.get::<Account>(&[Value::U64(7)])?.is_some(),
            "{leftover:?}"
        );
        assert_clean(&store)?;
    }

    // A database made but not yet renamed when the creation was killed is taken as it is.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(&dir)?;
    drop(redb::Database::create(dir.join(tradestore::NEW_DB_FILE))?);
    let store = Store::open(&dir, Config::default())?;
    assert_clean(&store)?;
    drop(store);

    // Another process still creating the store holds the file: busy, and its file is kept.
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    std::fs::create_dir_all(&dir)?;
    let other = redb::Database::create(dir.join(tradestore::NEW_DB_FILE))?;
    let Err(e) = Store::open(&dir, Config::default()) else {
        return Err("a store another process is creating opened".into());
    };
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert!(e.to_string().contains("creating this store"), "{e}");
    drop(other);
    assert!(dir.join(tradestore::NEW_DB_FILE).exists());
    assert!(!dir.join(DB_FILE).exists());
    Store::open(&dir, Config::default())?;
    Ok(())
}

/// Folders that hold anything but an interrupted creation's leftovers are not taken for one.
#[test]
fn other_folders_are_not_unfinished_stores() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    assert!(!tradestore::is_unfinished_store(&d.join("missing")));
    assert!(!tradestore::is_unfinished_store(d), "an empty folder");
    std::fs::write(d.join("tradestore.toml"), "")?;
    assert!(!tradestore::is_unfinished_store(d), "only a configuration");
    std::fs::create_dir_all(d.join("journal"))?;
    assert!(tradestore::is_unfinished_store(d));
    std::fs::write(d.join("journal").join("00000000000000000001.wal"), b"x")?;
    assert!(!tradestore::is_unfinished_store(d), "a journal segment");
    std::fs::remove_file(d.join("journal").join("00000000000000000001.wal"))?;
    std::fs::write(d.join("notes.txt"), b"x")?;
    assert!(!tradestore::is_unfinished_store(d), "someone else's file");
    Ok(())
}

/// A folder where the database file should be is refused as bad input, not an I/O failure.
#[test]
fn a_database_path_that_is_not_a_file_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    std::fs::create_dir_all(tmp.path().join(DB_FILE))?;
    let Err(e) = Store::open(tmp.path(), Config::default()) else {
        return Err("a folder opened as the database".into());
    };
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    Ok(())
}

#[test]
fn a_full_disk_is_named_once_in_every_refusal_after_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = Config {
        journal_segment_mb: 1,
        ..Config::default()
    };
    let (store, journal, _redb) = open_faulty(dir.path(), config)?;
    journal.fail_write_with(1, std::io::ErrorKind::StorageFull);
    let failed = store
        .write(|tx| apply(tx, Op::Deposit(FIRST_MARKER, 1), 0))
        .err()
        .ok_or("the write went through a full disk")?;
    let refused = store
        .write(|tx| apply(tx, Op::Deposit(FIRST_MARKER + 1, 2), 0))
        .err()
        .ok_or("a poisoned store took a write")?;
    for e in [&failed, &refused] {
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    }
    let text = refused.to_string();
    // The refusal names the cause and gives its advice, once; not the generic disk advice
    // on top of it.
    assert!(text.contains("journal write failed"), "{text}");
    assert_eq!(text.matches("free space on the disk").count(), 1, "{text}");
    assert!(!text.contains("check the disk"), "{text}");
    assert_eq!(
        text.matches("refuses writes until reopened").count(),
        1,
        "{text}"
    );
    let why = store
        .stats()
        .poisoned()
        .map(str::to_owned)
        .ok_or("not poisoned")?;
    assert!(why.starts_with("journal write failed: io error: "), "{why}");
    assert!(!why.contains("free space"), "{why}");
    Ok(())
}
