//! Dumps and restores: a dump restored into a fresh store dumps to the same bytes; a dump
//! with a bad line anywhere is refused with an error naming the line and leaves the target
//! store exactly as it was; hand-edited dumps are restored only when they are consistent,
//! so whatever restore lets in, the consistency check finds clean.

use serde_json::{Value as Json, json};
use tradestore::{ErrorKind, dump};
use tradestore_schema::{Cash, Side, TableId};
use tradestore_tests::{
    ACME, TempStore, TestResult, account, assert_clean, dump_bytes, expect_err, fill, instrument,
    limit, money, restore_bytes, seed, workload,
};

/// A store with some of everything: the seed data, a short workload, and a partly filled
/// sell order of a new account.
fn source(txns: usize) -> TestResult<TempStore> {
    let store = TempStore::new()?;
    seed(&store)?;
    workload(&store, 5, txns)?;
    store.write(|tx| {
        let acct = tx.next_id(TableId::Accounts)?;
        tx.insert(&account(acct, "partial"))?;
        let o = limit(
            tx.next_id(TableId::Orders)?,
            acct,
            ACME,
            Side::Sell,
            10,
            "100",
        );
        tx.insert(&o)?;
        let t = tx.next_id(TableId::Trades)?;
        tx.record_fill(&fill(t, &o, 3, "100.5", "0.1", 9999))
            .map(|_| ())
    })?;
    Ok(store)
}

/// A store with data of its own, under ids (100 and up) and symbols the sources never use,
/// so a good dump restores into it without clashes.
fn target() -> TestResult<TempStore> {
    let store = TempStore::new()?;
    store.write(|tx| {
        tx.insert(&instrument(100, "T100", "USD"))?;
        tx.insert(&account(100, "target"))?;
        let o = limit(100, 100, 100, Side::Buy, 5, "10");
        tx.insert(&o)?;
        tx.record_fill(&fill(1000, &o, 2, "10", "0.01", 50))?;
        tx.put(&Cash {
            account: 100,
            currency: "GBP".into(),
            amount: money("7"),
        })
        .map(|_| ())
    })?;
    Ok(store)
}

/// The row lines of a dump: every line but the end line, which must be last and count them.
fn lines_of(dump: &[u8]) -> TestResult<Vec<String>> {
    let mut lines: Vec<String> = std::str::from_utf8(dump)?
        .lines()
        .map(str::to_owned)
        .collect();
    let end = lines.pop().ok_or("an empty dump (no end line)")?;
    assert_eq!(end, dump::end_line(lines.len() as u64));
    Ok(lines)
}

/// A dump of row lines, with its end line.
fn join(lines: &[String]) -> Vec<u8> {
    let mut out = join_rows(lines);
    out.extend_from_slice(dump::end_line(lines.len() as u64).as_bytes());
    out.push(b'\n');
    out
}

