//! `tradestore simulate`: run the reference trading engine against a store.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use tradestore::Store;

use super::store::StoreDir;
use crate::sim::engine::{self, Live, LoadProfile, SimConfig};
use crate::sim::report::{Percentiles, histogram};

/// Run the reference trading engine: order books, a seeded order flow, fills and portfolios,
/// all persisted through the store.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Run the reference trading engine against the store: per instrument a price-time priority \
limit order book; a seeded flow of limit and market orders, cancels and partial fills over \
the accounts and instruments, with a few hot instruments; every order, cancel, fill, \
position and cash change committed durably through the store's public API.

The store is created if the directory does not exist (or is empty). A second run on the same directory \
continues where the first stopped: ids continue and resting orders return to their books.

With neither --duration nor --orders the run lasts 10 seconds.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// How long to run, e.g. 10s, 1500ms, 2m.
    #[arg(long, value_parser = super::parse_duration, conflicts_with = "orders")]
    pub duration: Option<Duration>,

    /// Stop after this many new orders instead of after a duration.
    #[arg(long)]
    pub orders: Option<u64>,

    /// Number of accounts.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub accounts: u64,

    /// Number of instruments.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub instruments: u64,

    /// Writer threads; each owns a share of the instruments and their books.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub writers: u64,

    /// Reader threads of the stress profile.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub readers: u64,

    /// Seed of the order flow.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Load profile: steady flow, bursts, or maximum writes with concurrent readers.
    #[arg(long, value_enum, default_value_t = LoadProfile::Steady)]
    pub profile: LoadProfile,

    /// Append every acked trade id to FILE, one decimal id per line, after its commit is
    /// durable.
    #[arg(long, value_name = "FILE")]
    pub ack_log: Option<PathBuf>,

    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,

    /// Serve the monitor (/metrics, /health, the dashboard at /) on ADDR while simulating,
    /// e.g. 127.0.0.1:9187. Off loopback it needs --monitor-token.
    #[arg(long, value_name = "ADDR")]
    pub monitor: Option<std::net::SocketAddr>,

    /// The token monitor requests must carry.
    #[arg(long, env = "TRADESTORE_MONITOR_TOKEN", hide_env_values = true)]
    pub monitor_token: Option<String>,

    /// Keep serving the monitor this long after the simulation ends (e.g. 30s), so the
    /// final numbers can be read.
    #[arg(long, value_parser = super::parse_duration, requires = "monitor")]
    pub monitor_linger: Option<Duration>,
}

/// Runs `simulate`.
pub fn run(args: &Args) -> Result<()> {
    if args.orders == Some(0) {
        bail!("--orders must be at least 1");
    }
    let dir = &args.store.dir;
    // A store is created only in a folder that does not exist yet, is empty, or holds what
    // an interrupted creation left: an existing folder of other files is not turned into one.
    if dir.is_dir() && !dir.join(tradestore::DB_FILE).exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() && !tradestore::is_unfinished_store(dir) {
            bail!(
                "{} exists, holds other files and no store; give a new or empty folder (or a \
                 store's) to --dir",
                dir.display()
            );
        }
    }
    // An ack log that cannot be written is a mistake to name before the store opens and any
    // order goes in, not a failure of the run.
    if let Some(path) = &args.ack_log {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the ack log {}", path.display()))?;
    }
    let store = Arc::new(
        Store::open_dir(dir).with_context(|| format!("opening the store in {}", dir.display()))?,
    );
    let cfg = SimConfig {
        duration: match (args.duration, args.orders) {
            (Some(d), _) => Some(d),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(10)),
        },
        orders: args.orders,
        accounts: args.accounts,
        instruments: args.instruments,
        writers: usize::try_from(args.writers).unwrap_or(1),
        readers: usize::try_from(args.readers).unwrap_or(1),
        seed: args.seed,
        profile: args.profile,
        ack_log: args.ack_log.clone(),
    };
    let server = match args.monitor {
        Some(listen) => {
            let server = tradestore::monitor::server::serve(
                Arc::clone(&store),
                tradestore::monitor::server::ServeOptions {
                    listen,
                    token: args.monitor_token.clone(),
                },
            )
            .context("starting the monitor")?;
            eprintln!("monitor: http://{}/", server.addr());
            Some(server)
        }
        None => None,
    };
    let live = Arc::new(Live::default());
    {
        let live = Arc::clone(&live);
        super::signals::on_stop("the simulation", move || {
            live.interrupt.store(true, Ordering::SeqCst);
        })?;
    }
    let display = std::io::stderr()
        .is_terminal()
        .then(|| spawn_display(Arc::clone(&live)));
    let result = engine::run(Arc::clone(&store), &cfg, Arc::clone(&live));
    if let Some((bar, handle)) = display {
        bar.finish_and_clear();
        let _ = handle.join();
    }
    if let (Some(_), Some(linger), false) = (
        &server,
        args.monitor_linger,
        live.interrupt.load(Ordering::SeqCst),
    ) {
        std::thread::sleep(linger);
    }
    drop(server);
    // What was acknowledged before a failure is durable: say how much, so that an operator
    // knows the run did work (and where its ids are) before looking into the cause.
    let report = result.with_context(|| {
        let (orders, trades) = (
            live.orders.load(Ordering::Relaxed),
            live.trades.load(Ordering::Relaxed),
        );
        let log = match &args.ack_log {
            Some(path) if trades > 0 => format!(" (their trade ids are in {})", path.display()),
            _ => String::new(),
        };
        format!(
            "the simulation stopped; {orders} orders and {trades} trades were acknowledged \
             as durable before the failure{log}"
        )
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

/// A spinner line, refreshed twice a second: orders/s, trades/s and the p99 commit latency
/// of the last interval.
fn spawn_display(live: Arc<Live>) -> (ProgressBar, std::thread::JoinHandle<()>) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    *live.recent.lock() = Some(histogram());
    let shown = bar.clone();
    let handle = std::thread::spawn(move || {
        let (mut last_orders, mut last_trades) = (0u64, 0u64);
        let tick = Duration::from_millis(500);
        while !shown.is_finished() {
            std::thread::sleep(tick);
            let orders = live.orders.load(Ordering::Relaxed);
            let trades = live.trades.load(Ordering::Relaxed);
            let p99 = live.recent.lock().as_mut().map_or(0, |h| {
                let p = Percentiles::of(h).p99_us;
                h.reset();
                p
            });
            let per_s = |n: u64| n as f64 / tick.as_secs_f64();
            shown.set_message(format!(
                "orders {orders} ({:.0}/s)  trades {trades} ({:.0}/s)  p99 commit {p99} us",
                per_s(orders - last_orders),
                per_s(trades - last_trades)
            ));
            shown.tick();
            (last_orders, last_trades) = (orders, trades);
        }
    });
    (bar, handle)
}

#[cfg(test)]
mod tests {
    use super::super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
    }
}
