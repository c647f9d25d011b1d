//! The journal as a whole: append, reopen and replay across segments; skipping checkpointed
//! records; releasing segments; torn writes at every byte; failed writes and syncs followed
//! by a crash; damage that must be refused; random payload sizes.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tradestore::journal::{FaultyIo, FileIo, Journal, JournalOptions, Recovery, TornTail};
use tradestore::{ErrorKind, Result};
use tradestore_tests::{Rng, TestResult};

/// Small segments, so that a few hundred KiB of records span several.
const SEGMENT: u64 = 64 << 10;
const HEADER: usize = 16;

type Records = Vec<(u64, Vec<u8>)>;

fn opts() -> JournalOptions {
    JournalOptions {
        segment_bytes: SEGMENT,
        ..JournalOptions::default()
    }
}

fn open(dir: &Path, after: u64) -> Result<(Journal, Recovery)> {
    Journal::open(dir, opts(), Arc::new(FileIo), after)
}

/// Deterministic bytes for record `seq`, never all zero.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize * 131 + i * 7 + 1) as u8)
        .collect()
}

/// Records continuing `journal`, one per payload length.
fn group(journal: &Journal, lens: &[usize]) -> Records {
    let first = journal.last_seq() + 1;
    (first..)
        .zip(lens)
        .map(|(seq, len)| (seq, payload(seq, *len)))
        .collect()
}

fn append(journal: &mut Journal, records: &[(u64, Vec<u8>)]) -> Result<()> {
    let refs: Vec<(u64, &[u8])> = records.iter().map(|(s, p)| (*s, p.as_slice())).collect();
    journal.append(&refs)
}

/// Appends a group and adds it to `model` once acknowledged.
fn append_acked(journal: &mut Journal, model: &mut Records, lens: &[usize]) -> Result<()> {
    let records = group(journal, lens);
    append(journal, &records)?;
    model.extend(records);
    Ok(())
}

fn after(model: &Records, after: u64) -> Records {
    model.iter().filter(|(s, _)| *s > after).cloned().collect()
}

fn segment_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "wal"));
    files.sort();
    Ok(files)
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.wal"))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for file in segment_files(from)? {
        if let Some(name) = file.file_name() {
            fs::copy(&file, to.join(name))?;
        }
    }
    Ok(())
}

fn flip(path: &Path, offset: usize) -> std::io::Result<()> {
    let mut bytes = fs::read(path)?;
    bytes[offset] ^= 0x5A;
    fs::write(path, bytes)
}

/// The message of a corruption error; panics on success or another kind.
fn corruption(result: Result<(Journal, Recovery)>) -> String {
    match result {
        Ok((_, r)) => panic!(
            "open succeeded with {} records, torn tail {:?}",
            r.records.len(),
            r.torn_tail
        ),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corruption, "{e}");
            e.message().to_string()
        }
    }
}

#[test]
fn append_reopen_and_replay_across_segments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let jdir = dir.path().join("store").join("journal");
    let io = Arc::new(FaultyIo::new());
    let (mut journal, recovery) = Journal::open(&jdir, opts(), io.clone(), 0)?;
    assert!(recovery.records.is_empty() && recovery.torn_tail.is_none());
    assert_eq!((recovery.last_seq, journal.last_seq()), (0, 0));
    let mut model = Records::new();
    for i in 0..60 {
        let before = (io.writes(), io.syncs(), segment_files(&jdir)?.len());
        append_acked(&mut journal, &mut model, &[1000 + i * 37, 5, 2000])?;
        let (writes, syncs) = (io.writes() - before.0, io.syncs() - before.1);
        if segment_files(&jdir)?.len() == before.2 {
            assert_eq!((writes, syncs), (1, 1), "group {i}: one write and one sync");
        } else {
            // A new segment: its preallocation (one write, one sync), then the group.
            assert_eq!((writes, syncs), (2, 2), "group {i} in a new segment");
        }
    }
    let files = segment_files(&jdir)?;
    assert!(files.len() >= 4, "{} segments", files.len());
    let on_disk: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?;
    assert_eq!(journal.size_bytes(), on_disk);
    assert_eq!(journal.size_bytes(), files.len() as u64 * SEGMENT);
    let last = journal.last_seq();
    assert_eq!(last, 180);
    drop(journal);

    for checkpoint in [0, 1, 77, 179, 180] {
        let (journal, recovery) = open(&jdir, checkpoint)?;
        assert_eq!(
            recovery.records,
            after(&model, checkpoint),
            "after {checkpoint}"
        );
        assert_eq!((recovery.last_seq, journal.last_seq()), (last, last));
        assert!(recovery.torn_tail.is_none());
    }

    // Appending after a reopen continues the same journal.
    let (mut journal, _) = open(&jdir, 180)?;
    append_acked(&mut journal, &mut model, &[10, 20])?;
    drop(journal);
    let (_, recovery) = open(&jdir, 0)?;
    assert_eq!(recovery.records, model);
    Ok(())
}

