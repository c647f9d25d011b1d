//! `tradestore index`: the index manager from the command line: advise, create, drop, list,
//! and the log of decisions.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tradestore::Store;
use tradestore::query::advisor::{Advice, ShapeStats};
use tradestore::schema::{IndexDef, TableId};

use super::query::{engine_error, prepare};
use super::store::{StoreDir, open_existing};
use super::table::{self, Align};

/// Manage secondary indexes: advise, create, drop, list, and the log of decisions.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Manage the store's secondary indexes. `advise` runs a workload of queries and prints the \
indexes the advisor recommends for it; `create` builds an index online, `drop` removes one \
created at run time; `list` shows every index; `log` shows every decision recorded in the \
catalog (creations, completed builds, drops, abandoned builds), whether made here or by the \
index manager's auto mode (config key index_auto).")]
pub struct Args {
    #[command(subcommand)]
    pub command: IndexCommand,
}

/// The `index` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum IndexCommand {
    Advise(AdviseArgs),
    Create(CreateArgs),
    Drop(DropArgs),
    List(ListArgs),
    Log(LogArgs),
}

/// Run a workload of queries and print the indexes recommended for it.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Run a workload of queries, discarding their rows, then print the indexes the advisor \
recommends for it, best first: the index (name, table, columns), the estimated benefit \
(row reads saved over the workload's executions, from planning each recorded query shape \
again with the index), the executions that would use it, its write cost (index writes per \
second at the table's write rate in this process, which is 0 when only queries ran, and \
bytes per entry) and the query shapes it serves. When nothing is worth an index it says \
`no index recommended`. Either way it then lists the recorded shapes with their \
executions, rows examined and rows returned, and the access path they used.

The advisor works from the recorded workload, which the store keeps in its catalog: the \
queries of every process that used the store (saved when it closes). Statements can be run \
first to add to it: --workload FILE holds one statement per line (blank lines and lines \
starting with -- are skipped; `N|SELECT ...` runs the statement N times; - reads standard \
input), and --query SQL adds one statement (repeatable). With nothing recorded the command \
prints `no index recommended` with a hint on standard error, and exits 0.

Nothing is created: run `tradestore index create` with the recommendation to build it.")]
pub struct AdviseArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// A file of SQL statements, one per line, `N|SQL` to run one N times; - for stdin.
    #[arg(long, value_name = "FILE")]
    pub workload: Option<PathBuf>,

    /// A statement of the workload (repeatable); run after those of --workload.
    #[arg(long = "query", value_name = "SQL")]
    pub queries: Vec<String>,

    /// Print the recommendations and the recorded workload as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Build a secondary index online.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Build a secondary index online: it is registered, the rows already stored are indexed in \
chunks while writers go on, and it is used by queries once complete. Its entries are keyed \
by the listed columns, in order, followed by the primary key. Indexes created at run time \
are not unique. With --covering each entry also keeps a copy of its row, so reads through \
the index need no row lookup (each row is then written twice). A name already used, or a \
list of columns an index of the table already has, is refused. The decision and its reason \
are recorded in the catalog (`tradestore index log`).")]
pub struct CreateArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// The index's name: 1 to 64 characters of a-z, 0-9 and _.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The indexed table.
    #[arg(long, value_parser = parse_table)]
    pub table: TableId,

    /// The indexed columns, in key order, separated by commas: --columns account,ts.
    #[arg(long, value_delimiter = ',', required = true)]
    pub columns: Vec<String>,

    /// Keep a copy of each row in its entry: reads through the index skip the row lookup.
    #[arg(long)]
    pub covering: bool,

    /// Why, recorded with the decision.
    #[arg(long, default_value = "created with tradestore index create")]
    pub reason: String,
}

/// Drop a secondary index created at run time.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Drop a secondary index created at run time: queries stop using it, then its entries are \
deleted. Built-in indexes belong to the schema and are refused. The decision and its \
reason are recorded in the catalog (`tradestore index log`).")]
pub struct DropArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// The index's name.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Why, recorded with the decision.
    #[arg(long, default_value = "dropped with tradestore index drop")]
    pub reason: String,
}

