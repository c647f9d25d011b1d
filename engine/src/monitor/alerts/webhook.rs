//! The webhook channel: the notification POSTed as JSON (Alertmanager's webhook payload)
//! to a URL, with a timeout so a slow receiver cannot hold up the alert manager for long.
//! Plain `http://` only: the client is built without a TLS stack. A failure (no
//! connection, a timeout, a status of 400 or more) is counted, and the notification is
//! retried at the group's next `group_interval`.

use std::time::Duration;

use super::notification::Notification;

/// Default timeout of a POST.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest timeout a webhook may be given: a delivery under way holds up the alert
/// manager's next tick and the store's close.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// A webhook target.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    url: String,
    agent: ureq::Agent,
}

impl Webhook {
    /// A webhook posting to `url` with this timeout for the whole exchange.
    pub fn new(url: &str, timeout: Duration) -> Webhook {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(true)
            .max_redirects(0)
            .build();
        Webhook {
            url: url.to_owned(),
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs the notification; the error says why it failed.
    pub fn post(&self, n: &Notification) -> Result<(), String> {
        self.agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(n.to_json())
            .map(drop)
            .map_err(|e| format!("webhook {}: {e}", self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::alerts::notification::NotificationStatus;
    use crate::monitor::alerts::tests::http::Server;

    #[test]
    fn posts_the_json_payload_to_a_real_server() {
        let server = Server::start(200);
        let hook = Webhook::new(&server.url("/hook"), Duration::from_secs(5));
        let n = Notification::new("ops", "route 0:{}".into(), Default::default(), Vec::new());
        hook.post(&n).unwrap();
        let req = server.next_request().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/hook");
        assert!(req.content_type.contains("application/json"), "{req:?}");
        let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
        assert_eq!(body["receiver"], "ops");
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["version"], "4");
        let back: Notification = serde_json::from_str(&req.body).unwrap();
        assert_eq!(back, n);
        assert_eq!(back.status, NotificationStatus::Resolved);
    }

    #[test]
    fn errors_and_refusals_are_failures() {
        let server = Server::start(500);
        let hook = Webhook::new(&server.url("/"), Duration::from_secs(5));
        let n = Notification::new("ops", "route 0:{}".into(), Default::default(), Vec::new());
        let e = hook.post(&n).unwrap_err();
        assert!(e.contains("500"), "{e}");
        let closed = Webhook::new(&Server::closed_url(), Duration::from_millis(500));
        assert!(closed.post(&n).is_err());
    }
}