#[test]
fn a_group_bigger_than_a_segment_gets_a_segment_of_its_own() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut journal, _) = open(dir.path(), 0)?;
    let mut model = Records::new();
    append_acked(&mut journal, &mut model, &[100])?;
    append_acked(&mut journal, &mut model, &[50_000, 30_000])?;
    append_acked(&mut journal, &mut model, &[7])?;
    let sizes: Vec<u64> = segment_files(dir.path())?
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()))
        .collect::<std::io::Result<_>>()?;
    // Its size is the group's, rounded up to a whole 4 KiB block; the small group after it
    // fits in what the rounding left.
    let big = ((2 * HEADER + 80_000) as u64).next_multiple_of(4096);
    assert!(big - (2 * HEADER + 80_000) as u64 >= (HEADER + 7) as u64);
    assert_eq!(sizes, vec![SEGMENT, big]);
    drop(journal);
    let (_, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, model);
    Ok(())
}

#[test]
fn open_refuses_a_journal_that_does_not_cover_the_checkpoint() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut journal, _) = open(dir.path(), 0)?;
    let mut model = Records::new();
    for _ in 0..8 {
        append_acked(&mut journal, &mut model, &[20_000])?;
    }
    // The store says it has applied seq 9, but the journal ends at 8: appends would
    // continue at 9 and be skipped by the next replay.
    drop(journal);
    let msg = corruption(open(dir.path(), 9));
    assert!(msg.contains("ends at seq 8"), "{msg}");

    // Released segments are gone: replay from before them is impossible.
    let (mut journal, _) = open(dir.path(), 8)?;
    journal.release(5)?;
    drop(journal);
    let msg = corruption(open(dir.path(), 0));
    assert!(msg.contains("records 1 ..= 3 are missing"), "{msg}");
    let (_, recovery) = open(dir.path(), 3)?;
    assert_eq!(recovery.records, after(&model, 3));
    Ok(())
}

#[test]
fn release_deletes_old_segments_but_never_the_active_one() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut journal, _) = open(dir.path(), 0)?;
    let mut model = Records::new();
    // 20 000-byte records: three per segment, so segments start at 1, 4, 7, 10.
    for _ in 0..10 {
        append_acked(&mut journal, &mut model, &[20_000])?;
    }
    assert_eq!(segment_files(dir.path())?.len(), 4);
    journal.release(2)?; // segment 1 holds 1..=3: kept
    assert_eq!(segment_files(dir.path())?.len(), 4);
    journal.release(3)?;
    assert_eq!(
        segment_files(dir.path())?.first(),
        Some(&segment_path(dir.path(), 4))
    );
    assert_eq!(journal.size_bytes(), 3 * SEGMENT);
    journal.release(u64::MAX)?;
    assert_eq!(
        segment_files(dir.path())?,
        vec![segment_path(dir.path(), 10)]
    );
    assert_eq!(journal.size_bytes(), SEGMENT);
    // The active segment still takes appends and replays.
    append_acked(&mut journal, &mut model, &[10])?;
    drop(journal);
    let (_, recovery) = open(dir.path(), 9)?;
    assert_eq!(recovery.records, after(&model, 9));
    Ok(())
}

