//! `tradestore dump`: every row of a store as JSON Lines.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tradestore::dump::Summary;

use super::progress::Progress;
use super::store::{StoreDir, open_existing_checked};

/// Write every row of the store to a JSON Lines file.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Write every row of the store as JSON Lines, one record per line:
  {\"table\":\"accounts\",\"record\":{\"id\":1,\"name\":\"alpha\",\"status\":\"active\"}}
Tables come parents first, rows in primary key order, numbers as raw fixed-point integers, \
so two dumps of the same data are byte-identical. The last line counts the rows, \
{\"end\":{\"rows\":N}}: `tradestore restore` refuses a dump cut short. The dump reads one \
consistent snapshot; writers may go on meanwhile.

The file is written under a temporary name next to FILE and renamed to FILE only once \
complete and synced, so a failed dump never leaves a partial FILE (nor replaces an \
existing one). A summary of the rows per table goes to stderr.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The file to write, replaced if it exists; `-` writes to standard output.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `dump`.
pub fn run(args: &Args) -> Result<()> {
    if args.out.as_os_str() != "-" {
        safe_target(&args.out, &args.store.dir)?;
    }
    let store = open_existing_checked(&args.store.dir)?;
    let progress = Progress::items("dumping");
    let mut report = |done, total| progress.items_done(done, total);
    let summary = if args.out.as_os_str() == "-" {
        let mut out = BufWriter::new(std::io::stdout().lock());
        let summary = tradestore::dump::dump(&store, &mut out, &mut report)
            .context("dumping to standard output")?;
        out.flush().context("writing to standard output")?;
        summary
    } else {
        dump_to_file(&store, &args.out, &mut report)
            .with_context(|| format!("dumping to {}", args.out.display()))?
    };
    progress.finish();
    let target = if args.out.as_os_str() == "-" {
        "to standard output".to_owned()
    } else {
        format!("to {}", args.out.display())
    };
    eprintln!("{}", describe(&summary, "dumped", &target));
    Ok(())
}

/// Refuses an output that the dump's rename would destroy or that belongs to the store: a
/// path inside the store's directory (its database, journal or configuration), and anything
/// but a regular file (a device, a FIFO, a directory; a symbolic link, which the rename would
/// replace instead of writing through).
fn safe_target(out: &Path, store_dir: &Path) -> Result<()> {
    let shown = out.display();
    match std::fs::symlink_metadata(out) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{shown} is a symbolic link, which the finished dump would replace: give the path \
             of the file itself"
        ),
        Ok(meta) if !meta.is_file() => {
            bail!("{shown} exists and is not a regular file: give the path of a file to write")
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Both resolved (`..`, links): a missing folder is the rename's error to report.
    if let (Ok(parent), Ok(store)) = (parent.canonicalize(), store_dir.canonicalize())
        && parent.starts_with(&store)
    {
        bail!(
            "{shown} is inside the store's directory {}, whose files belong to the store: \
             write the dump elsewhere",
            store_dir.display()
        );
    }
    Ok(())
}

/// Dumps into a temporary file beside `path`, then renames it to `path`. On any error the
/// temporary file is removed (when it drops) and `path` is untouched.
fn dump_to_file(
    store: &tradestore::Store,
    path: &Path,
    report: &mut dyn FnMut(u64, u64),
) -> Result<Summary> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} does not name a file", path.display()))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // A dump is an ordinary file: read-write as the umask allows, not tempfile's 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let temp = builder
        .tempfile_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    let mut out = BufWriter::new(temp);
    let summary = tradestore::dump::dump(store, &mut out, report)?;
    let temp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the dump")?;
    temp.as_file().sync_all().context("syncing the dump")?;
    temp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming the finished dump to {}", path.display()))?;
    Ok(summary)
}

/// One line for stderr: `dumped 12 rows to x.jsonl (instruments 2, accounts 1, ...)`.
pub fn describe(summary: &Summary, verb: &str, target: &str) -> String {
    let per_table: Vec<String> = summary
        .tables
        .iter()
        .map(|(table, rows)| format!("{table} {rows}"))
        .collect();
    let rows = if summary.total == 1 { "row" } else { "rows" };
    if per_table.is_empty() {
        format!("{verb} {} {rows} {target}", summary.total)
    } else {
        format!(
            "{verb} {} {rows} {target} ({})",
            summary.total,
            per_table.join(", ")
        )
    }
}
