//! `tradestore archive` end to end: a simulated store's trades move into segments and read
//! back exactly (the dump is byte-identical), the store continues, and a damaged segment
//! makes `check` and `dump` fail instead of leaving trades out.

use std::error::Error;
use std::path::Path;
use std::process::Command;

type TestResult = Result<(), Box<dyn Error>>;

/// Runs `tradestore ARGS --dir DIR`, without the test's own `TRADESTORE_*` variables;
/// returns (exit status, stdout, stderr).
fn run(dir: &Path, args: &[&str]) -> Result<(Option<i32>, String, String), Box<dyn Error>> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    cmd.args(args).arg("--dir").arg(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRADESTORE_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output()?;
    Ok((
        out.status.code(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

fn ok(dir: &Path, args: &[&str]) -> Result<String, Box<dyn Error>> {
    let (status, out, err) = run(dir, args)?;
    assert_eq!(status, Some(0), "{args:?} failed: {err}");
    Ok(out)
}

#[test]
fn archive_moves_trades_out_and_every_read_still_sees_them() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    ok(
        &dir,
        &["simulate", "--orders", "6000", "--seed", "7", "--json"],
    )?;
    let dump = ok(&dir, &["dump", "--out", "-"])?;
    let count = "SELECT count(*), sum(quantity), max(id) FROM trades";
    let counted = ok(&dir, &["query", count])?;

    // No trade is an hour old yet; every trade is older than now.
    let none: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["archive", "--older-than", "1h", "--json"])?)?;
    assert_eq!(none["trades"], 0);
    let report: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["archive", "--older-than", "0s", "--json"])?)?;
    let moved = report["trades"].as_u64().ok_or("no trade count")?;
    assert!(moved > 1000, "{report}");
    let file = report["segments"][0]["file"].as_str().ok_or("no segment")?;
    assert!(dir.join(file).is_file());

    assert_eq!(ok(&dir, &["dump", "--out", "-"])?, dump);
    assert_eq!(ok(&dir, &["query", count])?, counted);
    let listed = ok(&dir, &["archive", "--list"])?;
    assert!(listed.contains(file), "{listed}");
    ok(&dir, &["check"])?;

    // The store continues after its archive: new trades take new ids.
    ok(
        &dir,
        &["simulate", "--orders", "2000", "--seed", "8", "--json"],
    )?;
    ok(&dir, &["check"])?;
    let after = ok(&dir, &["query", "SELECT count(*) FROM trades"])?;
    assert_ne!(after, counted);

    // One flipped byte in the segment: check lists it as a violation (exit 1), dump fails,
    // and both say why.
    let path = dir.join(file);
    let good = std::fs::read(&path)?;
    let mut bytes = good.clone();
    let at = bytes.len() / 3;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes)?;
    let (status, out, err) = run(&dir, &["check"])?;
    assert_eq!(status, Some(1), "{err}");
    assert!(
        out.contains("archive segment") && out.contains(file) && out.contains("checksum"),
        "{out}"
    );
    assert!(out.contains("rows and indexes not checked"), "{out}");
    let (status, _, err) = run(&dir, &["dump", "--out", "-"])?;
    assert_eq!(status, Some(1), "{err}");
    // inspect shows what it can read, lists the damage, and exits 1.
    let (status, out, err) = run(&dir, &["inspect"])?;
    assert_eq!(status, Some(1), "{err}");
    assert!(out.contains("TABLE") && out.contains("orders"), "{out}");
    assert!(
        out.contains("damaged         table trades: archive segment")
            && out.contains(file)
            && out.contains("checksum"),
        "{out}"
    );
    assert!(err.contains("the store is damaged"), "{err}");
    let (status, out, _) = run(&dir, &["inspect", "--json"])?;
    assert_eq!(status, Some(1));
    let v: serde_json::Value = serde_json::from_str(&out)?;
    let problems = v["problems"].as_array().ok_or("no problems listed")?;
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.starts_with("table trades:"))),
        "{problems:?}"
    );
    // The file put back (from a backup, say): clean again.
    std::fs::write(&path, &good)?;
    ok(&dir, &["check"])?;
    Ok(())
}

#[test]
fn archive_refuses_a_bad_cutoff() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    ok(&dir, &["init"])?;
    for args in [
        &["archive"][..],
        &["archive", "--before", "yesterday"],
        &["archive", "--older-than", "-5s"],
        &["archive", "--older-than", "1h", "--before", "5"],
        &["archive", "--before=-1"],
        &["archive", "--before", "-1"],
        &["archive", "--before", "18446744073709551615"],
    ] {
        let (status, _, err) = run(&dir, args)?;
        assert_eq!(status, Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
    let (_, _, err) = run(&dir, &["archive", "--before", "18446744073709551615"])?;
    assert!(err.contains("out of range"), "{err}");
    let listed = ok(&dir, &["archive", "--list"])?;
    assert!(listed.contains("the archive is empty"), "{listed}");
    Ok(())
}
