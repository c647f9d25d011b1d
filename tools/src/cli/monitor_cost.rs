//! What monitoring costs: the reference trading engine run with the sampler on and off, in
//! alternating rounds on fresh stores. Each round runs both settings back to back, and the
//! cost is the median of the rounds' paired differences: the machine's drift between rounds
//! (which moves throughput by more than the sampler does) cancels within a pair.

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
    /// Throughput lost to monitoring: the median over rounds of (off - on) / off, percent
    /// (negative: noise).
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

/// The median over rounds of the throughput lost with monitoring on, percent of that
/// round's run with it off.
fn paired_cost_pct(on: &[f64], off: &[f64]) -> f64 {
    let paired: Vec<f64> = on
        .iter()
        .zip(off)
        .filter(|(_, off)| **off > 0.0)
        .map(|(on, off)| (off - on) / off * 100.0)
        .collect();
    median(&paired)
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
        cost_pct: paired_cost_pct(&on, &off),
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
             on {:.0} orders/s, off {:.0} orders/s (medians); median of the rounds' paired \
             differences: {:.1}% of throughput (target < 3%: {})\n",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_is_the_median_of_paired_differences() {
        // The machine was twice as fast after the first round; the pairs lost 10%, 5%
        // and 1%.
        let on = [90.0, 190.0, 198.0];
        let off = [100.0, 200.0, 200.0];
        assert!((paired_cost_pct(&on, &off) - 5.0).abs() < 1e-9);
        assert!((paired_cost_pct(&[101.0], &[100.0]) + 1.0).abs() < 1e-9);
        assert_eq!(paired_cost_pct(&[], &[]), 0.0);
        // A run that measured nothing is left out rather than divided by.
        assert!((paired_cost_pct(&[50.0, 95.0], &[0.0, 100.0]) - 5.0).abs() < 1e-9);
    }
}