#[test]
fn keep_released_moves_segments_for_point_in_time_recovery() -> TestResult {
    let dir = tempfile::tempdir()?;
    let jdir = dir.path().join("journal");
    let keep = dir.path().join("archive").join("journal");
    let options = JournalOptions {
        keep_released: Some(keep.clone()),
        ..opts()
    };
    let (mut journal, _) = Journal::open(&jdir, options.clone(), Arc::new(FileIo), 0)?;
    let mut model = Records::new();
    for _ in 0..10 {
        append_acked(&mut journal, &mut model, &[20_000])?;
    }
    let before: Vec<Vec<u8>> = segment_files(&jdir)?
        .iter()
        .map(fs::read)
        .collect::<std::io::Result<_>>()?;
    journal.release(6)?;
    assert_eq!(
        segment_files(&keep)?,
        vec![segment_path(&keep, 1), segment_path(&keep, 4)]
    );
    assert_eq!(fs::read(segment_path(&keep, 4))?, before[1]);
    assert_eq!(segment_files(&jdir)?.len(), 2);
    drop(journal);

    // The kept segments and the live ones together are the whole journal again.
    let restored = dir.path().join("restored");
    copy_dir(&keep, &restored)?;
    copy_dir(&jdir, &restored)?;
    let (_, recovery) = open(&restored, 0)?;
    assert_eq!(recovery.records, model);
    Ok(())
}

/// The frames of `records` in one buffer, and where each frame ends.
fn encode(records: &Records) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut ends = Vec::new();
    for (seq, p) in records {
        let mut covered = seq.to_le_bytes().to_vec();
        covered.extend_from_slice(p);
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32c(&covered).to_le_bytes());
        buf.extend_from_slice(&covered);
        ends.push(buf.len());
    }
    (buf, ends)
}

/// CRC-32C, bit by bit: the test's own reading of the format.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Tears the write of one group at every byte: `filler` makes the group start a new
/// segment instead of going after the acked ones.
fn tear_every_byte(filler: bool) -> TestResult {
    let base = tempfile::tempdir()?;
    let (mut journal, _) = open(base.path(), 0)?;
    let mut acked = Records::new();
    append_acked(&mut journal, &mut acked, &[30, 1])?;
    append_acked(&mut journal, &mut acked, &[500])?;
    if filler {
        let used: usize = acked.iter().map(|(_, p)| HEADER + p.len()).sum();
        append_acked(
            &mut journal,
            &mut acked,
            &[SEGMENT as usize - used - HEADER - 40],
        )?;
    }
    let (torn_segment, torn_start) = if filler {
        (journal.last_seq() + 1, 0)
    } else {
        (1, acked.iter().map(|(_, p)| HEADER + p.len()).sum())
    };
    // 256 has a zero low byte: a tear after that frame's first byte leaves only zeros.
    let last = group(&journal, &[3, 256, 1, 120]);
    drop(journal);
    let (bytes, ends) = encode(&last);

    for k in 0..bytes.len() {
        let dir = tempfile::tempdir()?;
        copy_dir(base.path(), dir.path())?;
        let io = Arc::new(FaultyIo::new());
        let (mut journal, _) = Journal::open(dir.path(), opts(), io.clone(), 0)?;
        io.tear_write(if filler { 2 } else { 1 }, k);
        let err = append(&mut journal, &last)
            .err()
            .ok_or("the torn append succeeded")?;
        assert_eq!(err.kind(), ErrorKind::Io, "{err}");
        assert!(journal.is_poisoned());
        io.crash()?;
        drop(journal);

        // Whole frames before the tear are replayed (a prefix of the unacked group);
        // the rest is a torn tail, unless the bytes written of it are all zero.
        let whole = ends.iter().take_while(|e| **e <= k).count();
        let start = if whole == 0 { 0 } else { ends[whole - 1] };
        let partial = bytes.get(start..k).unwrap_or_default();
        let expected_tail = partial.iter().rposition(|b| *b != 0).map(|p| TornTail {
            segment: segment_path(dir.path(), torn_segment),
            offset: (torn_start + start) as u64,
            discarded_bytes: p as u64 + 1,
        });
        let mut expected = acked.clone();
        expected.extend_from_slice(&last[..whole]);

        let (mut journal, recovery) = open(dir.path(), 0)?;
        assert_eq!(recovery.torn_tail, expected_tail, "tear at {k}");
        assert_eq!(recovery.records, expected, "tear at {k}");
        assert_eq!(recovery.last_seq, expected.len() as u64);
        if let Some(tail) = &recovery.torn_tail {
            assert!(tail.to_string().contains("torn write at offset"), "{tail}");
        }
        // The journal takes new appends, and the erased tail stays erased.
        append_acked(&mut journal, &mut expected, &[77, 3])?;
        drop(journal);
        let (_, recovery) = open(dir.path(), 0)?;
        assert_eq!(recovery.records, expected, "after the tear at {k}");
        assert_eq!(recovery.torn_tail, None);
    }
    Ok(())
}

