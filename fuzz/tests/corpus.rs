//! Runs every seed in `corpus/<target>/` through its target's check, on stable Rust: the
//! seeds (and any inputs a fuzzing run added or a crash reproduced) stay regression tests
//! without libFuzzer.

use std::error::Error;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use tradestore_fuzz::{
    check_archive_segment, check_backup_manifest, check_dump_line, check_journal_segment,
    check_key_decoder, check_migration_file, check_record_decoder,
};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// The files of `corpus/<target>/`, sorted; libFuzzer's temporary files are skipped.
fn seeds(target: &str) -> Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files = Vec::new();
    for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    Ok(files)
}

/// Runs `check` on every seed of `target` and names every seed that made it panic.
fn run(target: &str, check: fn(&[u8])) -> Result {
    let mut failed = Vec::new();
    for path in seeds(target)? {
        let data = fs::read(&path)?;
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target} failed on: {}",
        failed.join(", ")
    );
    Ok(())
}

#[test]
fn record_decoder_corpus() -> Result {
    run("record_decoder", check_record_decoder)
}

#[test]
fn dump_line_corpus() -> Result {
    run("dump_line", check_dump_line)
}

#[test]
fn key_decoder_corpus() -> Result {
    run("key_decoder", check_key_decoder)
}

#[test]
fn archive_segment_corpus() -> Result {
    run("archive_segment", check_archive_segment)
}

#[test]
fn backup_manifest_corpus() -> Result {
    run("backup_manifest", check_backup_manifest)
}

#[test]
fn migration_file_corpus() -> Result {
    run("migration_file", check_migration_file)
}

/// The seeds named `valid*` take the checks' full path (decode, then the round trip), not
/// only the early return of a refused input.
#[test]
fn the_valid_seeds_decode() -> Result {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let segment = fs::read(dir.join("archive_segment").join("valid_380_trades"))?;
    assert_eq!(
        tradestore::archive::decode_segment(&segment)?.rows.len(),
        380
    );
    let manifest = fs::read_to_string(dir.join("backup_manifest").join("valid"))?;
    let parsed = tradestore::backup::Manifest::parse(&manifest)?;
    assert!(parsed.files.iter().any(|f| f.path == "tradestore.redb"));
    let migration = fs::read(dir.join("migration_file").join("valid_every_step"))?;
    let parsed = tradestore::migrate::Migration::parse(Path::new("m.toml"), &migration)?;
    assert_eq!(parsed.steps.len(), 5);
    Ok(())
}

#[test]
fn journal_segment_corpus() -> Result {
    run("journal_segment", check_journal_segment)
}
