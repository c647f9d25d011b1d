//! `tradestore bench` end to end, without running the benchmark: a baseline that cannot be
//! used is refused, with a clear message and status 1, before anything is measured.

use std::error::Error;
use std::path::Path;
use std::process::{Command, Output, Stdio};

type TestResult = Result<(), Box<dyn Error>>;

/// Runs `tradestore bench --quick --dir DIR ARGS`.
fn bench(dir: &Path, args: &[&str]) -> Result<Output, Box<dyn Error>> {
    let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .arg("bench")
        .arg("--quick")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(out)
}

/// The refusal: status 1, `error: ...` naming the file, nothing measured or written.
fn assert_refused(out: &Output, dir: &Path, file: &str, says: &str) -> TestResult {
    let stderr = String::from_utf8(out.stderr.clone())?;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(file), "{stderr}");
    assert!(stderr.contains(says), "{stderr}");
    assert!(!stderr.contains("measuring"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!dir.exists() || std::fs::read_dir(dir)?.next().is_none());
    Ok(())
}

#[test]
fn missing_baseline_fails_before_measuring() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("scratch");
    let out = bench(&dir, &["--baseline", "/nonexistent/baseline.json"])?;
    assert_refused(
        &out,
        &dir,
        "/nonexistent/baseline.json",
        "cannot read the baseline",
    )
}

#[test]
fn malformed_baseline_fails_before_measuring() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("scratch");
    for (i, text) in ["not json at all", "{\"plan\": \"quick\", \"rows\": []}"]
        .iter()
        .enumerate()
    {
        let file = tmp.path().join(format!("baseline-{i}.json"));
        std::fs::write(&file, text)?;
        let shown = file.display().to_string();
        let out = bench(&dir, &["--baseline", &shown])?;
        assert_refused(&out, &dir, &shown, "is not the `--json` output")?;
    }
    // Not a regular file: a FIFO would block the read, a folder is no report.
    let fifo = tmp.path().join("baseline.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success());
    for file in [fifo, tmp.path().to_path_buf()] {
        let shown = file.display().to_string();
        let out = bench(&dir, &["--baseline", &shown])?;
        assert_refused(&out, &dir, &shown, "not a regular file")?;
    }
    Ok(())
}

#[test]
fn a_baseline_sharing_no_ratio_with_the_run_fails_before_measuring() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("scratch");
    let file = tmp.path().join("other.json");
    std::fs::write(
        &file,
        r#"{"plan": "quick", "comparisons": [{"name": "no_such_ratio", "value": 1.0}]}"#,
    )?;
    let shown = file.display().to_string();
    let out = bench(&dir, &["--baseline", &shown])?;
    assert_refused(&out, &dir, &shown, "nothing would be compared")
}

#[test]
fn threshold_outside_a_percentage_fails() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("scratch");
    let out = bench(&dir, &["--threshold=-5"])?;
    assert_refused(&out, &dir, "--threshold", "not a percentage")
}