#[test]
fn torn_tail_at_every_byte_of_the_last_group() -> TestResult {
    tear_every_byte(false)
}

#[test]
fn torn_tail_at_every_byte_of_a_group_opening_a_new_segment() -> TestResult {
    tear_every_byte(true)
}

/// Random group sizes: 1..=4 records of 1..=6000 bytes.
fn random_lens(rng: &mut Rng) -> Vec<usize> {
    (0..rng.range(1, 4))
        .map(|_| rng.range(1, 6000) as usize)
        .collect()
}

/// Arms a fault, appends until an append fails, crashes, and checks that reopening
/// replays every acked group, then at most a prefix of the failed one.
fn crash_after_fault(seed: u64, arm: impl Fn(&FaultyIo)) -> TestResult {
    let dir = tempfile::tempdir()?;
    let io = Arc::new(FaultyIo::new());
    let (mut journal, _) = Journal::open(dir.path(), opts(), io.clone(), 0)?;
    let mut rng = Rng::new(seed);
    let mut acked = Records::new();
    for _ in 0..5 {
        append_acked(&mut journal, &mut acked, &random_lens(&mut rng))?;
    }
    arm(&io);
    let mut failed = Records::new();
    for _ in 0..40 {
        let records = group(&journal, &random_lens(&mut rng));
        match append(&mut journal, &records) {
            Ok(()) => acked.extend(records),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{e}");
                failed = records;
                break;
            }
        }
    }
    if !failed.is_empty() {
        // Fail-stop: nothing more is accepted, not even the same group again.
        assert!(journal.is_poisoned());
        let err = append(&mut journal, &failed)
            .err()
            .ok_or("a poisoned journal took an append")?;
        assert!(err.message().contains("reopen"), "{err}");
    }
    io.crash()?;
    drop(journal);

    let (mut journal, recovery) = open(dir.path(), 0)?;
    let (kept, extra) = recovery
        .records
        .split_at(acked.len().min(recovery.records.len()));
    assert_eq!(kept, acked.as_slice(), "every acked group survives");
    assert!(
        failed.starts_with(extra),
        "only a prefix of the failed group may survive"
    );
    let mut expected = recovery.records.clone();
    append_acked(&mut journal, &mut expected, &random_lens(&mut rng))?;
    drop(journal);
    let (_, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, expected);
    Ok(())
}

#[test]
fn a_failed_sync_keeps_every_acked_group_after_a_crash() -> TestResult {
    for n in 1..=45 {
        crash_after_fault(n, |io| io.fail_sync(n))?;
    }
    Ok(())
}

#[test]
fn a_failed_write_keeps_every_acked_group_after_a_crash() -> TestResult {
    for n in 1..=45 {
        crash_after_fault(100 + n, |io| io.fail_write(n))?;
    }
    Ok(())
}

#[test]
fn a_crash_without_a_fault_keeps_every_acked_group() -> TestResult {
    crash_after_fault(7, |_| {})
}

/// Nine records of 20 000 bytes: segments 1 (records 1..=3), 4 and 7.
fn three_segments(dir: &Path) -> Result<Records> {
    let (mut journal, _) = open(dir, 0)?;
    let mut model = Records::new();
    for _ in 0..9 {
        append_acked(&mut journal, &mut model, &[20_000])?;
    }
    Ok(model)
}

