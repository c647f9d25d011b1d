//! Checking the `http://` URLs that the monitor's clients are given: alert webhooks, and the
//! command line's `--url` of a running monitor. The HTTP client reads a port it cannot parse
//! (`:99999`, `:abc`) as no port at all and would connect to port 80, where something else
//! may answer (a readiness probe would report that something's health), so every such URL
//! is checked first.

/// Whether `url` is a plain `http://` URL with a host and, when it names a port, a port
/// from 1 to 65535; the reason it is not otherwise.
pub fn check_http_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Err(
            "https is not supported (the client has no TLS); use http:// (a relay on the host \
             can add TLS)"
                .to_owned(),
        );
    }
    if !url.starts_with("http://") {
        return Err("it must start with http://".to_owned());
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("it is not a valid URL: {e}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err("it names no host".to_owned());
    }
    // The authority as written, without the user name and password.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let port = match host_port.strip_prefix('[') {
        // An IPv6 address (the URL parsed, so its bracket closes): the port follows it.
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    match port {
        None => Ok(()),
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => match p.parse() {
            Ok(1..=65535u16) => Ok(()),
            _ => Err(format!("its port {p} is not from 1 to 65535")),
        },
        Some(p) => Err(format!("its port {p:?} is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::check_http_url;

    #[test]
    fn ports_the_client_would_misread_are_refused() {
        for good in [
            "http://127.0.0.1:9187",
            "http://127.0.0.1:9187/",
            "http://localhost",
            "http://host:1/path?q=1:2",
            "http://user:pw@host:65535/x",
            "http://[::1]:9187/",
            "http://[::1]",
        ] {
            assert_eq!(check_http_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("http://127.0.0.1:99999", "not from 1 to 65535"),
            ("http://127.0.0.1:65536/x", "not from 1 to 65535"),
            ("http://127.0.0.1:0", "not from 1 to 65535"),
            ("http://127.0.0.1:4294967297", "not from 1 to 65535"),
            ("http://127.0.0.1:abc", "not a number"),
            ("http://127.0.0.1:-5", "not a number"),
            ("http://127.0.0.1:", "not a number"),
            ("http://[::1]:99999", "not from 1 to 65535"),
            ("http://[::1]:", "not a number"),
            ("http://[::1", "not a valid URL"),
            ("http://:80/x", "no host"),
            ("https://host", "https is not supported"),
            ("127.0.0.1:9187", "must start with http://"),
            ("http://", "URL"),
            ("http://a b", "URL"),
        ] {
            let e = check_http_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
