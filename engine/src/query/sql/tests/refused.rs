//! Statements outside the subset, refused with an error pointing at the offending part.

use super::*;

#[test]
fn unknown_names_point_at_them() {
    points(
        "SELECT pricee FROM trades",
        "unknown column \"pricee\" in table trades; the columns are id, order_id, account, \
         instrument, side, price, quantity, fee, ts",
        "pricee",
    );
    points(
        "SELECT * FROM trade",
        "unknown table \"trade\"; the tables are instruments, accounts, orders, trades, positions, cash",
        "trade",
    );
    points(
        "SELECT \"Price\" FROM trades",
        "unknown column \"Price\"",
        "\"Price\"",
    );
    points(
        "SELECT * FROM trades WHERE qty > 1",
        "unknown column \"qty\"",
        "qty",
    );
    let sql = "SELECT * FROM trades x WHERE y.price > 1";
    points_at(sql, "unknown table or alias \"y\"", 1, col_of(sql, "y."), 1);
    points(
        "SELECT sum(feee) FROM trades",
        "unknown column \"feee\"",
        "feee",
    );
    points(
        "SELECT * FROM trades ORDER BY nope",
        "unknown column \"nope\"",
        "nope",
    );
    points(
        "SELECT price FROM trades GROUP BY nope",
        "unknown column \"nope\"",
        "nope",
    );
    points(
        "SELECT * FROM trades LATEST ON tss PARTITION BY instrument",
        "unknown column \"tss\"",
        "tss",
    );
    points(
        "SELECT * FROM trades WHERE price > 1 LATEST ON ts PARTITION BY account, instrumen LIMIT 1",
        "unknown column \"instrumen\"",
        "instrumen",
    );
}

#[test]
fn other_tables_joins_and_subqueries() {
    points(
        "SELECT * FROM trades JOIN orders ON trades.order_id = orders.id",
        "joins are not supported",
        "JOIN",
    );
    points("SELECT * FROM trades, orders", "several tables", "orders");
    let sql = "SELECT * FROM (SELECT * FROM trades) AS x";
    points_at(
        sql,
        "subqueries are not supported",
        1,
        col_of(sql, "(") + 1,
        20,
    );
    points(
        "SELECT * FROM trades WHERE order_id IN (SELECT id FROM orders)",
        "subqueries are not supported",
        "SELECT id FROM orders",
    );
    points(
        "SELECT * FROM trades UNION SELECT * FROM trades",
        "UNION is not supported",
        "UNION",
    );
    points(
        "SELECT * FROM trades INTERSECT SELECT * FROM trades",
        "INTERSECT is not supported",
        "INTERSECT",
    );
    points(
        "WITH x AS (SELECT * FROM trades) SELECT * FROM x",
        "WITH (common table expressions) is not supported",
        "WITH",
    );
    points_at("SELECT 1", "add FROM <table>", 1, 9, 1);
}

#[test]
fn unsupported_clauses_point_at_their_keyword() {
    points(
        "SELECT instrument FROM trades GROUP BY instrument HAVING count(*) > 1",
        "HAVING is not supported",
        "HAVING",
    );
    points(
        "SELECT DISTINCT side FROM trades",
        "DISTINCT is not supported",
        "DISTINCT",
    );
    points(
        "SELECT count(*) OVER () FROM trades",
        "window functions",
        "count",
    );
    points(
        "SELECT foo(price) FROM trades",
        "unknown function \"foo\"",
        "foo",
    );
    points(
        "SELECT * FROM trades WHERE ts > yesterday()",
        "unknown function \"yesterday\"",
        "yesterday",
    );
    points(
        "SELECT * FROM trades WHERE sum(price) > 1",
        "aggregate sum() cannot be used in WHERE",
        "sum",
    );
    points("SELECT * FROM trades LIMIT -1", "non-negative integer", "1");
    points(
        "SELECT * FROM trades LIMIT 1.5",
        "non-negative integer",
        "1.5",
    );
    points(
        "SELECT * FROM trades LIMIT 5, 10",
        "LIMIT <count> OFFSET <skip>",
        "5",
    );
    points(
        "SELECT * FROM trades ORDER BY price NULLS FIRST",
        "NULLS FIRST",
        "NULLS",
    );
    points(
        "SELECT * FROM trades WHERE side LIKE 'b%'",
        "unsupported condition",
        "side LIKE 'b%'",
    );
}

