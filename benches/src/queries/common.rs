//! The common queries, each written once as SQL text both engines accept (`$n` parameters
//! for tradestore, the same text with `?n` for SQLite), and how each one's parameters are
//! drawn from the data set.
//!
//! Parameters are drawn from existing trades (an instrument, an account, a price or a time
//! that occurs), so frequent values are drawn more often. tradestore takes each value as
//! SQL would write it ([`Operand::Number`]: ids and nanoseconds as integers, prices as
//! decimals, which its binder scales to the column's fixed point); SQLite takes the raw
//! integers its loader stored.

use ::tradestore::query::ast::Operand;
use ::tradestore::schema::Price;
use serde::Serialize;

use super::data::mix;
use crate::Result;
use crate::sqlite::int;
use crate::workload::{TICK, TradeRow};

/// One parameter value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// An id (instrument, account).
    Id(u64),
    /// A timestamp, nanoseconds since the epoch.
    Ts(i64),
    /// A price, raw (10^-8).
    Price(i64),
}

impl Param {
    /// The value as tradestore's SQL binder takes it.
    pub fn operand(self) -> Operand {
        Operand::Number(match self {
            Param::Id(v) => v.to_string(),
            Param::Ts(v) => v.to_string(),
            Param::Price(v) => Price(v).to_string(),
        })
    }

    /// The value as SQLite stores it.
    pub fn sqlite(self) -> Result<i64> {
        match self {
            Param::Id(v) => int(v),
            Param::Ts(v) | Param::Price(v) => Ok(v),
        }
    }
}

/// The measured cases: the common queries, the price band twice (without and with the
/// recommended index) and the aggregate over two windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Case {
    /// The last 100 trades of an instrument.
    #[serde(rename = "last 100 trades of an instrument")]
    Recent,
    /// An account's trades in a time window of a tenth of the data set's span.
    #[serde(rename = "account trades in a time window")]
    AccountWindow,
    /// Every position of an account.
    #[serde(rename = "positions of an account")]
    Positions,
    /// Trades within ±0.10 of a price, before any index on price exists.
    #[serde(rename = "trades in a price band, no index")]
    PriceBand,
    /// The same, after the advisor's first recommendation was built.
    #[serde(rename = "trades in a price band, recommended index")]
    PriceBandIndexed,
    /// Per instrument count, volume and high since a time about halfway through the data.
    #[serde(rename = "aggregate per instrument, wide window")]
    AggregateWide,
    /// The same since a time within the last 1% of the data.
    #[serde(rename = "aggregate per instrument, narrow window")]
    AggregateNarrow,
}

/// Half the width of the price band: 10 ticks.
pub const BAND_HALF: i64 = 10 * TICK;

impl Case {
    /// Every case, in the order they are measured.
    pub const ALL: [Case; 7] = [
        Case::Recent,
        Case::AccountWindow,
        Case::Positions,
        Case::PriceBand,
        Case::PriceBandIndexed,
        Case::AggregateWide,
        Case::AggregateNarrow,
    ];

