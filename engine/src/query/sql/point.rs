//! Errors that point at the offending part of the SQL text: the message, the line and column,
//! the source line and a line of `^` under the offending span.

use std::fmt::Display;

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, TokenizerError};

use crate::error::{Error, ErrorKind};

/// Source lines longer than this are shown as a window around the offending span.
const MAX_SHOWN: usize = 120;
/// How much of a long line is shown on either side of the offending span.
const CONTEXT: usize = 40;

/// The statement's text and its tokens (as written, before any clause is taken out), used
/// to locate keywords the syntax tree keeps no span for and to render errors.
pub(super) struct Source<'a> {
    text: &'a str,
    tokens: Vec<TokenWithSpan>,
}

impl<'a> Source<'a> {
    /// Wraps the text and its tokens.
    pub(super) fn new(text: &'a str, tokens: Vec<TokenWithSpan>) -> Source<'a> {
        Source { text, tokens }
    }

    /// The tokens, whitespace included.
    pub(super) fn tokens(&self) -> &[TokenWithSpan] {
        &self.tokens
    }

    /// An `Invalid` error pointing at `span`; an empty span points just past the last token.
    pub(super) fn error(&self, span: Span, message: impl Display) -> Error {
        let span = if span.start.line == 0 {
            self.end()
        } else {
            span
        };
        Error::new(
            ErrorKind::Invalid,
            render(self.text, span, &message.to_string()),
        )
    }

    /// The first token that is not whitespace (the statement's start).
    pub(super) fn start(&self) -> Span {
        self.significant()
            .next()
            .map_or_else(|| point_at(Location::new(1, 1)), |t| t.span)
    }

    /// Just past the last token that is not whitespace (where a missing part would go).
    pub(super) fn end(&self) -> Span {
        self.significant()
            .next_back()
            .map_or_else(|| point_at(Location::new(1, 1)), |t| point_at(t.span.end))
    }

    /// The first unquoted word among `words` (case-insensitive) starting at or after `from`.
    pub(super) fn word_after(&self, words: &[&str], from: Location) -> Option<Span> {
        self.significant()
            .filter(|t| t.span.start >= from)
            .find(|t| is_word(&t.token, words))
            .map(|t| t.span)
    }

    /// The last unquoted word among `words` (case-insensitive) ending at or before `before`.
    pub(super) fn word_before(&self, words: &[&str], before: Location) -> Option<Span> {
        self.significant()
            .rev()
            .filter(|t| t.span.end <= before)
            .find(|t| is_word(&t.token, words))
            .map(|t| t.span)
    }

    /// The span of a call written `name(...)`: from the name to its closing parenthesis
    /// (the syntax tree's spans stop at the last argument).
    pub(super) fn call_span(&self, name: Span) -> Span {
        let from = self.tokens.partition_point(|t| t.span.start < name.end);
        let mut rest = self.tokens[from..]
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)));
        if !matches!(rest.next(), Some(t) if t.token == Token::LParen) {
            return name;
        }
        let mut depth = 1usize;
        for t in rest {
            match t.token {
                Token::LParen => depth += 1,
                Token::RParen if depth == 1 => return Span::new(name.start, t.span.end),
                Token::RParen => depth -= 1,
                _ => {}
            }
        }
        name
    }

    /// The first token of a second statement (after a top-level `;`), if there is one.
    pub(super) fn second_statement(&self) -> Option<Span> {
        let mut depth = 0i64;
        let mut after_semicolon = false;
        for t in self.significant() {
            match t.token {
                Token::SemiColon if depth == 0 => after_semicolon = true,
                Token::SemiColon => {}
                _ if after_semicolon => return Some(t.span),
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
        }
        None
    }

    /// Converts a `sqlparser` error, pointing at the token it names.
    pub(super) fn parser_error(&self, e: &ParserError) -> Error {
        match e {
            ParserError::ParserError(msg) | ParserError::TokenizerError(msg) => {
                let (msg, at) = split_location(msg);
                let span = at.map_or_else(
                    || self.end(),
                    |at| {
                        self.tokens
                            .iter()
                            .find(|t| t.span.start == at && !matches!(t.token, Token::EOF))
                            .map_or_else(|| point_at(at), |t| t.span)
                    },
                );
                self.error(span, format!("syntax error: {msg}"))
            }
            ParserError::RecursionLimitExceeded => self.error(
                self.deepest(),
                "the statement nests too deeply (parentheses, NOT or unary signs)",
            ),
        }
    }

    /// The opening parenthesis at the greatest depth, else the statement's start.
    fn deepest(&self) -> Span {
        let (mut depth, mut max, mut at) = (0i64, 0i64, self.start());
        for t in self.significant() {
            match t.token {
                Token::LParen => {
                    depth += 1;
                    if depth > max {
                        (max, at) = (depth, t.span);
                    }
                }
                Token::RParen => depth -= 1,
                _ => {}
            }
        }
        at
    }

    fn significant(&self) -> impl DoubleEndedIterator<Item = &TokenWithSpan> {
        self.tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
    }
}

