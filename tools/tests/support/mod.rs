//! Helpers shared by the CLI tests: run the `tradestore` binary with a clean environment and
//! capture what it printed. Each test binary uses a part of them.
#![allow(dead_code)]

use std::error::Error;
use std::path::Path;
use std::process::{Command, Stdio};

pub type TestResult = Result<(), Box<dyn Error>>;

/// What a run printed and how it exited.
pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// `tradestore ARGS` with no `TRADESTORE_*` variable of the test's environment, standard
/// input closed and both outputs captured.
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tradestore"));
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRADESTORE_") {
            cmd.env_remove(key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to its end.
pub fn output(cmd: &mut Command) -> Result<Run, Box<dyn Error>> {
    let out = cmd.output()?;
    Ok(Run {
        status: out.status.code(),
        stdout: String::from_utf8(out.stdout)?,
        stderr: String::from_utf8(out.stderr)?,
    })
}

/// Runs `tradestore ARGS` (see [`command`]).
pub fn run(args: &[&str]) -> Result<Run, Box<dyn Error>> {
    output(&mut command(args))
}

/// A temporary path as a command-line argument.
pub fn s(p: &Path) -> Result<&str, Box<dyn Error>> {
    Ok(p.to_str().ok_or("temporary path is not UTF-8")?)
}

/// Every row of the store in `dir`, as `tradestore dump` prints them.
pub fn dump(dir: &Path) -> Result<String, Box<dyn Error>> {
    let r = run(&["dump", "--dir", s(dir)?, "--out", "-"])?;
    assert!(r.ok(), "dump: {}", r.stderr);
    Ok(r.stdout)
}
