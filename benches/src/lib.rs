//! The comparative benchmark of tradestore: how fast a trade becomes durable in tradestore,
//! next to the disk's fsync floor and to raw redb, SQLite and fjall doing the same job (a
//! trade row plus three secondary indexes); and how fast each of them restores and reads one
//! data set (point gets, an instrument's last trades, an account's positions). All measured
//! in one run on one disk, reported as ratios of tradestore over each peer.
//!
//! Run it with `cargo run --release -p tradestore-benches --bin compare -- [--quick] [--json]`.
//! The same run is `tradestore bench`, which can also compare it with a baseline
//! ([`baseline`]). Each peer's writes live in its own module, its reads in [`reads`];
//! [`run::run_all`] measures them in turn and [`report::Report`] prints the table.
//!
//! [`queries`] is a benchmark of its own: the latency of the common SQL queries against
//! SQLite running the same SQL (`cargo run --release -p tradestore-benches --bin queries`).
//!
//! ```no_run
//! use tradestore_benches::{report::Report, run::{Plan, run_all}};
//!
//! let dir = tempfile::tempdir()?;
//! let report: Report = run_all(dir.path(), &Plan::quick(), &mut |msg| eprintln!("{msg}"))?;
//! print!("{}", report.table());
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```
#![deny(unsafe_code)]

pub mod baseline;
pub mod fjall;
pub mod fsync_floor;
pub mod latency;
pub mod queries;
pub mod raw_redb;
pub mod reads;
pub mod report;
pub mod run;
pub mod sqlite;
pub mod tradestore;
pub mod workload;

/// Any error of any peer: this crate only measures and reports, so one boxed type serves.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The result of a measurement step.
pub type Result<T> = std::result::Result<T, Error>;

/// The `--dir` option of the benchmark binaries.
#[derive(Debug, clap::Args)]
pub struct ScratchArgs {
    /// Where to write (a temporary folder is made inside it and removed afterwards).
    /// Default: target/bench-tmp in the workspace, on the same disk as the repository.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

impl ScratchArgs {
    /// This run's scratch folder (see [`scratch_dir`]).
    pub fn scratch(&self, prefix: &str) -> Result<tempfile::TempDir> {
        scratch_dir(self.dir.as_deref(), prefix)
    }
}

/// A benchmark binary's exit status: success, or its error on stderr after `name`.
pub fn exit(name: &str, result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A scratch folder for one run, made inside `dir` (default: `target/bench-tmp` in the
/// workspace, on the same disk as the repository) and removed when dropped. Its name is
/// `PREFIX<pid>-<random>`: a run killed before it could remove its folder (SIGKILL, SIGTERM)
/// leaves one, and the next run with the same prefix removes every such folder whose
/// process is gone.
pub fn scratch_dir(dir: Option<&std::path::Path>, prefix: &str) -> Result<tempfile::TempDir> {
    let base = dir.map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp"),
        std::path::Path::to_path_buf,
    );
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;
    let base = base.canonicalize().unwrap_or(base);
    ::tradestore::backup::remove_abandoned(&base, prefix);
    Ok(tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| format!("creating a folder in {}: {e}", base.display()))?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scratch_folder_abandoned_by_a_gone_process_is_removed_by_the_next_run() -> super::Result<()>
    {
        let base = tempfile::tempdir()?;
        let gone = base.path().join("run-999999999-abc");
        let running = base.path().join("run-1-def");
        let other = base.path().join("other-999999999-ghi");
        for d in [&gone, &running, &other] {
            std::fs::create_dir(d)?;
            std::fs::write(d.join("data"), b"x")?;
        }
        let dir = super::scratch_dir(Some(base.path()), "run-")?;
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        assert!(
            name.starts_with(&format!("run-{}-", std::process::id())),
            "{name}"
        );
        assert!(!gone.exists());
        assert!(running.exists() && other.exists());
        Ok(())
    }
}
