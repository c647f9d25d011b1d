//! Statements of the subset and the queries they become.

use super::*;

#[test]
fn select_star_and_columns() {
    assert_eq!(query("SELECT * FROM trades"), Query::new(TableId::Trades));
    assert_eq!(query("select * from TRADES;"), Query::new(TableId::Trades));
    assert_eq!(
        query("SELECT trades.* FROM trades"),
        Query::new(TableId::Trades)
    );
    let q = query("SELECT Price AS P, quantity, t.fee FROM Trades AS t");
    assert_eq!(
        q.select,
        vec![
            SelectItem::Column {
                name: "price".into(),
                alias: Some("p".into())
            },
            col("quantity"),
            col("fee"),
        ]
    );
    assert_eq!(
        query("SELECT \"price\" AS \"Px\" FROM trades").select,
        vec![SelectItem::Column {
            name: "price".into(),
            alias: Some("Px".into())
        }]
    );
    assert_eq!(
        query("SELECT symbol FROM instruments").table,
        TableId::Instruments
    );
    let q = query("SELECT ((price)) FROM trades GROUP BY ((price))");
    assert_eq!(q.select, vec![col("price")]);
    assert_eq!(q.group_by, vec![GroupKey::Column("price".into())]);
}

#[test]
fn aggregates() {
    let q = query(
        "SELECT count(*), COUNT(fee) AS n, sum(quantity), min(price), max(price), \
         avg(price) AS mean, vwap(price, quantity) FROM trades",
    );
    assert_eq!(
        q.select,
        vec![
            agg(AggFunc::Count, &[], None),
            agg(AggFunc::Count, &["fee"], Some("n")),
            agg(AggFunc::Sum, &["quantity"], None),
            agg(AggFunc::Min, &["price"], None),
            agg(AggFunc::Max, &["price"], None),
            agg(AggFunc::Avg, &["price"], Some("mean")),
            agg(AggFunc::Vwap, &["price", "quantity"], None),
        ]
    );
    assert!(q.group_by.is_empty());
    assert!(q.is_aggregate());
}

#[test]
fn time_buckets_and_group_by() {
    let q = query(
        "SELECT time_bucket(interval '1 minute', ts) AS minute, instrument, count(*) \
         FROM trades GROUP BY minute, instrument",
    );
    assert_eq!(
        q.select,
        vec![
            bucket("ts", MINUTE, Some("minute")),
            col("instrument"),
            agg(AggFunc::Count, &[], None),
        ]
    );
    assert_eq!(
        q.group_by,
        vec![
            GroupKey::Bucket {
                column: "ts".into(),
                width_ns: MINUTE
            },
            GroupKey::Column("instrument".into()),
        ]
    );
    let expected_keys = vec![
        GroupKey::Bucket {
            column: "ts".into(),
            width_ns: 5 * MINUTE,
        },
        GroupKey::Column("side".into()),
    ];
    // The same grouping by expression, by position and by the short interval form.
    for sql in [
        "SELECT time_bucket('5m', ts), side, sum(quantity) FROM trades \
         GROUP BY time_bucket('5m', ts), side",
        "SELECT time_bucket('5m', ts), side, sum(quantity) FROM trades GROUP BY 1, 2",
        "SELECT time_bucket(INTERVAL '5 minutes', ts), side, sum(quantity) FROM trades \
         GROUP BY time_bucket('5m', ts), trades.side",
    ] {
        let q = query(sql);
        assert_eq!(q.group_by, expected_keys, "{sql}");
        assert_eq!(q.select[0], bucket("ts", 5 * MINUTE, None), "{sql}");
    }
    // Grouping without aggregates, and by a column's alias.
    let q = query("SELECT account AS a FROM orders GROUP BY a");
    assert_eq!(q.group_by, vec![GroupKey::Column("account".into())]);
    // interval '1' hour.
    let q = query(
        "SELECT time_bucket(interval '1' hour, created_ts) AS h, count(*) FROM orders GROUP BY h",
    );
    assert_eq!(q.select[0], bucket("created_ts", HOUR, Some("h")));
}

