//! The engine's one error type. Every error has a [`ErrorKind`] (what class of failure it
//! is, and so what a caller can do about it) and a message meant for a person.

use std::fmt;

use tradestore_schema::RuleViolation;
use tradestore_schema::codec::DecodeError;

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What class of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A write broke a business rule, a foreign key or a unique index. Fix the data.
    Constraint,
    /// The row, index or file asked for does not exist.
    NotFound,
    /// A concurrent transaction changed what this one read. Retry.
    Conflict,
    /// This transaction was picked as the victim of a lock cycle. Retry.
    Deadlock,
    /// The operating system refused a read, write or sync.
    Io,
    /// Stored bytes are not what this build wrote: a damaged or foreign file.
    Corruption,
    /// A configuration file, environment variable or argument is wrong.
    Config,
    /// A limit was hit (a full queue, a lock wait that timed out, an id space used up).
    Capacity,
    /// The input given (a dump line, a query) is malformed.
    Invalid,
    /// Another process (or another handle in this one) has the store open.
    Busy,
}

impl ErrorKind {
    /// The lower-case name used in messages, JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Constraint => "constraint",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Deadlock => "deadlock",
            ErrorKind::Io => "io",
            ErrorKind::Corruption => "corruption",
            ErrorKind::Config => "config",
            ErrorKind::Capacity => "capacity",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Busy => "busy",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An engine error: a kind, a message, and the underlying cause if any.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// What to do about it, where the kind's own advice does not fit.
    advice: Option<&'static str>,
}

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
            advice: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// Prefixes the message with where the error happened (a line, a file).
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// What class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether running the same transaction again may succeed (conflicts and deadlocks).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Conflict | ErrorKind::Deadlock)
    }

    pub(crate) fn constraint(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Constraint, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, shorten_lines(message.into()))
    }

    pub(crate) fn corruption(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corruption, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Invalid, shorten_lines(message.into()))
    }

    pub(crate) fn io(message: impl Into<String>, source: std::io::Error) -> Error {
        use std::io::ErrorKind as Io;
        // What the operating system said decides the advice: a missing path or a denied
        // permission is not a failing disk.
        let advice = match source.kind() {
            Io::NotFound => Some("check the path: it does not exist"),
            Io::PermissionDenied | Io::ReadOnlyFilesystem => Some(
                "check the permissions of the path, and that its file system is mounted writable",
            ),
            Io::IsADirectory | Io::NotADirectory | Io::InvalidFilename => {
                Some("check the path: it names the wrong kind of file")
            }
            Io::AlreadyExists => Some(
                "check the path: something is already there (a file where a folder belongs?); \
                 move it away",
            ),
            Io::AddrInUse | Io::AddrNotAvailable => Some(
                "the address is taken by another program, or is not one of this machine's; \
                 choose another",
            ),
            Io::StorageFull | Io::QuotaExceeded => Some(
                "free space on the disk; the store refuses writes until reopened after a failed write",
            ),
            _ => None,
        };
        let e =
            Error::new(ErrorKind::Io, format!("{}: {source}", message.into())).with_source(source);
        match advice {
            Some(a) => e.advise(a),
            None => e,
        }
    }

    /// Replaces the kind's advice with `advice`: for errors about files other than the
    /// store's own (a backup, a copy of a journal), where checking the store is beside the
    /// point.
    pub(crate) fn advise(mut self, advice: &'static str) -> Error {
        self.advice = Some(advice);
        self
    }

    pub(crate) fn hint(&self) -> &'static str {
        if let Some(advice) = self.advice {
            return advice;
        }
        match self.kind {
            ErrorKind::Constraint => "the write was not applied; correct the data and try again",
            ErrorKind::NotFound => "check the id, name or path",
            ErrorKind::Conflict => {
                "another transaction changed the same data; retry the transaction"
            }
            ErrorKind::Deadlock => "the transaction was chosen to break a lock cycle; retry it",
            ErrorKind::Io => {
                "check the disk (space, permissions, health); the store refuses writes until reopened after a failed write"
            }
            ErrorKind::Corruption => {
                "the stored data is damaged; run `tradestore check`, then restore from a dump or backup"
            }
            ErrorKind::Config => {
                "fix the named setting or file (tradestore.toml, alerts.toml, TRADESTORE_* variables)"
            }
            ErrorKind::Capacity => {
                "a limit was reached; wait and retry, or raise the limit in the configuration"
            }
            ErrorKind::Invalid => "fix the input and try again; nothing was changed",
            ErrorKind::Busy => "close the other process or handle using the store, then retry",
        }
    }
}

impl Error {
    /// What the message is introduced with: `constraint error`, `invalid input`, ...
    pub fn heading(&self) -> String {
        match self.kind {
            ErrorKind::Invalid => "invalid input".to_owned(),
            ErrorKind::NotFound => "not found".to_owned(),
            kind => format!("{kind} error"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.heading(), self.message, self.hint())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Runs a read of redb pages, turning a panic inside redb (which some damaged pages cause
/// instead of an error) into a corruption error. Reads share no mutable state with the
/// writer, so the snapshot is simply dropped afterwards.
pub(crate) fn guard_read<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("unknown failure");
            Err(Error::corruption(format!(
                "{what}: the database file is damaged ({msg})"
            )))
        }
    }
}

/// A panic in the application's code (a scan's visitor) called from inside a
/// [`guard_read`]: that panic is the application's, not a sign of a damaged file, so it is
/// caught where the application's code is called, kept, and resumed once the read is left.
#[derive(Default)]
pub(crate) struct UserPanic(std::cell::RefCell<Option<Box<dyn std::any::Any + Send>>>);

impl UserPanic {
    /// Runs the application's `f`; a panic in it is kept and stops the read with an error.
    pub(crate) fn call<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(payload) => {
                *self.0.borrow_mut() = Some(payload);
                Err(Error::invalid("the application's visitor panicked"))
            }
        }
    }

    /// Resumes the kept panic, if there is one.
    pub(crate) fn resume(&self) {
        if let Some(payload) = self.0.borrow_mut().take() {
            std::panic::resume_unwind(payload);
        }
    }
}

