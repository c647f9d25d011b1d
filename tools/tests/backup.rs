//! `tradestore backup` end to end: take a backup with the binary, list it, verify it,
//! restore it into a new store that dumps the same rows; damaged backups and bad arguments
//! fail with a clear message, a non-zero status and nothing changed.

use std::error::Error;
use std::path::{Path, PathBuf};

mod support;
use support::{TestResult, dump, run, s};

const BOOK: &str = r#"{"table":"instruments","record":{"id":1,"symbol":"ACME","tick_size":1000000,"lot_size":100000000,"currency":"USD"}}
{"table":"accounts","record":{"id":1,"name":"alpha","status":"active"}}
{"table":"accounts","record":{"id":2,"name":"beta","status":"active"}}
{"table":"cash","record":{"account":1,"currency":"USD","amount":-196500000}}
{"end":{"rows":4}}
"#;

/// A store holding [`BOOK`]: `(tempdir, store dir)`.
fn book_store() -> Result<(tempfile::TempDir, std::path::PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let r = run(&["init", "--dir", s(&dir)?])?;
    assert!(r.ok(), "init: {}", r.stderr);
    let book = tmp.path().join("book.jsonl");
    std::fs::write(&book, BOOK)?;
    let r = run(&["restore", "--dir", s(&dir)?, "--in", s(&book)?])?;
    assert!(r.ok(), "restore: {}", r.stderr);
    Ok((tmp, dir))
}

/// A store holding [`BOOK`] and a backup of it: `(tempdir, store dir, backup dir)`.
fn backed_up_book() -> Result<(tempfile::TempDir, PathBuf, PathBuf), Box<dyn Error>> {
    let (tmp, dir) = book_store()?;
    let out = tmp.path().join("b");
    let r = run(&["backup", "--dir", s(&dir)?, "--out", s(&out)?])?;
    assert!(r.ok(), "{}", r.stderr);
    Ok((tmp, dir, out))
}