#[test]
fn comparisons() {
    let cases = [
        ("price = 100", cmp("price", CmpOp::Eq, num("100"))),
        ("price <> 100.25", cmp("price", CmpOp::Ne, num("100.25"))),
        ("price != 100", cmp("price", CmpOp::Ne, num("100"))),
        ("price < 1", cmp("price", CmpOp::Lt, num("1"))),
        ("price <= 1", cmp("price", CmpOp::Le, num("1"))),
        ("price > -3", cmp("price", CmpOp::Gt, num("-3"))),
        ("price >= +3", cmp("price", CmpOp::Ge, num("3"))),
        // A value on the left flips the operator.
        ("100 < price", cmp("price", CmpOp::Gt, num("100"))),
        ("100 >= price", cmp("price", CmpOp::Le, num("100"))),
        (
            "'ACME' = instrument",
            cmp("instrument", CmpOp::Eq, text("ACME")),
        ),
        ("side = 'buy'", cmp("side", CmpOp::Eq, text("buy"))),
        ("side = 'it''s'", cmp("side", CmpOp::Eq, text("it's"))),
        ("fee = NULL", cmp("fee", CmpOp::Eq, Operand::Null)),
        ("price > $1", cmp("price", CmpOp::Gt, Operand::Param(1))),
        ("$12 > price", cmp("price", CmpOp::Lt, Operand::Param(12))),
        ("ts < now()", cmp("ts", CmpOp::Lt, Operand::Now)),
        (
            "ts >= '2026-11-26T10:00:00Z'",
            cmp("ts", CmpOp::Ge, text("2026-11-26T10:00:00Z")),
        ),
        (
            "ts > now() - interval '1 hour'",
            cmp(
                "ts",
                CmpOp::Gt,
                Operand::Arith {
                    left: Box::new(Operand::Now),
                    minus: true,
                    right: Box::new(Operand::Interval(HOUR)),
                },
            ),
        ),
        (
            "ts < $1 + interval '90 seconds' - interval '1m'",
            cmp(
                "ts",
                CmpOp::Lt,
                Operand::Arith {
                    left: Box::new(Operand::Arith {
                        left: Box::new(Operand::Param(1)),
                        minus: false,
                        right: Box::new(Operand::Interval(90_000_000_000)),
                    }),
                    minus: true,
                    right: Box::new(Operand::Interval(MINUTE)),
                },
            ),
        ),
        ("(price) = (5)", cmp("price", CmpOp::Eq, num("5"))),
        (
            "t.price = 123456789012345678901234567890",
            cmp("price", CmpOp::Eq, num("123456789012345678901234567890")),
        ),
    ];
    for (sql, expected) in cases {
        let q = query(&format!("SELECT * FROM trades t WHERE {sql}"));
        assert_eq!(q.filter, expected, "{sql}");
    }
}

#[test]
fn logic_and_parentheses() {
    let a = cmp("price", CmpOp::Gt, num("1"));
    let b = cmp("quantity", CmpOp::Lt, num("2"));
    let c = cmp("side", CmpOp::Eq, text("buy"));
    assert_eq!(
        filter("price > 1 AND quantity < 2 AND side = 'buy'"),
        Pred::And(vec![a.clone(), b.clone(), c.clone()])
    );
    assert_eq!(
        filter("price > 1 AND quantity < 2 OR NOT side = 'buy'"),
        Pred::Or(vec![
            Pred::And(vec![a.clone(), b.clone()]),
            Pred::Not(Box::new(c.clone())),
        ])
    );
    assert_eq!(
        filter("price > 1 AND (quantity < 2 OR side = 'buy')"),
        Pred::And(vec![a.clone(), Pred::Or(vec![b.clone(), c.clone()])])
    );
    assert_eq!(
        filter("NOT (price > 1 OR quantity < 2)"),
        Pred::Not(Box::new(Pred::Or(vec![a, b])))
    );
    assert_eq!(filter("TRUE"), Pred::True);
    assert_eq!(
        filter("FALSE AND side = 'buy'"),
        Pred::And(vec![Pred::False, c])
    );
    assert_eq!(query("SELECT * FROM trades").filter, Pred::True);
}

