//! `tradestore standby` end to end: a standby made from a backup follows a primary that
//! `simulate` writes in another process, and ends holding the same rows; bad arguments and
//! directories that are not standbys fail with a clear message and a non-zero status.

use std::error::Error;

mod support;
use support::{TestResult, command, dump, run, s};

/// A primary that keeps its checkpointed journal segments, after a first simulation, and a
/// backup of it: `(tempdir, primary, backup)`.
fn primary() -> Result<(tempfile::TempDir, std::path::PathBuf, std::path::PathBuf), Box<dyn Error>>
{
    let tmp = tempfile::tempdir()?;
    let p = tmp.path().join("primary");
    let r = run(&["init", "--dir", s(&p)?])?;
    assert_eq!(r.status, Some(0), "init: {}", r.stderr);
    let toml = p.join("tradestore.toml");
    let text = std::fs::read_to_string(&toml)?;
    assert!(text.contains("keep_journal = false"), "{text}");
    std::fs::write(
        &toml,
        text.replace("keep_journal = false", "keep_journal = true"),
    )?;
    let r = run(&["simulate", "--dir", s(&p)?, "--orders", "3000", "--json"])?;
    assert_eq!(r.status, Some(0), "simulate: {}", r.stderr);
    let b = tmp.path().join("backup");
    let r = run(&["backup", "--dir", s(&p)?, "--out", s(&b)?])?;
    assert_eq!(r.status, Some(0), "backup: {}", r.stderr);
    Ok((tmp, p, b))
}

#[test]
fn a_standby_follows_a_simulation_in_another_process_and_dumps_the_same_rows() -> TestResult {
    let (tmp, p, b) = primary()?;
    let sb = tmp.path().join("standby");
    let r = run(&[
        "standby",
        "--dir",
        s(&sb)?,
        "--primary",
        s(&p)?,
        "--from-backup",
        s(&b)?,
        "--once",
        "--json",
    ])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    let first: serde_json::Value = serde_json::from_str(r.stdout.trim())?;
    let base = first["applied_seq"].as_u64().ok_or("applied_seq")?;
    assert!(base > 0, "{first}");

    // The primary simulates in one process while the standby follows in another, which is
    // killed (SIGKILL) a moment after the simulation ends: every catch-up is one durable
    // commit, so the standby holds a whole prefix of the primary's transactions.
    let follower = command(&[
        "standby",
        "--dir",
        s(&sb)?,
        "--primary",
        s(&p)?,
        "--interval",
        "20ms",
        "--json",
    ])
    .spawn()?;
    let sim = command(&["simulate", "--dir", s(&p)?, "--orders", "20000", "--json"]).output()?;
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut follower = follower;
    follower.kill()?;
    let follow = follower.wait_with_output()?;
    let stderr = String::from_utf8(follow.stderr)?;
    assert!(stderr.is_empty(), "{stderr}");
    let mut last = base;
    for line in String::from_utf8(follow.stdout)?.lines() {
        let c: serde_json::Value = serde_json::from_str(line)?;
        let seq = c["applied_seq"].as_u64().ok_or("applied_seq")?;
        assert_eq!(
            seq,
            last + c["applied"].as_u64().ok_or("applied")?,
            "{line}"
        );
        last = seq;
    }
    assert!(
        last > base,
        "the standby applied records while the primary ran"
    );

    let r = run(&["standby", "--dir", s(&sb)?, "--primary", s(&p)?, "--once"])?;
    assert_eq!(r.status, Some(0), "{}", r.stderr);
    assert!(r.stdout.starts_with("applied "), "{}", r.stdout);
    assert_eq!(dump(&sb)?, dump(&p)?);
    let r = run(&["check", "--dir", s(&sb)?])?;
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);
    Ok(())
}

