//! `tradestore explain`: the plan of one query, with estimates (and actuals).

use std::io::Write;

use anyhow::Result;
use tradestore::query::ast::Statement;

use super::query::{engine_error, operands, prepare};
use super::store::{StoreDir, open_existing};

/// Show how a query runs: the plan tree with estimates, the rewrites, and why.
#[derive(Debug, clap::Args)]
#[command(long_about = "\
Show the plan of one SELECT (the text may also start with EXPLAIN or EXPLAIN ANALYZE): the \
plan tree from the output down to the access path (a full scan, a primary key range, or an \
index scan naming the index) with estimated rows examined and cost, the access paths \
rejected with their costs, why the chosen one won, the rewrites applied to the WHERE \
clause, and whether the plan came from the plan cache.

The query is run to produce the report (the plan is exactly the one a run uses); its rows \
are not printed. --analyze adds the actual rows and time of each node. Estimates come from \
the statistics `tradestore analyze` keeps; without them the planner assumes defaults.")]
pub struct Args {
    #[command(flatten)]
    pub store: StoreDir,

    /// The query, e.g. "SELECT * FROM trades WHERE instrument = 1 ORDER BY ts DESC LIMIT 10".
    #[arg(value_name = "SQL")]
    pub sql: String,

    /// Also report the actual rows and time of each node.
    #[arg(long)]
    pub analyze: bool,

    /// Print the report as pretty-printed JSON.
    #[arg(long)]
    pub json: bool,

    /// The value of the next `$n` parameter, as for `tradestore query`.
    #[arg(long = "param", value_name = "VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,
}

/// Runs `explain`.
pub fn run(args: &Args) -> Result<()> {
    let store = open_existing(&args.store.dir)?;
    let prepared = prepare(&store, &args.sql)?;
    let params = operands(&prepared, &args.params)?;
    let (query, analyze) = match prepared.statement() {
        Statement::Query(q) => (q.clone(), args.analyze),
        Statement::Explain { analyze, query } => (query.clone(), *analyze || args.analyze),
    };
    let explain = store
        .explain_query(query, &params, analyze)
        .map_err(engine_error)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &explain.json)?;
        writeln!(out)?;
    } else {
        out.write_all(explain.text.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
