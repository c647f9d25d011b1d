//! A minimal HTTP server on loopback for the webhook tests: it answers every request with
//! a fixed status and hands the requests to the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A request as received.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub content_type: String,
    pub body: String,
}

/// The server: a thread answering on 127.0.0.1 (port chosen by the system).
pub(crate) struct Server {
    port: u16,
    requests: Receiver<Request>,
}

impl Server {
    /// Starts answering every request with `status`.
    pub fn start(status: u16) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(reply.as_bytes());
                if tx.send(req).is_err() {
                    return;
                }
            }
        });
        Server { port, requests: rx }
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next request received (within 10 s).
    pub fn next_request(&self) -> Option<Request> {
        self.requests.recv_timeout(Duration::from_secs(10)).ok()
    }

    /// A URL where nothing listens (a port bound, then released).
    pub fn closed_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/")
    }
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        content_type,
        body: String::from_utf8(body).ok()?,
    })
}