    /// The query's number in the issue.
    pub fn number(self) -> u8 {
        match self {
            Case::Recent => 1,
            Case::AccountWindow => 2,
            Case::Positions => 3,
            Case::PriceBand | Case::PriceBandIndexed => 4,
            Case::AggregateWide | Case::AggregateNarrow => 5,
        }
    }

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Case::Recent => "last 100 trades of an instrument",
            Case::AccountWindow => "account trades in a time window",
            Case::Positions => "positions of an account",
            Case::PriceBand => "trades in a price band",
            Case::PriceBandIndexed => "trades in a price band",
            Case::AggregateWide => "aggregate per instrument, wide window",
            Case::AggregateNarrow => "aggregate per instrument, narrow window",
        }
    }

    /// The SQL text, with `$n` parameters.
    pub fn sql(self) -> &'static str {
        match self {
            Case::Recent => {
                "SELECT id, price, quantity, ts FROM trades WHERE instrument = $1 \
                 ORDER BY ts DESC LIMIT 100"
            }
            Case::AccountWindow => {
                "SELECT id, price, quantity FROM trades WHERE account = $1 AND ts >= $2 AND ts < $3"
            }
            Case::Positions => "SELECT * FROM positions WHERE account = $1",
            Case::PriceBand | Case::PriceBandIndexed => {
                "SELECT id, price FROM trades WHERE price > $1 AND price < $2"
            }
            Case::AggregateWide | Case::AggregateNarrow => {
                "SELECT instrument, count(*), sum(quantity), max(price) FROM trades \
                 WHERE ts >= $1 GROUP BY instrument"
            }
        }
    }

    /// Whether each execution reads much of the table (fewer executions are measured).
    pub fn scans(self) -> bool {
        matches!(
            self,
            Case::PriceBand | Case::AggregateWide | Case::AggregateNarrow
        )
    }

    /// `count` parameter lists drawn from `trades` (ordered by id and time, not empty),
    /// the same for a given `seed`.
    pub fn params(self, trades: &[TradeRow], count: usize, seed: u64) -> Vec<Vec<Param>> {
        let n = trades.len();
        let span = match (trades.first(), trades.last()) {
            (Some(a), Some(b)) => b.ts - a.ts,
            _ => 0,
        };
        // A trade at a fraction `from..to` (in thousandths) of the data set.
        let pick = |k: usize, from: usize, to: usize| -> Option<&TradeRow> {
            let (lo, hi) = (n * from / 1000, (n * to / 1000).max(n * from / 1000 + 1));
            let h = usize::try_from(mix(seed ^ (k as u64).rotate_left(17)) % (hi - lo) as u64)
                .unwrap_or(0);
            trades.get((lo + h).min(n.saturating_sub(1)))
        };
        (0..count)
            .filter_map(|k| {
                Some(match self {
                    Case::Recent => vec![Param::Id(pick(k, 0, 1000)?.instrument)],
                    Case::AccountWindow => {
                        let t = pick(k, 0, 1000)?;
                        let from = t.ts - span / 20;
                        vec![
                            Param::Id(t.account),
                            Param::Ts(from),
                            Param::Ts(from + span / 10),
                        ]
                    }
                    Case::Positions => vec![Param::Id(pick(k, 0, 1000)?.account)],
                    Case::PriceBand | Case::PriceBandIndexed => {
                        let p = pick(k, 0, 1000)?.price;
                        vec![Param::Price(p - BAND_HALF), Param::Price(p + BAND_HALF)]
                    }
                    Case::AggregateWide => vec![Param::Ts(pick(k, 450, 550)?.ts)],
                    Case::AggregateNarrow => vec![Param::Ts(pick(k, 990, 1000)?.ts)],
                })
            })
            .collect()
    }
}

/// The SQL text for SQLite: every `$n` written `?n`.
pub fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::data::trade;

    #[test]
    fn parameters_come_from_the_data() {
        let trades: Vec<TradeRow> = (0..1_000).map(trade).collect();
        for case in Case::ALL {
            let p = case.params(&trades, 50, 9);
            assert_eq!(p.len(), 50, "{case:?}");
            assert_eq!(p, case.params(&trades, 50, 9));
        }
        let narrow = Case::AggregateNarrow.params(&trades, 20, 1);
        assert!(
            narrow
                .iter()
                .all(|p| matches!(p[0], Param::Ts(ts) if ts >= trades[990].ts))
        );
        assert_eq!(
            Param::Price(10_050_000_000).operand(),
            Operand::Number("100.5".into())
        );
        assert_eq!(
            sqlite_text(Case::AccountWindow.sql()),
            "SELECT id, price, quantity FROM trades WHERE account = ?1 AND ts >= ?2 AND ts < ?3"
        );
    }
}
