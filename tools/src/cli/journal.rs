//! `tradestore journal`: the journal's segment files, with the sequence numbers and commit
//! times of their records.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tradestore::journal::{SegmentSummary, summarize};

use super::store::StoreDir;
use super::table::{self, Align};

/// List the journal's segments: which transactions each holds and when they committed.
#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    long_about = "\
List the journal's segment files: the transactions (sequence numbers) each holds and the \
times they were committed, read from the files alone. By default the store's journal folder \
and archive/journal (where keep_journal = true keeps checkpointed segments) are read; --journal \
names other folders instead, such as those of a store that is gone. Nothing is written, so the \
journal of a store that is running can be listed: its newest segment shows what is written so \
far. Use it to choose --until-time or --until-seq for `tradestore backup restore`.

A segment whose reading ended before its preallocated zeros shows why (a torn or damaged \
tail: at the store's next open, recovery cuts a torn tail of its live journal and refuses \
damage before it).

`journal prune` removes the oldest kept segments (see its --help)."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<JournalCommand>,

    #[command(flatten)]
    pub store: StoreDir,

    /// A folder of journal segments to read instead of the store's (repeatable).
    #[arg(long, value_name = "DIR")]
    pub journal: Vec<PathBuf>,

    /// Print the segments as JSON.
    #[arg(long)]
    pub json: bool,
}

/// The `journal` subcommands; without one, `journal` lists the segments.
#[derive(Debug, clap::Subcommand)]
pub enum JournalCommand {
    Prune(PruneArgs),
}

/// Remove the oldest kept journal segments: bound the point-in-time recovery window.
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("cutoff").required(true).args(["older_than", "before"])),
    long_about = "\
Remove the oldest segments of <dir>/archive/journal, where keep_journal = true keeps the \
journal's checkpointed segments for point-in-time recovery and where they otherwise \
accumulate without limit. A segment goes when every transaction in it was committed before \
the cutoff (--older-than or --before) and is held by the backup that must stay restorable: \
--backup PATH, or by default the backup under <dir>/backups holding the most transactions. \
That backup is verified first (every checksum), and it still rolls forward through every \
segment that remains, to the present. Segments go oldest first, and the first one that must \
stay ends the prune (the folder never gets a gap): one that was committed at or after the \
cutoff, holds transactions after the backup, does not read whole, or has records without a \
commit time. The live journal folder is never touched.

After a prune, restores to a time or a transaction before the oldest segment left need a \
backup taken at or before it that holds everything up to that segment. The files are only \
removed, so it runs while the store is open in another process; a standby that follows this \
store and is further behind than the backup loses the segments it still needs.

A prune that removes segments is recorded in the store's audit trail (`journal.prune`, naming \
them), which lives in the database: while another process has the store open, the prune \
runs unrecorded and says so. A dry run records nothing.")]
pub struct PruneArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Remove segments whose transactions are all older than this (30days, 12h, 90m).
    #[arg(long, value_name = "AGE", value_parser = super::archive::parse_age)]
    pub older_than: Option<std::time::Duration>,

    /// Remove segments whose transactions were all committed before this time: RFC 3339
    /// (2026-11-27T14:32:05Z) or ns since the epoch.
    #[arg(long, value_name = "TIME", allow_negative_numbers = true, value_parser = super::backup::parse_until_time)]
    pub before: Option<u64>,

    /// The backup that must stay restorable to the present (default: the one under
    /// <dir>/backups holding the most transactions).
    #[arg(long, value_name = "PATH")]
    pub backup: Option<PathBuf>,

    /// Say what would be removed, removing nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `journal` and its subcommand.
