//! `tradestore monitor`: serve a store's metrics, health and live dashboard over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tradestore::monitor::server::{ServeOptions, serve};

use super::store::{StoreDir, open_existing};

/// Serve /metrics, /health and a live dashboard for the store.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Open the store and serve, until interrupted: /metrics (Prometheus text format), /health \
(JSON; HTTP 503 when failing), /api/series and /api/status (JSON), and at / a dashboard \
whose charts (throughput, latency percentiles, group size, sizes, health, firing alerts) \
update every second.

It listens on loopback by default. Any other address needs --token: every request must \
then carry it, as `Authorization: Bearer TOKEN` or `?token=TOKEN`. \
`tradestore simulate --monitor ADDR` serves the same while it simulates.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9187")]
    pub listen: SocketAddr,

    /// The token requests must carry (required off loopback).
    #[arg(long, env = "TRADESTORE_MONITOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs `monitor` until the process is stopped.
pub fn run(args: &Args) -> Result<()> {
    let store = Arc::new(open_existing(&args.store.dir)?);
    let server = serve(
        store,
        ServeOptions {
            listen: args.listen,
            token: args.token.clone(),
        },
    )
    .context("starting the monitor")?;
    eprintln!(
        "monitor: http://{}/ (metrics at /metrics, health at /health)",
        server.addr()
    );
    let (stop, stopped) = std::sync::mpsc::channel();
    super::signals::on_stop("the monitor", move || {
        let _ = stop.send(());
    })?;
    // Until a signal: then the server stops and the store closes cleanly (its next open
    // has nothing to replay).
    let _ = stopped.recv();
    drop(server);
    Ok(())
}