const FRAME: usize = HEADER + 20_000;

#[test]
fn damage_in_a_segment_before_the_last_is_corruption() -> TestResult {
    // In a payload, in a length, in the last frame of the segment, in its zeros.
    for (segment, offset) in [
        (1, FRAME + 100),
        (4, 2),
        (1, 3 * FRAME - 1),
        (4, 3 * FRAME + 9),
    ] {
        let dir = tempfile::tempdir()?;
        three_segments(dir.path())?;
        let path = segment_path(dir.path(), segment);
        flip(&path, offset)?;
        let msg = corruption(open(dir.path(), 0));
        let name = format!("{segment:020}.wal");
        assert!(msg.contains(&name), "{msg}");
        let at = if offset > 3 * FRAME {
            3 * FRAME
        } else {
            offset / FRAME * FRAME
        };
        assert!(msg.contains(&format!("at offset {at}:")), "{msg}");
    }
    Ok(())
}

#[test]
fn damage_in_the_middle_of_the_last_segment_is_corruption() -> TestResult {
    for offset in [100, FRAME + 5, FRAME, FRAME + 8] {
        let dir = tempfile::tempdir()?;
        three_segments(dir.path())?;
        flip(&segment_path(dir.path(), 7), offset)?;
        let msg = corruption(open(dir.path(), 0));
        assert!(msg.contains("00000000000000000007.wal"), "{msg}");
        assert!(msg.contains("yet a valid frame with seq"), "{msg}");
    }
    // A zeroed length looks like the end of the data, but frames follow.
    let dir = tempfile::tempdir()?;
    three_segments(dir.path())?;
    let path = segment_path(dir.path(), 7);
    let mut bytes = fs::read(&path)?;
    bytes[FRAME..FRAME + 4].fill(0);
    fs::write(&path, bytes)?;
    let msg = corruption(open(dir.path(), 0));
    assert!(msg.contains(&format!("at offset {FRAME}:")), "{msg}");
    Ok(())
}

#[test]
fn damage_in_the_very_last_frame_cannot_be_told_from_a_torn_write() -> TestResult {
    // Nothing follows it to prove otherwise, so it is taken for a torn tail and dropped:
    // the known limit of a journal without per-group markers.
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    flip(&segment_path(dir.path(), 7), 2 * FRAME + 500)?;
    let (_, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, model[..8].to_vec());
    let tail = recovery.torn_tail.ok_or("no torn tail")?;
    assert_eq!(tail.offset, 2 * FRAME as u64);
    assert_eq!(tail.discarded_bytes, FRAME as u64);
    Ok(())
}

#[test]
fn a_last_segment_cut_inside_a_frame_is_corruption_not_a_torn_write() -> TestResult {
    // Segments are preallocated and synced before any record goes in, so a crash never
    // leaves a file that ends inside a frame: the file was cut afterwards, and the records
    // it lost were acknowledged.
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    let last = segment_path(dir.path(), 7);
    let cut = (FRAME + 100) as u64;
    fs::OpenOptions::new()
        .write(true)
        .open(&last)?
        .set_len(cut)?;
    let msg = corruption(open(dir.path(), 0));
    assert!(msg.contains("runs past the end"), "{msg}");
    assert_eq!(
        fs::metadata(&last)?.len(),
        cut,
        "refused before writing anything"
    );

    // Told to accept the loss, the store's journal keeps what is whole and goes on.
    let accepting = JournalOptions {
        accept_loss: true,
        ..opts()
    };
    let (mut journal, recovery) = Journal::open(dir.path(), accepting, Arc::new(FileIo), 0)?;
    assert_eq!(recovery.records, model[..7].to_vec());
    assert_eq!(
        recovery.torn_tail.ok_or("no cut reported")?.offset,
        FRAME as u64
    );
    let mut model = model[..7].to_vec();
    append_acked(&mut journal, &mut model, &[100])?;
    drop(journal);
    let (_, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, model);
    Ok(())
}