#[test]
fn other_statements() {
    points(
        "INSERT INTO trades VALUES (1)",
        "INSERT statement is not supported",
        "INSERT",
    );
    points(
        "UPDATE trades SET price = 1",
        "UPDATE statement is not supported",
        "UPDATE",
    );
    points(
        "DELETE FROM trades",
        "DELETE statement is not supported",
        "DELETE",
    );
    points(
        "CREATE TABLE x (a INT)",
        "CREATE statement is not supported",
        "CREATE",
    );
    points(
        "DROP TABLE trades",
        "DROP statement is not supported",
        "DROP",
    );
    points(
        "EXPLAIN DELETE FROM trades",
        "EXPLAIN DELETE is not supported",
        "DELETE",
    );
    points_at(
        "SELECT * FROM trades; SELECT * FROM orders",
        "only one statement",
        1,
        23,
        6,
    );
    points_at(
        "SELECT * FROM trades; DELETE FROM trades",
        "only one statement",
        1,
        23,
        6,
    );
}

#[test]
fn columns_are_compared_with_values_only() {
    points(
        "SELECT * FROM trades WHERE price = fee",
        "comparisons between two columns",
        "price = fee",
    );
    points(
        "SELECT * FROM trades WHERE price + 1 > 5",
        "arithmetic on columns is not supported",
        "price + 1",
    );
    points(
        "SELECT * FROM trades WHERE price > fee - 1",
        "arithmetic on columns is not supported",
        "fee - 1",
    );
    points(
        "SELECT * FROM trades WHERE price BETWEEN 1 AND fee",
        "not a column",
        "fee",
    );
    points(
        "SELECT * FROM trades WHERE 1 = 1",
        "needs a column on one side",
        "1 = 1",
    );
    points(
        "SELECT price * 2 FROM trades",
        "arithmetic on columns",
        "price * 2",
    );
    points(
        "SELECT sum(price * quantity) FROM trades",
        "must be columns",
        "price * quantity",
    );
    points(
        "SELECT * FROM trades WHERE price > 2 * 3",
        "only + and - are",
        "2 * 3",
    );
}

#[test]
fn values_and_parameters() {
    points(
        "SELECT * FROM trades WHERE price > $0",
        "numbered from $1",
        "$0",
    );
    points("SELECT * FROM trades WHERE price > ?", "instead of ?", "?");
    points("SELECT * FROM trades LIMIT $0", "numbered from $1", "$0");
    points(
        "SELECT * FROM trades WHERE ts > now() - interval '1 fortnight'",
        "invalid interval \"1 fortnight\"",
        "'1 fortnight'",
    );
    points(
        "SELECT time_bucket('soon', ts), count(*) FROM trades GROUP BY 1",
        "invalid interval \"soon\"",
        "'soon'",
    );
    points(
        "SELECT time_bucket('1m', price) FROM trades",
        "needs a timestamp column",
        "price",
    );
    points(
        "SELECT vwap(price) FROM trades",
        "vwap takes two columns",
        "vwap",
    );
    points(
        "SELECT sum(*) FROM trades",
        "sum(*) is not supported",
        "sum",
    );
    points(
        "SELECT * FROM trades WHERE side = TRUE",
        "no column holds booleans",
        "TRUE",
    );
}

#[test]
fn grouping_is_validated() {
    points(
        "SELECT instrument, price, count(*) FROM trades GROUP BY instrument",
        "column \"price\" must be a GROUP BY key",
        "price",
    );
    points(
        "SELECT price, sum(quantity) FROM trades",
        "column \"price\" must be a GROUP BY key",
        "price",
    );
    points(
        "SELECT * FROM trades GROUP BY instrument",
        "* cannot be combined",
        "*",
    );
    points(
        "SELECT *, count(*) FROM trades",
        "* cannot be combined",
        "*",
    );
    points(
        "SELECT time_bucket('1m', ts), count(*) FROM trades",
        "must also be a GROUP BY key",
        "time_bucket('1m', ts)",
    );
    points(
        "SELECT count(*) FROM trades GROUP BY 2",
        "there is no select item 2",
        "2",
    );
    let sql = "SELECT count(*) AS n FROM trades GROUP BY n";
    points_at(sql, "aggregates cannot be GROUP BY keys", 1, sql.len(), 1);
    points(
        "SELECT instrument, count(*) FROM trades GROUP BY instrument ORDER BY price",
        "not an output of this aggregate query",
        "price",
    );
    points(
        "SELECT instrument FROM trades GROUP BY instrument ORDER BY sum(fee)",
        "only when it is also selected",
        "sum(fee)",
    );
}

