//! `tradestore simulate` end to end: a short seeded session leaves a consistent store, a
//! second run continues it, and SIGKILL at random moments loses no acked trade.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tradestore::schema::Trade;
use tradestore::{ReadOps, Store};

fn tradestore() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    c.env_remove("TRADESTORE_DIR");
    c
}

fn trade_ids(dir: &Path) -> BTreeSet<u64> {
    let store = Store::open_dir(dir).expect("the store reopens after the run");
    let report = store.check(&mut |_, _| {}).expect("check runs");
    assert!(
        report.is_clean(),
        "check found violations: {:#?}",
        report.violations
    );
    store
        .read()
        .expect("a snapshot")
        .all::<Trade>()
        .expect("trades scan")
        .into_iter()
        .map(|t| t.id)
        .collect()
}

fn acked(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // A kill may cut the last line short; only whole lines were acked.
    let whole = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    whole
        .lines()
        .map(|l| l.parse().expect("ack log lines are decimal ids"))
        .collect()
}

#[test]
fn seeded_session_is_consistent_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("acks");
    let run = |orders: &str| {
        let out = tradestore()
            .args([
                "simulate",
                "--orders",
                orders,
                "--accounts",
                "20",
                "--instruments",
                "5",
                "--seed",
                "7",
                "--json",
            ])
            .arg("--dir")
            .arg(&data)
            .arg("--ack-log")
            .arg(&log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report
    };
    let first = run("300");
    assert_eq!(first["orders"], 300);
    let trades_first = first["trades"].as_u64().unwrap();
    assert!(
        trades_first > 0,
        "a session of 300 orders on 5 instruments makes trades"
    );
    assert!(first["latency"]["new_order"]["count"].as_u64().unwrap() == 300);
    let ids = trade_ids(&data);
    assert_eq!(ids.len() as u64, trades_first);
    assert_eq!(acked(&log).into_iter().collect::<BTreeSet<_>>(), ids);

    let second = run("200");
    let ids2 = trade_ids(&data);
    assert_eq!(
        ids2.len() as u64,
        trades_first + second["trades"].as_u64().unwrap()
    );
    assert!(
        ids.is_subset(&ids2),
        "the second run keeps the first run's trades"
    );
    let log_ids = acked(&log);
    assert_eq!(log_ids.len(), ids2.len(), "no id was acked twice");
}

#[test]
fn sigkill_loses_no_acked_trade() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("acks");
    let mut rng = fastrand::Rng::new();
    for round in 0..4 {
        let mut child = tradestore()
            .args([
                "simulate",
                "--duration",
                "60s",
                "--accounts",
                "50",
                "--instruments",
                "10",
                "--writers",
                "3",
            ])
            .arg("--seed")
            .arg(round.to_string())
            .arg("--dir")
            .arg(&data)
            .arg("--ack-log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(400 + rng.u64(0..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let stored = trade_ids(&data);
        let acked = acked(&log);
        let missing: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|id| !stored.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: acked trades missing after SIGKILL: {missing:?}"
        );
    }
    assert!(!acked(&log).is_empty(), "the runs acked some trades");
}

/// Waits up to `limit` for the child to exit.
fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if start.elapsed() > limit {
            child.kill().expect("killing the child");
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A ten-minute `simulate --json` on `data` (its report on stdout, as `out` says), once it
/// has acked a trade in `log`.
fn acking_run(data: &Path, log: &Path, out: Stdio) -> std::process::Child {
    let child = tradestore()
        .args(["simulate", "--duration", "600s", "--json"])
        .args(["--accounts", "50", "--instruments", "10", "--writers", "3"])
        .arg("--dir")
        .arg(data)
        .arg("--ack-log")
        .arg(log)
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting simulate");
    let start = std::time::Instant::now();
    while acked(log).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no trade was acked within 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Sends `signal` (a name `kill` knows) to the child.
fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -{signal} failed");
}

#[test]
fn ctrl_c_stops_a_run_with_its_report_and_every_acked_trade_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("acks");
    let mut child = acking_run(&data, &log, Stdio::piped());
    signal(&child, "INT");
    wait_within(&mut child, Duration::from_secs(120));
    // Exited already: its status is kept, and its pipes are read to the end.
    let output = child.wait_with_output().unwrap();
    let status = output.status;
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "exit {status:?}: {err}");
    assert!(err.contains("stopping the simulation"), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("a JSON report");
    assert_eq!(report["interrupted"], true, "{out}");
    assert!(report["elapsed_s"].as_f64().unwrap() < 600.0, "{out}");
    // The report counts what was acked: the ack log has exactly its trades, all stored.
    let acked = acked(&log);
    assert_eq!(report["trades"].as_u64(), Some(acked.len() as u64), "{out}");
    let stored = trade_ids(&data);
    assert!(acked.iter().all(|id| stored.contains(id)));
}

#[test]
fn a_second_signal_quits_at_once_and_loses_no_acked_trade() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("acks");
    let mut child = acking_run(&data, &log, Stdio::null());
    // Two different signals (two of one kind could merge into one while pending), sent by
    // the shell's own `kill` microseconds apart.
    let pid = child.id();
    let sent = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -INT {pid} && kill -TERM {pid}"))
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_within(&mut child, Duration::from_secs(120));
    // The second signal quits before the first has wound the run down (that takes at
    // least the engine's 20 ms poll).
    assert_eq!(status.code(), Some(130), "exit {status:?}");
    let stored = trade_ids(&data);
    let acked = acked(&log);
    assert!(!acked.is_empty());
    assert!(acked.iter().all(|id| stored.contains(id)));
}

/// An ack log that cannot be written (its folder is missing, it is a folder) is refused
/// before the store opens: no order goes in, and no store is created.
#[test]
fn an_ack_log_that_cannot_be_written_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    for log in [
        tmp.path().join("missing").join("acks"),
        tmp.path().to_path_buf(),
    ] {
        let out = tradestore()
            .args(["simulate", "--orders", "50", "--dir"])
            .arg(&data)
            .arg("--ack-log")
            .arg(&log)
            .output()
            .expect("run simulate");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("opening the ack log"), "{err}");
        assert!(!err.contains("simulation stopped"), "{err}");
        assert!(!data.exists(), "a store was created: {err}");
    }
}
