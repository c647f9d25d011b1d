//! Silences: matchers and an end. A silenced alert still changes state, but it is left
//! out of notifications until the silence ends (or is expired); then it is notified as
//! any new alert. A resolution is still sent for an alert the receiver was told fired.

use std::collections::BTreeMap;

use serde::Serialize;

use super::matcher::{Matcher, all_match};

/// A silence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Silence {
    /// Its number, given by the manager.
    pub id: u64,
    /// The alerts it mutes: those satisfying every matcher.
    pub matchers: Vec<Matcher>,
    /// When it ends, milliseconds since the epoch.
    pub ends_at: u64,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it mutes an alert with these labels at `now`.
    pub fn mutes(&self, labels: &BTreeMap<String, String>, now: u64) -> bool {
        now < self.ends_at && !self.matchers.is_empty() && all_match(&self.matchers, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutes_matching_alerts_until_it_ends() {
        let s = Silence {
            id: 1,
            matchers: vec![Matcher::parse("instance = db1").unwrap()],
            ends_at: 1_000,
            comment: "maintenance".into(),
        };
        let db1: BTreeMap<String, String> = [("instance".to_owned(), "db1".to_owned())].into();
        let db2: BTreeMap<String, String> = [("instance".to_owned(), "db2".to_owned())].into();
        assert!(s.mutes(&db1, 999));
        assert!(!s.mutes(&db1, 1_000));
        assert!(!s.mutes(&db2, 0));
    }
}