#[test]
fn questdb_clauses_are_validated() {
    points(
        "SELECT * FROM trades SAMPLE BY 1m",
        "* cannot be combined",
        "*",
    );
    points(
        "SELECT price FROM trades SAMPLE BY 1m",
        "SAMPLE BY needs at least one aggregate",
        "SAMPLE BY 1m",
    );
    points(
        "SELECT count(*) FROM accounts SAMPLE BY 1m",
        "table accounts has no time column",
        "SAMPLE BY 1m",
    );
    points(
        "SELECT count(*) FROM trades SAMPLE BY 1fortnight",
        "invalid SAMPLE BY interval",
        "1fortnight",
    );
    points(
        "SELECT count(*) FROM trades SAMPLE BY soon",
        "expected an interval after SAMPLE BY",
        "soon",
    );
    points(
        "SELECT instrument, count(*) FROM trades SAMPLE BY 1m GROUP BY instrument",
        "SAMPLE BY cannot be combined with GROUP BY",
        "GROUP",
    );
    points(
        "SELECT count(*) FROM trades SAMPLE BY 1m WHERE price > 1",
        "unexpected WHERE after SAMPLE BY",
        "WHERE",
    );
    points(
        "SELECT time_bucket('1h', ts), count(*) FROM trades SAMPLE BY 1m",
        "differs from the SAMPLE BY bucket",
        "time_bucket('1h', ts)",
    );
    points(
        "SELECT * FROM trades LIMIT 5 LATEST ON ts PARTITION BY instrument",
        "LATEST ON must follow the table name or the WHERE clause",
        "LATEST ON",
    );
    points(
        "SELECT * LATEST ON ts PARTITION BY instrument FROM trades",
        "LATEST ON must follow",
        "LATEST ON",
    );
    points(
        "SELECT * FROM trades LATEST ON ts ORDER BY ts",
        "expected PARTITION BY after LATEST ON ts",
        "ORDER",
    );
    points(
        "SELECT * FROM trades LATEST ON ts PARTITION BY instrument AND price > 1",
        "unexpected AND after LATEST ON",
        "AND",
    );
    let sql = "SELECT * FROM trades LATEST ON ts PARTITION BY a LATEST ON ts PARTITION BY b";
    let second = col_of(sql, "LATEST ON ts PARTITION BY b");
    points_at(sql, "LATEST ON is written twice", 1, second, 9);
    // Inside parentheses the clauses are not taken out, and the parser refuses them.
    points(
        "SELECT * FROM trades WHERE (price > 1 SAMPLE BY 1m)",
        "syntax error",
        "SAMPLE",
    );
}

#[test]
fn syntax_errors_are_pointed() {
    points_at(
        "SELECT * FROM trades WHERE price = = 1",
        "syntax error: Expected: an expression, found: =",
        1,
        36,
        1,
    );
    points("SELECT * FRM trades", "syntax error", "FRM");
    // A missing part is pointed just past the end.
    points_at("SELECT * FROM trades WHERE", "syntax error", 1, 27, 1);
    points_at(
        "SELECT * FROM trades WHERE price = 'abc",
        "Unterminated string literal",
        1,
        36,
        1,
    );
    points_at("", "empty statement", 1, 1, 1);
    points_at("  -- nothing here", "empty statement", 1, 1, 1);
    points_at(";", "empty statement", 1, 1, 1);
}

#[test]
fn multi_line_and_wide_text_keep_exact_positions() {
    // Line 3; the clause taken out of line 2 does not shift anything.
    points_at(
        "SELECT price\nFROM trades LATEST ON ts PARTITION BY instrument\nWHERE pricee > 1",
        "unknown column \"pricee\"",
        3,
        7,
        6,
    );
    // Columns count characters, not bytes.
    points(
        "SELECT * FROM trades WHERE side = 'äöü' AND sidé = 'x'",
        "unknown column \"sidé\"",
        "sidé",
    );
    // Tabs are shown as spaces so the carets stay aligned.
    let m = refused("SELECT *\tFROM trades\tWHERE nope = 1");
    let expected = format!(
        "  SELECT * FROM trades WHERE nope = 1\n  {}^^^^",
        " ".repeat(27)
    );
    assert!(m.ends_with(&expected), "{m}");
    // A span over several lines is underlined to the end of its first line.
    points_at(
        "SELECT * FROM trades WHERE price =\n fee",
        "comparisons between two columns",
        1,
        28,
        7,
    );
    // CRLF line ends.
    points_at(
        "SELECT *\r\nFROM trades\r\nWHERE x = 1",
        "unknown column \"x\"",
        3,
        7,
        1,
    );
}

#[test]
fn long_lines_are_shown_as_a_window() {
    let padding = "price > 0 AND ".repeat(40);
    let sql = format!("SELECT * FROM trades WHERE {padding}nope = 1 AND {padding}price > 0");
    let m = refused(&sql);
    let lines: Vec<&str> = m.lines().collect();
    let (shown, carets) = (lines[lines.len() - 2], lines[lines.len() - 1]);
    assert!(shown.len() < 150, "{m}");
    assert!(shown.starts_with("  ...") && shown.ends_with("..."), "{m}");
    let at = carets.find('^').expect("carets");
    assert_eq!(&shown[at..at + 4], "nope", "{m}");
    assert_eq!(carets.trim(), "^^^^");
}

