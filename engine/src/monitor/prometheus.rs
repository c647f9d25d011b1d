//! The Prometheus text exposition format (version 0.0.4) of a [`MetricsSnapshot`]:
//! `# HELP` and `# TYPE` per family, histograms as cumulative `_bucket{le=...}` series with
//! `_sum` and `_count`.

use std::fmt::Write;

use super::metrics::{Kind, MetricsSnapshot};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn labels(pairs: &[(String, String)], extra: Option<(&str, &str)>) -> String {
    let mut items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        items.push(format!("{k}=\"{}\"", escape_label(v)));
    }
    if items.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", items.join(","))
    }
}

/// Renders the snapshot in the text exposition format. Families without samples are left
/// out.
pub fn render(snapshot: &MetricsSnapshot) -> String {
    let mut out = String::new();
    for f in snapshot.families.iter().filter(|f| !f.samples.is_empty()) {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
        let _ = writeln!(out, "# TYPE {} {kind}", f.name);
        for s in &f.samples {
            match &s.histogram {
                Some(h) => {
                    for (le, n) in &h.buckets {
                        let le = number(*le);
                        let _ = writeln!(
                            out,
                            "{}_bucket{} {n}",
                            f.name,
                            labels(&s.labels, Some(("le", &le)))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{}_bucket{} {}",
                        f.name,
                        labels(&s.labels, Some(("le", "+Inf"))),
                        h.count
                    );
                    let _ = writeln!(
                        out,
                        "{}_sum{} {}",
                        f.name,
                        labels(&s.labels, None),
                        number(h.sum)
                    );
                    let _ = writeln!(
                        out,
                        "{}_count{} {}",
                        f.name,
                        labels(&s.labels, None),
                        h.count
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "{}{} {}",
                        f.name,
                        labels(&s.labels, None),
                        number(s.value)
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::metrics::{Family, HistogramData, Sample};

    #[test]
    fn renders_counters_gauges_and_histograms() {
        let snap = MetricsSnapshot {
            at_ns: 0,
            families: vec![
                Family {
                    name: "x_total".into(),
                    help: "A \\ counter.".into(),
                    kind: Kind::Counter,
                    samples: vec![Sample {
                        labels: vec![("t".into(), "a\"b".into())],
                        value: 3.0,
                        histogram: None,
                    }],
                },
                Family {
                    name: "y_seconds".into(),
                    help: "A histogram.".into(),
                    kind: Kind::Histogram,
                    samples: vec![Sample {
                        labels: Vec::new(),
                        value: 2.0,
                        histogram: Some(HistogramData {
                            buckets: vec![(0.5, 1), (1.0, 2)],
                            count: 2,
                            sum: 1.25,
                            p50: 0.5,
                            p99: 1.0,
                            max: 1.0,
                        }),
                    }],
                },
                Family {
                    name: "empty".into(),
                    help: "none".into(),
                    kind: Kind::Gauge,
                    samples: Vec::new(),
                },
            ],
        };
        assert_eq!(
            render(&snap),
            "# HELP x_total A \\\\ counter.\n# TYPE x_total counter\nx_total{t=\"a\\\"b\"} 3\n\
             # HELP y_seconds A histogram.\n# TYPE y_seconds histogram\ny_seconds_bucket{le=\"0.5\"} 1\n\
             y_seconds_bucket{le=\"1\"} 2\ny_seconds_bucket{le=\"+Inf\"} 2\ny_seconds_sum 1.25\ny_seconds_count 2\n"
        );
    }
}