#[test]
fn in_between_is_null() {
    assert_eq!(
        filter("side IN ('buy', 'sell')"),
        Pred::In {
            column: "side".into(),
            values: vec![text("buy"), text("sell")],
            negated: false
        }
    );
    assert_eq!(
        filter("instrument NOT IN (1, $2, -7)"),
        Pred::In {
            column: "instrument".into(),
            values: vec![num("1"), Operand::Param(2), num("-7")],
            negated: true
        }
    );
    assert_eq!(
        filter("price BETWEEN 1 AND 2.5"),
        Pred::Between {
            column: "price".into(),
            low: num("1"),
            high: num("2.5"),
            negated: false
        }
    );
    assert_eq!(
        filter("ts NOT BETWEEN now() - interval '1 hour' AND now()"),
        Pred::Between {
            column: "ts".into(),
            low: Operand::Arith {
                left: Box::new(Operand::Now),
                minus: true,
                right: Box::new(Operand::Interval(HOUR)),
            },
            high: Operand::Now,
            negated: true
        }
    );
    assert_eq!(
        filter("fee IS NULL"),
        Pred::IsNull {
            column: "fee".into(),
            negated: false
        }
    );
    assert_eq!(
        filter("fee IS NOT NULL"),
        Pred::IsNull {
            column: "fee".into(),
            negated: true
        }
    );
}

#[test]
fn order_by() {
    let q = query("SELECT price AS p, quantity FROM trades ORDER BY p DESC, quantity, ts ASC");
    assert_eq!(
        q.order_by,
        vec![key("p", true), key("quantity", false), key("ts", false)]
    );
    // Positions name select items' output names; with `*`, the table's columns.
    let q = query("SELECT price AS p, count(*) FROM trades GROUP BY price ORDER BY 2 DESC, 1");
    assert_eq!(q.order_by, vec![key("count(*)", true), key("p", false)]);
    let q = query("SELECT * FROM trades ORDER BY 2, 9 DESC");
    assert_eq!(q.order_by, vec![key("order_id", false), key("ts", true)]);
    // An aggregate by its call, a grouped column by its output name.
    let q = query(
        "SELECT instrument AS sym, vwap(price, quantity) FROM trades GROUP BY instrument \
         ORDER BY vwap(price, quantity) DESC, instrument",
    );
    assert_eq!(
        q.order_by,
        vec![key("vwap(price, quantity)", true), key("sym", false)]
    );
}

#[test]
fn limit_and_offset() {
    let q = query("SELECT * FROM trades LIMIT 10 OFFSET 20");
    assert_eq!(q.limit, Some(num("10")));
    assert_eq!(q.offset, Some(num("20")));
    let q = query("SELECT * FROM trades LIMIT $1 OFFSET $2");
    assert_eq!(q.limit, Some(Operand::Param(1)));
    assert_eq!(q.offset, Some(Operand::Param(2)));
    let q = query("SELECT * FROM trades LIMIT 99999999999999999999999999");
    assert_eq!(q.limit, Some(num("99999999999999999999999999")));
    assert_eq!(q.offset, None);
    let q = query("SELECT * FROM trades OFFSET 0");
    assert_eq!((q.limit, q.offset), (None, Some(num("0"))));
}

#[test]
fn latest_on() {
    let expected = Some(Latest {
        ts: "ts".into(),
        partition_by: vec!["instrument".into()],
    });
    let q = query("SELECT * FROM trades LATEST ON ts PARTITION BY instrument");
    assert_eq!(q.latest, expected);
    let q = query(
        "SELECT price FROM trades LATEST ON TS PARTITION BY Instrument WHERE side = 'buy' \
         ORDER BY price",
    );
    assert_eq!(q.latest, expected);
    assert_eq!(q.filter, cmp("side", CmpOp::Eq, text("buy")));
    assert_eq!(q.order_by, vec![key("price", false)]);
    let q = query(
        "SELECT * FROM positions WHERE quantity > 0 LATEST ON updated_ts \
         PARTITION BY account, \"instrument\" LIMIT 5",
    );
    assert_eq!(
        q.latest,
        Some(Latest {
            ts: "updated_ts".into(),
            partition_by: vec!["account".into(), "instrument".into()],
        })
    );
    assert_eq!(q.filter, cmp("quantity", CmpOp::Gt, num("0")));
    assert_eq!(q.limit, Some(num("5")));
}