#[test]
fn hostile_input_never_panics() {
    // Deep parentheses hit the parser's recursion limit.
    let deep = format!(
        "SELECT * FROM trades WHERE {}price = 1{}",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(refused(&deep).contains("nests too deeply"));
    let deep = format!(
        "SELECT * FROM trades WHERE {}price = 1",
        "NOT ".repeat(5000)
    );
    refused(&deep);
    let deep = format!("SELECT * FROM trades WHERE price = {}1", "-".repeat(5000));
    refused(&deep);
    // Long operator chains (which nest without parentheses) are bounded.
    let long = format!(
        "SELECT * FROM trades WHERE price = 1{}",
        " + 1".repeat(5000)
    );
    assert!(refused(&long).contains("too long"));
    let long = format!(
        "SELECT * FROM trades WHERE price = 1{}",
        " AND price = 1".repeat(5000)
    );
    assert!(refused(&long).contains("too long"));
    // So are IN lists, by their values; one at the bound is taken.
    let max = crate::query::sql::clauses::MAX_VALUES;
    let list = |n: usize| {
        let v: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        format!("SELECT * FROM trades WHERE id IN ({})", v.join(", "))
    };
    assert!(refused(&list(max + 1)).contains("more than 10000 values"));
    let q = query(&list(max));
    assert!(matches!(&q.filter, Pred::In { values, .. } if values.len() == max));
    // Just under the bound, the chains are converted.
    let n = crate::query::sql::clauses::MAX_OPERATORS - 10;
    let q = query(&format!(
        "SELECT * FROM trades WHERE price = 1{}",
        " + 1".repeat(n)
    ));
    assert!(matches!(q.filter, Pred::Cmp { .. }));
    let q = query(&format!(
        "SELECT * FROM trades WHERE price = 1{}",
        " OR price = 1".repeat(n / 2 - 5)
    ));
    assert!(matches!(q.filter, Pred::Or(ref v) if v.len() == n / 2 - 4));
    // Column names that are SQL keywords (`id`, `account`) are names, not operators: the
    // same chain over them is taken as over `price`.
    for column in ["id", "account"] {
        let q = query(&format!(
            "SELECT * FROM trades WHERE {column} > 0{}",
            format!(" OR {column} > 0").repeat(n / 2 - 5)
        ));
        assert!(
            matches!(q.filter, Pred::Or(ref v) if v.len() == n / 2 - 4),
            "{column}"
        );
    }
    // A lone LATEST is a table alias.
    assert!(parse("SELECT * FROM trades LATEST").is_ok());
    for sql in [
        "SELECT",
        "SELECT * FROM",
        "SELECT * FROM trades WHERE price IN ()",
        "SELECT * FROM trades LATEST ON",
        "SELECT * FROM trades LATEST ON ts PARTITION",
        "SELECT * FROM trades LATEST ON ts PARTITION BY",
        "SELECT * FROM trades LATEST ON ts PARTITION BY a,",
        "SELECT count(*) FROM trades SAMPLE BY",
        "SELECT count(*) FROM trades SAMPLE BY 99999999999999999999999d",
        "SELECT * FROM trades WHERE price = $99999999999999999999999",
        "\u{0}\u{1}\u{7f}",
        "'",
        "\"",
        "SELECT * FROM trades WHERE ts > interval",
        "SELECT * FROM trades WHERE ts > interval 'x' hour to minute",
        ")))",
        "SELECT count(DISTINCT price) FROM trades",
        "SELECT count(price ORDER BY price) FROM trades",
        "SELECT * FROM trades t(a, b)",
        "SELECT * FROM trades TABLESAMPLE (10)",
        "SELECT * FROM a.trades",
        "SELECT * FROM generate_series(1, 2)",
        "SELECT * FROM trades ORDER BY 0",
        "SELECT * FROM trades ORDER BY 99999999999999999999999",
        "SELECT * FROM trades FETCH FIRST 1 ROWS ONLY",
        "SELECT * FROM trades FOR UPDATE",
        "SELECT TOP 5 * FROM trades",
        "SELECT * FROM trades WHERE price = 1 LIMIT 1 LATEST ON ts PARTITION BY x",
        "EXPLAIN VERBOSE SELECT * FROM trades",
        "DESCRIBE trades",
        "SHOW TABLES",
        "VALUES (1)",
    ] {
        let _ = refused(sql);
    }
}
