//! The monitor's HTTP server: `/metrics` (Prometheus), `/health` (JSON; status 503 when
//! failing), `/api/series` and `/api/status` (JSON for the dashboard), and the dashboard
//! page at `/`, whose charts update every second without a reload.
//!
//! It binds to loopback unless told otherwise; any other address needs a token, which every
//! request must then carry (`Authorization: Bearer <token>` or `?token=<token>`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;

use super::health::HealthState;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Where and how the monitor serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The token requests must carry; required for a non-loopback address.
    pub token: Option<String>,
}

/// A running monitor server; stops when dropped.
pub struct MonitorServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MonitorServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MonitorServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts serving the store's monitor on a background thread.
pub fn serve(store: Arc<Store>, options: ServeOptions) -> Result<MonitorServer> {
    if !options.listen.ip().is_loopback() && options.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the monitor would listen on {}, which is not a loopback address: give a token \
                 that requests must carry (`monitor --token`, `simulate --monitor-token`)",
                options.listen
            ),
        ));
    }
    // A token is sent as a header value or a query parameter: blanks and control
    // characters would not survive either, and a blank token protects nothing.
    if let Some(t) = options.token.as_deref()
        && (t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Error::new(
            ErrorKind::Config,
            "the monitor's token must be non-empty, without spaces or control characters",
        ));
    }
    let server = tiny_http::Server::http(options.listen).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("binding the monitor to {}: {e}", options.listen),
        )
    })?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::new(ErrorKind::Io, "the monitor's listening address is not IP"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("tradestore-monitor".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(request)) => handle(&store, options.token.as_deref(), request),
                        Ok(None) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .map_err(|e| Error::io("starting the monitor thread", e))?
    };
    Ok(MonitorServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorized(request: &tiny_http::Request, query: &str, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let header = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .and_then(|h| h.value.as_str().strip_prefix("Bearer "));
    header.is_some_and(|t| same(t, token))
        || query_param(query, "token")
            .and_then(percent_decode)
            .is_some_and(|t| same(&t, token))
}

/// Decodes `%XX` escapes (a token with `&`, `=` or `%` in it must be sent escaped in a
/// query string); `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let digit = |d: u8| char::from(d).to_digit(16);
            let (hi, lo) = (digit(bytes.next()?)?, digit(bytes.next()?)?);
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn respond(request: tiny_http::Request, status: u16, content_type: &str, body: String) {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", content_type) {
        response = response.with_header(h);
    }
    // A client that went away gets nothing more.
    let _ = request.respond(response);
}

fn handle(store: &Store, token: Option<&str>, request: tiny_http::Request) {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    if !authorized(&request, query, token) {
        return respond(
            request,
            401,
            "text/plain",
            "a valid token is required\n".into(),
        );
    }
    if *request.method() != tiny_http::Method::Get {
        return respond(request, 405, "text/plain", "only GET is served\n".into());
    }
    let json = "application/json";
    match path {
        "/" | "/index.html" => respond(
            request,
            200,
            "text/html; charset=utf-8",
            DASHBOARD.to_owned(),
        ),
        "/metrics" => respond(
            request,
            200,
            super::prometheus::CONTENT_TYPE,
            store.prometheus(),
        ),
        "/health" => {
            let h = store.health();
            let status = if h.state == HealthState::Failing {
                503
            } else {
                200
            };
            respond(
                request,
                status,
                json,
                serde_json::to_string(&h).unwrap_or_default(),
            )
        }
        "/api/series" => {
            let now = crate::index::now_ns() / 1_000_000_000;
            let since = match query_param(query, "since").map(|s| s.parse::<i64>()) {
                Some(Ok(s)) if s < 0 => now.saturating_sub(s.unsigned_abs()),
                Some(Ok(s)) => u64::try_from(s).unwrap_or(0),
                Some(Err(_)) => {
                    return respond(
                        request,
                        400,
                        "text/plain",
                        "since must be whole seconds: since the epoch, or negative for the last N\n"
                            .into(),
                    );
                }
                None => now.saturating_sub(300),
            };
            let names: Vec<String> = match query_param(query, "names") {
                Some(n) if !n.is_empty() => n.split(',').map(str::to_owned).collect(),
                _ => store.series_names(),
            };
            let mut series = serde_json::Map::new();
            for n in names {
                let pts: Vec<serde_json::Value> = store
                    .series(&n, since)
                    .iter()
                    .map(|p| json!([p.t, p.v]))
                    .collect();
                series.insert(n, serde_json::Value::Array(pts));
            }
            respond(
                request,
                200,
                json,
                json!({"now": now, "series": series}).to_string(),
            )
        }
        "/api/status" => {
            let body = json!({
                "health": store.health(),
                "alerts": store.alert_states(),
                "deliveries": store.alert_manager().map(|m| m.lock().delivery_stats()).unwrap_or_default(),
                "trends": store.trends(),
            });
            respond(request, 200, json, body.to_string())
        }
        _ => respond(request, 404, "text/plain", format!("no page at {path}\n")),
    }
}

#[cfg(test)]
mod token_tests {
    use super::percent_decode;

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decode("a%26b%3Dc%25").as_deref(), Some("a&b=c%"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%2"), None);
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%+f"), None);
    }
}
