//! `tradestore`: the command-line tool of the tradestore storage engine.
//!
//! A thin binary: it parses arguments, calls the engine (`tradestore` crate) and prints.
//! Every subcommand lives in its own file under `cli/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod sim;

// jemalloc for the whole process (see the README's dependencies): the engine allocates on
// one thread and frees on another, where it costs far less CPU than glibc's malloc.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const LONG_ABOUT: &str = "\
Manage a tradestore directory: create it, look inside, dump it to JSON Lines, restore a \
dump, check its consistency and compact its file (`compact`); move old trades into compressed \
archive segments (`archive`); back it up, list, verify and restore backups (`backup`, \
`backup list`, `verify`, `restore`), list its journal's segments with their \
transactions and commit times (`journal`), and keep a standby that follows its journal \
(`standby`); query it with SQL (`query`, `explain`), gather the \
planner's statistics (`analyze`), and manage its secondary indexes (`index advise`, \
`create`, `drop`, `list`, `log`).

Every command works on the store in --dir (or $TRADESTORE_DIR, default ./tradestore-data), \
except `backup verify` and `backup restore`, which name a backup, `standby`, whose --dir \
has no default, and `bench`, whose --dir is for scratch data. Only `init` and `simulate` \
create a store (and `backup restore`, in the new directory --to, and `standby \
--from-backup`); the others refuse a directory that holds none. The store's \
configuration is read from tradestore.toml in that directory, then TRADESTORE_* environment \
variables.

Exit status: 0 on success. On an error the message goes to stderr as `error: ...` and the \
status is 1, except for `check` and `audit verify`, which exit 1 when they find violations and 2 \
on an error, `health`, which exits 1 degraded and 2 failing, \
and `bench`, which exits 3 when a ratio regressed against --baseline. A command line that \
does not parse exits 2.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "tradestore", version, about, long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(cli::init::Args),
    Inspect(cli::inspect::Args),
    Dump(cli::dump::Args),
    Restore(cli::restore::Args),
    Check(cli::check::Args),
    Compact(cli::compact::Args),
    Archive(cli::archive::Args),
    Backup(cli::backup::Args),
    Journal(cli::journal::Args),
    Standby(cli::standby::Args),
    Simulate(cli::simulate::Args),
    Bench(cli::bench::Args),
    Query(cli::query::Args),
    Explain(cli::explain::Args),
    Analyze(cli::analyze::Args),
    Index(cli::index::Args),
    Migrate(cli::migrate::Args),
    Audit(cli::audit::Args),
    Health(cli::health::Args),
    Monitor(cli::monitor::Args),
    Alerts(cli::alerts::Args),
}

/// The message of the last panic, kept by the panic hook so that the error printed for a
/// caught panic says what happened (the hook itself prints nothing).
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The message of the last panic of any thread, if one happened.
pub fn last_panic() -> String {
    LAST_PANIC
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(info.to_string());
        }
        if std::env::var_os("TRADESTORE_BACKTRACE").is_some() {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let error_status = match cli.command {
        Command::Check(_) | Command::Health(_) => 2,
        Command::Audit(ref args) => cli::audit::error_status(args),
        _ => 1,
    };
    match std::panic::catch_unwind(move || dispatch(cli)) {
        Ok(status) => status,
        Err(_) => {
            eprintln!(
                "error: internal failure: {}; this is a bug, please report it",
                last_panic()
            );
            ExitCode::from(error_status)
        }
    }
}

fn dispatch(cli: Cli) -> ExitCode {
    // The status each command exits with on an error.
    let (result, error_status) = match cli.command {
        Command::Init(args) => (cli::init::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Inspect(args) => (cli::inspect::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Dump(args) => (cli::dump::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Restore(args) => (cli::restore::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Check(args) => (cli::check::run(&args), 2),
        Command::Compact(args) => (cli::compact::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Archive(args) => (cli::archive::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Backup(args) => (cli::backup::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Journal(args) => (cli::journal::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Standby(args) => (cli::standby::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Simulate(args) => (cli::simulate::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Bench(args) => (cli::bench::run(&args), 1),
        Command::Query(args) => (cli::query::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Explain(args) => (cli::explain::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Analyze(args) => (cli::analyze::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Index(args) => (cli::index::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Migrate(args) => (cli::migrate::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Audit(args) => {
            let status = cli::audit::error_status(&args);
            (cli::audit::run(&args), status)
        }
        Command::Health(args) => (cli::health::run(&args), 2),
        Command::Monitor(args) => (cli::monitor::run(&args).map(|()| ExitCode::SUCCESS), 1),
        Command::Alerts(args) => (cli::alerts::run(&args).map(|()| ExitCode::SUCCESS), 1),
    };
    match result {
        Ok(status) => status,
        Err(err) => {
            // The reader of a pipe went away (`| head`): saying so is noise, but the output
            // is incomplete, so the status still says the command did not finish.
            if !cli::report::is_broken_pipe(&err) {
                eprintln!("error: {}", cli::report::chain(&err));
            }
            ExitCode::from(error_status)
        }
    }
}