pub fn run(args: &Args) -> Result<()> {
    if let Some(JournalCommand::Prune(a)) = &args.command {
        return prune(a);
    }
    let folders = if args.journal.is_empty() {
        let dir = &args.store.dir;
        let live = dir.join("journal");
        if !live.is_dir() {
            bail!(
                "{} holds no journal folder: it is not a store (create one with `tradestore \
                 init`), or name the folders with --journal",
                dir.display()
            );
        }
        vec![dir.join("archive").join("journal"), live]
    } else {
        for f in &args.journal {
            if !f.is_dir() {
                bail!("{} is not a folder of journal segments", f.display());
            }
        }
        args.journal.clone()
    };
    let segments = summarize(&folders).with_context(|| {
        let shown: Vec<String> = folders.iter().map(|f| f.display().to_string()).collect();
        format!("reading the journal in {}", shown.join(", "))
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &segments)?;
        writeln!(out)?;
    } else {
        print(&mut out, &segments)?;
    }
    out.flush()?;
    // Listed either way; damage makes the exit status say so. Bytes that are not a whole
    // frame at the end of the newest segment are a torn write (or one in progress).
    let last = segments.len().saturating_sub(1);
    let damaged: Vec<String> = segments
        .iter()
        .enumerate()
        .filter(|(i, s)| s.problem.is_some() && !(*i == last && s.undecoded_tail))
        .map(|(_, s)| {
            format!(
                "{}: {}",
                s.path.display(),
                s.problem.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if !damaged.is_empty() {
        bail!(
            "the journal is damaged before its end ({} segment{}): {}",
            damaged.len(),
            if damaged.len() == 1 { "" } else { "s" },
            damaged.join("; ")
        );
    }
    Ok(())
}

fn count(n: usize) -> String {
    if n == 1 {
        "1 segment".to_owned()
    } else {
        format!("{n} segments")
    }
}

fn time(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_owned(), table::time_ns)
}

fn print(out: &mut dyn Write, segments: &[SegmentSummary]) -> Result<()> {
    if segments.is_empty() {
        writeln!(out, "no journal segment in the folders")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = segments
        .iter()
        .map(|s| {
            vec![
                s.path.display().to_string(),
                s.records.to_string(),
                s.last_seq.map_or_else(
                    || "-".to_owned(),
                    |last| format!("{}..={last}", s.first_seq),
                ),
                time(s.first_commit_ns),
                time(s.last_commit_ns),
                format!("{} / {}", s.used, s.bytes),
                match (&s.problem, s.untimed) {
                    (Some(p), _) => p.clone(),
                    (None, 0) => String::new(),
                    (None, n) => format!("{n} records carry no commit time"),
                },
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("SEGMENT", Align::Left),
            ("RECORDS", Align::Right),
            ("TRANSACTIONS", Align::Right),
            ("FIRST COMMITTED", Align::Left),
            ("LAST COMMITTED", Align::Left),
            ("BYTES USED / FILE", Align::Right),
            ("NOTE", Align::Left),
        ],
        &rows,
    )?;
    let records: u64 = segments.iter().map(|s| s.records).sum();
    let first = segments
        .iter()
        .find_map(|s| s.last_seq.map(|_| s.first_seq));
    let last = segments.iter().rev().find_map(|s| s.last_seq);
    match (first, last) {
        (Some(first), Some(last)) => writeln!(
            out,
            "{}, {records} record{}: transactions {first}..={last}",
            count(segments.len()),
            if records == 1 { "" } else { "s" }
        )?,
        _ => writeln!(out, "{}, no records", count(segments.len()))?,
    }
    Ok(())
}

/// Runs `journal prune`.
fn prune(args: &PruneArgs) -> Result<()> {
    let dir = &args.store.dir;
    if !dir.join("journal").is_dir() {
        bail!(
            "{} holds no journal folder: it is not a store (create one with `tradestore init`)",
            dir.display()
        );
    }
    let cutoff = match (args.before, args.older_than) {
        (Some(ns), _) => ns,
        (None, Some(age)) => {
            let at = std::time::SystemTime::now()
                .checked_sub(age)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .context("--older-than reaches before 1970")?;
            u64::try_from(at.as_nanos()).context("--older-than: the time is out of range")?
        }
        (None, None) => bail!("give --older-than or --before"),
    };
    let backup_path = match &args.backup {
        Some(p) => p.clone(),
        None => {
            let listed = tradestore::backup::list_backups(dir)
                .with_context(|| format!("listing the backups of {}", dir.display()))?;
            listed
                .into_iter()
                .filter(|b| b.problem.is_none())
                .max_by_key(|b| b.applied_seq)
                .map(|b| b.path)
                .with_context(|| {
                    format!(
                        "{} holds no backup: take one with `tradestore backup` or name one \
                         with --backup PATH; the kept journal is only of use to roll a \
                         backup forward, and nothing is removed without one",
                        dir.join("backups").display()
                    )
                })?
        }
    };
    let backup = tradestore::backup::verify_backup(&backup_path).with_context(|| {
        format!(
            "verifying the backup {} that must stay restorable (nothing was removed)",
            backup_path.display()
        )
    })?;
    let folder = dir.join("archive").join("journal");
    // A backup of another store keeps nothing of this one restorable.
    let ours = tradestore::identity::of_folder(&dir.join("journal"))?;
    if let (Some(ours), Some(theirs)) = (&ours, &backup.store_id)
        && ours != theirs
    {
        bail!(
            "the backup {} is of store {theirs}, not of this store ({ours}): it cannot be \
             rolled forward with this journal; name a backup of this store (nothing was removed)",
            backup.path.display()
        );
    }
    let unaudited =
        || tradestore::journal::prune_kept(dir, cutoff, backup.applied_seq, args.dry_run);
    // A dry run changes nothing (and opening the store could: it replays and checkpoints).
    // A prune goes into the store's audit trail, which lives in the database: when another
    // process holds the store, the prune still runs (the files are only removed), unrecorded.
    let report = if args.dry_run {
        unaudited()
    } else {
        match super::store::open_existing(dir) {
            Ok(store) => store.prune_kept_journal(cutoff, backup.applied_seq, false),
            Err(e) if super::store::is_busy(&e) => {
                eprintln!(
                    "warning: the store is open in another process, so this prune is not \
                     recorded in its audit trail"
                );
                unaudited()
            }
            Err(e) => return Err(e),
        }
    }
    .with_context(|| format!("pruning {}", folder.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = serde_json::json!({
            "backup": backup.path,
            "backup_applied_seq": backup.applied_seq,
            "cutoff_ns": cutoff,
            "report": report,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        match (report.removed.first(), report.removed.last()) {
            (Some(first), Some(last)) => writeln!(
                out,
                "{verb} {} ({}): transactions {}..={}, the last committed at {}",
                count(report.removed.len()),
                indicatif::HumanBytes(report.bytes),
                first.first_seq,
                last.last_seq.unwrap_or(last.first_seq),
                time(last.last_commit_ns)
            )?,
            _ => writeln!(out, "nothing to remove before {}", table::time_ns(cutoff))?,
        }
        if let Some(why) = &report.kept_because {
            writeln!(out, "kept from here: {why}")?;
        }
        writeln!(
            out,
            "the backup {} (transactions 1..={}, taken {}) rolls forward through what is left",
            backup.path.display(),
            backup.applied_seq,
            backup.created
        )?;
    }
    out.flush()?;
    Ok(())
}