/// Row lines, without an end line.
fn join_rows(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

fn table_of(line: &str) -> TestResult<String> {
    let v: Json = serde_json::from_str(line)?;
    Ok(v["table"].as_str().ok_or("no table")?.to_owned())
}

/// `line` with its JSON changed by `edit`.
fn edited(line: &str, edit: impl FnOnce(&mut Json)) -> TestResult<String> {
    let mut v: Json = serde_json::from_str(line)?;
    edit(&mut v);
    Ok(v.to_string())
}

fn add(v: &mut Json, field: &str, delta: i64) {
    let old = v["record"][field].as_i64().unwrap_or_default();
    v["record"][field] = json!(old + delta);
}

#[test]
fn dump_restore_dump_is_byte_identical() -> TestResult {
    let store = source(40)?;
    let first = dump_bytes(&store)?;
    let lines = lines_of(&first)?;
    assert!(lines.len() > 60, "only {} rows", lines.len());
    for table in [
        "instruments",
        "accounts",
        "orders",
        "trades",
        "positions",
        "cash",
    ] {
        let n = lines
            .iter()
            .filter(|l| table_of(l).is_ok_and(|t| t == table))
            .count();
        assert!(n > 0, "no {table} in the dump");
    }

    let copy = TempStore::new()?;
    let summary = restore_bytes(&copy, &first)?;
    assert_eq!(summary.total, lines.len() as u64);
    assert_eq!(dump_bytes(&copy)?, first);
    assert_clean(&copy)?;
    // A second dump of the source, and the copy after a reopen, are the same bytes too.
    assert_eq!(dump_bytes(&store)?, first);
    let copy = copy.reopen()?;
    assert_eq!(dump_bytes(&copy)?, first);

    // Line endings and blank lines do not matter.
    let crlf = String::from_utf8(first.clone())?.replace('\n', "\r\n\n");
    let other = TempStore::new()?;
    restore_bytes(&other, crlf.as_bytes())?;
    assert_eq!(dump_bytes(&other)?, first);

    // An empty store dumps to its end line alone, which restores nothing; an empty file
    // is refused, unless the end line is not checked.
    let empty = TempStore::new()?;
    assert_eq!(dump_bytes(&empty)?, b"{\"end\":{\"rows\":0}}\n");
    assert_eq!(restore_bytes(&empty, &dump_bytes(&empty)?)?.total, 0);
    let err = expect_err(restore_bytes(&empty, b""), ErrorKind::Invalid)?;
    assert!(err.message().contains("no end line"), "{err}");
    let unchecked = dump::RestoreOptions { check_end: false };
    let summary = dump::restore_with(&empty, &mut &b""[..], unchecked, &mut |_| {})?;
    assert_eq!(summary.total, 0);
    Ok(())
}

#[test]
fn restore_adds_to_a_store_with_data() -> TestResult {
    let src = source(10)?;
    let dump = dump_bytes(&src)?;
    let store = target()?;
    let own = dump_bytes(&store)?;
    restore_bytes(&store, &dump)?;
    assert_clean(&store)?;
    let mut expected: Vec<String> = lines_of(&dump)?;
    expected.extend(lines_of(&own)?);
    expected.sort();
    let mut merged = lines_of(&dump_bytes(&store)?)?;
    merged.sort();
    assert_eq!(merged, expected);
    // Restoring the same dump again clashes on its first line and changes nothing.
    let before = dump_bytes(&store)?;
    let err = expect_err(restore_bytes(&store, &dump), ErrorKind::Constraint)?;
    assert!(err.message().contains("line 1:"), "{err}");
    assert_eq!(dump_bytes(&store)?, before);
    Ok(())
}

/// One way to damage line `i` (0-based) of a dump: the damaged dump, the 1-based line the
/// error must name and the kind of error, or `None` when it does not apply to that line.
type Damage = fn(&[String], usize) -> TestResult<Option<(Vec<u8>, usize, ErrorKind)>>;

fn replace_line(lines: &[String], i: usize, new: String) -> Vec<u8> {
    let mut out = lines.to_vec();
    out[i] = new;
    join(&out)
}

const DAMAGES: &[(&str, Damage)] = &[
    ("bad JSON", |lines, i| {
        let l = &lines[i];
        Ok(Some((
            replace_line(lines, i, l[..l.len() - 1].to_owned()),
            i + 1,
            ErrorKind::Invalid,
        )))
    }),
    ("not JSON at all", |lines, i| {
        Ok(Some((
            replace_line(lines, i, "hello".into()),
            i + 1,
            ErrorKind::Invalid,
        )))
    }),
    ("unknown table", |lines, i| {
        let l = edited(&lines[i], |v| v["table"] = json!("widgets"))?;
        Ok(Some((replace_line(lines, i, l), i + 1, ErrorKind::Invalid)))
    }),
    ("unknown field", |lines, i| {
        let l = edited(&lines[i], |v| v["record"]["colour"] = json!("red"))?;
        Ok(Some((replace_line(lines, i, l), i + 1, ErrorKind::Invalid)))
    }),
    ("missing field", |lines, i| {
        let l = edited(&lines[i], |v| {
            if let Some(r) = v["record"].as_object_mut() {
                let first = r.keys().next().cloned().unwrap_or_default();
                r.remove(&first);
            }
        })?;
        Ok(Some((replace_line(lines, i, l), i + 1, ErrorKind::Invalid)))
    }),
    ("wrong type", |lines, i| {
        let l = edited(&lines[i], |v| {
            if let Some(r) = v["record"].as_object_mut()
                && let Some(first) = r.values_mut().next()
            {
                *first = json!([1]);
            }
        })?;
        Ok(Some((replace_line(lines, i, l), i + 1, ErrorKind::Invalid)))
    }),
    ("foreign key to nothing", |lines, i| {
        let column = match table_of(&lines[i])?.as_str() {
            "orders" | "cash" => "account",
            "trades" => "order_id",
            "positions" => "instrument",
            _ => return Ok(None),
        };
        let l = edited(&lines[i], |v| v["record"][column] = json!(999))?;
        Ok(Some((
            replace_line(lines, i, l),
            i + 1,
            ErrorKind::Constraint,
        )))
    }),
    ("inconsistent position", |lines, i| {
        if table_of(&lines[i])? != "positions" {
            return Ok(None);
        }
        let l = edited(&lines[i], |v| add(v, "quantity", 100_000_000))?;
        Ok(Some((
            replace_line(lines, i, l),
            i + 1,
            ErrorKind::Constraint,
        )))
    }),
    ("inconsistent cost basis", |lines, i| {
        if table_of(&lines[i])? != "positions" {
            return Ok(None);
        }
        let l = edited(&lines[i], |v| add(v, "cost_basis", 1))?;
        Ok(Some((
            replace_line(lines, i, l),
            i + 1,
            ErrorKind::Constraint,
        )))
    }),
    ("filled quantity not the sum of the fills", |lines, i| {
        if table_of(&lines[i])? != "orders" {
            return Ok(None);
        }
        let l = edited(&lines[i], |v| add(v, "filled_quantity", 1))?;
        Ok(Some((
            replace_line(lines, i, l),
            i + 1,
            ErrorKind::Constraint,
        )))
    }),
    ("duplicate key", |lines, i| {
        let mut out = lines.to_vec();
        out.insert(i + 1, lines[i].clone());
        Ok(Some((join(&out), i + 2, ErrorKind::Constraint)))
    }),
    ("duplicate key, edited", |lines, i| {
        if table_of(&lines[i])? != "cash" {
            return Ok(None);
        }
        let mut out = lines.to_vec();
        out.push(edited(&lines[i], |v| add(v, "amount", 1))?);
        Ok(Some((join(&out), out.len(), ErrorKind::Constraint)))
    }),
    ("truncated in the middle of the line", |lines, i| {
        let mut bytes = join_rows(&lines[..i]);
        let l = lines[i].as_bytes();
        bytes.extend_from_slice(&l[..l.len() / 2]);
        Ok(Some((bytes, i + 1, ErrorKind::Invalid)))
    }),
];

#[test]
fn a_bad_line_anywhere_is_refused_and_named() -> TestResult {
    let src = source(8)?;
    let lines = lines_of(&dump_bytes(&src)?)?;
    let store = target()?;
    let before = dump_bytes(&store)?;
    let mut tried = 0;
    for i in 0..lines.len() {
        for (what, damage) in DAMAGES {
            let Some((bytes, line, kind)) = damage(&lines, i)? else {
                continue;
            };
            tried += 1;
            let context = format!("{what} at line {}: {}", i + 1, lines[i]);
            let err = expect_err(restore_bytes(&store, &bytes), kind)
                .map_err(|e| format!("{context}: {e}"))?;
            assert!(
                err.message().starts_with(&format!("line {line}:")),
                "{context}: the error names the wrong line: {err}"
            );
            assert!(
                dump_bytes(&store)? == before,
                "{context}: the target changed"
            );
        }
    }
    assert!(tried > 300, "only {tried} damaged dumps");
    // The undamaged dump restores, so each refusal above was for the damage.
    restore_bytes(&store, &join(&lines))?;
    assert_clean(&store)
}

/// A dump's end line counts its rows: a dump cut short at any line boundary (still valid
/// JSON Lines), with rows added or removed, or joined to another, is refused and changes
/// nothing; unchecked, end lines are skipped and rows load.
#[test]
fn the_end_line_catches_a_dump_cut_short_or_edited() -> TestResult {
    let src = source(4)?;
    let lines = lines_of(&dump_bytes(&src)?)?;
    let store = target()?;
    let before = dump_bytes(&store)?;
    let refused = |bytes: &[u8], wanted: &str| -> TestResult {
        let err = expect_err(restore_bytes(&store, bytes), ErrorKind::Invalid)?;
        assert!(err.message().contains(wanted), "{wanted}: {err}");
        assert!(
            dump_bytes(&store)? == before,
            "{wanted}: the target changed"
        );
        Ok(())
    };
    // Cut short at every line boundary: each prefix is a consistent-looking dump of fewer
    // rows (some restore without the check, which is the point of the end line).
    for i in 0..=lines.len() {
        refused(
            &join_rows(&lines[..i]),
            &format!("the dump ({i} rows) has no end line"),
        )?;
    }
    // A row removed, or one added, keeps the old end line's count.
    let mut fewer = join_rows(&lines[1..]);
    fewer.extend_from_slice(format!("{}\n", dump::end_line(lines.len() as u64)).as_bytes());
    refused(&fewer, "the end line counts")?;
    // Two dumps joined: the rows after the first end line.
    let mut twice = join(&lines[..3]);
    twice.extend_from_slice(&join(&lines[3..]));
    refused(&twice, "a row after the dump's end line (line 4)")?;
    let mut two_ends = join(&lines);
    two_ends.extend_from_slice(&join(&[]));
    refused(&two_ends, "a second end line")?;
    let mut garbled = join_rows(&lines);
    garbled.extend_from_slice(b"{\"end\":{\"rows\":\"many\"}}\n");
    refused(&garbled, "a malformed end line")?;

    // Unchecked, end lines anywhere are skipped: the joined dump loads all its rows.
    let unchecked = dump::RestoreOptions { check_end: false };
    let summary = dump::restore_with(&store, &mut &twice[..], unchecked, &mut |_| {})?;
    assert_eq!(summary.total, lines.len() as u64);
    assert_clean(&store)
}

/// A dump whose rows would take more memory than `restore_max_mb` is refused while it is
/// read (it stops reading), and nothing is written; within the limit the same rows load.
#[test]
fn a_dump_over_the_restore_memory_limit_is_refused_and_changes_nothing() -> TestResult {
    let config = tradestore::Config {
        restore_max_mb: 16,
        ..tradestore::Config::default()
    };
    let store = TempStore::with_config(config)?;
    let before = dump_bytes(&store)?;
    // About 150 bytes held per account row: 16 MiB is passed after about 110k rows.
    let n = 150_000u64;
    let order: Vec<u64> = (1..=n).collect();
    let err = expect_err(
        restore_bytes(&store, &join(&account_lines(&order))),
        ErrorKind::Capacity,
    )?;
    assert!(err.message().contains("restore_max_mb = 16 MiB"), "{err}");
    assert_eq!(dump_bytes(&store)?, before);
    let summary = restore_bytes(&store, &join(&account_lines(&order[..10_000])))?;
    assert_eq!(summary.total, 10_000);
    Ok(())
}

#[test]
fn an_overlong_line_is_refused_and_named() -> TestResult {
    let store = target()?;
    let before = dump_bytes(&store)?;
    let mut dump = String::from(
        "{\"table\":\"accounts\",\"record\":{\"id\":1,\"name\":\"a\",\"status\":\"active\"}}\n",
    );
    dump.push_str(&" ".repeat(tradestore::dump::MAX_LINE_BYTES + 1));
    dump.push('\n');
    let err = expect_err(restore_bytes(&store, dump.as_bytes()), ErrorKind::Invalid)?;
    assert!(err.message().starts_with("line 2:"), "{err}");
    assert_eq!(dump_bytes(&store)?, before);
    Ok(())
}

/// A hand edit of a dump: what it does, how, and whether the result is consistent (`None`
/// when the test does not prescribe it).
struct Edit {
    what: &'static str,
    apply: fn(&mut Vec<String>) -> TestResult<bool>,
    consistent: Option<bool>,
}

/// Edits the first line of `table` that `pick` accepts; false when there is none.
fn edit_first(
    lines: &mut [String],
    table: &str,
    pick: impl Fn(&Json) -> bool,
    edit: impl FnOnce(&mut Json),
) -> TestResult<bool> {
    for l in lines.iter_mut() {
        let v: Json = serde_json::from_str(l)?;
        if v["table"] == table && pick(&v["record"]) {
            let mut v = v;
            edit(&mut v);
            *l = v.to_string();
            return Ok(true);
        }
    }
    Ok(false)
}

fn remove_first(
    lines: &mut Vec<String>,
    table: &str,
    pick: impl Fn(&Json) -> bool,
) -> TestResult<bool> {
    for (i, l) in lines.iter().enumerate() {
        let v: Json = serde_json::from_str(l)?;
        if v["table"] == table && pick(&v["record"]) {
            lines.remove(i);
            return Ok(true);
        }
    }
    Ok(false)
}

fn any(_: &Json) -> bool {
    true
}

const EDITS: &[Edit] = &[
    Edit {
        what: "rename an account",
        apply: |l| {
            edit_first(l, "accounts", any, |v| {
                v["record"]["name"] = json!("renamed")
            })
        },
        consistent: Some(true),
    },
    Edit {
        what: "change a cash balance",
        apply: |l| edit_first(l, "cash", any, |v| add(v, "amount", 12_345)),
        consistent: Some(true),
    },
    Edit {
        what: "add a flat position without fills",
        apply: |l| {
            let acct = json!({"table": "accounts", "record": {"id": 500, "name": "flat",
                "status": "closed"}});
            l.insert(0, acct.to_string());
            let position = json!({"table": "positions", "record": {"account": 500,
                "instrument": 1, "quantity": 0, "cost_basis": 0, "realized_pnl": 0,
                "updated_ts": 0, "last_trade_id": 0}});
            l.push(position.to_string());
            Ok(true)
        },
        consistent: Some(true),
    },
    Edit {
        what: "raise a position's quantity",
        apply: |l| edit_first(l, "positions", any, |v| add(v, "quantity", 100_000_000)),
        consistent: Some(false),
    },
    Edit {
        what: "change a position's realised P&L",
        apply: |l| edit_first(l, "positions", any, |v| add(v, "realized_pnl", -1)),
        consistent: Some(false),
    },
    Edit {
        what: "drop a position",
        apply: |l| remove_first(l, "positions", any),
        consistent: Some(false),
    },
    Edit {
        what: "give a fill a bigger fee",
        apply: |l| edit_first(l, "trades", any, |v| add(v, "fee", 1)),
        consistent: Some(false),
    },
    Edit {
        what: "drop a fill",
        apply: |l| remove_first(l, "trades", any),
        consistent: Some(false),
    },
    Edit {
        what: "raise a fill's quantity",
        apply: |l| edit_first(l, "trades", any, |v| add(v, "quantity", 100_000_000)),
        consistent: Some(false),
    },
    Edit {
        what: "drop a filled order",
        apply: |l| remove_first(l, "orders", |r| r["filled_quantity"] != 0),
        consistent: Some(false),
    },
    Edit {
        what: "mark a partly filled order new",
        apply: |l| {
            edit_first(
                l,
                "orders",
                |r| r["status"] == "partially_filled",
                |v| {
                    v["record"]["status"] = json!("new");
                },
            )
        },
        consistent: Some(false),
    },
    Edit {
        what: "reset an order's filled quantity",
        apply: |l| {
            edit_first(
                l,
                "orders",
                |r| r["status"] == "partially_filled",
                |v| {
                    v["record"]["filled_quantity"] = json!(0);
                    v["record"]["status"] = json!("new");
                },
            )
        },
        consistent: Some(false),
    },
    Edit {
        what: "list a fill before its order",
        apply: |l| {
            let Some(t) = l
                .iter()
                .position(|x| x.starts_with("{\"table\":\"trades\""))
            else {
                return Ok(false);
            };
            let line = l.remove(t);
            l.insert(0, line);
            Ok(true)
        },
        consistent: Some(false),
    },
    Edit {
        what: "an instrument with orders and a tick size of 0",
        apply: |l| {
            edit_first(
                l,
                "instruments",
                |r| r["id"] == 1,
                |v| v["record"]["tick_size"] = json!(0),
            )
        },
        consistent: Some(false),
    },
    Edit {
        what: "an instrument with fills and a lot size of 0",
        apply: |l| {
            edit_first(
                l,
                "instruments",
                |r| r["id"] == 1,
                |v| v["record"]["lot_size"] = json!(0),
            )
        },
        consistent: Some(false),
    },
    Edit {
        what: "two instruments with one symbol",
        apply: |l| {
            edit_first(
                l,
                "instruments",
                |r| r["id"] == 2,
                |v| v["record"]["symbol"] = json!("ACME"),
            )
        },
        consistent: Some(false),
    },
    Edit {
        what: "an order off its instrument's tick",
        apply: |l| edit_first(l, "orders", |r| r["price"].is_i64(), |v| add(v, "price", 1)),
        consistent: Some(false),
    },
    Edit {
        what: "move a filled order's limit by a tick",
        apply: |l| {
            edit_first(
                l,
                "orders",
                |r| r["filled_quantity"] != 0 && r["price"].is_i64() && r["instrument"] == 1,
                |v| {
                    add(v, "price", 1_000_000);
                },
            )
        },
        consistent: None,
    },
    Edit {
        what: "change a position's updated_ts",
        apply: |l| edit_first(l, "positions", any, |v| add(v, "updated_ts", 1)),
        consistent: None,
    },
];

#[test]
fn restore_accepts_exactly_the_edits_check_accepts() -> TestResult {
    let src = source(12)?;
    let lines = lines_of(&dump_bytes(&src)?)?;
    for edit in EDITS {
        let mut edited_lines = lines.clone();
        assert!(
            (edit.apply)(&mut edited_lines)?,
            "{}: nothing to edit",
            edit.what
        );
        let store = target()?;
        let before = dump_bytes(&store)?;
        match restore_bytes(&store, &join(&edited_lines)) {
            Ok(_) => {
                assert_ne!(edit.consistent, Some(false), "{}: restored", edit.what);
                // Whatever restore lets in, the check finds clean, stored as given.
                assert_clean(&store).map_err(|e| format!("{}: {e}", edit.what))?;
                let now = dump_bytes(&store)?;
                let stored = lines_of(&now)?;
                for l in &edited_lines {
                    let canonical =
                        tradestore::dump::format_line(&tradestore::dump::parse_line(l)?);
                    assert!(stored.contains(&canonical), "{}: {l} not stored", edit.what);
                }
            }
            Err(e) => {
                assert_ne!(edit.consistent, Some(true), "{}: refused: {e}", edit.what);
                assert!(
                    matches!(e.kind(), ErrorKind::Constraint | ErrorKind::Invalid),
                    "{}: {e}",
                    edit.what
                );
                assert!(
                    dump_bytes(&store)? == before,
                    "{}: the target changed",
                    edit.what
                );
            }
        }
    }
    Ok(())
}

#[test]
fn a_value_a_unique_index_has_in_the_store_is_refused() -> TestResult {
    let store = target()?;
    let before = dump_bytes(&store)?;
    // The target has instrument 100 with symbol T100; a new id with that symbol clashes.
    let line = edited(&lines_of(&dump_bytes(&store)?)?[0], |v| {
        v["record"]["id"] = json!(7);
    })?;
    let dump = join(&[
        "{\"table\":\"accounts\",\"record\":{\"id\":9,\"name\":\"n\",\"status\":\"active\"}}"
            .into(),
        line,
    ]);
    let err = expect_err(restore_bytes(&store, &dump), ErrorKind::Constraint)?;
    assert!(err.message().starts_with("line 2:"), "{err}");
    assert!(err.message().contains("unique index"), "{err}");
    assert_eq!(dump_bytes(&store)?, before);
    Ok(())
}

/// Accounts `1..=n` as dump lines, in the order of `order`.
fn account_lines(order: &[u64]) -> Vec<String> {
    order
        .iter()
        .map(|id| {
            format!(
                "{{\"table\":\"accounts\",\"record\":{{\"id\":{id},\"name\":\"a{id}\",\"status\":\"active\"}}}}"
            )
        })
        .collect()
}

#[test]
fn a_large_restore_in_any_key_order_names_lines_and_moves_ids_on() -> TestResult {
    // More lines than one parse chunk, keys out of order within the table.
    let n = 20_000u64;
    // 7919 is prime, so i * 7919 mod n visits every id once, far from key order.
    let order: Vec<u64> = (0..n).map(|i| i * 7919 % n + 1).collect();
    let lines = account_lines(&order);

    // A duplicate far into the input is named by its own (later) line.
    let store = TempStore::new()?;
    let mut dup = lines.clone();
    dup.insert(15_000, lines[3].clone());
    let err = expect_err(restore_bytes(&store, &join(&dup)), ErrorKind::Constraint)?;
    assert!(err.message().starts_with("line 15001:"), "{err}");
    assert_eq!(dump_bytes(&store)?, join(&[]));

    // So is a malformed line in a later chunk, though earlier chunks parsed fine.
    let mut bad = lines.clone();
    bad[12_345] = "{\"table\":\"accounts\"".into();
    let err = expect_err(restore_bytes(&store, &join(&bad)), ErrorKind::Invalid)?;
    assert!(err.message().starts_with("line 12346:"), "{err}");
    assert_eq!(dump_bytes(&store)?, join(&[]));

    let summary = restore_bytes(&store, &join(&lines))?;
    assert_eq!(summary.total, n);
    assert_eq!(
        lines_of(&dump_bytes(&store)?)?,
        account_lines(&(1..=n).collect::<Vec<_>>())
    );
    assert_clean(&store)?;
    // New ids continue after the restored ones.
    let next = store.write(|tx| tx.next_id(TableId::Accounts))?;
    assert!(next > n, "next id {next} after restoring ids up to {n}");
    Ok(())
}

/// A fill whose fee overflows breaks its position's fold: the fills after it fold from no
/// position, so a position row that folds the others is reported too.
#[test]
fn a_fold_broken_by_a_fill_starts_again_from_no_position() -> TestResult {
    let lines = [
        r#"{"table":"instruments","record":{"id":1,"symbol":"A","tick_size":1000000,"lot_size":100000000,"currency":"USD"}}"#,
        r#"{"table":"accounts","record":{"id":1,"name":"a","status":"active"}}"#,
        r#"{"table":"orders","record":{"id":1,"account":1,"instrument":1,"side":"buy","kind":"limit","time_in_force":"gtc","price":10000000000,"quantity":300000000,"filled_quantity":300000000,"status":"filled","created_ts":1,"updated_ts":3}}"#,
        r#"{"table":"trades","record":{"id":1,"order_id":1,"account":1,"instrument":1,"side":"buy","price":10000000000,"quantity":100000000,"fee":10000,"ts":1}}"#,
        r#"{"table":"trades","record":{"id":2,"order_id":1,"account":1,"instrument":1,"side":"buy","price":10000000000,"quantity":100000000,"fee":9223372036854775807,"ts":2}}"#,
        r#"{"table":"trades","record":{"id":3,"order_id":1,"account":1,"instrument":1,"side":"buy","price":10000000000,"quantity":100000000,"fee":10000,"ts":3}}"#,
        r#"{"table":"positions","record":{"account":1,"instrument":1,"quantity":200000000,"cost_basis":200000000,"realized_pnl":-20000,"updated_ts":3,"last_trade_id":3}}"#,
    ];
    let store = target()?;
    let dump = join(&lines.map(str::to_owned));
    let err = expect_err(restore_bytes(&store, &dump), ErrorKind::Constraint)?;
    let msg = err.to_string();
    assert!(
        msg.contains("line 5: trades 2") && msg.contains("amount_overflow"),
        "{msg}"
    );
    // The overflow, and the position: trade 3 alone folds to one lot, not the two stored.
    assert!(msg.contains("(2 violation(s) in all"), "{msg}");
    Ok(())
}