#[test]
fn a_journal_that_ends_before_an_acknowledged_seq_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    fs::remove_file(segment_path(dir.path(), 7))?;
    // The store recorded at a checkpoint that seq 8 had been acknowledged.
    let err = Journal::open_acked(dir.path(), opts(), Arc::new(FileIo), 0, 8)
        .err()
        .ok_or("a journal that lost acknowledged records was opened")?;
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(
        err.message().contains("records 7 ..= 8 are missing"),
        "{err}"
    );
    assert!(segment_files(dir.path())?.len() == 2, "nothing was changed");

    // Acknowledged up to 6 only: the journal (ending at 6) is whole.
    let (_, recovery) = Journal::open_acked(dir.path(), opts(), Arc::new(FileIo), 0, 6)?;
    assert_eq!(recovery.records, model[..6].to_vec());
    assert_eq!(recovery.lost, None);

    // Accepting the loss opens it and says what was lost.
    let accepting = JournalOptions {
        accept_loss: true,
        ..opts()
    };
    let (journal, recovery) = Journal::open_acked(dir.path(), accepting, Arc::new(FileIo), 0, 8)?;
    assert_eq!(journal.last_seq(), 6);
    let lost = recovery.lost.ok_or("no loss reported")?;
    assert!(lost.contains("records 7 ..= 8"), "{lost}");
    Ok(())
}

#[test]
fn a_missing_segment_is_corruption() -> TestResult {
    let dir = tempfile::tempdir()?;
    three_segments(dir.path())?;
    fs::remove_file(segment_path(dir.path(), 4))?;
    let msg = corruption(open(dir.path(), 0));
    assert!(msg.contains("previous one ends at seq 3"), "{msg}");
    Ok(())
}

#[test]
fn invalid_appends_are_refused_and_change_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut journal, _) = open(dir.path(), 10)?;
    assert_eq!(journal.last_seq(), 10);
    let big = vec![1u8; tradestore::journal::MAX_PAYLOAD + 1];
    let bad: [&[(u64, &[u8])]; 5] = [
        &[(10, b"x")],
        &[(12, b"x")],
        &[(11, b"x"), (13, b"y")],
        &[(11, b"x"), (12, b"")],
        &[(11, &big)],
    ];
    for records in bad {
        let err = journal.append(records).err().ok_or("accepted")?;
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    }
    assert!(!journal.is_poisoned());
    assert_eq!(journal.last_seq(), 10);
    journal.append(&[])?;
    journal.append(&[(11, b"x"), (12, b"y")])?;
    drop(journal);
    let (_, recovery) = open(dir.path(), 10)?;
    assert_eq!(
        recovery.records,
        vec![(11, b"x".to_vec()), (12, b"y".to_vec())]
    );
    Ok(())
}

#[test]
fn segments_below_64_kib_are_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let options = JournalOptions {
        segment_bytes: SEGMENT - 1,
        ..JournalOptions::default()
    };
    let err = Journal::open(dir.path(), options, Arc::new(FileIo), 0)
        .err()
        .ok_or("accepted")?;
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    Ok(())
}

#[test]
fn random_payload_sizes_with_reopens_and_releases() -> TestResult {
    for seed in 1..=4 {
        let dir = tempfile::tempdir()?;
        let mut rng = Rng::new(seed);
        let mut checkpoint = 0;
        let (mut journal, _) = open(dir.path(), checkpoint)?;
        let mut model = Records::new();
        for _ in 0..150 {
            match rng.below(20) {
                0 => {
                    drop(journal);
                    let (j, recovery) = open(dir.path(), checkpoint)?;
                    assert_eq!(recovery.records, after(&model, checkpoint), "seed {seed}");
                    journal = j;
                }
                1 => {
                    checkpoint = rng.range(checkpoint as i64, journal.last_seq() as i64) as u64;
                    journal.release(checkpoint)?;
                }
                2 => {
                    // Now and then a record bigger than a segment.
                    let len = rng.range(SEGMENT as i64, 2 * SEGMENT as i64) as usize;
                    append_acked(&mut journal, &mut model, &[len])?;
                }
                _ => {
                    let lens: Vec<usize> = (0..rng.range(1, 8))
                        .map(|_| rng.range(1, 9000) as usize)
                        .collect();
                    append_acked(&mut journal, &mut model, &lens)?;
                }
            }
        }
        drop(journal);
        let (_, recovery) = open(dir.path(), checkpoint)?;
        assert_eq!(recovery.records, after(&model, checkpoint), "seed {seed}");
        assert_eq!(recovery.last_seq, model.len() as u64);
    }
    Ok(())
}

