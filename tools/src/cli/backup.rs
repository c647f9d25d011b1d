//! `tradestore backup`: take an online backup, list, verify and restore backups.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::HumanBytes;
use tradestore::backup::{self, BackupListing, BackupReport};

use super::store::{StoreDir, open_existing_checked};
use super::table::{self, Align};

/// Back up the store; list, verify and restore backups.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    long_about = "\
Back up the store into a new directory: by default <dir>/backups/<UTC time>-seq<N>, or \
--out PATH (a new or empty directory; one inside the store's directory must be under its \
backups/ folder). The backup is consistent: it holds every transaction acknowledged before \
it started, and exactly the transactions 1 ..= N for the sequence number N it reports, \
copied from one snapshot of the database while writers go on. Beside the database it holds \
an empty journal/, tradestore.toml and alerts.toml when the store has them, and every file \
under archive/ except the archived journal. backup.json, written last, lists every table's \
rows and CRC32C and every file's size and CRC32C.

`backup list` shows the backups under <dir>/backups; `backup verify PATH` checks one \
without writing to it; `backup restore PATH --to DIR` verifies one, copies it into a new \
store directory and runs the whole consistency check on it.

The store must not be open in another process. To back up the store of a running program \
that serves the monitor (`tradestore simulate --monitor ADDR`, or an application serving \
tradestore's monitor), ask it with --url: the program takes the backup, into its store's \
backups/ folder, while it goes on writing. An application can also call Store::backup."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,

    #[command(flatten)]
    pub store: StoreDir,

    /// The backup's directory: new, or empty. Default: <dir>/backups/<UTC time>-seq<N>.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,

    /// Ask the monitor of the program that has the store open (e.g. http://127.0.0.1:9187)
    /// to take the backup, into its store's backups/ folder.
    #[arg(long, value_name = "URL", conflicts_with = "out")]
    pub url: Option<String>,

    /// The monitor's token, when it requires one.
    #[arg(long, env = "TRADESTORE_MONITOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// With --url: how long to wait for the backup, in seconds (a backup the wait gave up
    /// on goes on in the program: `backup list` shows it once done).
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// Print what was backed up (tables with rows and checksums, files, bytes) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The `backup` subcommands; without one, `backup` takes a backup.
#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    List(ListArgs),
    Verify(VerifyArgs),
    Restore(RestoreArgs),
}

/// List the backups in the store's backups/ folder.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
List the directories of <dir>/backups with what their backup.json says: when each was \
taken, the last transaction it holds, its rows and bytes. A directory without a readable \
manifest (an unfinished or damaged backup) is listed with the problem. Checksums are not \
checked: run `tradestore backup verify PATH` for that. The store is not opened.")]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Verify a backup, writing nothing to it.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Verify a backup without writing to it: backup.json is well formed and names only files \
inside the backup; every listed file is a regular file of the listed size and CRC32C; \
tradestore.redb passes redb's integrity check; every table holds the listed rows with the \
listed CRC32C of its keys and values; and the database holds the listed sequence number. \
Exits 0 when the backup is whole, 1 with a message naming what is wrong otherwise.")]
pub struct VerifyArgs {
    /// The backup's directory.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// Print what was verified as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Restore a backup into a new store directory.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Restore a backup into a new store directory: the backup is verified first, its files are \
copied into --to (which must not exist or be empty) and synced, then the new store is \
opened and passes the whole consistency check. On any error nothing is left in --to and \
the command exits 1.

Point-in-time recovery: with --journal (the source store's archive/journal, where \
keep_journal = true keeps checkpointed segments, and its journal folder), the journal \
records after the backup are replayed into the restored store, up to --until-seq, up to \
--until-time (every transaction committed at or before that time; the backup must have been \
taken at or before it), or all of them. They must follow on from the backup without a gap. \
`tradestore journal` lists the segments with their transactions and commit times.")]
pub struct RestoreArgs {
    /// The backup's directory.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,

    /// The new store's directory: new, or empty.
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,

    /// A folder of the source store's journal segments to replay after the backup
    /// (repeatable: its archive/journal and its journal).
    #[arg(long, value_name = "DIR")]
    pub journal: Vec<PathBuf>,

    /// The last transaction to replay (with --journal); without it, every record.
    #[arg(
        long,
        value_name = "SEQ",
        requires = "journal",
        conflicts_with = "until_time"
    )]
    pub until_seq: Option<u64>,

    /// Replay every transaction committed at or before this time (with --journal): RFC 3339
    /// (2026-11-27T14:32:05Z, or with a fraction of a second) or ns since the epoch.
    #[arg(long, value_name = "TIME", requires = "journal", allow_negative_numbers = true, value_parser = parse_until_time)]
    pub until_time: Option<u64>,

    /// Print what was restored as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `backup` and its subcommands.
pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        None => take(args),
        Some(BackupCommand::List(a)) => list(a),
        Some(BackupCommand::Verify(a)) => verify(a),
        Some(BackupCommand::Restore(a)) => restore(a),
    }
}

fn take(args: &Args) -> Result<()> {
    let dir = &args.store.dir;
    if let Some(url) = &args.url {
        let report = ask_monitor(url, args.token.as_deref(), args.timeout)?;
        return print_report(&super::probe::shown(url), &report, args.json);
    }
    let store = open_existing_checked(dir).map_err(|e| {
        if super::store::is_busy(&e) {
            anyhow::anyhow!(
                "{e:#}. If the program that has it open serves the monitor (`simulate --monitor \
                 ADDR`), `tradestore backup --url http://ADDR` asks it to take the backup"
            )
        } else {
            e
        }
    })?;
    let report = match &args.out {
        Some(out) => store
            .backup(out)
            .with_context(|| format!("backing up {} to {}", dir.display(), out.display()))?,
        None => store
            .backup_in_store()
            .with_context(|| format!("backing up {}", dir.display()))?,
    };
    drop(store);
    print_report(&dir.display().to_string(), &report, args.json)
}

