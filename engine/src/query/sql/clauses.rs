//! The QuestDB-style clauses standard SQL parsers do not know:
//! `LATEST ON <col> PARTITION BY <col>, ...` and `SAMPLE BY <interval>`. They are found at the
//! top level of the token stream, read, and replaced by whitespace tokens with the same spans,
//! so the parser sees the rest of the statement with every location unchanged.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Span, Token, TokenWithSpan, Whitespace};

use super::point::{Source, is_word};
use crate::error::Result;
use crate::query::ast::parse_interval;

/// Operators and keywords allowed in one statement. Chains of binary operators (`a + b + c`,
/// `x AND y AND z`) nest the syntax tree one level per operator without any parenthesis, and
/// walking or dropping a very deep tree would exhaust the stack; this bounds the depth.
pub(super) const MAX_OPERATORS: usize = 1000;

/// Literals and parameters (`$1`) allowed in one statement (an `IN` list's values among them):
/// every value is bound, planned and possibly kept as the advisor's sample, so a statement
/// of millions costs seconds and gigabytes before it reads a row.
pub(super) const MAX_VALUES: usize = 10_000;

/// `LATEST ON ts PARTITION BY key, ...`, as written.
#[derive(Debug)]
pub(super) struct LatestClause {
    /// The timestamp (or id) column and where it is written.
    pub ts: (String, Span),
    /// The key columns and where they are written.
    pub partition_by: Vec<(String, Span)>,
}

/// `SAMPLE BY 1m`, as written.
#[derive(Debug)]
pub(super) struct SampleClause {
    /// The `SAMPLE BY` keywords and the interval.
    pub span: Span,
    /// The bucket width in nanoseconds.
    pub width_ns: i64,
}

/// The clauses taken out of the statement.
#[derive(Debug, Default)]
pub(super) struct Clauses {
    /// `LATEST ON ... PARTITION BY ...`.
    pub latest: Option<LatestClause>,
    /// `SAMPLE BY ...`.
    pub sample: Option<SampleClause>,
}

/// Words that end the part of a query where the clauses may be written.
const TAIL: &[&str] = &[
    "GROUP",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "FETCH",
    "WINDOW",
    "QUALIFY",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "MINUS",
];

