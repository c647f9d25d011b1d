//! How an error is shown on stderr.

/// The error and its causes, outermost first, separated by `: ` (anyhow's `{:#}`), except
/// that a cause whose text the line already holds is left out: engine errors put their
/// cause's text in their own message and also return it from `source()`.
pub fn chain(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    // An error that quotes a file name or a parameter must not drive the terminal.
    tradestore::query::result::printable(&line, true).into_owned()
}

/// Whether the error comes from writing to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = |e: &std::io::Error| e.kind() == std::io::ErrorKind::BrokenPipe;
    // Writers that wrap the I/O error in their own type: serde_json (`--json`), csv (`--csv`).
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(pipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<csv::Error>()
                .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if pipe(io)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_errors_are_escaped() {
        let err = anyhow::anyhow!("bad file \u{1b}[31mred\u{7}\nnext line");
        assert_eq!(chain(&err), "bad file \\u{1b}[31mred\\u{7}\nnext line");
    }

    #[test]
    fn a_broken_pipe_is_found_inside_the_writers_errors() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(pipe()).context("x")));
        let json = serde_json::Error::io(pipe());
        assert!(is_broken_pipe(&anyhow::Error::new(json).context("x")));
        let csv = csv::Error::from(pipe());
        assert!(is_broken_pipe(&anyhow::Error::new(csv)));
        let other = serde_json::Error::io(std::io::Error::other("disk on fire"));
        assert!(!is_broken_pipe(&anyhow::Error::new(other)));
    }

    #[test]
    fn repeated_causes_are_shown_once() {
        let io = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(io).context("reading x: disk on fire");
        let err = err.context("restoring");
        assert_eq!(chain(&err), "restoring: reading x: disk on fire");
    }

    #[test]
    fn distinct_causes_are_all_shown() {
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&err), "outer: inner");
    }
}