/// List every secondary index.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
List every secondary index: its name, table and columns, whether it is unique, whether it \
is built in (part of the schema, never dropped) or was created at run time, and whether \
it is ready (complete and used by queries).")]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the list as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show the index decisions recorded in the catalog, oldest first.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Show every index decision recorded in the catalog, oldest first: when (RFC 3339, UTC), the \
action (create: build started; ready: build complete; drop; abandon: a build that failed; \
review_failed: an automatic review that failed), the index, its table and columns, and \
the reason (the operator's --reason, or the advisor's estimate for automatic decisions).")]
pub struct LogArgs {
    #[command(flatten)]
    pub store: StoreDir,

    /// Print the decisions as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_table(s: &str) -> Result<TableId, String> {
    s.parse().map_err(|_| {
        let names: Vec<&str> = TableId::ALL.iter().map(|t| t.name()).collect();
        format!("no table {s:?}; the tables are {}", names.join(", "))
    })
}

/// Runs `index`.
pub fn run(args: &Args) -> Result<()> {
    match &args.command {
        IndexCommand::Advise(a) => advise(a),
        IndexCommand::Create(a) => create(a),
        IndexCommand::Drop(a) => drop_index(a),
        IndexCommand::List(a) => list(a),
        IndexCommand::Log(a) => log(a),
    }
}

/// One statement of a workload: where it comes from (for errors), its text, and how many
/// times to run it.
struct WorkItem {
    origin: String,
    sql: String,
    times: u64,
}

/// Runs beyond this for one statement, or for the whole workload, are refused: a typo in
/// `N|`, not a workload.
const MAX_TIMES: u64 = 1_000_000;

/// The largest workload file read.
const MAX_WORKLOAD: u64 = 16 << 20;

/// Reads a workload file: one statement per line, blank lines and `--` comments skipped,
/// `N|SQL` for N runs.
fn read_workload(path: &Path) -> Result<Vec<WorkItem>> {
    let shown = path.display();
    // Bounded: a workload is statements, not a stream (a link to /dev/zero must not eat the
    // memory of the machine).
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_WORKLOAD + 1)
            .read_to_end(&mut bytes)
            .context("reading the workload from standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_WORKLOAD + 1).read_to_end(&mut bytes))
            .with_context(|| format!("reading {shown}"))?;
    }
    if bytes.len() as u64 > MAX_WORKLOAD {
        bail!(
            "{shown} is over {} MiB: a workload is a list of statements",
            MAX_WORKLOAD >> 20
        );
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{shown} is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        let origin = format!("{shown} line {}", i + 1);
        let (times, sql) = match line.split_once('|') {
            Some((n, sql))
                if !n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit()) =>
            {
                let times: u64 = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|t| (1..=MAX_TIMES).contains(t))
                    .with_context(|| {
                        format!("{origin}: the repeat count {n:?} must be from 1 to {MAX_TIMES}")
                    })?;
                (times, sql.trim())
            }
            _ => (1, line),
        };
        if sql.is_empty() {
            bail!("{origin}: no statement after the repeat count");
        }
        items.push(WorkItem {
            origin,
            sql: sql.to_owned(),
            times,
        });
    }
    let total = items.iter().fold(0u64, |n, i| n.saturating_add(i.times));
    if total > MAX_TIMES {
        bail!(
            "{shown} asks for {total} executions in all, over {MAX_TIMES}: lower the repeat \
             counts (the advisor needs the mix of queries, not their volume)"
        );
    }
    Ok(items)
}