/// Refuses statements with more than [`MAX_OPERATORS`] operators and keywords, or more than
/// [`MAX_VALUES`] values.
pub(super) fn check_size(src: &Source) -> Result<()> {
    let mut count = 0usize;
    let mut values = 0usize;
    for t in src.tokens() {
        if is_value(&t.token) {
            values += 1;
            if values > MAX_VALUES {
                return Err(src.error(
                    t.span,
                    format!(
                        "the statement is too long: it has more than {MAX_VALUES} values \
                         (literals and parameters); split a long IN list over several queries"
                    ),
                ));
            }
        }
        if !is_leaf(&t.token) {
            count += 1;
            if count > MAX_OPERATORS {
                return Err(src.error(
                    t.span,
                    format!(
                        "the statement is too long: it has more than {MAX_OPERATORS} operators and keywords"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether a token is a literal or a parameter (`$1`).
fn is_value(token: &Token) -> bool {
    matches!(
        token,
        Token::Number(..)
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
    )
}

/// Whether a token cannot make the syntax tree deeper: names, literals, parentheses (whose
/// nesting the parser bounds), commas and whitespace. A column or table name that is also
/// an SQL keyword (`id`, `account`) is a name.
fn is_leaf(token: &Token) -> bool {
    match token {
        Token::Word(w) => {
            w.quote_style.is_some() || w.keyword == Keyword::NoKeyword || is_name(&w.value)
        }
        Token::EOF
        | Token::Whitespace(_)
        | Token::Comma
        | Token::LParen
        | Token::RParen
        | Token::SemiColon => true,
        other => is_value(other),
    }
}

/// Whether `word` names a table or a column of one.
fn is_name(word: &str) -> bool {
    tradestore_schema::TableId::ALL.iter().any(|t| {
        t.name().eq_ignore_ascii_case(word)
            || t.columns()
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(word))
    })
}

/// Takes `LATEST ON` and `SAMPLE BY` out of `tokens` (replacing them by whitespace) and
/// returns what they said. They must follow the table name or the `WHERE` clause and come
/// before `GROUP BY`, `ORDER BY`, `LIMIT` and `OFFSET`; `SAMPLE BY` must follow `WHERE`.
pub(super) fn extract(src: &Source, tokens: &mut [TokenWithSpan]) -> Result<Clauses> {
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_) | Token::EOF))
        .collect();
    let reader = Reader {
        src,
        tokens,
        sig: &sig,
    };
    let mut clauses = Clauses::default();
    let (mut depth, mut seen_from, mut seen_tail) = (0i64, false, false);
    let mut i = 0;
    while i < sig.len() {
        let token = &reader.tokens[sig[i]].token;
        let latest = is_word(token, &["LATEST"]) && reader.word_at(i + 1, "ON");
        let sample = is_word(token, &["SAMPLE"]) && reader.word_at(i + 1, "BY");
        if depth == 0 && (latest || sample) {
            let name = if latest { "LATEST ON" } else { "SAMPLE BY" };
            let keywords = reader.span(i).union(&reader.span(i + 1));
            if !seen_from || seen_tail {
                return Err(src.error(
                    keywords,
                    format!("{name} must follow the table name or the WHERE clause"),
                ));
            }
            let end = if latest {
                if clauses.latest.is_some() {
                    return Err(src.error(keywords, "LATEST ON is written twice"));
                }
                let (clause, end) = reader.latest(i + 2)?;
                clauses.latest = Some(clause);
                end
            } else {
                if clauses.sample.is_some() {
                    return Err(src.error(keywords, "SAMPLE BY is written twice"));
                }
                let (width_ns, value, end) = reader.sample(i + 2)?;
                clauses.sample = Some(SampleClause {
                    span: keywords.union(&value),
                    width_ns,
                });
                end
            };
            reader.check_follower(end, latest)?;
            for &k in &sig[i..end] {
                reader.tokens[k].token = Token::Whitespace(Whitespace::Space);
            }
            i = end;
            continue;
        }
        match token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth == 0 => (seen_from, seen_tail) = (false, false),
            t if depth == 0 && is_word(t, &["FROM"]) => seen_from = true,
            t if depth == 0 && is_word(t, TAIL) => seen_tail = true,
            _ => {}
        }
        i += 1;
    }
    Ok(clauses)
}

/// Reads clause tokens by their index among the significant (non-whitespace) tokens.
struct Reader<'r, 'a> {
    src: &'r Source<'a>,
    tokens: &'r mut [TokenWithSpan],
    sig: &'r [usize],
}

impl Reader<'_, '_> {
    fn token(&self, i: usize) -> Option<&TokenWithSpan> {
        self.sig.get(i).and_then(|&k| self.tokens.get(k))
    }

    /// The span of significant token `i`, or just past the end of the text.
    fn span(&self, i: usize) -> Span {
        self.token(i).map_or_else(|| self.src.end(), |t| t.span)
    }

    fn word_at(&self, i: usize, word: &str) -> bool {
        self.token(i).is_some_and(|t| is_word(&t.token, &[word]))
    }

    /// A column name at `i`: a word, lower-cased unless quoted.
    fn column(&self, i: usize, after: &str) -> Result<(String, Span)> {
        match self.token(i) {
            Some(TokenWithSpan {
                token: Token::Word(w),
                span,
            }) => {
                let name = if w.quote_style.is_some() {
                    w.value.clone()
                } else {
                    w.value.to_lowercase()
                };
                Ok((name, *span))
            }
            _ => Err(self.src.error(
                self.span(i),
                format!("expected a column name after {after}"),
            )),
        }
    }

    /// `<col> PARTITION BY <col>[, <col>...]` from `i`; returns the clause and the index
    /// just past it.
    fn latest(&self, i: usize) -> Result<(LatestClause, usize)> {
        let ts = self.column(i, "LATEST ON")?;
        if !(self.word_at(i + 1, "PARTITION") && self.word_at(i + 2, "BY")) {
            return Err(self.src.error(
                self.span(i + 1),
                format!("expected PARTITION BY after LATEST ON {}", ts.0),
            ));
        }
        let mut partition_by = vec![self.column(i + 3, "PARTITION BY")?];
        let mut end = i + 4;
        while matches!(self.token(end), Some(t) if t.token == Token::Comma) {
            partition_by.push(self.column(end + 1, "a comma in PARTITION BY")?);
            end += 2;
        }
        Ok((LatestClause { ts, partition_by }, end))
    }

    /// The interval at `i` (`1m`, `5s`, `1h30m` or a quoted `'15 minutes'`); returns its
    /// width, its span and the index just past it.
    fn sample(&self, i: usize) -> Result<(i64, Span, usize)> {
        let mut span = self.span(i);
        let (text, end) = match self.token(i).map(|t| &t.token) {
            Some(Token::SingleQuotedString(s)) => (s.clone(), i + 1),
            Some(Token::Number(n, _)) => {
                // A number and the unit written right after it: `1m`, `1h30m`.
                let mut text = n.clone();
                let mut end = i + 1;
                while let Some(t) = self.token(end) {
                    let adjacent = t.span.start == span.end;
                    match &t.token {
                        Token::Word(w) if adjacent && w.quote_style.is_none() => {
                            text.push_str(&w.value)
                        }
                        Token::Number(n, _) if adjacent => text.push_str(n),
                        _ => break,
                    }
                    span = span.union(&t.span);
                    end += 1;
                }
                (text, end)
            }
            _ => {
                return Err(self.src.error(
                    span,
                    "expected an interval after SAMPLE BY, e.g. SAMPLE BY 1m",
                ));
            }
        };
        match parse_interval(&text) {
            Some(ns) => Ok((ns, span, end)),
            None => Err(self.src.error(
                span,
                format!("invalid SAMPLE BY interval {text:?}; write e.g. 1m, 5s, 1h or 1d"),
            )),
        }
    }

    /// After a clause comes the end, `;`, `GROUP BY`, `ORDER BY`, `LIMIT`, `OFFSET` or the
    /// other clause; after `LATEST ON` also `WHERE`.
    fn check_follower(&self, end: usize, latest: bool) -> Result<()> {
        let Some(t) = self.token(end) else {
            return Ok(());
        };
        let mut allowed = vec!["GROUP", "ORDER", "LIMIT", "OFFSET", "LATEST", "SAMPLE"];
        if latest {
            allowed.push("WHERE");
        }
        if t.token == Token::SemiColon || is_word(&t.token, &allowed) {
            return Ok(());
        }
        let (name, hint) = if latest {
            ("LATEST ON", "WHERE, ")
        } else {
            ("SAMPLE BY", "")
        };
        Err(self.src.error(
            t.span,
            format!(
                "unexpected {} after {name}; it may be followed by {hint}GROUP BY, ORDER BY, LIMIT or OFFSET",
                t.token
            ),
        ))
    }
}
