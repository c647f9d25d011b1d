//! Ctrl-C, SIGTERM and SIGHUP for the commands that run until stopped (`simulate`,
//! `monitor`). The first asks the command to stop: it finishes the transactions in flight,
//! closes the store and reports. A second quits at once, which is safe as well: every
//! acknowledged write is durable whenever the process ends.

use anyhow::{Context, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of a second signal: 128 + SIGINT, as a shell reports an interrupted command.
const QUIT_AT_ONCE: i32 = 130;

/// Installs the handler (once per process): on the first signal, says that `what` is
/// stopping and calls `stop`; on a second, quits.
pub fn on_stop(what: &'static str, stop: impl Fn() + Send + 'static) -> Result<()> {
    let seen = Arc::new(AtomicBool::new(false));
    ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("quitting at once (every acknowledged write is durable)");
            std::process::exit(QUIT_AT_ONCE);
        }
        eprintln!("stopping {what}: finishing what is in flight (again to quit at once)");
        stop();
    })
    .context("installing the handler of Ctrl-C and SIGTERM")
}
