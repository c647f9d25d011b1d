//! Comparing a run with a baseline: an earlier run's `--json` output. Only the ratios of
//! tradestore over its peers are compared ([`Report::comparisons`]), never absolute
//! timings, so a baseline taken on another machine still says something.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::report::{Comparison, Report};

/// The largest baseline file read.
pub const MAX_BASELINE: u64 = 64 << 20;

/// Why a baseline could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum BaselineError {
    /// The file could not be read.
    Read {
        /// The baseline file.
        path: PathBuf,
        /// What reading it said.
        source: std::io::Error,
    },
    /// The file is not the JSON output of a benchmark run.
    Malformed {
        /// The baseline file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for BaselineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineError::Read { path, source } => write!(
                f,
                "cannot read the baseline {}: {source}; pass a file written by `--json`",
                path.display()
            ),
            BaselineError::Malformed { path, reason } => write!(
                f,
                "the baseline {} is not the `--json` output of a benchmark run: {reason}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for BaselineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BaselineError::Read { source, .. } => Some(source),
            BaselineError::Malformed { .. } => None,
        }
    }
}

/// What a baseline holds that a comparison needs.
#[derive(Clone, Debug, Deserialize)]
pub struct Baseline {
    /// The plan it was run with (`quick`, `full`).
    pub plan: String,
    /// Its ratios of tradestore over the peers.
    pub comparisons: Vec<Comparison>,
}