/// Whether the token is an unquoted word among `words` (case-insensitive).
pub(super) fn is_word(token: &Token, words: &[&str]) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none()
        && words.iter().any(|x| w.value.eq_ignore_ascii_case(x)))
}

/// A one-character span at `at`.
pub(super) fn point_at(at: Location) -> Span {
    Span::new(at, Location::new(at.line, at.column.saturating_add(1)))
}

/// A tokenizer error, pointing at where the tokenizer stopped.
pub(super) fn tokenizer_error(text: &str, e: &TokenizerError) -> Error {
    let at = if e.location.line == 0 {
        Location::new(1, 1)
    } else {
        e.location
    };
    Error::new(
        ErrorKind::Invalid,
        render(text, point_at(at), &format!("syntax error: {}", e.message)),
    )
}

/// Splits sqlparser's `"<message> at Line: L, Column: C"` into the message and the location.
fn split_location(msg: &str) -> (&str, Option<Location>) {
    const MARK: &str = " at Line: ";
    let Some(i) = msg.rfind(MARK) else {
        return (msg, None);
    };
    let rest = &msg[i + MARK.len()..];
    let parsed = rest.split_once(", Column: ").and_then(|(l, c)| {
        let (line, column) = (l.trim().parse::<u64>().ok()?, c.trim().parse::<u64>().ok()?);
        (line > 0 && column > 0).then(|| Location::new(line, column))
    });
    match parsed {
        Some(at) => (&msg[..i], Some(at)),
        None => (msg, None),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The message, `at line L, column C:`, the source line and a caret line under the span.
pub(super) fn render(text: &str, span: Span, message: &str) -> String {
    let line_no = span.start.line.max(1);
    let column = span.start.column.max(1);
    let line = text.split('\n').nth(to_usize(line_no - 1)).unwrap_or("");
    let line = line.strip_suffix('\r').unwrap_or(line);
    let chars: Vec<char> = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // At most just past the end of the line, whatever the location says.
    let start = to_usize(column - 1).min(chars.len());
    let width = if span.end.line == span.start.line && span.end.column > span.start.column {
        to_usize(span.end.column - span.start.column)
    } else if span.end.line > span.start.line {
        chars.len().saturating_sub(start)
    } else {
        1
    }
    .max(1);
    let (shown, pad, width) = if chars.len() <= MAX_SHOWN {
        (chars.iter().collect::<String>(), start, width)
    } else {
        let from = start.saturating_sub(CONTEXT).min(chars.len());
        let width = width.min(MAX_SHOWN - 2 * CONTEXT);
        let to = start
            .saturating_add(width)
            .saturating_add(CONTEXT)
            .min(chars.len())
            .max(from);
        let mut shown = String::new();
        let mut pad = start - from;
        if from > 0 {
            shown.push_str("...");
            pad += 3;
        }
        shown.extend(&chars[from..to]);
        if to < chars.len() {
            shown.push_str("...");
        }
        (shown, pad, width)
    };
    format!(
        "{message}\nat line {line_no}, column {column}:\n  {shown}\n  {}{}",
        " ".repeat(pad),
        "^".repeat(width)
    )
}
