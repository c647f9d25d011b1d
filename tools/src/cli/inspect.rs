//! `tradestore inspect`: what a store holds.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::HumanBytes;
use tradestore::inspect::Inspection;

use super::store::{StoreDir, open_existing};
use super::table::{self, Align};

/// Show what a store holds: tables, indexes and files, with their sizes.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Show what a store holds: each table with its rows and the bytes of its keys and values, \
each secondary index with its columns, entries and bytes, and each file under the \
directory with its size. Sizes are shown in KiB/MiB/GiB; --json gives exact byte counts.

Damage met on the way (an archive segment whose checksum fails) is listed, with the rest of \
what could be read, and the command exits 1.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the inspection as pretty-printed JSON (exact numbers) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `inspect`.
pub fn run(args: &Args) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let inspection = tradestore::inspect::inspect(&store).context("inspecting the store")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &inspection)?;
        writeln!(out)?;
    } else {
        write_human(&mut out, &inspection)?;
        for p in &inspection.problems {
            writeln!(out, "damaged         {p}")?;
        }
    }
    out.flush()?;
    if !inspection.problems.is_empty() {
        anyhow::bail!(
            "the store is damaged ({} damaged table(s) and index(es) listed above, whose sizes \
             leave out what could not be read); restore from a backup or a dump",
            inspection.problems.len()
        );
    }
    Ok(())
}

fn write_human(out: &mut dyn Write, i: &Inspection) -> std::io::Result<()> {
    writeln!(out, "store           {}", i.dir)?;
    writeln!(out, "format version  {}", i.format_version)?;
    writeln!(out, "profile         {}", i.profile)?;
    writeln!(out)?;

    let rows: Vec<Vec<String>> = i
        .tables
        .iter()
        .map(|t| vec![t.name.clone(), t.rows.to_string(), size(t.stored_bytes)])
        .collect();
    table::write(
        out,
        &[
            ("TABLE", Align::Left),
            ("ROWS", Align::Right),
            ("BYTES", Align::Right),
        ],
        &rows,
    )?;
    writeln!(out)?;

    let rows: Vec<Vec<String>> = i
        .indexes
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.table.clone(),
                x.columns.join(", "),
                match (x.unique, x.covering) {
                    (true, true) => "unique, covering",
                    (true, false) => "unique",
                    (false, true) => "covering",
                    (false, false) => "",
                }
                .to_owned(),
                x.entries.to_string(),
                size(x.stored_bytes),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("INDEX", Align::Left),
            ("TABLE", Align::Left),
            ("COLUMNS", Align::Left),
            ("", Align::Left),
            ("ENTRIES", Align::Right),
            ("BYTES", Align::Right),
        ],
        &rows,
    )?;
    writeln!(out)?;

    let mut rows: Vec<Vec<String>> = i
        .files
        .iter()
        .map(|f| vec![f.path.clone(), size(f.bytes)])
        .collect();
    rows.push(vec!["total".to_owned(), size(i.total_bytes)]);
    table::write(out, &[("FILE", Align::Left), ("SIZE", Align::Right)], &rows)?;
    writeln!(out)?;

    writeln!(out, "recovery        {}", i.recovery)?;
    writeln!(
        out,
        "archive         {} segments, {} trades, {} of records in {} of files",
        i.archive.segments,
        i.archive.trades,
        size(i.archive.raw_bytes),
        size(i.archive.file_bytes)
    )?;
    let l = &i.lifecycle;
    match (&l.audit_head, &l.audit_error) {
        (_, Some(e)) => writeln!(out, "audit trail     {e}")?,
        (Some(h), None) => writeln!(out, "audit trail     head {h}")?,
        (None, None) => writeln!(out, "audit trail     no entry")?,
    }
    let versions: Vec<String> = l.migrations.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "migrations      {}",
        if versions.is_empty() {
            "none applied".to_owned()
        } else {
            format!("applied {}", versions.join(", "))
        }
    )?;
    let w = &i.write_path;
    writeln!(
        out,
        "write path      durable seq {}, applied seq {}, overlay {}, journal {}, breaker {:?}{}",
        w.durable_seq(),
        w.applied_seq(),
        size(w.overlay_bytes()),
        size(w.journal_bytes()),
        w.breaker(),
        w.poisoned()
            .map(|p| format!(", POISONED: {p}"))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "counters        commits {}, conflicts {}, deadlocks {}, retries {}, checkpoints {}, \
         backup failures {}",
        w.commits(),
        w.conflicts(),
        w.deadlocks(),
        w.retries(),
        w.checkpoints(),
        w.backup_failures()
    )?;
    let rows: Vec<Vec<String>> = [
        ("commit (us)", w.commit_us()),
        ("journal fsync (us)", w.fsync_us()),
        ("redb apply (us)", w.apply_us()),
        ("group size", w.group_size()),
        ("archive run (us)", w.archive_us()),
        ("backup (us)", w.backup_us()),
    ]
    .iter()
    .map(|(name, s)| {
        vec![
            (*name).to_owned(),
            s.count.to_string(),
            s.p50.to_string(),
            s.p99.to_string(),
            s.p999.to_string(),
            s.max.to_string(),
        ]
    })
    .collect();
    table::write(
        out,
        &[
            ("LATENCY", Align::Left),
            ("COUNT", Align::Right),
            ("P50", Align::Right),
            ("P99", Align::Right),
            ("P99.9", Align::Right),
            ("MAX", Align::Right),
        ],
        &rows,
    )
}

/// A size for people: bytes below 1 KiB, otherwise KiB, MiB, GiB with two decimals.
fn size(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}