impl Baseline {
    /// Parses the `--json` output of a run; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let malformed = |reason: String| BaselineError::Malformed {
            path: path.to_owned(),
            reason,
        };
        let b: Baseline = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        if !["quick", "full", "tiny"].contains(&b.plan.as_str()) {
            return Err(malformed(format!(
                "its plan is {:?}; a run's plan is quick, full or tiny",
                b.plan
            )));
        }
        // A baseline that compares nothing would pass every run.
        if b.comparisons.is_empty() {
            return Err(malformed("it holds no ratios to compare".to_owned()));
        }
        let mut names: Vec<&str> = b.comparisons.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(malformed(format!("the ratio {:?} appears twice", w[0])));
        }
        if let Some(c) = b
            .comparisons
            .iter()
            .find(|c| !c.value.is_finite() || c.value <= 0.0)
        {
            return Err(malformed(format!("the ratio {:?} is {}", c.name, c.value)));
        }
        Ok(b)
    }

    /// Reads and parses the baseline at `path` (at most [`MAX_BASELINE`] bytes).
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        // Bounded: a baseline is one report (kilobytes); a link to /dev/zero must not eat
        // the memory of the machine.
        use std::io::Read;
        // Opening a FIFO would wait for a writer: only a regular file is read.
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                return Err(BaselineError::Malformed {
                    path: path.to_owned(),
                    reason: "not a regular file".to_owned(),
                });
            }
            _ => {}
        }
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BASELINE + 1).read_to_end(&mut bytes))
            .map_err(|source| BaselineError::Read {
                path: path.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > MAX_BASELINE {
            return Err(BaselineError::Malformed {
                path: path.to_owned(),
                reason: format!("over {} MiB, not a report", MAX_BASELINE >> 20),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| BaselineError::Malformed {
            path: path.to_owned(),
            reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Baseline::parse(&text, path)
    }

    /// Compares `report` with this baseline: every ratio present in both that fell by more
    /// than `threshold_pct` percent is a regression.
    pub fn compare(&self, report: &Report, threshold_pct: f64) -> Verdict {
        compare(&self.comparisons, &report.comparisons, threshold_pct)
    }
}

/// One ratio that fell by more than the threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Regression {
    /// The ratio's name.
    pub name: String,
    /// Its value in the baseline.
    pub baseline: f64,
    /// Its value now.
    pub current: f64,
}

impl Regression {
    /// The change in percent (negative: it fell).
    pub fn change_pct(&self) -> f64 {
        (self.current / self.baseline - 1.0) * 100.0
    }
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Ratios present in both runs.
    pub compared: usize,
    /// Those that regressed beyond the threshold.
    pub regressions: Vec<Regression>,
    /// Ratios of the baseline this run does not have (a different plan or version).
    pub missing: Vec<String>,
}

/// Compares `current` with `baseline`: a ratio regressed when it is below its baseline
/// value by more than `threshold_pct` percent of it.
pub fn compare(baseline: &[Comparison], current: &[Comparison], threshold_pct: f64) -> Verdict {
    let floor = 1.0 - threshold_pct / 100.0;
    let mut v = Verdict::default();
    for b in baseline {
        match current.iter().find(|c| c.name == b.name) {
            None => v.missing.push(b.name.clone()),
            Some(c) => {
                v.compared += 1;
                if c.value < b.value * floor {
                    v.regressions.push(Regression {
                        name: b.name.clone(),
                        baseline: b.value,
                        current: c.value,
                    });
                }
            }
        }
    }
    v
}

impl Verdict {
    /// A text block: what was compared, and each regression.
    pub fn text(&self, threshold_pct: f64) -> String {
        let mut out = format!(
            "\nbaseline: {} ratios compared, {} regressed by more than {threshold_pct}%\n",
            self.compared,
            self.regressions.len()
        );
        for r in &self.regressions {
            out.push_str(&format!(
                "  REGRESSED {}: {:.2} -> {:.2} ({:+.1}%)\n",
                r.name,
                r.baseline,
                r.current,
                r.change_pct()
            ));
        }
        if !self.missing.is_empty() {
            out.push_str(&format!(
                "  not in this run ({}): {}\n",
                self.missing.len(),
                self.missing.join("; ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{
        "dir": "/tmp/x", "plan": "quick", "rows": [], "reads": [], "targets": [],
        "comparisons": [
            {"name": "point get by id: tradestore / sqlite", "value": 4.0},
            {"name": "bulk restore: tradestore / fjall", "value": 2.0},
            {"name": "gone: tradestore / x", "value": 1.0}
        ]
    }"#;

    fn now(get: f64, restore: f64) -> Vec<Comparison> {
        vec![
            Comparison {
                name: "point get by id: tradestore / sqlite".into(),
                value: get,
            },
            Comparison {
                name: "bulk restore: tradestore / fjall".into(),
                value: restore,
            },
        ]
    }

    #[test]
    fn regression_above_threshold_is_detected() {
        let b = Baseline::parse(BASE, Path::new("b.json")).unwrap();
        assert_eq!(b.plan, "quick");
        // 4.0 -> 2.8 is -30%, beyond 25%; 2.0 -> 1.9 is -5%.
        let v = compare(&b.comparisons, &now(2.8, 1.9), 25.0);
        assert_eq!(v.compared, 2);
        assert_eq!(v.regressions.len(), 1);
        assert_eq!(
            v.regressions[0].name,
            "point get by id: tradestore / sqlite"
        );
        assert!((v.regressions[0].change_pct() + 30.0).abs() < 1e-9);
        assert_eq!(v.missing, ["gone: tradestore / x"]);
        assert!(v.text(25.0).contains("REGRESSED point get"));
    }

    #[test]
    fn drop_within_threshold_or_improvement_is_not_a_regression() {
        let b = Baseline::parse(BASE, Path::new("b.json")).unwrap();
        let v = compare(&b.comparisons, &now(3.1, 9.0), 25.0);
        assert!(v.regressions.is_empty(), "{v:?}");
        // A tighter threshold catches the same drop.
        assert_eq!(
            compare(&b.comparisons, &now(3.1, 9.0), 10.0)
                .regressions
                .len(),
            1
        );
    }

    #[test]
    fn malformed_baselines_are_errors() {
        let p = Path::new("b.json");
        for text in [
            "",
            "not json",
            "{\"plan\": \"quick\"}",
            "{\"plan\": \"quick\", \"comparisons\": [{\"name\": \"a\"}]}",
            "{\"plan\": \"quick\", \"comparisons\": [{\"name\": \"a\", \"value\": 0}]}",
            "[1, 2]",
            "{\"plan\": \"quick\", \"comparisons\": []}",
            "{\"plan\": \"banana\", \"comparisons\": [{\"name\": \"a\", \"value\": 1}]}",
            "{\"plan\": \"full\", \"comparisons\": [{\"name\": \"a\", \"value\": 1}, {\"name\": \"a\", \"value\": 2}]}",
        ] {
            let e = Baseline::parse(text, p).unwrap_err();
            assert!(matches!(e, BaselineError::Malformed { .. }), "{text}: {e}");
            assert!(e.to_string().contains("b.json"), "{e}");
        }
        let e = Baseline::load(Path::new("/nonexistent/baseline.json")).unwrap_err();
        assert!(matches!(e, BaselineError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/baseline.json"));
    }

    #[test]
    fn a_report_round_trips_as_its_own_baseline() {
        let mut report = Report::new("d".into(), "quick", Vec::new());
        report.comparisons = now(4.0, 2.0);
        let b = Baseline::parse(&report.json(), Path::new("r.json")).unwrap();
        assert_eq!(b.comparisons, report.comparisons);
        assert!(b.compare(&report, 25.0).regressions.is_empty());
    }
}