#[test]
fn sample_by() {
    let q = query("SELECT instrument, vwap(price, quantity) FROM trades SAMPLE BY 1m");
    assert_eq!(
        q.select,
        vec![
            bucket("ts", MINUTE, Some("ts")),
            col("instrument"),
            agg(AggFunc::Vwap, &["price", "quantity"], None),
        ]
    );
    assert_eq!(
        q.group_by,
        vec![
            GroupKey::Bucket {
                column: "ts".into(),
                width_ns: MINUTE
            },
            GroupKey::Column("instrument".into()),
        ]
    );
    // After WHERE, before ORDER BY; the prepended bucket is named after the time column.
    let q = query(
        "SELECT count(*) FROM orders WHERE status = 'new' SAMPLE BY 1h30m ORDER BY created_ts DESC",
    );
    let width = HOUR + 30 * MINUTE;
    assert_eq!(
        q.select,
        vec![
            bucket("created_ts", width, Some("created_ts")),
            agg(AggFunc::Count, &[], None)
        ]
    );
    assert_eq!(
        q.group_by,
        vec![GroupKey::Bucket {
            column: "created_ts".into(),
            width_ns: width
        }]
    );
    assert_eq!(q.filter, cmp("status", CmpOp::Eq, text("new")));
    assert_eq!(q.order_by, vec![key("created_ts", true)]);
    // A bucket item already there is kept as written.
    let q = query("SELECT time_bucket('5s', ts) AS t5, sum(fee) FROM trades SAMPLE BY 5s");
    assert_eq!(
        q.select,
        vec![
            bucket("ts", 5_000_000_000, Some("t5")),
            agg(AggFunc::Sum, &["fee"], None)
        ]
    );
    // The time column named in the list is the bucket, where it is written (and with its
    // alias), not a group key of its raw value.
    let q = query("SELECT instrument, ts, count(*) FROM trades SAMPLE BY 1m");
    assert_eq!(
        q.select,
        vec![
            col("instrument"),
            bucket("ts", MINUTE, Some("ts")),
            agg(AggFunc::Count, &[], None)
        ]
    );
    assert_eq!(
        q.group_by,
        vec![
            GroupKey::Bucket {
                column: "ts".into(),
                width_ns: MINUTE
            },
            GroupKey::Column("instrument".into()),
        ]
    );
    let q = query("SELECT ts AS minute, count(*) FROM trades SAMPLE BY 1m");
    assert_eq!(q.select[0], bucket("ts", MINUTE, Some("minute")));
    assert_eq!(q.select.len(), 2);
    // With LATEST ON, on positions.
    let q = query(
        "SELECT sum(quantity) FROM positions LATEST ON updated_ts PARTITION BY account SAMPLE BY '1d'",
    );
    assert_eq!(
        q.select[0],
        bucket("updated_ts", 24 * HOUR, Some("updated_ts"))
    );
    assert!(q.latest.is_some());
}

#[test]
fn explain() {
    assert_eq!(
        parse("EXPLAIN SELECT * FROM trades").ok(),
        Some(Statement::Explain {
            analyze: false,
            query: Query::new(TableId::Trades)
        })
    );
    assert_eq!(
        parse("explain analyze SELECT * FROM cash LATEST ON account PARTITION BY currency").ok(),
        Some(Statement::Explain {
            analyze: true,
            query: Query {
                latest: Some(Latest {
                    ts: "account".into(),
                    partition_by: vec!["currency".into()]
                }),
                ..Query::new(TableId::Cash)
            }
        })
    );
}

#[test]
fn every_column_of_every_table_can_be_named() {
    for table in TableId::ALL {
        let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
        let list = names.join(", ");
        let conditions: Vec<String> = names.iter().map(|n| format!("{n} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT {list} FROM {table} WHERE {} ORDER BY {list}",
            conditions.join(" AND ")
        );
        let q = query(&sql);
        assert_eq!(
            q.select,
            names.iter().map(|n| col(n)).collect::<Vec<_>>(),
            "{sql}"
        );
        assert_eq!(q.order_by.len(), names.len(), "{sql}");
        let sql = format!("SELECT {} FROM {table}", list.to_uppercase());
        assert_eq!(query(&sql).select.len(), names.len(), "{sql}");
    }
}