/// Asks the monitor at `url` to take a backup; returns its report.
fn ask_monitor(url: &str, token: Option<&str>, timeout_s: u64) -> Result<BackupReport> {
    use tradestore::monitor::server::BACKUP_PATH;
    let shown = super::probe::shown(url.trim_end_matches('/'));
    let (status, body) = super::probe::post(url, BACKUP_PATH, token, timeout_s).map_err(|e| {
        let timed_out = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<ureq::Error>(),
                Some(ureq::Error::Timeout(_))
            )
        });
        // A connection that was taken and then closed unanswered (the program stopped).
        let dropped = e.chain().any(|c| {
            matches!(
                c.downcast_ref::<ureq::Error>(),
                Some(ureq::Error::Io(io)) if io.kind() == std::io::ErrorKind::UnexpectedEof
            )
        });
        if timed_out {
            e.context(format!(
                "no answer within {timeout_s} s (--timeout); a backup the monitor started goes \
                 on in its program: `tradestore backup list` shows it once done"
            ))
        } else if dropped {
            e.context(
                "the monitor's program closed the connection before answering (did it stop?); \
                 a backup it had started is left unfinished: `tradestore backup list` flags it, \
                 and the next backup into backups/ removes it",
            )
        } else {
            e
        }
    })?;
    if status != 200 {
        bail!("{shown}{BACKUP_PATH} answered {status}: {}", body.trim());
    }
    serde_json::from_str(&body)
        .with_context(|| format!("{shown}{BACKUP_PATH} sent no backup report"))
}

/// Prints what a backup of the store in `source` made.
fn print_report(source: &str, report: &BackupReport, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "backed up {} to {}: up to transaction {}, {} rows in {} tables, {} files, {}",
            source,
            report.path.display(),
            report.applied_seq,
            report.rows,
            report.tables.len(),
            report.files,
            HumanBytes(report.bytes)
        )?;
    }
    out.flush()?;
    Ok(())
}

fn list(args: &ListArgs) -> Result<()> {
    let dir = &args.store.dir;
    super::store::existing(dir)?;
    let found = backup::list_backups(dir)
        .with_context(|| format!("listing the backups of {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &found)?;
        writeln!(out)?;
    } else if found.is_empty() {
        writeln!(out, "no backups in {}", dir.join("backups").display())?;
    } else {
        let rows: Vec<Vec<String>> = found.iter().map(listing_row).collect();
        table::write(
            &mut out,
            &[
                ("BACKUP", Align::Left),
                ("CREATED", Align::Left),
                ("SEQ", Align::Right),
                ("ROWS", Align::Right),
                ("SIZE", Align::Right),
                ("PROBLEM", Align::Left),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn listing_row(l: &BackupListing) -> Vec<String> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    vec![
        l.path.display().to_string(),
        or_dash(l.created.clone()),
        or_dash(l.applied_seq.map(|v| v.to_string())),
        or_dash(l.rows.map(|v| v.to_string())),
        or_dash(l.bytes.map(|v| HumanBytes(v).to_string())),
        l.problem.clone().unwrap_or_default(),
    ]
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let v = backup::verify_backup(&args.path)
        .with_context(|| format!("verifying the backup {}", args.path.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "backup {} is whole: taken {}, up to transaction {}, {} rows in {} tables and {} \
             files ({}) match their checksums",
            v.path.display(),
            v.created,
            v.applied_seq,
            v.rows,
            v.tables.len(),
            v.files,
            HumanBytes(v.bytes)
        )?;
    }
    out.flush()?;
    Ok(())
}

fn restore(args: &RestoreArgs) -> Result<()> {
    let pit = backup::PointInTime {
        journal: args.journal.clone(),
        until_seq: args.until_seq,
        until_time_ns: args.until_time,
    };
    let r = backup::restore_backup_to(&args.path, &args.to, &pit).with_context(|| {
        format!(
            "restoring the backup {} into {}",
            args.path.display(),
            args.to.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "restored {} into {}: up to transaction {}, {} files ({}); consistency check \
             clean ({} rows, {} index entries)",
            args.path.display(),
            r.to.display(),
            r.applied_seq,
            r.files,
            HumanBytes(r.bytes),
            r.checked_rows,
            r.checked_index_entries
        )?;
        if !args.journal.is_empty() {
            writeln!(
                out,
                "replayed {} journal records after the backup{}{}",
                r.replayed,
                r.last_commit_ns
                    .map(|t| format!(", the last committed at {}", super::table::time_ns(t)))
                    .unwrap_or_default(),
                r.replay_stopped
                    .as_ref()
                    .map(|s| format!("; the journal's readable records end at {s}"))
                    .unwrap_or_default()
            )?;
            if let Some(t) = args.until_time {
                match r.stopped_before {
                    Some((seq, at)) => writeln!(
                        out,
                        "stopped before transaction {seq}, committed at {}, after {}",
                        super::table::time_ns(at),
                        super::table::time_ns(t)
                    )?,
                    None => writeln!(
                        out,
                        "the journal folders hold no transaction committed after {}: every \
                         one they hold was replayed",
                        super::table::time_ns(t)
                    )?,
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// `--until-time`: RFC 3339 or ns since the epoch, not before 1970.
pub(crate) fn parse_until_time(s: &str) -> Result<u64, String> {
    let ns = super::archive::parse_time(s)?;
    u64::try_from(ns).map_err(|_| format!("{s:?} is before 1970"))
}
