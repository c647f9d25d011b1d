//! Inhibition: a firing alert matching an inhibition's source matchers (by default
//! `severity = critical`) mutes the alerts matching its target matchers (by default
//! `severity = warning`) that have the same values of the `equal` labels (a label missing
//! from both counts as equal). An alert never inhibits itself.

use std::collections::BTreeMap;

use super::matcher::{Matcher, all_match};

/// A validated `[[inhibit]]`.
#[derive(Clone, Debug)]
pub(crate) struct Inhibit {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl Inhibit {
    /// Whether a firing alert with `source` labels mutes one with `target` labels.
    pub fn mutes(
        &self,
        source: &BTreeMap<String, String>,
        target: &BTreeMap<String, String>,
    ) -> bool {
        all_match(&self.source, source)
            && all_match(&self.target, target)
            && self.equal.iter().all(|n| source.get(n) == target.get(n))
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
    fn critical_mutes_warning_with_equal_labels() {
        let i = Inhibit {
            source: vec![Matcher::parse("severity = critical").unwrap()],
            target: vec![Matcher::parse("severity = warning").unwrap()],
            equal: vec!["instance".into()],
        };
        let crit = labels(&[("severity", "critical"), ("instance", "db1")]);
        let warn1 = labels(&[("severity", "warning"), ("instance", "db1")]);
        let warn2 = labels(&[("severity", "warning"), ("instance", "db2")]);
        assert!(i.mutes(&crit, &warn1));
        assert!(!i.mutes(&crit, &warn2));
        assert!(!i.mutes(&warn1, &crit));
    }
}