fn advise(args: &AdviseArgs) -> Result<()> {
    let mut items = match &args.workload {
        Some(path) => read_workload(path)?,
        None => Vec::new(),
    };
    for (i, sql) in args.queries.iter().enumerate() {
        items.push(WorkItem {
            origin: format!("--query {}", i + 1),
            sql: sql.clone(),
            times: 1,
        });
    }
    let store = open_existing(&args.store.dir)?;
    let mut executions = 0u64;
    for item in &items {
        run_item(&store, item).with_context(|| item.origin.clone())?;
        executions += item.times;
    }
    let advice = store.advise_indexes().map_err(engine_error)?;
    let shapes = store.workload();
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = json!({
            "statements": items.len(),
            "executions": executions,
            "recommendations": advice.iter().map(advice_json).collect::<Vec<_>>(),
            "workload": shapes.iter().map(shape_json).collect::<Vec<_>>(),
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        write_advice(&mut out, &items, executions, &advice, &shapes)?;
    }
    out.flush()?;
    if shapes.is_empty() {
        eprintln!(
            "hint: no queries are recorded for this store; run some (or give them with \
             --workload FILE or --query SQL)"
        );
    }
    Ok(())
}

/// Runs one workload statement its number of times, discarding the rows.
fn run_item(store: &Store, item: &WorkItem) -> Result<()> {
    let prepared = prepare(store, &item.sql)?;
    for _ in 0..item.times {
        store.execute(&prepared, &[]).map_err(engine_error)?;
    }
    Ok(())
}

fn create_command(a: &Advice) -> String {
    format!(
        "tradestore index create {} --table {} --columns {}",
        a.def.name,
        a.def.table,
        a.def.columns.join(",")
    )
}

fn write_advice(
    out: &mut dyn Write,
    items: &[WorkItem],
    executions: u64,
    advice: &[Advice],
    shapes: &[ShapeStats],
) -> Result<()> {
    writeln!(
        out,
        "ran {} statement{} ({} execution{})",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        executions,
        if executions == 1 { "" } else { "s" }
    )?;
    writeln!(out)?;
    if advice.is_empty() {
        writeln!(out, "no index recommended")?;
    } else {
        writeln!(out, "recommended indexes, best first:")?;
        for a in advice {
            writeln!(out)?;
            writeln!(
                out,
                "{} on {} ({})",
                a.def.name,
                a.def.table,
                a.def.columns.join(", ")
            )?;
            writeln!(
                out,
                "  benefit     {:.0} row reads saved over {} execution{}",
                a.benefit,
                a.executions,
                if a.executions == 1 { "" } else { "s" }
            )?;
            writeln!(
                out,
                "  write cost  {:.1} index writes/s, ~{} bytes per entry",
                a.writes_per_sec, a.entry_bytes
            )?;
            writeln!(out, "  shapes      {}", a.shapes.join(" | "))?;
            writeln!(out, "  create      {}", create_command(a))?;
        }
    }
    if !shapes.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = shapes
            .iter()
            .map(|s| {
                vec![
                    s.shape.clone(),
                    s.executions.to_string(),
                    s.examined.to_string(),
                    s.returned.to_string(),
                    s.last_access.clone(),
                ]
            })
            .collect();
        table::write(
            out,
            &[
                ("SHAPE", Align::Left),
                ("EXECUTIONS", Align::Right),
                ("EXAMINED", Align::Right),
                ("RETURNED", Align::Right),
                ("ACCESS", Align::Left),
            ],
            &rows,
        )?;
    }
    Ok(())
}

fn advice_json(a: &Advice) -> serde_json::Value {
    json!({
        "name": a.def.name,
        "table": a.def.table.name(),
        "columns": a.def.columns,
        "benefit": a.benefit,
        "executions": a.executions,
        "writes_per_sec": a.writes_per_sec,
        "entry_bytes": a.entry_bytes,
        "shapes": a.shapes,
        "reason": a.reason(),
        "create": create_command(a),
    })
}

fn shape_json(s: &ShapeStats) -> serde_json::Value {
    json!({
        "shape": s.shape,
        "table": s.table.name(),
        "executions": s.executions,
        "examined": s.examined,
        "returned": s.returned,
        "ms": s.total_time.as_secs_f64() * 1e3,
        "last_access": s.last_access,
    })
}

fn create(args: &CreateArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let def = IndexDef {
        name: args.name.clone(),
        table: args.table,
        columns: args.columns.clone(),
        unique: false,
        builtin: false,
        covering: args.covering,
    };
    let report = store
        .create_index(def, &args.reason)
        .map_err(engine_error)
        .with_context(|| format!("creating index {}", args.name))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "built index {} on {} ({}): backfilled {} entr{} in {} chunk{}, {:.1} ms",
        report.name,
        args.table,
        args.columns.join(", "),
        report.backfilled,
        if report.backfilled == 1 { "y" } else { "ies" },
        report.chunks,
        if report.chunks == 1 { "" } else { "s" },
        report.elapsed.as_secs_f64() * 1e3
    )?;
    out.flush()?;
    Ok(())
}

