//! `tradestore health`: the store's health checks, with an exit status usable as a
//! readiness probe.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use tradestore::monitor::HealthReport;

use super::store::{StoreDir, open_existing};
use super::table::{self, Align};

/// Check the store's health: exit 0 when ok, 1 when degraded, 2 when failing.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Run the health checks (writes possible, journal lag, checkpoint age, disk headroom, error \
rate, latency objective) and print each with its state and reason. The exit status is the \
worst state: 0 ok, 1 degraded, 2 failing; an error (no store, unreachable monitor) exits 2, \
so the command works as a readiness probe.

A store is open in one process at a time: for a store that a running program holds (for \
instance `tradestore simulate --monitor ADDR`), ask its monitor with --url instead of \
opening the directory.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Ask a running monitor (e.g. http://127.0.0.1:9187) instead of opening the store.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// The monitor's token, when it requires one.
    #[arg(long, env = "TRADESTORE_MONITOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// With --url: how long to wait for the monitor's answer, in seconds, before the probe
    /// fails (exit 2).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `health`; returns the exit status by state.
pub fn run(args: &Args) -> Result<ExitCode> {
    let report: HealthReport = match &args.url {
        Some(url) => fetch(url, args.token.as_deref(), args.timeout)?,
        None => open_existing(&args.store.dir)?.health(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "health  {}", report.state.name())?;
        writeln!(out)?;
        let rows: Vec<Vec<String>> = report
            .checks
            .iter()
            .map(|c| vec![c.name.clone(), c.state.name().to_owned(), c.reason.clone()])
            .collect();
        table::write(
            &mut out,
            &[
                ("CHECK", Align::Left),
                ("STATE", Align::Left),
                ("REASON", Align::Left),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(ExitCode::from(report.state.exit_code()))
}

fn fetch(url: &str, token: Option<&str>, timeout_s: u64) -> Result<HealthReport> {
    let (status, body) = super::probe::get(url, "/health", token, timeout_s)?;
    let url = super::probe::shown(url.trim_end_matches('/'));
    if status != 200 && status != 503 {
        bail!("{url}/health answered {status}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{url}/health sent no health report"))
}