/// A spare made off the ack path becomes the next segment by a rename: the spare file is
/// gone, the new segment holds the records, and everything replays after a reopen (also
/// with a leftover spare lying around, which recovery ignores).
#[test]
fn a_spare_becomes_the_next_segment() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (mut journal, _) = open(dir.path(), 0)?;
    let mut model = Records::new();
    assert!(
        journal.wants_spare().is_none(),
        "an empty journal wants no spare yet"
    );
    while journal.wants_spare().is_none() {
        append_acked(&mut journal, &mut model, &[1000])?;
    }
    let request = journal
        .wants_spare()
        .ok_or("a half-full segment wants a spare")?;
    journal.install_spare(Journal::make_spare(request)?);
    assert!(journal.wants_spare().is_none(), "one spare at a time");
    let spare = dir.path().join(tradestore::journal::SPARE_NAME);
    assert!(spare.exists());
    let segments_before = fs::read_dir(dir.path())?.count();
    while spare.exists() {
        append_acked(&mut journal, &mut model, &[1000])?;
    }
    assert_eq!(
        fs::read_dir(dir.path())?.count(),
        segments_before,
        "renamed, not added"
    );
    append_acked(&mut journal, &mut model, &[10, 20])?;
    // A leftover spare (say from a crash while making one) is not a segment.
    fs::write(&spare, b"half-written spare")?;
    drop(journal);
    let (journal, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, model);
    assert!(recovery.torn_tail.is_none());
    assert_eq!(journal.last_seq(), model.len() as u64);
    Ok(())
}

#[test]
fn a_journal_switches_between_direct_and_buffered_appends_across_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut model = Records::new();
    let mut rng = Rng::new(11);
    for round in 0..6 {
        let options = JournalOptions {
            direct: round % 2 == 0,
            ..opts()
        };
        let (mut journal, recovery) = Journal::open(dir.path(), options, Arc::new(FileIo), 0)?;
        assert_eq!(recovery.records, model, "round {round}");
        for _ in 0..5 {
            let lens: Vec<usize> = (0..rng.below(4) + 1)
                .map(|_| rng.below(6000) as usize + 1)
                .collect();
            append_acked(&mut journal, &mut model, &lens)?;
        }
    }
    let (_, recovery) = open(dir.path(), 0)?;
    assert_eq!(recovery.records, model);
    Ok(())
}

/// Opens `dir` with the checkpoint at `after`, expecting success.
fn open_past(dir: &Path, after: u64) -> Result<(Journal, Recovery)> {
    open(dir, after)
}