impl From<RuleViolation> for Error {
    fn from(v: RuleViolation) -> Error {
        Error::constraint(v.to_string()).with_source(v)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Error {
        Error::corruption(e.to_string()).with_source(e)
    }
}

impl From<redb::StorageError> for Error {
    fn from(e: redb::StorageError) -> Error {
        match e {
            redb::StorageError::Corrupted(msg) => {
                Error::corruption(format!("database file: {msg}"))
            }
            redb::StorageError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Error::corruption(format!("database file: {io}"))
            }
            redb::StorageError::Io(io) => Error::io("database file", io),
            redb::StorageError::DatabaseClosed => closed(),
            other => Error::new(ErrorKind::Io, format!("database: {other}")).with_source(other),
        }
    }
}

/// A snapshot or transaction used after its store was closed: nothing is wrong with the
/// disk or the data.
fn closed() -> Error {
    Error::invalid("the store this snapshot or transaction belongs to was closed")
        .advise("take a new snapshot from the store once it is open again")
}

macro_rules! from_redb {
    ($($t:ty),+) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                match e.into() {
                    redb::Error::Corrupted(msg) => Error::corruption(format!("database file: {msg}")),
                    redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                        Error::corruption(format!("database file is not a tradestore database: {io}"))
                    }
                    redb::Error::Io(io) => Error::io("database file", io),
                    redb::Error::DatabaseAlreadyOpen => Error::new(
                        ErrorKind::Busy,
                        "the store is already open in another process or handle; close it first",
                    ),
                    redb::Error::DatabaseClosed => closed(),
                    redb::Error::UpgradeRequired(v) => Error::corruption(format!(
                        "the database file has format version {v}, which this build cannot read"
                    )),
                    other => Error::new(ErrorKind::Io, format!("database: {other}")).with_source(other),
                }
            }
        }
    )+};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::SetDurabilityError,
    redb::CompactionError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds() {
        assert!(Error::new(ErrorKind::Conflict, "x").is_retryable());
        assert!(Error::new(ErrorKind::Deadlock, "x").is_retryable());
        assert!(!Error::constraint("x").is_retryable());
        assert!(!Error::corruption("x").is_retryable());
    }

    #[test]
    fn display_names_kind_message_and_hint() {
        let e = Error::constraint("order 5: quantity 0 must be > 0").context("line 3");
        let s = e.to_string();
        assert!(s.starts_with("constraint error: line 3: order 5"), "{s}");
        assert!(s.contains("correct the data"), "{s}");
        let s = Error::invalid("unknown column \"x\"").to_string();
        assert!(s.starts_with("invalid input: unknown column"), "{s}");
        let s = Error::new(ErrorKind::NotFound, "no index named x").to_string();
        assert!(s.starts_with("not found: no index named x"), "{s}");
    }

    #[test]
    fn a_closed_database_is_not_a_disk_failure() {
        for e in [
            Error::from(redb::StorageError::DatabaseClosed),
            Error::from(redb::TransactionError::Storage(
                redb::StorageError::DatabaseClosed,
            )),
        ] {
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
            let s = e.to_string();
            assert!(s.contains("was closed"), "{s}");
            assert!(!s.contains("check the disk"), "{s}");
        }
    }

    #[test]
    fn io_advice_follows_what_the_system_said() {
        use std::io::{Error as E, ErrorKind as K};
        let advice = |k: K| Error::io("opening x", E::from(k)).to_string();
        assert!(advice(K::NotFound).contains("it does not exist"));
        assert!(advice(K::PermissionDenied).contains("permissions"));
        assert!(advice(K::StorageFull).contains("free space"));
        let other = advice(K::UnexpectedEof);
        assert!(other.contains("check the disk"), "{other}");
        assert!(!advice(K::NotFound).contains("check the disk"));
    }
}

/// The longest line an input error shows whole.
const LONG_LINE: usize = 512;

/// Shortens each line over [`LONG_LINE`] bytes to its start and end: an error about bad
/// input quotes the input, and a megabyte literal must not make a megabyte message.
fn shorten_lines(message: String) -> String {
    if message.lines().all(|l| l.len() <= LONG_LINE) {
        return message;
    }
    let floor = |l: &str, mut i: usize| {
        while !l.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    message
        .split('\n')
        .map(|l| {
            if l.len() <= LONG_LINE {
                return l.to_owned();
            }
            let head = floor(l, 240);
            let tail = floor(l, l.len() - 120);
            format!(
                "{} ... ({} bytes left out) ... {}",
                &l[..head],
                tail - head,
                &l[tail..]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod shorten_tests {
    use super::*;

    #[test]
    fn long_lines_of_input_errors_are_shortened_at_char_boundaries() {
        let literal = "é".repeat(100_000);
        let e = Error::invalid(format!(
            "side is buy or sell; '{literal}' is not\nat line 1"
        ));
        let m = e.message();
        assert!(m.len() < 1000, "{} bytes", m.len());
        assert!(m.contains("bytes left out"), "{m}");
        assert!(m.starts_with("side is buy or sell; 'é"), "{m}");
        assert!(m.ends_with("' is not\nat line 1"), "{m}");
        let short = Error::invalid("fine\nlines");
        assert_eq!(short.message(), "fine\nlines");
    }
}
