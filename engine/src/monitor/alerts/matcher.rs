//! Label matchers, written as in Alertmanager: `severity = critical`, `team != ops`,
//! `instance =~ "db-.*"`, `instance !~ "test-.*"`. Values may be quoted; regular
//! expressions match the whole value. A missing label has the value "".

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};

/// How a matcher compares a label's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: equal.
    Equal,
    /// `!=`: not equal.
    NotEqual,
    /// `=~`: the regular expression matches the whole value.
    Regex,
    /// `!~`: the regular expression does not match the whole value.
    NotRegex,
}

impl MatchOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// One condition on a label.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label's name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regular expression.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    /// A matcher from its parts; a Config error when a regular expression does not compile.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                    Error::config(format!(
                        "matcher {name} {} {value:?}: bad regular expression: {e}",
                        op.symbol()
                    ))
                })?)
            }
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses `name op value`; a Config error naming the text when it is not one.
    pub fn parse(text: &str) -> Result<Matcher> {
        let bad = |why: &str| Error::config(format!("matcher {text:?}: {why}"));
        let at = text
            .find(['=', '!'])
            .ok_or_else(|| bad("no operator (=, !=, =~, !~)"))?;
        let (name, rest) = text.split_at(at);
        let name = name.trim();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(bad("no operator (=, !=, =~, !~)"));
        };
        let valid_name = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(bad("the label name must be letters, digits and _"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Matcher::new(name, op, value)
    }

    /// Whether the labels satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => v == self.value,
            (MatchOp::NotEqual, _) => v != self.value,
            (MatchOp::Regex, Some(r)) => r.is_match(v),
            (MatchOp::NotRegex, Some(r)) => !r.is_match(v),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// Whether every matcher holds (an empty list always does).
pub(crate) fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Parses a list of matchers; `what` says where they were written.
pub(crate) fn parse_all(texts: &[String], what: &str) -> Result<Vec<Matcher>> {
    texts
        .iter()
        .map(|t| Matcher::parse(t).map_err(|e| e.context(what)))
        .collect()
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.symbol(), self.value)
    }
}

impl std::str::FromStr for Matcher {
    type Err = Error;

    fn from_str(s: &str) -> Result<Matcher> {
        Matcher::parse(s)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_and_matches_every_operator() -> Result<()> {
        let l = labels(&[("severity", "critical"), ("instance", "db-1")]);
        assert!(Matcher::parse("severity = critical")?.matches(&l));
        assert!(Matcher::parse("severity=\"critical\"")?.matches(&l));
        assert!(!Matcher::parse("severity != critical")?.matches(&l));
        assert!(Matcher::parse("instance =~ db-.*")?.matches(&l));
        // Anchored: a partial match is no match.
        assert!(!Matcher::parse("instance =~ db")?.matches(&l));
        assert!(Matcher::parse("instance !~ \"web-.*\"")?.matches(&l));
        // A missing label is "".
        assert!(Matcher::parse("team = \"\"")?.matches(&l));
        assert!(Matcher::parse("team != ops")?.matches(&l));
        assert_eq!(
            Matcher::parse("instance=~db-.*")?.to_string(),
            "instance=~\"db-.*\""
        );
        Ok(())
    }

    #[test]
    fn bad_matchers_are_config_errors() {
        for (text, why) in [
            ("severity", "no operator"),
            ("= x", "label name"),
            ("instance =~ \"(\"", "bad regular expression"),
        ] {
            match Matcher::parse(text) {
                Err(e) => {
                    assert_eq!(e.kind(), crate::ErrorKind::Config);
                    assert!(e.message().contains(why), "{text}: {e}");
                }
                Ok(m) => panic!("{text} parsed as {m}"),
            }
        }
    }
}