/// What a `backup restore` killed midway leaves (an empty target, a staging folder beside
/// it) is named as such by the commands that find no store there, and a rerun finishes it.
#[test]
fn an_interrupted_backup_restore_is_named_and_a_rerun_finishes_it() -> TestResult {
    let (tmp, dir, out) = backed_up_book()?;
    let to = tmp.path().join("restored");
    std::fs::create_dir(&to)?;
    // A process that is gone (pids are far below this), then one that runs (this test).
    let staging = tmp.path().join(".restored.restoring-999999999");
    std::fs::create_dir(&staging)?;
    std::fs::write(staging.join("tradestore.redb"), b"half a file")?;
    for cmd in [&["check"][..], &["inspect"], &["dump", "--out", "-"]] {
        let mut args = cmd.to_vec();
        args.extend(["--dir", s(&to)?]);
        let r = run(&args)?;
        assert!(!r.ok(), "{args:?}");
        assert!(
            r.stderr.contains("a backup restore into it")
                && r.stderr.contains("was interrupted")
                && r.stderr.contains(".restored.restoring-999999999")
                && r.stderr.contains("run the same command again"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let running = tmp
        .path()
        .join(format!(".restored.restoring-{}", std::process::id()));
    std::fs::rename(&staging, &running)?;
    let r = run(&["check", "--dir", s(&to)?])?;
    assert!(
        r.stderr.contains("a backup restore into it is running"),
        "{}",
        r.stderr
    );
    std::fs::rename(&running, &staging)?;

    // The rerun removes the abandoned staging folder and restores.
    let r = run(&["backup", "restore", s(&out)?, "--to", s(&to)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(!staging.exists());
    assert_eq!(dump(&to)?, dump(&dir)?);
    Ok(())
}

#[test]
fn backup_list_verify_restore_round_trip() -> TestResult {
    let (tmp, dir) = book_store()?;
    let d = s(&dir)?;

    // The default destination, under the store's backups/ folder.
    let r = run(&["backup", "--dir", d])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.starts_with("backed up "), "{}", r.stdout);
    assert!(r.stdout.contains("/backups/"), "{}", r.stdout);

    let out = tmp.path().join("b1");
    let r = run(&["backup", "--dir", d, "--out", s(&out)?, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let seq = report["applied_seq"].as_u64().ok_or("applied_seq")?;
    let accounts = report["tables"]
        .as_array()
        .ok_or("tables")?
        .iter()
        .find(|t| t["name"] == "t.accounts")
        .and_then(|t| t["rows"].as_u64());
    assert_eq!(accounts, Some(2));
    assert!(out.join("backup.json").is_file() && out.join("journal").is_dir());

    let r = run(&["backup", "list", "--dir", d, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let listed = listed.as_array().ok_or("list")?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["applied_seq"].as_u64(), Some(seq));
    assert!(listed[0]["problem"].is_null());
    let r = run(&["backup", "list", "--dir", d])?;
    assert!(r.ok() && r.stdout.starts_with("BACKUP"), "{}", r.stdout);
    // A directory that holds no store has no backups to list: an error, not an empty list.
    let missing = out.join("no-store-here");
    let r = run(&["backup", "list", "--dir", s(&missing)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    let r = run(&["backup", "verify", s(&out)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("is whole"), "{}", r.stdout);
    let r = run(&["backup", "verify", s(&out)?, "--json"])?;
    let v: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(v["applied_seq"].as_u64(), Some(seq));

    let to = tmp.path().join("restored");
    let r = run(&["backup", "restore", s(&out)?, "--to", s(&to)?, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let restored: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(restored["checked_rows"].as_u64(), Some(4));
    assert_eq!(dump(&to)?, dump(&dir)?);
    let r = run(&["check", "--dir", s(&to)?])?;
    assert!(r.ok(), "{}{}", r.stdout, r.stderr);

    // Restoring over a store is refused, and the store is untouched.
    let before = dump(&to)?;
    let r = run(&["backup", "restore", s(&out)?, "--to", s(&to)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("is not empty"), "{}", r.stderr);
    assert_eq!(dump(&to)?, before);
    Ok(())
}

#[test]
fn a_corrupt_backup_fails_verify_and_restore_with_a_clear_message() -> TestResult {
    let (tmp, dir, out) = backed_up_book()?;
    let manifest = out.join("backup.json");
    let text = std::fs::read_to_string(&manifest)?;

    // A manifest cut short.
    std::fs::write(&manifest, &text[..text.len() / 2])?;
    let r = run(&["backup", "verify", s(&out)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stdout);
    assert!(
        r.stderr.starts_with("error: verifying the backup ")
            && r.stderr
                .contains("backup.json: not a valid backup manifest"),
        "{}",
        r.stderr
    );
    let to = tmp.path().join("never");
    let r = run(&["backup", "restore", s(&out)?, "--to", s(&to)?])?;
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("not a valid backup manifest"),
        "{}",
        r.stderr
    );
    assert!(!to.exists(), "a failed restore left {}", to.display());

    // A manifest whose row count was edited.
    let edited = text.replacen("\"rows\": 2", "\"rows\": 3", 1);
    assert_ne!(edited, text);
    std::fs::write(&manifest, edited)?;
    let r = run(&["backup", "verify", s(&out)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("crc32c does not match"), "{}", r.stderr);

    // A whole manifest, a damaged database file.
    std::fs::write(&manifest, &text)?;
    let db = out.join("tradestore.redb");
    let mut bytes = std::fs::read(&db)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&db, bytes)?;
    let r = run(&["backup", "verify", s(&out)?])?;
    assert_eq!(r.status, Some(1));
    assert!(r.stderr.contains("tradestore.redb: CRC32C"), "{}", r.stderr);

    // A destination inside the store is refused, and nothing is written there.
    let inside = dir.join("journal").join("b");
    let r = run(&["backup", "--dir", s(&dir)?, "--out", s(&inside)?])?;
    assert_eq!(r.status, Some(1));
    assert!(
        r.stderr.contains("inside the store's directory"),
        "{}",
        r.stderr
    );
    assert!(!inside.exists());
    Ok(())
}

#[test]
fn restore_replays_the_kept_journal_to_the_source_stores_last_transaction() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    assert!(run(&["init", "--dir", s(&dir)?])?.ok());
    let toml = dir.join("tradestore.toml");
    let text = std::fs::read_to_string(&toml)?
        .replace("keep_journal = false", "keep_journal = true")
        .replace("journal_segment_mb = 8", "journal_segment_mb = 1");
    std::fs::write(&toml, text)?;
    let sim = |seed: &str| -> TestResult {
        let r = run(&[
            "simulate",
            "--dir",
            s(&dir)?,
            "--orders",
            "1500",
            "--seed",
            seed,
            "--json",
        ])?;
        assert!(r.ok(), "simulate: {}", r.stderr);
        Ok(())
    };
    sim("3")?;
    let backup = tmp.path().join("b");
    let r = run(&["backup", "--dir", s(&dir)?, "--out", s(&backup)?])?;
    assert!(r.ok(), "backup: {}", r.stderr);
    sim("4")?;
    let dump = |d: &Path| -> Result<String, Box<dyn Error>> {
        let r = run(&["dump", "--dir", s(d)?, "--out", "-"])?;
        assert!(r.ok(), "dump: {}", r.stderr);
        Ok(r.stdout)
    };
    let source = dump(&dir)?;

    let mut args = vec!["backup", "restore", s(&backup)?, "--json"];
    let kept = dir.join("archive").join("journal");
    let live = dir.join("journal");
    if kept.is_dir() {
        args.extend(["--journal", s(&kept)?]);
    }
    args.extend(["--journal", s(&live)?]);
    let to = tmp.path().join("restored");
    args.extend(["--to", s(&to)?]);
    let r = run(&args)?;
    assert!(r.ok(), "restore: {}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert!(report["replayed"].as_u64().unwrap_or(0) > 0, "{report}");
    // Everything the source store holds, replayed from its journal after the backup.
    assert_eq!(dump(&to)?, source);

    // A transaction the journal does not reach: exit 1, nothing restored.
    let far = tmp.path().join("far");
    let r = run(&[
        "backup",
        "restore",
        s(&backup)?,
        "--journal",
        s(&live)?,
        "--until-seq",
        "99999999",
        "--to",
        s(&far)?,
    ])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(!far.exists());
    Ok(())
}

/// Nanoseconds since the Unix epoch, now, as a command-line argument.
fn now_ns() -> Result<String, Box<dyn Error>> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos()
        .to_string())
}

#[test]
fn journal_lists_commit_times_and_restore_stops_at_a_time() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    assert!(run(&["init", "--dir", s(&dir)?])?.ok());
    let toml = dir.join("tradestore.toml");
    let text =
        std::fs::read_to_string(&toml)?.replace("keep_journal = false", "keep_journal = true");
    std::fs::write(&toml, text)?;
    let sim = |seed: &str| -> TestResult {
        let r = run(&[
            "simulate",
            "--dir",
            s(&dir)?,
            "--orders",
            "300",
            "--seed",
            seed,
        ])?;
        assert!(r.ok(), "simulate: {}", r.stderr);
        Ok(())
    };
    sim("3")?;
    let backup = tmp.path().join("b");
    let r = run(&["backup", "--dir", s(&dir)?, "--out", s(&backup)?])?;
    assert!(r.ok(), "backup: {}", r.stderr);
    sim("4")?;
    let at_t = dump(&dir)?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let t = now_ns()?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    sim("5")?;

    // The listing: every record carries a time, the last one after T.
    let r = run(&["journal", "--dir", s(&dir)?, "--json"])?;
    assert!(r.ok(), "journal: {}", r.stderr);
    let segments: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let segments = segments.as_array().ok_or("segments")?;
    assert!(!segments.is_empty());
    let t_ns: u64 = t.parse()?;
    let last = segments
        .iter()
        .filter_map(|seg| seg["last_commit_ns"].as_u64())
        .max()
        .ok_or("no commit time listed")?;
    assert!(last > t_ns, "{last} <= {t_ns}");
    for seg in segments {
        assert_eq!(seg["untimed"].as_u64(), Some(0), "{seg}");
        assert!(seg["problem"].is_null(), "{seg}");
    }
    let r = run(&["journal", "--dir", s(&dir)?])?;
    assert!(r.ok(), "journal: {}", r.stderr);
    assert!(r.stdout.starts_with("SEGMENT"), "{}", r.stdout);
    assert!(r.stdout.contains(" records: transactions "), "{}", r.stdout);

    // Restored to T: exactly what the source held then.
    let kept = dir.join("archive").join("journal");
    let live = dir.join("journal");
    let restore = |to: &Path, until: &[&str]| -> Result<support::Run, Box<dyn Error>> {
        let mut args = vec!["backup", "restore", s(&backup)?];
        args.extend(["--journal", s(&kept)?, "--journal", s(&live)?]);
        args.extend(until);
        args.extend(["--to", s(to)?]);
        run(&args)
    };
    let to = tmp.path().join("at_t");
    let r = restore(&to, &["--until-time", &t])?;
    assert!(r.ok(), "restore: {}", r.stderr);
    assert!(
        r.stdout.contains("stopped before transaction "),
        "{}",
        r.stdout
    );
    assert_eq!(dump(&to)?, at_t);

    // Bad times and bounds: a usage error, nothing restored.
    for (name, until) in [
        ("words", vec!["--until-time", "yesterday"]),
        ("before1970", vec!["--until-time=-5"]),
        ("both", vec!["--until-time", &t, "--until-seq", "3"]),
    ] {
        let target = tmp.path().join(name);
        let r = restore(&target, &until)?;
        assert_eq!(r.status, Some(2), "{name}: {}", r.stderr);
        assert!(!target.exists(), "{name}");
    }
    let target = tmp.path().join("nojournal");
    let r = run(&[
        "backup",
        "restore",
        s(&backup)?,
        "--until-time",
        &t,
        "--to",
        s(&target)?,
    ])?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    assert!(!target.exists());
    // A time before the backup was taken: refused with the reason.
    let target = tmp.path().join("early");
    let r = restore(&target, &["--until-time", "2020-01-01T00:00:00Z"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("restore an older backup"), "{}", r.stderr);
    assert!(!target.exists());
    Ok(())
}

#[test]
fn journal_reports_what_it_cannot_read() -> TestResult {
    let tmp = tempfile::tempdir()?;
    // Not a store, and a folder that does not exist: exit 1 with the reason.
    let r = run(&["journal", "--dir", s(tmp.path())?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("holds no journal folder"), "{}", r.stderr);
    let missing = tmp.path().join("missing");
    let r = run(&["journal", "--journal", s(&missing)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("is not a folder"), "{}", r.stderr);

    // A segment of garbage: listed with what stopped the reading (a frame length no write
    // leaves: damage, exit 1), and left as it was.
    let folder = tmp.path().join("segments");
    std::fs::create_dir(&folder)?;
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    let file = folder.join(format!("{:020}.wal", 1));
    std::fs::write(&file, &garbage)?;
    let r = run(&["journal", "--journal", s(&folder)?, "--json"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    let segments: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(segments[0]["records"].as_u64(), Some(0), "{segments}");
    assert!(segments[0]["problem"].is_string(), "{segments}");
    assert_eq!(
        segments[0]["undecoded_tail"].as_bool(),
        Some(false),
        "{segments}"
    );
    assert_eq!(std::fs::read(&file)?, garbage);
    // A partial frame at the end of the only segment (a checksum that does not hold, and
    // nothing good after it): a torn write, listed, exit 0.
    let mut torn = vec![0u8; 4096];
    torn[..16].copy_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0]);
    torn[16..30].fill(9);
    std::fs::write(&file, &torn)?;
    let r = run(&["journal", "--journal", s(&folder)?, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let segments: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(
        segments[0]["undecoded_tail"].as_bool(),
        Some(true),
        "{segments}"
    );
    std::fs::write(&file, &garbage)?;
    // The same bytes with a segment after them: damage before the journal's end, listed and
    // exit 1.
    let after = folder.join(format!("{:020}.wal", 2));
    std::fs::write(&after, [0u8; 64])?;
    let r = run(&["journal", "--journal", s(&folder)?])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stdout.starts_with("SEGMENT"), "{}", r.stdout);
    assert!(r.stderr.contains("damaged before its end"), "{}", r.stderr);
    std::fs::remove_file(&after)?;
    // An empty folder: no segment, exit 0.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty)?;
    let r = run(&["journal", "--journal", s(&empty)?])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("no journal segment"), "{}", r.stdout);
    Ok(())
}

#[test]
fn journal_prune_removes_kept_segments_a_backup_no_longer_needs() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let d = s(&dir)?;
    assert!(run(&["init", "--dir", d])?.ok());
    let toml = dir.join("tradestore.toml");
    let text = std::fs::read_to_string(&toml)?
        .replace("keep_journal = false", "keep_journal = true")
        .replace("journal_segment_mb = 8", "journal_segment_mb = 1");
    std::fs::write(&toml, text)?;
    let sim = |seed: &str, orders: &str| -> TestResult {
        let r = run(&["simulate", "--dir", d, "--orders", orders, "--seed", seed])?;
        assert!(r.ok(), "simulate: {}", r.stderr);
        Ok(())
    };
    sim("3", "12000")?;
    let kept = dir.join("archive").join("journal");
    let segments = |folder: &Path| -> Result<Vec<String>, Box<dyn Error>> {
        let mut v: Vec<String> = std::fs::read_dir(folder)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, std::io::Error>>()?;
        v.sort();
        Ok(v)
    };
    let before = segments(&kept)?;
    assert!(before.len() >= 2, "kept segments: {before:?}");

    // No backup yet: refused, nothing removed.
    let r = run(&["journal", "prune", "--dir", d, "--older-than", "0s"])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("holds no backup"), "{}", r.stderr);
    assert_eq!(segments(&kept)?, before);
    // A cutoff is required, and must be a time.
    for args in [
        vec!["journal", "prune", "--dir", d],
        vec!["journal", "prune", "--dir", d, "--older-than", "soon"],
        vec!["journal", "prune", "--dir", d, "--before", "tomorrow"],
    ] {
        let r = run(&args)?;
        assert_eq!(r.status, Some(2), "{args:?}: {}", r.stderr);
    }

    let r = run(&["backup", "--dir", d, "--json"])?;
    assert!(r.ok(), "backup: {}", r.stderr);
    let backup: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let backup_seq = backup["applied_seq"].as_u64().ok_or("applied_seq")?;
    sim("4", "3000")?;
    let source = dump(&dir)?;
    let before = segments(&kept)?;

    // A cutoff before everything: nothing goes.
    let r = run(&[
        "journal",
        "prune",
        "--dir",
        d,
        "--before",
        "2020-01-01T00:00:00Z",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.starts_with("nothing to remove"), "{}", r.stdout);
    assert_eq!(segments(&kept)?, before);

    // A dry run reports, then the prune removes, the segments the backup holds.
    let r = run(&[
        "journal",
        "prune",
        "--dir",
        d,
        "--older-than",
        "0s",
        "--dry-run",
        "--json",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    let dry: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let would = dry["report"]["removed"].as_array().ok_or("removed")?.len();
    assert!(would >= 1, "{dry}");
    assert_eq!(segments(&kept)?, before);
    let r = run(&[
        "journal",
        "prune",
        "--dir",
        d,
        "--older-than",
        "0s",
        "--json",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    let done: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let removed = done["report"]["removed"].as_array().ok_or("removed")?;
    assert_eq!(removed.len(), would);
    for seg in removed {
        assert!(
            seg["last_seq"].as_u64().ok_or("last_seq")? <= backup_seq,
            "{seg}"
        );
    }
    let mut gone = Vec::new();
    for seg in removed {
        let path = Path::new(seg["path"].as_str().ok_or("path")?);
        assert!(!path.exists(), "{} is still there", path.display());
        gone.push(
            path.file_name()
                .ok_or("name")?
                .to_string_lossy()
                .into_owned(),
        );
    }
    // Only the oldest went; every other segment is still there.
    let now = segments(&kept)?;
    for name in &before {
        assert_eq!(gone.contains(name), !now.contains(name), "{name}");
    }
    assert_eq!(before[..gone.len()], gone[..]);
    // The prune is in the audit trail, naming what it removed.
    let r = run(&["audit", "list", "--dir", d, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    let entries: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let pruned = entries["entries"]
        .as_array()
        .ok_or("entries")?
        .iter()
        .find(|e| e["action"] == "journal.prune")
        .ok_or(format!("no journal.prune entry: {entries}"))?;
    let detail = pruned["detail"].as_str().ok_or("detail")?;
    assert!(
        gone.iter().all(|name| detail.contains(name.as_str())),
        "{detail}"
    );
    // A dry run records nothing.
    let r = run(&[
        "journal",
        "prune",
        "--dir",
        d,
        "--older-than",
        "0s",
        "--dry-run",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    let r = run(&["audit", "list", "--dir", d, "--json"])?;
    let again: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(again, entries);

    // The backup still rolls forward to the present through what is left.
    let backup_path = backup["path"].as_str().ok_or("path")?;
    let to = tmp.path().join("restored");
    let r = run(&[
        "backup",
        "restore",
        backup_path,
        "--journal",
        s(&kept)?,
        "--journal",
        s(&dir.join("journal"))?,
        "--to",
        s(&to)?,
    ])?;
    assert!(r.ok(), "restore: {}", r.stderr);
    assert_eq!(dump(&to)?, source);

    // A damaged backup named with --backup: refused before anything is removed.
    let left = segments(&kept)?;
    let broken = tmp.path().join("broken");
    let r = run(&["backup", "--dir", d, "--out", s(&broken)?])?;
    assert!(r.ok(), "{}", r.stderr);
    std::fs::write(broken.join("tradestore.redb"), b"not a database")?;
    let r = run(&[
        "journal",
        "prune",
        "--dir",
        d,
        "--older-than",
        "0s",
        "--backup",
        s(&broken)?,
    ])?;
    assert_eq!(r.status, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was removed"), "{}", r.stderr);
    assert_eq!(segments(&kept)?, left);

    // Beside a process that holds the store, the prune still removes (files only) and says
    // that it is not in the audit trail, which lives in the database.
    sim("5", "3000")?;
    let r = run(&["backup", "--dir", d])?;
    assert!(r.ok(), "{}", r.stderr);
    let before = segments(&kept)?;
    let mut holder = std::process::Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .args(["monitor", "--dir", d, "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        holder.stderr.take().ok_or("stderr")?,
    ));
    let opened = lines.any(|l| l.is_ok_and(|l| l.starts_with("monitor: ")));
    let r = run(&["journal", "prune", "--dir", d, "--older-than", "0s"]);
    holder.kill()?;
    holder.wait()?;
    assert!(opened, "the monitor did not start");
    let r = r?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        r.stderr.contains("not recorded in its audit trail"),
        "{}",
        r.stderr
    );
    assert!(segments(&kept)?.len() < before.len(), "nothing was pruned");
    Ok(())
}
