//! Monitoring through the binary: `health` exit statuses, `simulate --monitor` serving
//! /metrics (accepted by promtool), /health, the alert states and the dashboard page, which
//! headless Chromium loads and renders with real data and no script errors; tokens are
//! enforced; an address off loopback needs one.

use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn Error>>;

fn tradestore(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    cmd.args(args).arg("--dir").arg(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRADESTORE_") {
            cmd.env_remove(key);
        }
    }
    // Disk headroom is not what these tests are about.
    cmd.env("TRADESTORE_HEALTH_DISK_MIN_MB", "0");
    cmd
}

fn new_store() -> Result<(tempfile::TempDir, std::path::PathBuf), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("store");
    let out = tradestore(&dir, &["init"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((tmp, dir))
}

/// A `simulate --monitor` child and the address it serves on.
struct Simulation {
    child: Child,
    base: String,
}

impl Drop for Simulation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn simulate_with_monitor(dir: &Path, extra: &[&str]) -> Result<Simulation, Box<dyn Error>> {
    let mut args = vec![
        "simulate",
        "--duration",
        "4s",
        "--accounts",
        "50",
        "--instruments",
        "10",
        "--monitor",
        "127.0.0.1:0",
        "--monitor-linger",
        "60s",
    ];
    args.extend_from_slice(extra);
    let mut child = tradestore(dir, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (base, lines) = announced(&mut child)?;
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Simulation { child, base })
}

/// The rest of a child's stderr.
type Lines = std::io::Lines<BufReader<std::process::ChildStderr>>;

/// Reads the child's stderr up to its `monitor: http://ADDR/ ...` line; returns the base
/// URL (`http://ADDR`) and the lines after it.
fn announced(child: &mut Child) -> Result<(String, Lines), Box<dyn Error>> {
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines
            .next()
            .ok_or("the command ended before announcing its monitor")??;
        if let Some(rest) = line.strip_prefix("monitor: ") {
            let url = rest.split_whitespace().next().unwrap_or(rest);
            return Ok((url.trim_end_matches('/').to_owned(), lines));
        }
    }
}

fn get(url: &str, token: Option<&str>) -> Result<(u16, String), Box<dyn Error>> {
    let mut req = ureq::get(url).config().http_status_as_error(false).build();
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.call()?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_to_string()?))
}

fn promtool_accepts(text: &str) -> TestResult {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed"
        );
        eprintln!("promtool not installed: exposition not checked by it here");
        return Ok(());
    };
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "promtool refused /metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The dashboard's DOM after Chromium ran its scripts for a few (virtual) seconds, and
/// the console lines Chromium logged.
fn chromium_dom(url: &str, profile: &Path) -> Result<Option<(String, String)>, Box<dyn Error>> {
    let Ok(out) = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is not installed"
        );
        eprintln!("chromium not installed: dashboard not loaded here");
        return Ok(None);
    };
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Some((
        String::from_utf8(out.stdout)?,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )))
}

fn attr<'a>(dom: &'a str, element_start: &str, name: &str) -> Option<&'a str> {
    let at = dom.find(element_start)?;
    let tag_end = dom[at..].find('>')? + at;
    let tag = &dom[at..tag_end];
    let key = format!("{name}=\"");
    let v = tag.find(&key)? + key.len();
    let end = tag[v..].find('"')? + v;
    Some(&tag[v..end])
}

const ALERTS: &str = r#"
evaluation_interval = "1s"

[[rule]]
name = "Busy"
kind = "threshold"
series = "commits_per_sec"
op = ">"
value = 0
for = "1s"
labels = { instance = "sim" }
annotations = { summary = "{{value}} commits/s" }

# Stays firing after the simulation stops committing (Busy resolves then), so the
# dashboard, loaded a moment later, has a firing alert to list whatever the timing.
[[rule]]
name = "Stored"
kind = "threshold"
series = "database_size_bytes"
op = ">"
value = 0
for = "1s"
"#;

