//! `tradestore check`: the consistency check of a whole store.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tradestore::check::CheckReport;

use super::progress::Progress;
use super::store::{StoreDir, open_existing_checked};
use super::table::{self, Align};

/// Check the whole store's consistency; exit 0 when clean, 1 on violations, 2 on error.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Check the consistency of the whole store: every row decodes and obeys the business rules, \
foreign keys point at existing rows, every order's filled quantity is the sum of its fills, \
every position is the fold of its fills, and every index has exactly one matching entry per \
row. Each violation is listed with the check that failed, the table or index, the row's key \
and what is wrong.

A damaged or missing archive segment is a violation of its own (`archive`, naming the file \
and its trades), and the rows and indexes are then left unchecked: orders' fills and \
positions count the archived trades, so checking without them would report violations that \
are not there.

Exit status: 0 when the store is clean, 1 when violations were found, 2 on an error (the \
store cannot be opened, its database file is damaged, ...).")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the whole report (rows and index entries examined, every violation) as
    /// pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `check`; the exit status says whether the store is clean.
pub fn run(args: &Args) -> Result<ExitCode> {
    let dir = &args.store.dir;
    // A store whose creation was killed before its database was in place holds nothing, so
    // nothing in it can be inconsistent: clean, and left as it is (opening it would create it).
    let (report, empty) = if tradestore::is_unfinished_store(dir) {
        (CheckReport::default(), true)
    } else {
        let store = open_existing_checked(dir)?;
        let progress = Progress::items("checking");
        let report = store
            .check(&mut |done, total| progress.items_done(done, total))
            .context("checking the store")?;
        progress.finish();
        (report, false)
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else if empty {
        writeln!(
            out,
            "{} holds no database yet (its creation was interrupted before the database was \
             in place): no rows, no violations",
            dir.display()
        )?;
    } else {
        write_human(&mut out, &report)?;
    }
    out.flush()?;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_human(out: &mut dyn Write, report: &CheckReport) -> std::io::Result<()> {
    let examined = format!(
        "checked {} rows and {} index entries",
        report.rows, report.index_entries
    );
    if report.is_clean() {
        return writeln!(out, "{examined}: no violations");
    }
    let n = report.violations.len();
    writeln!(
        out,
        "{examined}: {n} violation{}",
        if n == 1 { "" } else { "s" }
    )?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = report
        .violations
        .iter()
        .map(|v| {
            vec![
                v.check.to_owned(),
                v.table.clone(),
                v.key.clone(),
                v.message.clone(),
            ]
        })
        .collect();
    table::write(
        out,
        &[
            ("CHECK", Align::Left),
            ("TABLE", Align::Left),
            ("KEY", Align::Left),
            ("MESSAGE", Align::Left),
        ],
        &rows,
    )
}
