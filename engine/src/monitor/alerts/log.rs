//! The log channel's line: status, receiver, group, then each alert with its severity,
//! value and summary.

use super::duration::format_value;
use super::notification::{Notification, NotificationStatus};

/// One line for a notification, e.g. `alert firing receiver=ops group={instance="db1"}:
/// DiskFull [critical] value=0: disk full in 4h`.
pub(crate) fn line(n: &Notification) -> String {
    let status = |s: NotificationStatus| match s {
        NotificationStatus::Firing => "firing",
        NotificationStatus::Resolved => "resolved",
    };
    let group: Vec<String> = n
        .group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let alerts: Vec<String> = n
        .alerts
        .iter()
        .map(|a| {
            let label = |k: &str| a.labels.get(k).map_or("", String::as_str);
            let mut s = format!(
                "{} [{} {}]",
                label("alertname"),
                label("severity"),
                status(a.status)
            );
            if let Some(v) = a.value {
                s.push_str(&format!(" value={}", format_value(v)));
            }
            if let Some(summary) = a.annotations.get("summary") {
                s.push_str(&format!(": {summary}"));
            }
            s
        })
        .collect();
    format!(
        "alert {} receiver={} group={{{}}}: {}",
        status(n.status),
        n.receiver,
        group.join(", "),
        alerts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::monitor::alerts::notification::NotifiedAlert;

    #[test]
    fn one_line_per_notification() {
        let labels: BTreeMap<String, String> =
            [("alertname", "DiskFull"), ("severity", "critical")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        let n = Notification::new(
            "ops",
            "route 0:{}".into(),
            [("instance".to_owned(), "db1".to_owned())].into(),
            vec![NotifiedAlert {
                status: NotificationStatus::Firing,
                labels,
                annotations: [("summary".to_owned(), "disk full in 4h".to_owned())].into(),
                starts_at: String::new(),
                ends_at: String::new(),
                value: Some(0.5),
            }],
        );
        assert_eq!(
            line(&n),
            "alert firing receiver=ops group={instance=\"db1\"}: \
             DiskFull [critical firing] value=0.5: disk full in 4h"
        );
    }
}