#[test]
fn simulate_serves_metrics_health_alerts_and_a_live_dashboard() -> TestResult {
    let (tmp, dir) = new_store()?;
    std::fs::write(dir.join("alerts.toml"), ALERTS)?;
    let token = "s3cret";
    let sim = simulate_with_monitor(&dir, &["--monitor-token", token])?;
    let base = &sim.base;

    assert_eq!(
        get(&format!("{base}/metrics"), None)?.0,
        401,
        "a token is required"
    );
    assert_eq!(get(&format!("{base}/metrics?token=wrong"), None)?.0, 401);

    // Wait until the simulation has committed and the sampler has seen it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let (status, body) = get(&format!("{base}/metrics"), Some(token))?;
        assert_eq!(status, 200);
        let series = get(
            &format!("{base}/api/series?names=commits_per_sec"),
            Some(token),
        )?
        .1;
        let v: serde_json::Value = serde_json::from_str(&series)?;
        let busy = v["series"]["commits_per_sec"]
            .as_array()
            .is_some_and(|pts| pts.iter().any(|p| p[1].as_f64().unwrap_or(0.0) > 0.0));
        if busy && body.contains("tradestore_commits_total") {
            break body;
        }
        assert!(Instant::now() < deadline, "no commits sampled: {series}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let (status, body) = get(&format!("{base}/api/series?since=NaN"), Some(token))?;
    assert_eq!(status, 400, "{body}");
    let commits: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tradestore_commits_total "))
        .ok_or("no commit counter")?
        .parse()?;
    assert!(commits > 0.0);
    promtool_accepts(&metrics)?;

    let (status, body) = get(&format!("{base}/health"), Some(token))?;
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        status,
        if health["state"] == "failing" {
            503
        } else {
            200
        }
    );
    assert_eq!(health["checks"].as_array().map(Vec::len), Some(6));

    let out = tradestore(&dir, &["health", "--url", base, "--token", token, "--json"]).output()?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let expected = match report["state"].as_str() {
        Some("ok") => 0,
        Some("degraded") => 1,
        _ => 2,
    };
    assert_eq!(out.status.code(), Some(expected), "{report}");

    // The alert rules fire while trades commit.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out =
            tradestore(&dir, &["alerts", "--url", base, "--token", token, "--json"]).output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let states: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let state = |i: usize, name: &str| {
            if states[i]["name"] == name {
                states[i]["state"].as_str().unwrap_or("")
            } else {
                ""
            }
        };
        // Busy resolves once the 4 s simulation stops committing: a slow machine may first
        // look after that, so having fired (resolved) counts too.
        if matches!(state(0, "Busy"), "firing" | "resolved") && state(1, "Stored") == "firing" {
            break;
        }
        assert!(Instant::now() < deadline, "the alert never fired: {states}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let page = format!("{base}/?token={token}");
    if let Some((dom, console)) = chromium_dom(&page, &tmp.path().join("chromium"))? {
        assert_eq!(attr(&dom, "<body", "data-rendered"), Some("true"), "{dom}");
        assert_eq!(attr(&dom, "<body", "data-errors"), Some("0"), "{console}");
        for chart in ["throughput", "latency", "group", "sizes"] {
            let points: u64 = attr(&dom, &format!("<canvas id=\"{chart}\""), "data-points")
                .ok_or("chart missing")?
                .parse()?;
            assert!(points > 0, "chart {chart} drew no points");
        }
        assert!(
            dom.contains("<td>Stored</td>"),
            "the firing alert is listed"
        );
        assert!(!console.contains("Uncaught"), "{console}");
    }
    Ok(())
}

#[test]
fn health_exits_by_state_and_off_loopback_needs_a_token() -> TestResult {
    let (_tmp, dir) = new_store()?;
    let out = tradestore(&dir, &["health"]).output()?;
    let text = String::from_utf8(out.stdout)?;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("health  ok"), "{text}");
    for check in [
        "writes",
        "journal_lag",
        "checkpoint_age",
        "disk_headroom",
        "error_rate",
        "latency_objective",
    ] {
        assert!(text.contains(check), "{check} in {text}");
    }
    // Requiring 1 PiB free degrades (a quarter of it fails): the exit status follows.
    let out = tradestore(&dir, &["health", "--json"])
        .env("TRADESTORE_HEALTH_DISK_MIN_MB", "1073741824")
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["state"], "failing");
    assert_eq!(out.status.code(), Some(2));

    let out = tradestore(&dir, &["health"])
        .env("TRADESTORE_HEALTH_COMMIT_P99_MS", "nope")
        .output()?;
    assert_eq!(out.status.code(), Some(2), "an error is not ready");

    let out = tradestore(&dir, &["monitor", "--listen", "0.0.0.0:0"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
    // A blank token protects nothing: refused before anything listens.
    let out = tradestore(&dir, &["monitor", "--listen", "0.0.0.0:0", "--token", " "]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));

    // A monitor that accepts the connection and never answers: the probe gives up after
    // --timeout and reports not ready.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", silent.local_addr()?);
    let out = tradestore(&dir, &["health", "--url", &url, "--timeout", "1"]).output()?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unanswered probe is not ready"
    );
    let out = tradestore(&dir, &["alerts", "--url", &url, "--timeout", "1"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    drop(silent);

    // A port the HTTP client cannot read would have sent the probe to port 80.
    for bad in [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:91x",
        "127.0.0.1:9187",
    ] {
        let out = tradestore(&dir, &["health", "--url", bad, "--timeout", "1"]).output()?;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {said}");
        assert!(said.contains(&format!("--url {bad}: ")), "{bad}: {said}");
    }

    std::fs::write(dir.join("alerts.toml"), "[[rule]]\nname = 1\n")?;
    let out = tradestore(&dir, &["alerts"]).output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("alerts.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn monitor_stops_serving_and_closes_the_store_on_sigterm() -> TestResult {
    let (_tmp, dir) = new_store()?;
    let mut child = tradestore(&dir, &["monitor", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let (base, lines) = announced(&mut child)?;
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let (status, _) = get(&format!("{base}/health"), None)?;
    assert!(status == 200 || status == 503, "health answered {status}");
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(sent.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill()?;
            return Err("the monitor did not stop within 60 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let said = rest
        .join()
        .map_err(|_| "stderr reader panicked")?
        .join("\n");
    assert!(exit.success(), "exit {exit:?}: {said}");
    assert!(said.contains("stopping the monitor"), "{said}");
    assert!(
        get(&format!("{base}/health"), None).is_err(),
        "still serving"
    );
    // The store it closed opens again, clean.
    let out = tradestore(&dir, &["check"]).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

#[test]
fn backup_url_backs_up_the_store_of_a_running_simulation() -> TestResult {
    let (tmp, dir) = new_store()?;
    let sim = simulate_with_monitor(&dir, &["--monitor-token", "t0ken"])?;
    let base = &sim.base;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !get(&format!("{base}/metrics"), Some("t0ken"))?
        .1
        .lines()
        .any(|l| l.starts_with("tradestore_commits_total ") && !l.ends_with(" 0"))
    {
        assert!(
            Instant::now() < deadline,
            "the simulation committed nothing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The directory is held by the simulation: the error says how to ask it instead.
    let out = tradestore(&dir, &["backup"]).output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("backup --url"), "{said}");

    let out = tradestore(&dir, &["backup", "--url", base]).output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("401"), "{said}");

    let out = tradestore(
        &dir,
        &["backup", "--url", base, "--token", "t0ken", "--json"],
    )
    .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let path = std::path::PathBuf::from(report["path"].as_str().ok_or("no path")?);
    assert_eq!(path.parent(), Some(dir.join("backups").as_path()));
    let seq = report["applied_seq"].as_u64().ok_or("no sequence number")?;
    assert!(seq > 0, "{report}");
    drop(sim);

    // A program that goes away before answering: the error says what is left behind.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", gone.local_addr()?);
    let closer = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = gone.accept() {
            let mut head = [0u8; 1024];
            let _ = std::io::Read::read(&mut conn, &mut head);
        }
    });
    let out = tradestore(&dir, &["backup", "--url", &url]).output()?;
    closer.join().map_err(|_| "the closing listener panicked")?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("closed the connection"), "{said}");

    // The backup is whole and restores into a store that checks clean, holding exactly
    // the transactions it reported.
    let restored = tmp.path().join("restored");
    let out = Command::new(env!("CARGO_BIN_EXE_tradestore"))
        .args(["backup", "restore"])
        .arg(&path)
        .arg("--to")
        .arg(&restored)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tradestore(&restored, &["inspect", "--json"]).output()?;
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        inspect["write_path"]["applied_seq"].as_u64(),
        Some(seq),
        "{inspect}"
    );
    Ok(())
}
