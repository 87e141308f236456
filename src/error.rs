//! The error type every command returns, and the exit codes of the contract
//! (DESIGN.md): 1 failure, 2 usage, 3 configuration or authentication,
//! 4 a check failed. Messages are written for a person and never carry a
//! secret: callers build them from hosts, files and rows, not from URLs or
//! tokens.

use std::fmt;

/// What kind of failure ended a command; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something went wrong while doing the work (exit 1).
    Failure,
    /// The command line asked for something that cannot be done (exit 2).
    Usage,
    /// Missing or wrong configuration, or the server refused the credentials (exit 3).
    Config,
    /// A check ran and failed: `db verify` drift, `import --strict` rejects (exit 4).
    CheckFailed,
    /// Ctrl-C: the work in flight was finished and recorded (exit 130).
    Interrupted,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure => 1,
            ErrorKind::Usage => 2,
            ErrorKind::Config => 3,
            ErrorKind::CheckFailed => 4,
            ErrorKind::Interrupted => 130,
        }
    }
}

/// A command's failure: its kind and a message a user can act on.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
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

    pub fn check_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CheckFailed, message)
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with where it happened ("reading contacts.xlsx: ...").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::failure(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