#[test]
fn damage_in_records_the_checkpoint_covers_is_gone_past_and_reported() -> TestResult {
    // Segments 1, 4 and 7 hold records 1-3, 4-6 and 7-9, one frame each FRAME bytes.
    // A frame in the middle of a segment, the checkpoint past it: the scan resumes at the
    // next frame; records after the checkpoint replay.
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    flip(&segment_path(dir.path(), 1), FRAME + 100)?;
    let (_, recovery) = open_past(dir.path(), 3)?;
    assert_eq!(recovery.records, after(&model, 3));
    assert_eq!(recovery.damaged.len(), 1, "{:?}", recovery.damaged);
    assert!(
        recovery.damaged[0].contains("records 2 ..= 2"),
        "{:?}",
        recovery.damaged
    );
    // The same damage with the checkpoint below it is corruption, as ever.
    let msg = corruption(open(dir.path(), 1));
    assert!(msg.contains(&format!("at offset {FRAME}:")), "{msg}");

    // The last frame of a segment before the last: its successors are in the next segment.
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    flip(&segment_path(dir.path(), 1), 2 * FRAME + 100)?;
    let (_, recovery) = open_past(dir.path(), 3)?;
    assert_eq!(recovery.records, after(&model, 3));
    assert_eq!(recovery.damaged.len(), 2, "{:?}", recovery.damaged);
    corruption(open(dir.path(), 2));

    // A segment before the last emptied: every record it held is checkpointed.
    let dir = tempfile::tempdir()?;
    let model = three_segments(dir.path())?;
    fs::OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), 4))?
        .set_len(0)?;
    let (_, recovery) = open_past(dir.path(), 6)?;
    assert_eq!(recovery.records, after(&model, 6));
    corruption(open(dir.path(), 5));

    // Damage from a checkpointed record into one the checkpoint does not cover: refused,
    // naming the records that would be lost.
    let dir = tempfile::tempdir()?;
    three_segments(dir.path())?;
    flip(&segment_path(dir.path(), 7), 100)?;
    flip(&segment_path(dir.path(), 7), FRAME + 100)?;
    let msg = corruption(open(dir.path(), 7));
    assert!(
        msg.contains("records 8 ..= 8 that the checkpoint does not cover"),
        "{msg}"
    );

    // In the last segment, with good frames after the damage.
    let dir = tempfile::tempdir()?;
    let mut model = three_segments(dir.path())?;
    flip(&segment_path(dir.path(), 7), 100)?;
    let msg = corruption(open(dir.path(), 6));
    assert!(msg.contains("yet a valid frame with seq 8"), "{msg}");
    let (mut journal, recovery) = open_past(dir.path(), 7)?;
    assert_eq!(recovery.records, after(&model, 7));
    append_acked(&mut journal, &mut model, &[300])?;
    drop(journal);
    let (journal, recovery) = open_past(dir.path(), 7)?;
    assert_eq!(recovery.records, after(&model, 7));
    assert_eq!(journal.last_seq(), 10);
    assert_eq!(recovery.damaged.len(), 1);
    Ok(())
}

#[test]
fn damage_at_the_end_of_the_checkpointed_records_opens_only_when_the_loss_is_accepted() -> TestResult
{
    // The last record (seq 9) is damaged and the checkpoint covers it: no torn write (it
    // was synced whole), and nothing after it can be found, so records acknowledged after
    // the checkpoint could be lost among the damage.
    let dir = tempfile::tempdir()?;
    let mut model = three_segments(dir.path())?;
    let last = segment_path(dir.path(), 7);
    flip(&last, 2 * FRAME + 100)?;
    let before = fs::read(&last)?;
    let msg = corruption(open(dir.path(), 9));
    assert!(msg.contains("accept_journal_loss"), "{msg}");
    assert!(msg.contains("up to seq 9"), "{msg}");
    assert_eq!(fs::read(&last)?, before, "refused before writing anything");

    let accepting = JournalOptions {
        accept_loss: true,
        ..opts()
    };
    let (mut journal, recovery) = Journal::open(dir.path(), accepting, Arc::new(FileIo), 9)?;
    assert!(recovery.records.is_empty());
    let lost = recovery.lost.ok_or("no loss reported")?;
    assert!(lost.contains("00000000000000000007.wal"), "{lost}");
    assert_eq!(
        journal.last_seq(),
        9,
        "the journal goes on after the checkpoint"
    );
    append_acked(&mut journal, &mut model, &[300])?;
    drop(journal);
    assert!(
        segment_path(dir.path(), 10).exists(),
        "a segment of its own"
    );
    assert_eq!(
        fs::read(&last)?,
        before,
        "the damaged segment is left as it was"
    );
    // Reopened without accepting anything: the damage is below the checkpoint and the
    // journal goes on past it.
    let (journal, recovery) = open_past(dir.path(), 9)?;
    assert_eq!(recovery.records, after(&model, 9));
    assert_eq!(journal.last_seq(), 10);
    assert_eq!(recovery.lost, None);
    assert!(!recovery.damaged.is_empty());
    Ok(())
}
