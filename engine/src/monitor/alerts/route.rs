//! The routing tree, as in Alertmanager: the root `[route]` takes every alert; an alert
//! goes down into the first child whose matchers it satisfies (and on into the following
//! children too when that child has `continue = true`), as deep as matches go; the deepest
//! matching routes take it. A child inherits the receiver, `group_by` and the intervals it
//! does not set. `group_by = ["..."]` groups by every label; no `group_by` puts all of a
//! route's alerts into one group.

use std::collections::{BTreeMap, BTreeSet};

use super::duration::parse_opt_ms;
use super::file::RouteFile;
use super::matcher::{Matcher, all_match, parse_all};
use crate::error::{Error, Result};

/// Default `group_wait`: 30 s.
pub(crate) const GROUP_WAIT_MS: u64 = 30_000;
/// Default `group_interval`: 5 min.
pub(crate) const GROUP_INTERVAL_MS: u64 = 300_000;
/// Default `repeat_interval`: 4 h.
pub(crate) const REPEAT_INTERVAL_MS: u64 = 4 * 3_600_000;

/// Which labels make a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GroupBy {
    /// These labels (none: one group).
    Labels(Vec<String>),
    /// Every label (`"..."`).
    All,
}

/// A validated route.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// Its number, in depth-first order from 0 (the root).
    pub id: usize,
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait_ms: u64,
    pub group_interval_ms: u64,
    pub repeat_interval_ms: u64,
    pub routes: Vec<Route>,
}

impl Route {
    /// A route that sends everything to one receiver, with the default intervals.
    pub fn to_receiver(receiver: &str) -> Route {
        Route {
            id: 0,
            matchers: Vec::new(),
            continue_: false,
            receiver: receiver.to_owned(),
            group_by: GroupBy::Labels(Vec::new()),
            group_wait_ms: GROUP_WAIT_MS,
            group_interval_ms: GROUP_INTERVAL_MS,
            repeat_interval_ms: REPEAT_INTERVAL_MS,
            routes: Vec::new(),
        }
    }

    /// Validates the root `[route]`; every receiver named must be in `receivers`.
    pub fn build(file: &RouteFile, receivers: &BTreeSet<String>) -> Result<Route> {
        if !file.matchers.is_empty() {
            return Err(Error::config(
                "route: the root route takes every alert and has no matchers",
            ));
        }
        let Some(receiver) = file.receiver.as_deref() else {
            return Err(Error::config("route: the root route needs a receiver"));
        };
        let mut root = Route::to_receiver(receiver);
        root.continue_ = file.continue_;
        let mut next_id = 0;
        build_into(file, &mut root, "route", receivers, &mut next_id)?;
        Ok(root)
    }

    /// The routes that take an alert with these labels (for the root: at least itself).
    pub fn matching(&self, labels: &BTreeMap<String, String>) -> Vec<&Route> {
        if !all_match(&self.matchers, labels) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for child in &self.routes {
            let m = child.matching(labels);
            if !m.is_empty() {
                out.extend(m);
                if !child.continue_ {
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(self);
        }
        out
    }

    /// The route numbered `id`.
    pub fn find(&self, id: usize) -> Option<&Route> {
        if self.id == id {
            return Some(self);
        }
        self.routes.iter().find_map(|r| r.find(id))
    }

    /// The labels an alert is grouped by on this route.
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|n| labels.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        }
    }
}

/// Fills `route` (which holds the parent's settings) from `file`, then its children.
fn build_into(
    file: &RouteFile,
    route: &mut Route,
    path: &str,
    receivers: &BTreeSet<String>,
    next_id: &mut usize,
) -> Result<()> {
    route.id = *next_id;
    *next_id += 1;
    if let Some(r) = &file.receiver {
        if !receivers.contains(r) {
            let known: Vec<&str> = receivers.iter().map(String::as_str).collect();
            return Err(Error::config(format!(
                "{path}: unknown receiver {r:?} (the receivers are: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
        route.receiver = r.clone();
    }
    if let Some(g) = &file.group_by {
        route.group_by = if g.iter().any(|n| n == "...") {
            GroupBy::All
        } else {
            GroupBy::Labels(g.clone())
        };
    }
    let ms = |v: &Option<String>, key: &str| parse_opt_ms(v.as_deref(), &format!("{path}.{key}"));
    if let Some(v) = ms(&file.group_wait, "group_wait")? {
        route.group_wait_ms = v;
    }
    if let Some(v) = ms(&file.group_interval, "group_interval")? {
        if v == 0 {
            return Err(Error::config(format!(
                "{path}.group_interval must be over 0"
            )));
        }
        route.group_interval_ms = v;
    }
    if let Some(v) = ms(&file.repeat_interval, "repeat_interval")? {
        route.repeat_interval_ms = v;
    }
    route.matchers = parse_all(&file.matchers, &format!("{path}.matchers"))?;
    route.continue_ = file.continue_;
    route.routes = Vec::with_capacity(file.routes.len());
    for (i, child_file) in file.routes.iter().enumerate() {
        let mut child = route.clone();
        child.routes = Vec::new();
        build_into(
            child_file,
            &mut child,
            &format!("{path}.routes[{i}]"),
            receivers,
            next_id,
        )?;
        route.routes.push(child);
    }
    Ok(())
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
    fn routes_by_matchers_with_continue_and_inheritance() -> Result<()> {
        let file: RouteFile = toml::from_str(
            r#"
            receiver = "default"
            group_by = ["instance"]
            group_wait = "10s"
            [[routes]]
            matchers = ["severity = critical"]
            receiver = "pager"
            continue = true
            [[routes]]
            matchers = ["team =~ db|storage"]
            receiver = "dba"
            group_by = ["..."]
            "#,
        )
        .map_err(|e| Error::config(e.to_string()))?;
        let names: BTreeSet<String> = ["default", "pager", "dba"].map(String::from).into();
        let root = Route::build(&file, &names)?;
        let to = |l: &[(&str, &str)]| -> Vec<String> {
            root.matching(&labels(l))
                .iter()
                .map(|r| r.receiver.clone())
                .collect()
        };
        assert_eq!(to(&[("severity", "warning")]), ["default"]);
        assert_eq!(to(&[("severity", "critical")]), ["pager"]);
        assert_eq!(
            to(&[("severity", "critical"), ("team", "db")]),
            ["pager", "dba"]
        );
        assert_eq!(to(&[("severity", "warning"), ("team", "db")]), ["dba"]);
        let pager = root.find(1).map(|r| (r.group_wait_ms, r.group_by.clone()));
        assert_eq!(
            pager,
            Some((10_000, GroupBy::Labels(vec!["instance".into()])))
        );
        let l = labels(&[("instance", "a"), ("x", "y")]);
        assert_eq!(root.group_labels(&l), labels(&[("instance", "a")]));
        assert_eq!(root.find(2).map(|r| r.group_labels(&l)), Some(l.clone()));
        Ok(())
    }

    #[test]
    fn unknown_receivers_are_named() {
        let file = RouteFile {
            receiver: Some("nobody".into()),
            ..RouteFile::default()
        };
        let names: BTreeSet<String> = ["ops".to_owned()].into();
        let e = Route::build(&file, &names).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("unknown receiver \"nobody\"") && e.contains("ops")),
            "{e:?}"
        );
    }
}
