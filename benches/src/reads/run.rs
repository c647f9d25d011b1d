//! Loads the data set into each engine, in interleaved rounds (timed: the bulk restore, the
//! median load reported), then times every engine's reads, interleaved in rounds.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use super::data::{DataSet, Picks, PositionRow};
use super::report::{RECENT_LIMIT, ReadMeasurement, ReadOp, fill_ratios};
use super::{fjall, raw_redb, sqlite, tradestore};
use crate::Result;
use crate::latency::{ROUNDS, Timed, histogram, merge, slice};
use crate::report::{FJALL, SQLITE, TRADESTORE};
use crate::run::Plan;
use crate::workload::TradeRow;

/// An engine loaded with the data set. Each call opens one read transaction (snapshot), runs
/// every operation of the batch in it, and hands each result to `out` as soon as it has it.
pub trait Reader {
    /// Engine name in the report.
    fn name(&self) -> &'static str;
    /// The trade of each id.
    fn gets(&self, ids: &[u64], out: &mut dyn FnMut(Option<TradeRow>)) -> Result<()>;
    /// The last `limit` trades of each instrument, newest (largest ts, then id) first.
    fn recent(
        &self,
        instruments: &[u64],
        limit: usize,
        out: &mut dyn FnMut(Vec<TradeRow>),
    ) -> Result<()>;
    /// The positions of each account, in instrument order.
    fn positions(&self, accounts: &[u64], out: &mut dyn FnMut(Vec<PositionRow>)) -> Result<()>;
}

/// One batch of reads: the operations, and where each result goes.
type Batch<'a, T> = dyn FnMut(&[u64], &mut dyn FnMut(T)) -> Result<()> + 'a;

/// Times `batch` over `ops` in chunks of `per_snapshot`, after one unmeasured chunk. Each
/// result's latency runs from the previous result of its chunk (from the chunk's start for
/// the first, so opening the snapshot counts). `check` sees every measured result; a chunk
/// that yields fewer or more results than it has operations is an error.
fn timed_reads<T>(
    name: &str,
    ops: &[u64],
    per_snapshot: usize,
    batch: &mut Batch<'_, T>,
    check: &mut dyn FnMut(&T) -> Result<()>,
) -> Result<Timed> {
    let per_snapshot = per_snapshot.max(1);
    if let Some(first) = ops.chunks(per_snapshot).next() {
        batch(first, &mut |r| drop(black_box(r)))?;
    }
    let mut hist = histogram();
    let mut failed = Ok(());
    let start = Instant::now();
    for chunk in ops.chunks(per_snapshot) {
        let mut seen = 0;
        let mut last = Instant::now();
        batch(chunk, &mut |r| {
            let now = Instant::now();
            let ns = u64::try_from((now - last).as_nanos()).unwrap_or(u64::MAX);
            hist.saturating_record(ns);
            last = now;
            seen += 1;
            if failed.is_ok() {
                failed = check(&r);
            }
            drop(black_box(r));
        })?;
        if seen != chunk.len() {
            return Err(format!("{name}: {seen} results for {} operations", chunk.len()).into());
        }
    }
    let elapsed = start.elapsed();
    failed?;
    Ok(Timed { hist, elapsed })
}

/// Times the three reads of every engine, interleaved in [`ROUNDS`] rounds.
fn measure_reads(
    readers: &[&dyn Reader],
    plan: &Plan,
    picks: &Picks,
) -> Result<Vec<ReadMeasurement>> {
    let per = plan.per_snapshot;
    let mode = format!("{per} per read tx");
    // Per engine: point gets, last trades, positions.
    let mut timed: Vec<[Option<Timed>; 3]> = readers.iter().map(|_| [None, None, None]).collect();
    for round in 0..ROUNDS {
        for k in 0..readers.len() {
            let i = (k + round) % readers.len();
            let reader = readers[i];
            let engine = reader.name();
            let get = timed_reads(
                "point get",
                slice(&picks.ids, round),
                per,
                &mut |ids, out| reader.gets(ids, out),
                &mut |r: &Option<TradeRow>| match r {
                    Some(_) => Ok(()),
                    None => Err(format!("{engine}: a point get found no trade").into()),
                },
            )?;
            merge(&mut timed[i][0], get)?;
            let recent = timed_reads(
                "last trades",
                slice(&picks.instruments, round),
                per,
                &mut |is, out| reader.recent(is, RECENT_LIMIT, out),
                &mut |r: &Vec<TradeRow>| {
                    if r.is_empty() || r.len() > RECENT_LIMIT {
                        return Err(format!("{engine}: {} recent trades", r.len()).into());
                    }
                    Ok(())
                },
            )?;
            merge(&mut timed[i][1], recent)?;
            let positions = timed_reads(
                "positions",
                slice(&picks.accounts, round),
                per,
                &mut |accts, out| reader.positions(accts, out),
                &mut |r: &Vec<PositionRow>| {
                    if r.is_empty() {
                        return Err(format!("{engine}: an account without positions").into());
                    }
                    Ok(())
                },
            )?;
            merge(&mut timed[i][2], positions)?;
        }
    }
    let mut rows = Vec::new();
    for (reader, [get, recent, positions]) in readers.iter().zip(timed) {
        let engine = reader.name();
        for (op, t) in [
            (ReadOp::Get, get),
            (ReadOp::Recent, recent),
            (ReadOp::Positions, positions),
        ] {
            let t = t.ok_or_else(|| format!("{engine}: no {op:?} reads were timed"))?;
            rows.push(ReadMeasurement::new(engine, op, &mode, &t));
        }
    }
    Ok(rows)
}

