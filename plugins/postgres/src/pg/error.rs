//! Typed errors of the client. None of them ever holds the password: it is
//! only ever written to the socket (cleartext/md5) or fed to the SCRAM
//! state machine.

use std::io;
use std::time::Duration;

/// An `ErrorResponse` from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbError {
    /// `ERROR`, `FATAL`, `PANIC` (the non-localised `V` field when present).
    pub severity: String,
    /// The SQLSTATE, e.g. `23505`, `28P01`.
    pub code: String,
    pub message: String,
    /// Left out of `Display` on purpose: it may quote values (a unique
    /// violation shows the key, which may be a proxy URL with credentials).
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub constraint: Option<String>,
}

impl DbError {
    /// The server ends the session after a `FATAL` or `PANIC`.
    pub fn is_fatal(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "PANIC")
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)
    }
}

#[derive(Debug)]
pub enum Error {
    /// The URL or a parameter is unusable.
    Config(String),
    /// The TCP connection could not be made (refused, unreachable, denied
    /// by the WebAssembly host, name lookup failed).
    Connect { addr: String, source: io::Error },
    /// The connection broke or the server closed it (EOF, reset, a `FATAL`
    /// such as an administrator shutdown). `before_response`: nothing of
    /// the answer to the failed request had arrived, so the server did not
    /// run it (or at least did not report running it).
    Closed {
        detail: String,
        before_response: bool,
    },
    /// No complete answer within the client's bound. The connection is
    /// then unusable (the answer may still arrive) and the request may or
    /// may not have run.
    Timeout { what: &'static str, after: Duration },
    /// The server refused the credentials (SQLSTATE class 28), or the
    /// SCRAM exchange failed, or the server asks for a method this client
    /// lacks.
    Auth {
        code: Option<String>,
        message: String,
    },
    /// The server answered with an error; the connection stays usable
    /// unless the error is fatal.
    Db(Box<DbError>),
    /// The server said something this client does not understand.
    Protocol(String),
}

impl Error {
    /// Whether the connection that produced this error must be dropped.
    pub fn is_broken(&self) -> bool {
        match self {
            Error::Db(db) => db.is_fatal(),
            Error::Config(_) => false,
            _ => true,
        }
    }

    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Db(db) => Some(&db.code),
            Error::Auth { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    pub fn is_connection_refused(&self) -> bool {
        matches!(self, Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused)
    }

    /// Safe to send the same request again on a new connection: the old one
    /// died before any of the answer came back.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Closed {
                before_response: true,
                ..
            }
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(m) => write!(f, "{m}"),
            Error::Connect { addr, source } => match source.kind() {
                io::ErrorKind::ConnectionRefused => write!(f, "connection to {addr} refused"),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    write!(f, "connection to {addr} timed out")
                }
                io::ErrorKind::PermissionDenied => write!(
                    f,
                    "connection to {addr} denied (a WebAssembly host must grant it: tcp = [\"{addr}\"])"
                ),
                _ => write!(f, "cannot connect to {addr}: {source}"),
            },
            Error::Closed { detail, .. } => write!(f, "connection lost: {detail}"),
            Error::Timeout { what, after } => {
                write!(f, "no {what} within {} ms", after.as_millis())
            }
            Error::Auth { message, .. } => write!(f, "authentication failed: {message}"),
            Error::Db(db) => write!(f, "{db}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}
