//! `tradestore audit`: the store's hash-chained audit trail: list it, verify it, add a note.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use tradestore::audit::{AuditEntry, AuditHead};
use tradestore::query::ast::format_timestamp;

use super::query::engine_error;
use super::store::{StoreDir, open_existing, open_existing_checked};
use super::table::{self, Align};

/// The audit trail: every index creation and drop, migration, dump restore and archive run,
/// and an application's own notes, hash-chained.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
The store's audit trail. Every index creation, completion and drop (by an operator, the \
index manager or a migration), every applied migration, every dump restored into the store \
and every archive run appends an entry in the same commit as the change; `audit note` adds \
an application's or operator's own. Each entry holds the SHA-256 of the previous one, so an \
entry edited or removed breaks the chain at that entry.

`list` prints the entries (oldest first); `verify` recomputes the chain and prints its head \
(SEQ:HASH): keep heads outside the store, and `verify --head SEQ:HASH` later proves the \
trail still holds them (a trail cut short or rewritten does not). `verify` exits 0 when the \
chain is intact, 1 when it is broken (each break listed), 2 on an error.

The actor of an entry is TRADESTORE_ACTOR, else USER or LOGNAME, else `uid N`.")]
pub struct Args {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    List(ListArgs),
    Verify(VerifyArgs),
    Note(NoteArgs),
}

/// List the audit trail's entries, oldest first.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Only entries numbered above SEQ.
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub after: u64,

    /// At most N entries (1 or more).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit: usize,

    /// Print the entries as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Recompute the hash chain; exit 0 intact, 1 broken, 2 on an error.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// A head printed by an earlier verify (SEQ:HASH) that the chain must still hold.
    #[arg(long, value_name = "SEQ:HASH")]
    pub head: Vec<String>,

    /// Print the report as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Append an entry of your own, in one durable commit.
#[derive(Debug, clap::Args)]
pub struct NoteArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// What was done: 1 to 64 of a-z, 0-9, '.', '_' and '-' (e.g. kill-switch.on).
    #[arg(long)]
    pub action: String,

    /// The details, in words (at most 64 KiB).
    pub detail: String,

    /// Print the entry as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// The status `audit` exits with on an error.
pub fn error_status(args: &Args) -> u8 {
    match args.command {
        AuditCommand::Verify(_) => 2,
        _ => 1,
    }
}

/// Runs `audit`.
pub fn run(args: &Args) -> Result<ExitCode> {
    match &args.command {
        AuditCommand::List(a) => list(a).map(|()| ExitCode::SUCCESS),
        AuditCommand::Verify(a) => verify(a),
        AuditCommand::Note(a) => note(a).map(|()| ExitCode::SUCCESS),
    }
}

fn list(args: &ListArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let entries = store
        .audit_entries(args.after, args.limit)
        .map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json!({ "entries": entries }))?;
        writeln!(out)?;
    } else if entries.is_empty() {
        writeln!(out, "no audit entry")?;
    } else {
        write_entries(&mut out, &entries)?;
    }
    out.flush()?;
    Ok(())
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let heads: Vec<AuditHead> = args
        .head
        .iter()
        .map(|h| h.parse())
        .collect::<tradestore::Result<_>>()
        .map_err(engine_error)?;
    // The whole file's checksums first: a damaged page is an error, not a verdict.
    let store = open_existing_checked(&args.store.dir)?;
    let report = store.verify_audit().map_err(engine_error)?;
    let missing: Vec<&AuditHead> = heads.iter().filter(|h| !report.contains(h)).collect();
    let intact = report.is_intact() && missing.is_empty();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &json!({
                "intact": intact,
                "entries": report.entries,
                "head": report.head.as_ref().map(ToString::to_string),
                "problem_count": report.problem_count,
                "problems": report.problems,
                "heads_not_held": missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        )?;
        writeln!(out)?;
    } else {
        for p in &report.problems {
            writeln!(out, "{}: {}", p.key, p.message)?;
        }
        if report.problem_count > report.problems.len() as u64 {
            writeln!(
                out,
                "... and {} more",
                report.problem_count - report.problems.len() as u64
            )?;
        }
        for h in &missing {
            writeln!(
                out,
                "head {h} is not in the trail: entries were cut off or rewritten since it was \
                 recorded"
            )?;
        }
        let head = report
            .head
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string);
        if intact {
            writeln!(
                out,
                "audit trail intact: {} entr{}, head {head}",
                report.entries,
                if report.entries == 1 { "y" } else { "ies" }
            )?;
        } else {
            writeln!(
                out,
                "audit trail BROKEN: {} problem{} in {} entries, {} head{} not held; head {head}",
                report.problem_count,
                if report.problem_count == 1 { "" } else { "s" },
                report.entries,
                missing.len(),
                if missing.len() == 1 { "" } else { "s" }
            )?;
        }
    }
    out.flush()?;
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn note(args: &NoteArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let entry = store
        .audit_note(&args.action, &args.detail)
        .map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entry)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "audit entry {} recorded; head {}:{}",
            entry.seq, entry.seq, entry.hash
        )?;
    }
    out.flush()?;
    Ok(())
}

fn write_entries(out: &mut dyn Write, entries: &[AuditEntry]) -> Result<()> {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                i64::try_from(e.at_ns).map_or_else(|_| e.at_ns.to_string(), format_timestamp),
                e.actor.clone(),
                e.action.clone(),
                e.detail.clone(),
                e.hash.get(..16).unwrap_or(&e.hash).to_owned(),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("SEQ", Align::Right),
            ("AT", Align::Left),
            ("ACTOR", Align::Left),
            ("ACTION", Align::Left),
            ("DETAIL", Align::Left),
            ("HASH", Align::Left),
        ],
        &rows,
    )?;
    Ok(())
}
