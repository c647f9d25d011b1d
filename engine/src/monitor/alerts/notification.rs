//! Notifications: what a receiver is sent for a group, in the shape of Alertmanager's
//! webhook payload (`receiver`, `status`, `alerts` with `status`, `labels`, `annotations`,
//! `startsAt`, `endsAt`, and `groupLabels`, `commonLabels`, `commonAnnotations`,
//! `groupKey`, `version`), plus each alert's measured `value`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Whether a notification (or one alert in it) is about firing or resolved alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// Firing (for a notification: at least one of its alerts fires).
    Firing,
    /// Resolved (for a notification: every alert in it).
    Resolved,
}

/// `endsAt` of an alert still firing, as Alertmanager writes it.
pub(crate) const NO_END: &str = "0001-01-01T00:00:00Z";

/// One alert in a notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedAlert {
    /// Firing or resolved.
    pub status: NotificationStatus,
    /// Its labels (`alertname`, `severity` and the rule's).
    pub labels: BTreeMap<String, String>,
    /// Its annotations, with the value filled in.
    pub annotations: BTreeMap<String, String>,
    /// When it began firing, RFC 3339.
    pub starts_at: String,
    /// When it resolved, RFC 3339; `0001-01-01T00:00:00Z` while firing.
    pub ends_at: String,
    /// The last measured value.
    pub value: Option<f64>,
}

/// What one receiver is sent about one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The payload's version, `"4"` as Alertmanager's.
    pub version: String,
    /// Which group this is: the route and the group labels.
    pub group_key: String,
    /// The receiver's name.
    pub receiver: String,
    /// Firing when any alert fires, else resolved.
    pub status: NotificationStatus,
    /// The group's alerts: those firing, then those resolved since the last notification.
    pub alerts: Vec<NotifiedAlert>,
    /// The labels the group is made by.
    pub group_labels: BTreeMap<String, String>,
    /// The labels every alert has with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// The annotations every alert has with the same value.
    pub common_annotations: BTreeMap<String, String>,
}

impl Notification {
    /// A notification of these alerts (firing first is the caller's order).
    pub(crate) fn new(
        receiver: &str,
        group_key: String,
        group_labels: BTreeMap<String, String>,
        alerts: Vec<NotifiedAlert>,
    ) -> Notification {
        let status = if alerts
            .iter()
            .any(|a| a.status == NotificationStatus::Firing)
        {
            NotificationStatus::Firing
        } else {
            NotificationStatus::Resolved
        };
        let common = |get: fn(&NotifiedAlert) -> &BTreeMap<String, String>| {
            let mut it = alerts.iter();
            let mut c = it.next().map(|a| get(a).clone()).unwrap_or_default();
            for a in it {
                c.retain(|k, v| get(a).get(k) == Some(v));
            }
            c
        };
        Notification {
            version: "4".into(),
            common_labels: common(|a| &a.labels),
            common_annotations: common(|a| &a.annotations),
            group_key,
            receiver: receiver.to_owned(),
            status,
            alerts,
            group_labels,
        }
    }

    /// The notification as one line of JSON.
    pub fn to_json(&self) -> String {
        // A map of strings and finite numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The names (`alertname`) of its alerts of a status.
    pub fn alert_names(&self, status: NotificationStatus) -> Vec<&str> {
        self.alerts
            .iter()
            .filter(|a| a.status == status)
            .filter_map(|a| a.labels.get("alertname").map(String::as_str))
            .collect()
    }
}

/// The group key as written in notifications: `route N:{name="value", ...}`.
pub(crate) fn group_key(route: usize, labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("route {route}:{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: NotificationStatus, pairs: &[(&str, &str)]) -> NotifiedAlert {
        NotifiedAlert {
            status,
            labels: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at: "1970-01-01T00:00:00.000Z".into(),
            ends_at: NO_END.into(),
            value: Some(1.0),
        }
    }

    #[test]
    fn status_and_common_labels() {
        let n = Notification::new(
            "ops",
            group_key(0, &BTreeMap::new()),
            BTreeMap::new(),
            vec![
                alert(
                    NotificationStatus::Firing,
                    &[("alertname", "A"), ("instance", "db1")],
                ),
                alert(
                    NotificationStatus::Resolved,
                    &[("alertname", "B"), ("instance", "db1")],
                ),
            ],
        );
        assert_eq!(n.status, NotificationStatus::Firing);
        assert_eq!(n.common_labels.len(), 1);
        assert_eq!(n.alert_names(NotificationStatus::Resolved), ["B"]);
        let v: serde_json::Value = serde_json::from_str(&n.to_json()).unwrap();
        assert_eq!(v["groupKey"], "route 0:{}");
        assert_eq!(v["alerts"][0]["endsAt"], NO_END);
        assert_eq!(v["commonLabels"]["instance"], "db1");
    }
}