/// Times of the bulk restore taken per engine (each into a fresh folder, engines
/// interleaved, the order rotating each round); the median is reported. One load per engine
/// moved by up to a third between runs (the first engine loaded after the data set was built
/// met its write-back), which alone could flip a ratio target.
pub const LOAD_ROUNDS: usize = 3;

/// One engine's bulk restore: the report's mode, and how to open a fresh folder, load the
/// data set into it and time the load.
struct Loader {
    name: &'static str,
    mode: String,
    load: fn(&Path, &DataSet) -> Result<Loaded>,
}

/// An engine loaded with the data set, and how long the load took.
type Loaded = (Box<dyn Reader>, Duration);

/// Opens an engine in `dir`, loads `data` into it and returns it with the load's time.
fn timed_load<R: Reader + 'static>(
    dir: &Path,
    data: &DataSet,
    open: fn(&Path) -> Result<R>,
    load: fn(&mut R, &DataSet) -> Result<()>,
) -> Result<Loaded> {
    let mut db = open(dir)?;
    let start = Instant::now();
    load(&mut db, data)?;
    Ok((Box::new(db), start.elapsed()))
}

/// Builds the data set of `plan.read_trades` trades, loads it into tradestore, raw redb,
/// SQLite and fjall [`LOAD_ROUNDS`] times each (each load into a fresh folder under `dir`,
/// timed), then times every engine's reads on its last load, interleaved (see [`ROUNDS`]).
/// The folders are removed at the end, whatever happened. `progress` hears what is being
/// measured.
pub fn run_reads(
    dir: &Path,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ReadMeasurement>> {
    progress(&format!(
        "building the read data set ({} trades) ...",
        plan.read_trades
    ));
    let data = DataSet::build(&dir.join("read-data"), plan.read_trades)?;
    let picks = Picks::new(
        plan.read_trades,
        plan.gets,
        plan.recent_reads,
        plan.position_reads,
    );
    let folder = dir.join("reads");
    let out = load_and_read(&folder, &data, plan, &picks, progress);
    let _ = std::fs::remove_dir_all(&folder);
    let mut rows = out?;
    fill_ratios(&mut rows);
    Ok(rows)
}

/// The four engines' loaders: tradestore, redb, sqlite, fjall.
fn loaders() -> [Loader; 4] {
    [
        Loader {
            name: TRADESTORE,
            mode: "dump::restore, 1 commit".to_owned(),
            load: |dir, d| timed_load(dir, d, tradestore::TradestoreReads::open, |s, d| s.load(d)),
        },
        Loader {
            name: crate::raw_redb::NAME,
            mode: "1 write tx".to_owned(),
            load: |dir, d| timed_load(dir, d, raw_redb::open, |s, d| s.load(d)),
        },
        Loader {
            name: SQLITE,
            mode: "1 tx, prepared".to_owned(),
            load: |dir, d| timed_load(dir, d, sqlite::open, |s, d| s.load(d)),
        },
        Loader {
            name: FJALL,
            mode: format!("batches of {}", fjall::LOAD_BATCH),
            load: |dir, d| timed_load(dir, d, fjall::open, |s, d| s.load(d)),
        },
    ]
}

/// Loads the four engines [`LOAD_ROUNDS`] times each under `folder` (a fresh folder per
/// load; engines interleaved, the first one rotating), then reads from each one's last load.
fn load_and_read(
    folder: &Path,
    data: &DataSet,
    plan: &Plan,
    picks: &Picks,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ReadMeasurement>> {
    let loaders = loaders();
    let mut times: Vec<Vec<Duration>> = loaders.iter().map(|_| Vec::new()).collect();
    let mut loaded: Vec<Option<Box<dyn Reader>>> = loaders.iter().map(|_| None).collect();
    for round in 0..LOAD_ROUNDS {
        progress(&format!(
            "loading every engine (round {} of {LOAD_ROUNDS}) ...",
            round + 1
        ));
        for k in 0..loaders.len() {
            let i = (k + round) % loaders.len();
            let l = &loaders[i];
            // The previous load's engine is closed and its folder removed first.
            loaded[i] = None;
            let _ = std::fs::remove_dir_all(folder.join(format!("{}-{}", l.name, round)));
            let dir = folder.join(format!("{}-{}", l.name, round + 1));
            let (db, elapsed) = (l.load)(&dir, data)?;
            times[i].push(elapsed);
            loaded[i] = Some(db);
        }
    }
    let mut readers: Vec<&dyn Reader> = Vec::new();
    for (l, db) in loaders.iter().zip(&loaded) {
        readers.push(
            db.as_deref()
                .ok_or_else(|| format!("{} was not loaded", l.name))?,
        );
    }
    progress(&format!(
        "measuring reads, every engine in each of {ROUNDS} rounds ..."
    ));
    let reads = measure_reads(&readers, plan, picks)?;
    // Per engine: its restore (the median load), then its reads (the report's order).
    let trades = data.trades.len() as u64;
    let mut rows = Vec::new();
    for (l, mut t) in loaders.iter().zip(times) {
        t.sort();
        let median = t.get(t.len() / 2).copied().unwrap_or_default();
        rows.push(ReadMeasurement::restore(
            l.name,
            format!("{}, median of {}", l.mode, t.len()),
            trades,
            median,
        ));
        rows.extend(reads.iter().filter(|r| r.engine == l.name).cloned());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::INSTRUMENTS;

    /// Every engine loaded with the same small data set answers every read the same, and
    /// correctly.
    #[test]
    fn every_engine_reads_the_same_correct_data() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataSet::build(&dir.path().join("scratch"), 500).unwrap();
        let mut ts = tradestore::TradestoreReads::open(&dir.path().join("t")).unwrap();
        ts.load(&data).unwrap();
        let mut redb = raw_redb::open(&dir.path().join("r")).unwrap();
        redb.load(&data).unwrap();
        let mut lite = sqlite::open(&dir.path().join("s")).unwrap();
        lite.load(&data).unwrap();
        let mut fj = fjall::open(&dir.path().join("f")).unwrap();
        fj.load(&data).unwrap();
        let readers: [&dyn Reader; 4] = [&ts, &redb, &lite, &fj];
        for r in readers {
            let name = r.name();
            let mut got = Vec::new();
            r.gets(&[1, 250, 500, 501], &mut |t| got.push(t)).unwrap();
            let want = [
                Some(data.trades[0]),
                Some(data.trades[249]),
                Some(data.trades[499]),
                None,
            ];
            assert_eq!(got, want, "{name}");

            let mut recent = Vec::new();
            r.recent(&[3, INSTRUMENTS + 1], 10, &mut |v| recent.push(v))
                .unwrap();
            let mut of3: Vec<_> = data.trades.iter().filter(|t| t.instrument == 3).collect();
            of3.sort_by_key(|t| (std::cmp::Reverse(t.ts), std::cmp::Reverse(t.id)));
            let want: Vec<TradeRow> = of3.into_iter().take(10).copied().collect();
            assert_eq!(recent[0], want, "{name}: newest first");
            assert!(recent[1].is_empty(), "{name}");

            let mut positions = Vec::new();
            r.positions(&[5, 1_000], &mut |v| positions.push(v))
                .unwrap();
            let want: Vec<_> = data
                .positions
                .iter()
                .filter(|p| p.account == 5)
                .copied()
                .collect();
            assert_eq!(want.len(), 1);
            assert_eq!(positions[0], want, "{name}");
            assert!(positions[1].is_empty(), "{name}");
        }
    }

    #[test]
    fn tiny_run_reads_every_engine() {
        let dir = tempfile::tempdir().unwrap();
        let rows = run_reads(dir.path(), &Plan::tiny(), &mut |_| {}).unwrap();
        assert_eq!(rows.len(), 16);
        assert!(rows.iter().all(|r| r.ops > 0));
        let peers = rows.iter().filter(|r| r.engine != "tradestore");
        assert!(peers.clone().all(|r| r.tradestore_over_this.is_some()));
        assert_eq!(peers.count(), 12);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
