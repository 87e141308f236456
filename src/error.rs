//! The error type every command returns: a kind, the cause, and (apart from
//! it) a hint saying what to do. Code decides what to retry or how to report
//! by [`ErrorKind`], never by reading the message. The kinds map to the exit
//! codes of the contract (docs/reference.md): 1 failure, 2 usage, 3
//! configuration or authentication, 4 a check failed, 130 interrupted (143
//! after SIGTERM). Messages are written for a person and never carry a
//! secret: callers build them from hosts, files and rows, not from URLs or
//! tokens.

use std::fmt;

/// What kind of failure ended a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A server could not be reached: connection refused, no answer in
    /// time (exit 3: check the URL). Worth retrying.
    Unreachable,
    /// A server answered and refused: a permission, a constraint, an
    /// exception raised by a SQL function, a missing schema (exit 1).
    Refused,
    /// Missing or wrong configuration, or the credentials were refused: no
    /// token, expired session, 401 (exit 3).
    Config,
    /// Input that cannot be used: an unreadable file or sheet, an answer
    /// mailsync does not understand (exit 1).
    Data,
    /// The command line asked for something that cannot be done (exit 2).
    Usage,
    /// A check ran and failed: `db verify` drift, `import --strict` rejects (exit 4).
    CheckFailed,
    /// Anything else that stopped the work: I/O, a cancelled prompt (exit 1).
    Failure,
    /// Ctrl-C or SIGTERM: the work in flight was finished and recorded
    /// (exit 130 after Ctrl-C, 143 after SIGTERM; see `crate::interrupt`).
    Interrupted,
    /// `campaigns deliver` ended with emails whose outcome is unknown (exit 5).
    UnknownOutcomes,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure | ErrorKind::Refused | ErrorKind::Data => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Config | ErrorKind::Unreachable => 3,
            ErrorKind::CheckFailed => 4,
            ErrorKind::UnknownOutcomes => 5,
            ErrorKind::Interrupted => crate::interrupt::exit_code(),
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unreachable)
    }
}

/// A command's failure: its kind, the cause, and an optional hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    /// Technical detail (a SQLSTATE, the server's own words), shown with `-v`.
    detail: Option<String>,
    /// The server's error code (a SQLSTATE such as `57014`, or a PostgREST
    /// `PGRST…` code), when a server answered with one.
    code: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            hint: None,
            detail: None,
            code: None,
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failure, message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unreachable, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }

    pub fn data(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Data, message)
    }

    pub fn check_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CheckFailed, message)
    }

    /// What to do about it, printed apart from the cause.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Technical detail for `-v` (codes, the server's wording); never a secret.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Records the server's error code (SQLSTATE or `PGRST…`).
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The server's error code, when it sent one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The cause, without the hint.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Prefixes the cause with where it happened ("reading contacts.xlsx: ...").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::failure(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
