//! The monitor's HTTP server: `/metrics` (Prometheus), `/health` (JSON; status 503 when
//! failing), `/api/series` and `/api/status` (JSON for the dashboard), and the dashboard
//! page at `/`, whose charts update every second without a reload; and `POST /api/backup`,
//! which takes an online backup into the store's `backups/` folder (a store is open in one
//! process at a time, so this is how an operator backs up a running program's store).
//!
//! It binds to loopback unless told otherwise; any other address needs a token, which every
//! request must then carry (`Authorization: Bearer <token>` or `?token=<token>`).
//!
//! The server is small and bounded, since it runs inside the process that writes the store
//! (`simulate --monitor`, or an application's own): at most [`MAX_CONNECTIONS`] connections
//! are served at once (one more is closed at once, so a flood cannot take the process's file
//! handles or threads), a request's head may be at most [`MAX_HEAD`] bytes and must arrive
//! within [`HEAD_DEADLINE`] (a slow or endless sender is cut off), and each connection
//! carries one request (`Connection: close`). It reads no body. The one request that
//! changes anything, the backup, must be a POST with an [`REQUESTED_BY`] header (which a
//! web page cannot send to another origin without the server's consent: a page the
//! operator's browser shows cannot start backups), runs one at a time, and writes only
//! where the store's own backups go.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::health::HealthState;
use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Connections served at once; one more is closed as soon as it is accepted.
pub const MAX_CONNECTIONS: usize = 32;
/// Most bytes of a request line and headers.
pub const MAX_HEAD: usize = 16 << 10;
/// How long a client has to send its request's head.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// How long writing a response may stall.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The endpoint that takes a backup (POST).
pub const BACKUP_PATH: &str = "/api/backup";
/// The header a backup request must carry, with any non-empty value.
pub const REQUESTED_BY: &str = "X-Requested-By";

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
    served: Arc<Served>,
}

impl MonitorServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MonitorServer {
    /// Stops accepting, then waits for a backup asked for through the server to finish: a
    /// program that exits next would cut it off (and the client would get no answer).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        while self.served.backing_up.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
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
        )
        .advise("give a token, or listen on a loopback address such as 127.0.0.1"));
    }
    // A token is sent as a header value or a query parameter: blanks and control
    // characters would not survive either, and a blank token protects nothing.
    if let Some(t) = options.token.as_deref()
        && (t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Error::new(
            ErrorKind::Config,
            "the monitor's token must be non-empty, without spaces or control characters",
        )
        .advise("give another token"));
    }
    let listener = TcpListener::bind(options.listen)
        .map_err(|e| Error::io(format!("binding the monitor to {}", options.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("reading the monitor's listening address", e))?;
    // Polled, so that dropping the server stops the loop within a few milliseconds.
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("setting up the monitor's socket", e))?;
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(Served {
        store,
        token: options.token,
        backing_up: AtomicBool::new(false),
    });
    let thread = {
        let stop = Arc::clone(&stop);
        let served = Arc::clone(&served);
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("tradestore-monitor".into())
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accept(stream, &served, &active);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        // Out of file handles, a connection reset before it was accepted:
                        // wait a moment and go on serving.
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .map_err(|e| Error::io("starting the monitor thread", e))?
    };
    Ok(MonitorServer {
        addr,
        stop,
        thread: Some(thread),
        served,
    })
}

/// What every connection's thread serves.
struct Served {
    store: Arc<Store>,
    /// The token requests must carry.
    token: Option<String>,
    /// Whether a backup asked for through [`BACKUP_PATH`] is running.
    backing_up: AtomicBool,
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

fn authorized(request: &Request, query: &str, token: Option<&str>) -> bool {
    let Some(token) = token else { return true };
    let header = request
        .authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "));
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

/// One request's head, as far as the monitor reads it.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    method: String,
    /// The request target: path and query.
    url: String,
    /// The `Authorization` header's value.
    authorization: Option<String>,
    /// The [`REQUESTED_BY`] header's value.
    requested_by: Option<String>,
}

/// Why a request's head was not read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// It is not a request line and headers (status 400).
    Malformed,
    /// Over [`MAX_HEAD`] bytes (status 431).
    TooLarge,
    /// The client went away, or was too slow: nothing is answered.
    Gone,
}

