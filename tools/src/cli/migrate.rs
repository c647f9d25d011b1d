//! `tradestore migrate`: versioned migrations from a folder of TOML files: apply, status,
//! and the history kept in the store.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;
use tradestore::migrate::{self, AppliedMigration, MigrateOptions, MigrationState};
use tradestore::query::ast::format_timestamp;

use super::query::engine_error;
use super::store::{StoreDir, open_existing};
use super::table::{self, Align};

/// Versioned migrations: apply a folder of migration files, show where each stands, show
/// the history.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Versioned migrations. A migration is a TOML file in a folder (--migrations DIR; files not \
ending in .toml are ignored) with a version, an optional description, optional \
dependencies, and steps run in order:

    version = 2
    description = \"venue B goes live\"
    depends_on = [1]
    [[step]]
    create_index = { name = \"orders_by_price\", table = \"orders\", columns = [\"price\"] }
    [[step]]
    drop_index = \"trades_by_fee\"
    [[step]]
    insert = ['{\"table\":\"accounts\",\"record\":{\"id\":9,\"name\":\"venue-b\",\"status\":\"active\"}}']
    [[step]]
    put = ['{\"table\":\"accounts\",\"record\":{\"id\":4,\"name\":\"desk-4\",\"status\":\"suspended\"}}']
    [[step]]
    delete = { table = \"cash\", keys = [[9, \"USD\"]] }

Rows are in the line format of `tradestore dump`; insert refuses a key that exists, put \
replaces, delete refuses a key with no row. Every write is checked by the store's rules, \
foreign keys and unique indexes, as any write is.

`apply` takes an online backup into the store's backups/ folder, then applies every pending \
migration (each after its dependencies, lower versions first) in one durable commit, or \
none: any error leaves the store as it was. An applied migration whose file has changed \
(its checksum) or is gone is refused. `status` shows each migration as applied, pending \
(with the order it would be applied in), changed or missing; `history` lists what the \
store has applied, with when, the rows changed, the indexes created and dropped, the \
checksum and the backup.")]
pub struct Args {
    #[command(subcommand)]
    pub command: MigrateCommand,
}

/// The `migrate` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum MigrateCommand {
    Apply(ApplyArgs),
    Status(StatusArgs),
    History(HistoryArgs),
}

/// Apply every pending migration in one durable commit, after an online backup.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// The folder of migration files (*.toml).
    #[arg(long, value_name = "DIR")]
    pub migrations: PathBuf,

    /// Check everything against the store, every row of the data steps included, and write
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Skip the backup taken before applying.
    #[arg(long)]
    pub no_backup: bool,

    /// Print what was applied as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show where each migration stands: applied, pending, changed or missing.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// The folder of migration files (*.toml).
    #[arg(long, value_name = "DIR")]
    pub migrations: PathBuf,

    /// Print the status as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show the migrations the store has applied.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the history as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `migrate`.
pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        MigrateCommand::Apply(a) => apply(a),
        MigrateCommand::Status(a) => status(a),
        MigrateCommand::History(a) => history(a),
    }
}

fn apply(args: &ApplyArgs) -> Result<()> {
    // The files are read and checked before the store is opened.
    let files = migrate::load_dir(&args.migrations).map_err(engine_error)?;
    let store = open_existing(&args.store.dir)?;
    let options = MigrateOptions {
        dry_run: args.dry_run,
        backup: !args.no_backup,
    };
    let report = store.migrate(&files, &options).map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if report.applied.is_empty() {
        writeln!(
            out,
            "up to date: no pending migration among {} file{}",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        )?;
    } else {
        let n = report.applied.len();
        let plural = if n == 1 { "" } else { "s" };
        if report.dry_run {
            writeln!(
                out,
                "dry run: {n} migration{plural} would apply; nothing was written"
            )?;
        } else {
            writeln!(out, "applied {n} migration{plural} in one durable commit")?;
        }
        write_applied(&mut out, &report.applied, !report.dry_run)?;
        if let Some(b) = &report.backup {
            writeln!(out, "backup taken first: {}", b.display())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn status(args: &StatusArgs) -> Result<()> {
    let files = migrate::load_dir(&args.migrations).map_err(engine_error)?;
    let store = open_existing(&args.store.dir)?;
    let status = store.migration_status(&files).map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json!({ "migrations": status }))?;
        writeln!(out)?;
    } else {
        let rows: Vec<Vec<String>> = status
            .iter()
            .map(|s| {
                vec![
                    s.version.to_string(),
                    s.name.clone(),
                    s.state.to_string(),
                    s.order.map_or_else(String::new, |o| o.to_string()),
                ]
            })
            .collect();
        table::write(
            &mut out,
            &[
                ("VERSION", Align::Right),
                ("NAME", Align::Left),
                ("STATE", Align::Left),
                ("ORDER", Align::Right),
            ],
            &rows,
        )?;
        let stale = status
            .iter()
            .filter(|s| matches!(s.state, MigrationState::Changed | MigrationState::Missing))
            .count();
        if stale > 0 {
            writeln!(
                out,
                "{stale} applied migration{} no longer match{} the files: apply refuses to run",
                if stale == 1 { "" } else { "s" },
                if stale == 1 { "es" } else { "" }
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn history(args: &HistoryArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let history = store.migration_history().map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json!({ "history": history }))?;
        writeln!(out)?;
    } else if history.is_empty() {
        writeln!(out, "no migration applied")?;
    } else {
        write_applied(&mut out, &history, true)?;
    }
    out.flush()?;
    Ok(())
}

fn write_applied(out: &mut dyn Write, list: &[AppliedMigration], done: bool) -> Result<()> {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            let indexes: Vec<String> = m
                .created_indexes
                .iter()
                .map(|i| format!("+{i}"))
                .chain(m.dropped_indexes.iter().map(|i| format!("-{i}")))
                .collect();
            let at = i64::try_from(m.applied_at_ns)
                .ok()
                .filter(|_| done)
                .map_or_else(String::new, format_timestamp);
            vec![
                m.version.to_string(),
                m.name.clone(),
                at,
                m.rows_changed.to_string(),
                indexes.join(" "),
                m.checksum.clone(),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("VERSION", Align::Right),
            ("NAME", Align::Left),
            ("APPLIED", Align::Left),
            ("ROWS", Align::Right),
            ("INDEXES", Align::Left),
            ("CHECKSUM", Align::Left),
        ],
        &rows,
    )?;
    Ok(())
}