#[test]
fn bad_standby_arguments_fail_with_a_clear_message() -> TestResult {
    let (tmp, p, b) = primary()?;
    let before = dump(&p)?;
    let sb = tmp.path().join("standby");
    let sbs = s(&sb)?;
    let inner = p.join("inner");
    let nowhere = tmp.path().join("nowhere");
    let no_backup = tmp.path().join("no-backup");
    let cases: &[(&[&str], i32, &str)] = &[
        (&["standby", "--dir", sbs], 2, "--primary"),
        (
            &[
                "standby",
                "--dir",
                sbs,
                "--primary",
                s(&p)?,
                "--interval",
                "0s",
            ],
            2,
            "above zero",
        ),
        (
            &[
                "standby",
                "--dir",
                sbs,
                "--primary",
                s(&p)?,
                "--interval",
                "soon",
            ],
            2,
            "not a duration",
        ),
        (
            &["standby", "--dir", sbs, "--primary", s(&p)?, "--once"],
            1,
            "holds no store",
        ),
        // The primary is a store, but not a standby.
        (
            &["standby", "--dir", s(&p)?, "--journal", s(&b)?, "--once"],
            1,
            "is not a standby",
        ),
        (
            &[
                "standby",
                "--dir",
                s(&inner)?,
                "--primary",
                s(&p)?,
                "--from-backup",
                s(&b)?,
            ],
            1,
            "overlap",
        ),
        (
            &["standby", "--dir", sbs, "--primary", s(&nowhere)?, "--once"],
            1,
            "holds no store",
        ),
        (
            &[
                "standby",
                "--dir",
                sbs,
                "--primary",
                s(&p)?,
                "--from-backup",
                s(&no_backup)?,
            ],
            1,
            "no-backup",
        ),
        // Bad folders are refused before the backup is restored: no standby is left.
        (
            &[
                "standby",
                "--dir",
                sbs,
                "--journal",
                s(&nowhere)?,
                "--from-backup",
                s(&b)?,
            ],
            1,
            "none of the journal folders exists",
        ),
    ];
    for (args, status, says) in cases {
        let r = run(args)?;
        assert_eq!(
            r.status,
            Some(*status),
            "{args:?}: {}{}",
            r.stdout,
            r.stderr
        );
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    assert!(!inner.exists());
    assert!(!sb.exists(), "a refused standby was left behind");

    // A standby made, then pointed at folders that are not the primary's.
    let r = run(&[
        "standby",
        "--dir",
        sbs,
        "--primary",
        s(&p)?,
        "--from-backup",
        s(&b)?,
        "--once",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    let own = sb.join("journal");
    for (folder, says) in [
        (&nowhere, "none of the journal folders exists"),
        (&own, "is inside the standby"),
    ] {
        let r = run(&["standby", "--dir", sbs, "--journal", s(folder)?, "--once"])?;
        assert_eq!(r.status, Some(1), "{folder:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{folder:?}: {}", r.stderr);
    }

    // --duration ends the run even when --interval is longer.
    let mut child = support::command(&[
        "standby",
        "--dir",
        sbs,
        "--primary",
        s(&p)?,
        "--duration",
        "300ms",
        "--interval",
        "1h",
    ])
    .spawn()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill()?;
            return Err("standby --duration 300ms --interval 1h ran on past a minute".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(dump(&p)?, before);
    Ok(())
}

#[test]
fn a_promoted_standby_takes_migrations_and_never_follows_again() -> TestResult {
    let (tmp, p, b) = primary()?;
    let sb = tmp.path().join("standby");
    let sbs = s(&sb)?;
    let r = run(&[
        "standby",
        "--dir",
        sbs,
        "--primary",
        s(&p)?,
        "--from-backup",
        s(&b)?,
        "--once",
        "--json",
    ])?;
    assert!(r.ok(), "{}", r.stderr);
    let held: serde_json::Value = serde_json::from_str(r.stdout.trim())?;
    let held = held["applied_seq"].as_u64().ok_or("applied_seq")?;

    // A standby refuses migrations; the migration is a plain account insert.
    let m = tmp.path().join("migrations");
    std::fs::create_dir(&m)?;
    std::fs::write(
        m.join("one.toml"),
        "version = 1\ndescription = \"venue\"\n[[step]]\ninsert = \
         ['{\"table\":\"accounts\",\"record\":{\"id\":90000,\"name\":\"venue\",\"status\":\"active\"}}']\n",
    )?;
    let apply = ["migrate", "apply", "--dir", sbs, "--migrations", s(&m)?];
    let r = run(&apply)?;
    assert_eq!(r.status, Some(1), "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("this store is a standby"), "{}", r.stderr);

    // Promotion is refused with flags that belong to following.
    let r = run(&["standby", "--dir", sbs, "--promote", "--once"])?;
    assert_eq!(r.status, Some(2), "{}", r.stderr);
    let before = dump(&sb)?;
    let r = run(&["standby", "--dir", sbs, "--promote"])?;
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        format!(
            "promoted {sbs}: a store of its own, holding the primary's transactions 1..={held}"
        )
    );
    assert_eq!(dump(&sb)?, before, "promotion changes no row");
    let r = run(&["audit", "list", "--dir", sbs, "--json"])?;
    assert!(r.ok(), "{}", r.stderr);
    assert!(r.stdout.contains("standby.promote"), "{}", r.stdout);

    let r = run(&apply)?;
    assert!(r.ok(), "migrate after promotion: {}{}", r.stdout, r.stderr);
    let r = run(&["check", "--dir", sbs])?;
    assert_eq!(r.status, Some(0), "{}{}", r.stdout, r.stderr);

    for (args, says) in [
        (
            vec!["standby", "--dir", sbs, "--primary", s(&p)?, "--once"],
            "is not a standby",
        ),
        // Promoted before: the message says when, from the audit trail.
        (
            vec!["standby", "--dir", sbs, "--promote"],
            "it was promoted already (audit entry",
        ),
        // Never a standby: nothing to promote, and no earlier promotion to name.
        (
            vec!["standby", "--dir", s(&p)?, "--promote"],
            "is not a standby: there is nothing to promote",
        ),
    ] {
        let r = run(&args)?;
        assert_eq!(r.status, Some(1), "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    Ok(())
}
