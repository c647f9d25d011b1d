//! `tradestore standby`: make a standby from a backup, and keep it following the primary's
//! journal.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tradestore::standby::{CatchUp, Standby};

/// Make a standby from a backup of a store, and keep it following that store's journal.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Keep a standby: a copy of a store (the primary) that follows the primary's journal while \
the primary runs in its own process. Make one from a backup with --from-backup (taken with \
`tradestore backup`, or Store::backup in the primary's process); then it reads the journal \
segment files the primary writes, in PRIMARY/journal and PRIMARY/archive/journal, and applies \
every whole record after the last one it holds, each catch-up one durable commit.

It follows until stopped (Ctrl-C or SIGTERM is safe at any moment: the standby holds exactly \
the primary's transactions up to the one it last applied), for --duration, or catches up once \
with --once. Set keep_journal = true on the primary so that a standby that falls behind finds \
the records checkpointed since; without it a standby that falls behind a checkpoint stops with \
an error that says so.

To promote the standby, stop it and run `tradestore standby --dir DIR --promote`: it removes \
the standby mark (recorded in the audit trail), so the directory is a store of its own that \
takes migrations; it can never follow again. Opening the directory as a store without \
promoting it works too, but a standby refuses migrations, and one that was written to cannot \
follow again. Changes that bypass the journal are not followed: a dump \
restored into the primary (make a new standby from a new backup), archiving, and index changes.")]
pub struct Args {
    /// The standby's directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,

    /// The primary's directory: its journal and archive/journal folders are followed.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["journal", "promote"])]
    pub primary: Option<PathBuf>,

    /// A folder of the primary's journal segments to follow, instead of --primary's
    /// (repeatable).
    #[arg(long, value_name = "DIR")]
    pub journal: Vec<PathBuf>,

    /// Make the standby: restore this backup into --dir (which must not exist, or be empty).
    #[arg(long, value_name = "BACKUP")]
    pub from_backup: Option<PathBuf>,

    /// Catch up once, print where the standby is, and exit.
    #[arg(long, conflicts_with = "duration")]
    pub once: bool,

    /// Follow for this long, then exit (default: until stopped).
    #[arg(long, value_parser = super::parse_duration)]
    pub duration: Option<Duration>,

    /// How often to look for new records.
    #[arg(long, value_parser = super::parse_duration, default_value = "100ms")]
    pub interval: Duration,

    /// Print each catch-up that applied records as one JSON line.
    #[arg(long)]
    pub json: bool,

    /// Promote the stopped standby in --dir to a store of its own (it stops being a
    /// standby for good), and exit.
    #[arg(long, conflicts_with_all = [
        "primary", "journal", "from_backup", "once", "duration", "json"
    ])]
    pub promote: bool,
}

/// The journal folders to follow.
fn folders(args: &Args) -> Vec<PathBuf> {
    let mut out = args.journal.clone();
    if let Some(p) = &args.primary {
        out.push(p.join("archive").join("journal"));
        out.push(p.join("journal"));
    }
    out
}

/// Refuses a standby directory that is the primary or lies inside it.
fn check_apart(standby: &Path, primary: &Path) -> Result<()> {
    let abs = |p: &Path| -> Result<PathBuf> {
        let p = std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?;
        Ok(p.canonicalize().unwrap_or(p))
    };
    let (s, p) = (abs(standby)?, abs(primary)?);
    if s.starts_with(&p) || p.starts_with(&s) {
        bail!(
            "the standby {} and the primary {} overlap: give the standby a directory of its own",
            standby.display(),
            primary.display()
        );
    }
    Ok(())
}

/// Runs `standby`.
pub fn run(args: &Args) -> Result<()> {
    if args.promote {
        let seq = Standby::promote(&args.dir)
            .with_context(|| format!("promoting the standby {}", args.dir.display()))?;
        let holds = if seq == 0 {
            "no transaction of the primary".to_owned()
        } else {
            format!("the primary's transactions 1..={seq}")
        };
        println!(
            "promoted {}: a store of its own, holding {holds}",
            args.dir.display()
        );
        return Ok(());
    }
    let journal = folders(args);
    if let Some(p) = &args.primary {
        check_apart(&args.dir, p)?;
        if !p.join(tradestore::DB_FILE).is_file() {
            bail!(
                "{} holds no store: name the primary's directory",
                p.display()
            );
        }
    }
    let mut out = std::io::stdout().lock();
    let mut standby = match &args.from_backup {
        Some(backup) => {
            let s = Standby::create(backup, &args.dir, journal).with_context(|| {
                format!(
                    "making a standby in {} from {}",
                    args.dir.display(),
                    backup.display()
                )
            })?;
            if !args.json {
                writeln!(
                    out,
                    "made a standby in {} at transaction {}",
                    args.dir.display(),
                    s.applied_seq()
                )?;
            }
            s
        }
        None => Standby::open(&args.dir, journal)
            .with_context(|| format!("opening the standby {}", args.dir.display()))?,
    };
    let deadline = args.duration.map(|d| Instant::now() + d);
    loop {
        let c = catch_up(&mut standby)?;
        if c.applied > 0 || args.once {
            print(&mut out, &c, args.json)?;
        }
        if args.once || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(());
        }
        // Never past the deadline: a long interval does not outlast --duration.
        let wait = deadline.map_or(args.interval, |d| {
            args.interval
                .min(d.saturating_duration_since(Instant::now()))
        });
        std::thread::sleep(wait);
    }
}

/// Catches up until nothing more is waiting; the sum of what it applied.
fn catch_up(standby: &mut Standby) -> Result<CatchUp> {
    let mut total = CatchUp::default();
    loop {
        let c = standby.catch_up().with_context(|| {
            format!(
                "following the primary's journal from transaction {}",
                standby.applied_seq()
            )
        })?;
        total.applied += c.applied;
        total.applied_seq = c.applied_seq;
        total.waiting_at = c.waiting_at;
        total.last_commit_ns = c.last_commit_ns;
        if !c.more {
            return Ok(total);
        }
    }
}

fn print(out: &mut impl Write, c: &CatchUp, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer(&mut *out, c)?;
        writeln!(out)?;
    } else {
        if c.applied_seq == 0 {
            write!(
                out,
                "applied {} records: the standby holds no transaction yet",
                c.applied
            )?;
        } else {
            write!(
                out,
                "applied {} records: the standby holds transactions 1..={}",
                c.applied, c.applied_seq
            )?;
        }
        if let Some(t) = c.last_commit_ns {
            write!(
                out,
                ", the last committed on the primary at {}",
                super::table::time_ns(t)
            )?;
        }
        if let Some(w) = &c.waiting_at {
            write!(out, " (waiting at {w})")?;
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::parse_duration;

    #[test]
    fn durations_are_above_zero_and_at_most_a_year() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("366days").is_err());
        assert!(parse_duration("18446744073709551615s").is_err());
        assert_eq!(
            parse_duration("365days"),
            Ok(Duration::from_secs(365 * 86_400))
        );
    }
}
