//! What monitoring costs: the reference trading engine run with the sampler on and off, in
//! alternating rounds on fresh stores, compared by median throughput.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use tradestore::{Config, Store};

use crate::sim::engine::{self, Live, LoadProfile, SimConfig};

/// The measurement.
#[derive(Clone, Debug, Serialize)]
pub struct MonitorCost {
    /// Rounds per setting.
    pub rounds: usize,
    /// Orders per run.
    pub orders: u64,
    /// Orders/s of each run with monitoring on.
    pub on: Vec<f64>,
    /// Orders/s of each run with monitoring off.
    pub off: Vec<f64>,
    /// Median orders/s on.
    pub median_on: f64,
    /// Median orders/s off.
    pub median_off: f64,
    /// Throughput lost to monitoring, percent of the median off (negative: noise).
    pub cost_pct: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn one_run(dir: &Path, monitor: bool, orders: u64) -> Result<f64> {
    let store = Arc::new(Store::open(
        dir,
        Config {
            monitor,
            ..Config::default()
        },
    )?);
    let cfg = SimConfig {
        duration: None,
        orders: Some(orders),
        accounts: 200,
        instruments: 20,
        writers: 4,
        readers: 1,
        seed: 7,
        profile: LoadProfile::Steady,
        ack_log: None,
    };
    let report = engine::run(Arc::clone(&store), &cfg, Arc::new(Live::default()))?;
    Ok(report.orders_per_s)
}

/// Runs `rounds` rounds of `orders` orders each way, alternating which goes first, each
/// on a fresh store under `dir`.
pub fn measure(
    dir: &Path,
    rounds: usize,
    orders: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<MonitorCost> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for monitor in order {
            progress(&format!(
                "measuring monitoring {} (round {} of {rounds}) ...",
                if monitor { "on" } else { "off" },
                round + 1
            ));
            let sub = dir.join(format!("monitor-{round}-{monitor}"));
            let rate = one_run(&sub, monitor, orders).with_context(|| {
                format!(
                    "simulating with monitoring {}",
                    if monitor { "on" } else { "off" }
                )
            });
            let _ = std::fs::remove_dir_all(&sub);
            if monitor { &mut on } else { &mut off }.push(rate?);
        }
    }
    let (median_on, median_off) = (median(&on), median(&off));
    Ok(MonitorCost {
        rounds,
        orders,
        cost_pct: if median_off > 0.0 {
            (median_off - median_on) / median_off * 100.0
        } else {
            0.0
        },
        on,
        off,
        median_on,
        median_off,
    })
}

impl MonitorCost {
    /// The result as lines for the benchmark's text output.
    pub fn text(&self) -> String {
        format!(
            "\nmonitoring cost: simulate ({} orders, 4 writers) with the sampler on vs off, {} rounds each\n  \
             on {:.0} orders/s, off {:.0} orders/s (medians): {:.1}% of throughput (target < 3%: {})\n",
            self.orders,
            self.rounds,
            self.median_on,
            self.median_off,
            self.cost_pct,
            if self.cost_pct < 3.0 {
                "met"
            } else {
                "not met"
            }
        )
    }
}
