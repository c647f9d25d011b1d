//! Asking a running monitor (`health --url`, `alerts --url`): one GET with the token and a
//! deadline, so that a monitor that accepts the connection and never answers cannot hang
//! the command.

use anyhow::{Context, Result, bail};

/// GETs `path` of the monitor at `url`; returns the status and the body. A 401 is an error
/// that says a token is needed.
pub fn get(url: &str, path: &str, token: Option<&str>, timeout_s: u64) -> Result<(u16, String)> {
    let endpoint = format!("{}{path}", url.trim_end_matches('/'));
    let mut request = ureq::get(&endpoint)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(timeout_s)))
        .build();
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut response = request
        .call()
        .with_context(|| format!("asking {endpoint}"))?;
    let status = response.status().as_u16();
    if status == 401 {
        bail!(
            "{endpoint} answered 401: the monitor requires a valid token (--token or TRADESTORE_MONITOR_TOKEN)"
        );
    }
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    Ok((status, body))
}
