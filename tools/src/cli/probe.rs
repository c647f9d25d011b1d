//! Asking a running monitor (`health --url`, `alerts --url`, `backup --url`): one request
//! with the token and a deadline, so that a monitor that accepts the connection and never
//! answers cannot hang the command.

use anyhow::{Context, Result, bail};
use tradestore::monitor::server::REQUESTED_BY;

/// GETs `path` of the monitor at `url`; returns the status and the body. A 401 is an error
/// that says a token is needed.
pub fn get(url: &str, path: &str, token: Option<&str>, timeout_s: u64) -> Result<(u16, String)> {
    let target = target(url, path)?;
    let mut request = ureq::get(&target)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(timeout_s)))
        .build();
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    answer(&target, request.call())
}

/// POSTs an empty body to `path` of the monitor at `url`, with the header its requests that
/// change something must carry; as [`get`].
pub fn post(url: &str, path: &str, token: Option<&str>, timeout_s: u64) -> Result<(u16, String)> {
    let target = target(url, path)?;
    let mut request = ureq::post(&target)
        .config()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(timeout_s)))
        .build()
        .header(REQUESTED_BY, "tradestore");
    if let Some(t) = token {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    answer(&target, request.send_empty())
}

/// `path` of the monitor at `url`, once `url` is checked: the HTTP client would send a URL
/// whose port it cannot read (`:99999`) to port 80.
fn target(url: &str, path: &str) -> Result<String> {
    if let Err(why) = tradestore::monitor::check_http_url(url) {
        bail!("--url {}: {why}", shown(url));
    }
    Ok(format!("{}{path}", url.trim_end_matches('/')))
}

/// The status and body of the monitor's answer to a request for `target`.
fn answer(
    target: &str,
    sent: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, String)> {
    // As messages show it: without a password the URL may carry.
    let endpoint = shown(target);
    let mut response = sent.with_context(|| format!("asking {endpoint}"))?;
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

/// `url` as messages show it: a user name and password in it (`http://user:pass@host/`)
/// become `***`.
pub fn shown(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn credentials_in_a_url_are_not_shown() {
        assert_eq!(shown("http://user:pass@host:9/x"), "http://***@host:9/x");
        assert_eq!(shown("http://host:9/a@b"), "http://host:9/a@b");
        assert_eq!(shown("host:9"), "host:9");
        assert_eq!(shown("https://u@h"), "https://***@h");
    }
}
