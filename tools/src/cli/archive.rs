//! `tradestore archive`: move old trades into compressed archive segments, or list them.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use tradestore::archive::SegmentMeta;

use super::store::{StoreDir, open_existing};

/// Move old trades into the archive tier, or list its segments.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Move the oldest trades into the archive tier: zstd-compressed, checksummed segment files \
under archive/trades/, at most 65536 trades each. Trades are taken by id from the lowest up, \
while their time is before the cutoff. Archived trades stay readable through every read \
(queries, reads by id, check, dump); they leave the hot database file, which keeps the \
space for new data (run `compact` to shrink the file).

Give the cutoff with --older-than (a duration before now: 30days, 12h) or --before (a time: \
2026-01-01T00:00:00Z, or nanoseconds since the epoch); or --list the segments.")]
#[command(group(clap::ArgGroup::new("what").required(true).args(["older_than", "before", "list"])))]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// Archive trades older than this: a duration before now, like 30days or 12h.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<Duration>,

    /// Archive trades before this time: RFC 3339 (2026-01-01T00:00:00Z) or ns since the epoch.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_cutoff)]
    pub before: Option<i64>,

    /// List the archive's segments; nothing moves.
    #[arg(long)]
    pub list: bool,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn parse_age(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 30days, 12h or 90m: {e}"))
}

/// `--before`: a time (see [`parse_time`]) not before 1970.
fn parse_cutoff(s: &str) -> Result<i64, String> {
    let ns = parse_time(s)?;
    if ns < 0 {
        return Err(format!("{s:?} is before 1970"));
    }
    Ok(ns)
}

/// A time: RFC 3339 (2026-01-01T00:00:00Z) or ns since the epoch.
pub(crate) fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    if !s.is_empty()
        && s.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return Err(format!(
            "{s:?} is out of range: nanoseconds since the epoch reach {} at most (year 2262)",
            i64::MAX
        ));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{s:?} is not a time like 2026-01-01T00:00:00Z or nanoseconds since the epoch: {e}")
    })?;
    ns_since_epoch(t).ok_or_else(|| format!("{s:?} is before 1970 or too far ahead"))
}

fn ns_since_epoch(t: SystemTime) -> Option<i64> {
    t.duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
}

/// Runs `archive`.
pub fn run(args: &Args) -> Result<()> {
    let dir = &args.store.dir;
    let store = open_existing(dir)?;
    let mut out = std::io::stdout().lock();
    if args.list {
        let segments = store.archive_segments();
        if args.json {
            serde_json::to_writer_pretty(&mut out, &segments)?;
            writeln!(out)?;
        } else {
            print_segments(&mut out, &segments)?;
        }
        return Ok(());
    }
    let before = match (args.before, args.older_than) {
        (Some(ns), _) => ns,
        (None, Some(age)) => {
            let cutoff = SystemTime::now()
                .checked_sub(age)
                .context("--older-than reaches before 1970")?;
            ns_since_epoch(cutoff).context("--older-than reaches before 1970")?
        }
        (None, None) => bail!("give --older-than, --before or --list"),
    };
    let report = store
        .archive_trades(before)
        .with_context(|| format!("archiving the trades of {}", dir.display()))?;
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for f in &report.removed_orphans {
            writeln!(out, "removed {f}, left by an interrupted run")?;
        }
        if report.segments.is_empty() {
            writeln!(out, "no trade before the cutoff is left in the hot tables")?;
        } else {
            print_segments(&mut out, &report.segments)?;
            writeln!(
                out,
                "archived {} trades: {} bytes of records into {} bytes of segments",
                report.trades, report.raw_bytes, report.file_bytes
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn print_segments(out: &mut impl Write, segments: &[SegmentMeta]) -> Result<()> {
    if segments.is_empty() {
        writeln!(out, "the archive is empty")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<62} {:>10} {:>21} {:>12} {:>12}",
        "segment", "trades", "ids", "raw bytes", "file bytes"
    )?;
    for s in segments {
        writeln!(
            out,
            "{:<62} {:>10} {:>21} {:>12} {:>12}",
            s.file,
            s.rows,
            format!("{}..={}", s.first_id, s.last_id),
            s.raw_bytes,
            s.file_bytes
        )?;
    }
    Ok(())
}
