//! `tradestore alerts`: the state of every alert rule.

use std::io::Write;

use super::store::{StoreDir, open_existing};
use anyhow::{Context, Result, bail};

/// List the alert rules configured in alerts.toml with their states.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
List every alert rule of the store's alerts.toml with its state (inactive, pending, firing, \
resolved), severity, labels, last value and whether it is silenced or inhibited.

Opening the directory evaluates the rules once, against what a freshly opened store \
samples; for the live states of a store a running program holds (for instance \
`tradestore simulate --monitor ADDR`), ask its monitor with --url.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Ask a running monitor (e.g. http://127.0.0.1:9187) instead of opening the store.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// The monitor's token, when it requires one.
    #[arg(long, env = "TRADESTORE_MONITOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// With --url: how long to wait for the monitor's answer, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Print the states as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `alerts`.
pub fn run(args: &Args) -> Result<()> {
    let states: Vec<serde_json::Value> = match &args.url {
        Some(url) => fetch(url, args.token.as_deref(), args.timeout)?,
        None => {
            let store = open_existing(&args.store.dir)?;
            if store.alert_manager().is_none() {
                bail!(
                    "{} has no {}: no alert rules are configured",
                    args.store.dir.display(),
                    tradestore::monitor::ALERTS_FILE
                );
            }
            store.sample_metrics();
            store.evaluate_alerts();
            store
                .alert_states()
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?
        }
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &states)?;
        writeln!(out)?;
    } else {
        for s in &states {
            let field = |k: &str| match &s[k] {
                serde_json::Value::String(v) => v.clone(),
                serde_json::Value::Null => "-".to_owned(),
                v => v.to_string(),
            };
            writeln!(
                out,
                "{:<24} {:<9} {:<8} value {}{}{}",
                field("name"),
                field("state"),
                field("severity"),
                field("value"),
                if s["silenced"] == true {
                    " (silenced)"
                } else {
                    ""
                },
                if s["inhibited"] == true {
                    " (inhibited)"
                } else {
                    ""
                },
            )?;
        }
        if states.is_empty() {
            writeln!(out, "no alert rules")?;
        }
    }
    out.flush()?;
    Ok(())
}

fn fetch(url: &str, token: Option<&str>, timeout_s: u64) -> Result<Vec<serde_json::Value>> {
    let (status, body) = super::probe::get(url, "/api/status", token, timeout_s)?;
    let url = super::probe::shown(url.trim_end_matches('/'));
    if status != 200 {
        bail!("{url}/api/status answered {status}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("{url}/api/status sent no JSON"))?;
    match v.get("alerts").and_then(|a| a.as_array()) {
        Some(a) => Ok(a.clone()),
        None => bail!("{url}/api/status sent no alert states"),
    }
}
