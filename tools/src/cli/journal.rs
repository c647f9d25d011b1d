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
#[command(long_about = "\
List the journal's segment files: the transactions (sequence numbers) each holds and the \
times they were committed, read from the files alone. By default the store's journal folder \
and archive/journal (where keep_journal = true keeps checkpointed segments) are read; --journal \
names other folders instead, such as those of a store that is gone. Nothing is written, so the \
journal of a store that is running can be listed: its newest segment shows what is written so \
far. Use it to choose --until-time or --until-seq for `tradestore backup restore`.

A segment whose reading ended before its preallocated zeros shows why (a torn or damaged \
tail: at the store's next open, recovery cuts a torn tail of its live journal and refuses \
damage before it).")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// A folder of journal segments to read instead of the store's (repeatable).
    #[arg(long, value_name = "DIR")]
    pub journal: Vec<PathBuf>,

    /// Print the segments as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `journal`.
pub fn run(args: &Args) -> Result<()> {
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
            "{}, {records} records: transactions {first}..={last}",
            count(segments.len())
        )?,
        _ => writeln!(out, "{}, no records", count(segments.len()))?,
    }
    Ok(())
}