/// Parses a request's head (request line and headers, without the blank line).
fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(url), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if method.is_empty() || !url.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed);
    }
    let (mut authorization, mut requested_by) = (None, None);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.trim().to_owned());
        } else if name.eq_ignore_ascii_case(REQUESTED_BY) {
            requested_by = Some(value.trim().to_owned());
        }
    }
    Ok(Request {
        method: method.to_owned(),
        url: url.to_owned(),
        authorization,
        requested_by,
    })
}

/// Reads a request's head from `stream`: at most [`MAX_HEAD`] bytes, within
/// [`HEAD_DEADLINE`].
fn read_head(stream: &mut TcpStream) -> Result<Request, HeadError> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            // The bound holds however the reads split the bytes.
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            return parse_head(&buf[..end]);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Gone);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Serves `stream` on a thread of its own, unless [`MAX_CONNECTIONS`] are being served.
fn accept(stream: TcpStream, served: &Arc<Served>, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
        active.fetch_sub(1, Ordering::SeqCst);
        // Closed unread: the client sees a reset, the process keeps its handles.
        return;
    }
    let (served, done) = (Arc::clone(served), Arc::clone(active));
    let spawned = std::thread::Builder::new()
        .name("tradestore-monitor-conn".into())
        .spawn(move || {
            serve_connection(stream, &served);
            done.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        // No thread to serve it: the connection was dropped with the closure.
        active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads one request from `stream`, answers it and closes the connection.
fn serve_connection(mut stream: TcpStream, served: &Served) {
    // Accepted sockets may inherit the listener's non-blocking mode.
    if stream.set_nonblocking(false).is_err()
        || stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let (status, content_type, body) = match read_head(&mut stream) {
        Ok(request) => handle(served, &request),
        Err(HeadError::Malformed) => (400, "text/plain", "malformed request\n".to_owned()),
        Err(HeadError::TooLarge) => (
            431,
            "text/plain",
            format!("the request's head is over {MAX_HEAD} bytes\n"),
        ),
        Err(HeadError::Gone) => return,
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\n",
        reason(status),
        body.len()
    );
    // A client that went away gets nothing more.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .and_then(|()| stream.flush());
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// A response: status, content type and body.
type Response = (u16, &'static str, String);

fn handle(served: &Served, request: &Request) -> Response {
    let store = &served.store;
    let url = request.url.as_str();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    if !authorized(request, query, served.token.as_deref()) {
        return (401, "text/plain", "a valid token is required\n".into());
    }
    if path == BACKUP_PATH {
        return backup(served, request);
    }
    if request.method != "GET" {
        return (
            405,
            "text/plain",
            format!("only GET is served here (POST: {BACKUP_PATH})\n"),
        );
    }
    let json = "application/json";
    match path {
        "/" | "/index.html" => (200, "text/html; charset=utf-8", DASHBOARD.to_owned()),
        "/metrics" => (200, super::prometheus::CONTENT_TYPE, store.prometheus()),
        "/health" => {
            let h = store.health();
            let status = if h.state == HealthState::Failing {
                503
            } else {
                200
            };
            (status, json, serde_json::to_string(&h).unwrap_or_default())
        }
        "/api/series" => {
            let now = crate::index::now_ns() / 1_000_000_000;
            let since = match query_param(query, "since").map(|s| s.parse::<i64>()) {
                Some(Ok(s)) if s < 0 => now.saturating_sub(s.unsigned_abs()),
                Some(Ok(s)) => u64::try_from(s).unwrap_or(0),
                Some(Err(_)) => {
                    return (
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
            (200, json, json!({"now": now, "series": series}).to_string())
        }
        "/api/status" => {
            let body = json!({
                "health": store.health(),
                "alerts": store.alert_states(),
                "deliveries": store.alert_manager().map(|m| m.lock().delivery_stats()).unwrap_or_default(),
                "trends": store.trends(),
            });
            (200, json, body.to_string())
        }
        _ => (404, "text/plain", format!("no page at {path}\n")),
    }
}

/// `POST /api/backup`: an online backup into the store's `backups/` folder; answers with
/// the backup's report as JSON, 409 while another one asked for here runs, 500 with the
/// error when it fails (nothing is left of a failed backup).
fn backup(served: &Served, request: &Request) -> Response {
    if request.method != "POST" {
        return (
            405,
            "text/plain",
            format!("{BACKUP_PATH} takes POST only\n"),
        );
    }
    if request.requested_by.as_deref().is_none_or(str::is_empty) {
        return (
            403,
            "text/plain",
            format!("a backup request must carry a non-empty {REQUESTED_BY} header\n"),
        );
    }
    if served.backing_up.swap(true, Ordering::SeqCst) {
        return (
            409,
            "text/plain",
            "a backup asked for through the monitor is still running; ask again when it is done\n"
                .into(),
        );
    }
    /// Lets the next backup in however this one ends.
    struct Running<'a>(&'a AtomicBool);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    let _running = Running(&served.backing_up);
    match served.store.backup_in_store() {
        Ok(report) => (
            200,
            "application/json",
            serde_json::to_string(&report).unwrap_or_default(),
        ),
        Err(e) => (500, "text/plain", format!("{e}\n")),
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

#[cfg(test)]
mod http_tests {
    use super::*;

    #[test]
    fn heads_parse_or_are_refused() {
        let r = parse_head(b"GET /health?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  Bearer t ")
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.url, "/health?x=1");
        assert_eq!(r.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(r.requested_by, None);
        let r = parse_head(b"POST /api/backup HTTP/1.1\r\nx-requested-by: ops").unwrap();
        assert_eq!(r.requested_by.as_deref(), Some("ops"));
        for bad in [
            &b""[..],
            b"GET /",
            b"GET / HTTP/1.1 extra",
            b"GET http://x/ HTTP/1.1",
            b"GET / SPDY/3",
            b"GET / HTTP/1.1\r\nno colon here",
            b"GET /\xff HTTP/1.1",
        ] {
            assert_eq!(
                parse_head(bad),
                Err(HeadError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        // The server may answer and close before all of an oversized head was sent.
        let _ = s.write_all(request);
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn dropping_the_server_waits_for_a_backup_it_is_taking() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let store = Arc::new(Store::open(dir.path(), crate::Config::default())?);
        let server = serve(
            store,
            ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                token: None,
            },
        )?;
        // As a request's thread marks it while `backup_in_store` runs.
        let served = Arc::clone(&server.served);
        served.backing_up.store(true, Ordering::SeqCst);
        let (dropped, done) = std::sync::mpsc::channel();
        let dropper = std::thread::spawn(move || {
            drop(server);
            let _ = dropped.send(());
        });
        assert!(
            done.recv_timeout(Duration::from_millis(300)).is_err(),
            "the server went away in the middle of a backup"
        );
        served.backing_up.store(false, Ordering::SeqCst);
        assert!(
            done.recv_timeout(Duration::from_secs(60)).is_ok(),
            "the drop did not return once the backup was done"
        );
        dropper.join().expect("the dropping thread panicked");
        Ok(())
    }

    #[test]
    fn oversized_heads_and_floods_do_not_take_the_server_down() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let store = Arc::new(Store::open(dir.path(), crate::Config::default())?);
        let server = serve(
            Arc::clone(&store),
            ServeOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                token: None,
            },
        )?;
        let addr = server.addr();
        let ok = |r: std::io::Result<String>| r.is_ok_and(|r| r.starts_with("HTTP/1.1 200 OK"));
        assert!(ok(exchange(addr, b"GET /health HTTP/1.1\r\n\r\n")));

        let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        big.resize(MAX_HEAD * 4, b'a');
        let r = exchange(addr, &big).unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        // A whole head just over the bound, which one read may bring in with its end.
        let mut over = b"GET /health HTTP/1.1\r\nX-Pad: ".to_vec();
        over.resize(MAX_HEAD + 100, b'a');
        over.extend_from_slice(b"\r\n\r\n");
        let r = exchange(addr, &over).unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        let r = exchange(addr, b"BREW\r\n\r\n").unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 400"), "{r}");
        let r = exchange(addr, b"POST /health HTTP/1.1\r\n\r\n").unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        let r = exchange(addr, b"GET /api/backup HTTP/1.1\r\n\r\n").unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        // Without the header a web page cannot send, no backup is taken.
        let r = exchange(addr, b"POST /api/backup HTTP/1.1\r\n\r\n").unwrap_or_default();
        assert!(r.starts_with("HTTP/1.1 403"), "{r}");
        let backups = std::fs::read_dir(dir.path().join("backups")).map_or(0, Iterator::count);
        assert_eq!(backups, 0, "a refused request made a backup");

        // Twice the limit of idle connections: the extra ones are closed, the rest are
        // served or cut off, and the server answers again once they are gone.
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS * 2)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        drop(idle);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ok(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n")) {
            assert!(Instant::now() < deadline, "the monitor stopped answering");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}