fn drop_index(args: &DropArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    store
        .drop_index(&args.name, &args.reason)
        .map_err(engine_error)
        .with_context(|| format!("dropping index {}", args.name))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "dropped index {}", args.name)?;
    out.flush()?;
    Ok(())
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn list(args: &ListArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let indexes = store.indexes();
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = indexes
            .iter()
            .map(|s| {
                json!({
                    "name": s.def.name,
                    "table": s.def.table.name(),
                    "columns": s.def.columns,
                    "unique": s.def.unique,
                    "builtin": s.def.builtin,
                    "covering": s.def.covering,
                    "ready": s.is_ready(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &json!({ "indexes": list }))?;
        writeln!(out)?;
    } else {
        let rows: Vec<Vec<String>> = indexes
            .iter()
            .map(|s| {
                vec![
                    s.def.name.clone(),
                    s.def.table.name().to_owned(),
                    s.def.columns.join(", "),
                    yes_no(s.def.unique),
                    yes_no(s.def.builtin),
                    yes_no(s.def.covering),
                    yes_no(s.is_ready()),
                ]
            })
            .collect();
        table::write(
            &mut out,
            &[
                ("INDEX", Align::Left),
                ("TABLE", Align::Left),
                ("COLUMNS", Align::Left),
                ("UNIQUE", Align::Left),
                ("BUILTIN", Align::Left),
                ("COVERING", Align::Left),
                ("READY", Align::Left),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(())
}

fn log(args: &LogArgs) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let decisions = store.index_decisions().map_err(engine_error)?;
    let time = super::table::time_ns;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = decisions
            .iter()
            .map(|d| {
                json!({
                    "time": time(d.at_ns),
                    "at_ns": d.at_ns,
                    "action": d.action,
                    "index": d.index,
                    "table": d.table,
                    "columns": d.columns,
                    "reason": d.reason,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &json!({ "decisions": list }))?;
        writeln!(out)?;
    } else if decisions.is_empty() {
        writeln!(out, "no index decisions recorded")?;
    } else {
        let rows: Vec<Vec<String>> = decisions
            .iter()
            .map(|d| {
                vec![
                    time(d.at_ns),
                    d.action.clone(),
                    d.index.clone(),
                    d.table.clone(),
                    d.columns.join(", "),
                    d.reason.clone(),
                ]
            })
            .collect();
        table::write(
            &mut out,
            &[
                ("TIME", Align::Left),
                ("ACTION", Align::Left),
                ("INDEX", Align::Left),
                ("TABLE", Align::Left),
                ("COLUMNS", Align::Left),
                ("REASON", Align::Left),
            ],
            &rows,
        )?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_file_skips_comments_and_reads_repeat_counts() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.sql");
        std::fs::write(
            &path,
            "-- trades by price\n\n  20|SELECT * FROM trades WHERE price > 1\nSELECT 1|2 FROM x\n",
        )?;
        let items = read_workload(&path)?;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].times, 20);
        assert_eq!(items[0].sql, "SELECT * FROM trades WHERE price > 1");
        assert!(items[0].origin.ends_with("line 3"), "{}", items[0].origin);
        assert_eq!(items[1].times, 1);
        assert_eq!(items[1].sql, "SELECT 1|2 FROM x");

        std::fs::write(&path, "0|SELECT * FROM trades\n")?;
        let err = read_workload(&path).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("line 1")));
        Ok(())
    }

    #[test]
    fn a_workload_of_more_than_a_million_executions_in_all_is_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.sql");
        let line = "600000|SELECT * FROM trades WHERE instrument = 1\n";
        std::fs::write(&path, line)?;
        assert_eq!(read_workload(&path)?.len(), 1);
        std::fs::write(&path, line.repeat(2))?;
        let err = read_workload(&path).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("1200000 executions in all"), "{err}");
        Ok(())
    }
}
