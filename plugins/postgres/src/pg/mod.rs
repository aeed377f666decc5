//! A small blocking PostgreSQL client over `std::net::TcpStream`, so that it
//! runs unchanged on `wasm32-wasip2` (where the stream goes through
//! `wasi:sockets`).
//!
//! The wire format and the authentication exchanges are `postgres-protocol`'s
//! (rust-postgres's low-level crate): messages are built with
//! [`frontend`]'s functions and parsed with [`backend::Message::parse`];
//! SCRAM-SHA-256 is [`ScramSha256`], md5 is [`md5_hash`]. This module only
//! sequences them: the startup and authentication dialogue, the extended
//! query protocol (Parse/Bind/Describe/Execute/Sync, parameters and results
//! in text format), the simple query protocol, transactions, deadlines and
//! error classification.

mod config;
mod error;

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::IsNull;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{self, Message};
use postgres_protocol::message::frontend;

pub use config::{Config, redact_url};
pub use error::{DbError, Error};

/// The transaction state the server reported in its last `ReadyForQuery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    /// In a transaction that failed: only `ROLLBACK` will be accepted.
    Failed,
}

/// A value for a text-format parameter (`None` is SQL `NULL`). Values
/// always travel separately from the SQL text (Bind), never spliced into it.
pub trait ToParam {
    fn to_param(&self) -> Option<Cow<'_, str>>;
}

impl ToParam for str {
    fn to_param(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToParam for String {
    fn to_param(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
}

impl ToParam for bool {
    fn to_param(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(if *self { "true" } else { "false" }))
    }
}

macro_rules! to_param_display {
    ($($t:ty)*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Option<Cow<'_, str>> {
                Some(Cow::Owned(self.to_string()))
            }
        }
    )*};
}

to_param_display! { i16 i32 i64 u16 u32 u64 f64 }

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Option<Cow<'_, str>> {
        (**self).to_param()
    }
}

impl<T: ToParam> ToParam for Option<T> {
    fn to_param(&self) -> Option<Cow<'_, str>> {
        self.as_ref().and_then(|v| v.to_param())
    }
}

/// A `text[]` value in PostgreSQL's array input syntax, for a parameter
/// cast with `$n::text[]`: every element double-quoted with `"` and `\\`
/// escaped, `None` a NULL element. Still a parameter, never spliced into
/// SQL.
pub fn text_array<'a>(items: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            None => out.push_str("NULL"),
            Some(v) => {
                out.push('"');
                for ch in v.chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// One result row, every value in text format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Option<String>>,
}

impl Row {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The raw text of column `i` (`None` for SQL `NULL` or no such column).
    pub fn text(&self, i: usize) -> Option<&str> {
        self.values.get(i).and_then(|v| v.as_deref())
    }

    /// Column `i` parsed with `FromStr`; `NULL` is `Ok(None)`.
    pub fn opt<T: FromStr>(&self, i: usize) -> Result<Option<T>, Error> {
        match self.values.get(i) {
            None => Err(Error::Protocol(format!("no column {i} in the row"))),
            Some(None) => Ok(None),
            Some(Some(s)) => s.parse().map(Some).map_err(|_| {
                Error::Protocol(format!(
                    "column {} (`{}`) is not a {}",
                    i,
                    self.columns.get(i).map_or("?", |c| c.as_str()),
                    std::any::type_name::<T>()
                ))
            }),
        }
    }

    /// Column `i`, which must not be `NULL`.
    pub fn get<T: FromStr>(&self, i: usize) -> Result<T, Error> {
        self.opt(i)?
            .ok_or_else(|| Error::Protocol(format!("column {i} is NULL")))
    }

    /// A `boolean` column (text `t`/`f`); `NULL` is `None`.
    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, Error> {
        match self.text(i) {
            None => Ok(None),
            Some("t") => Ok(Some(true)),
            Some("f") => Ok(Some(false)),
            Some(other) => Err(Error::Protocol(format!(
                "column {i}: `{other}` is not a boolean"
            ))),
        }
    }

    pub fn get_bool(&self, i: usize) -> Result<bool, Error> {
        self.opt_bool(i)?
            .ok_or_else(|| Error::Protocol(format!("column {i} is NULL")))
    }
}

/// What one request brought back.
struct Outcome {
    rows: Vec<Row>,
    /// Rows affected by each completed command, in order (from the
    /// `CommandComplete` tags: `UPDATE 3`, `INSERT 0 1`, `SELECT 5`).
    affected: Vec<u64>,
}

/// One connection. Not `Sync`: one request at a time.
pub struct Client {
    stream: TcpStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    io_timeout: Duration,
    /// End of the current request (or of the startup).
    deadline: Instant,
    /// Whether any message answering the current request has arrived.
    responded: bool,
    status: TxStatus,
    broken: bool,
    /// Startup done: a `FATAL` from now on means the session ended.
    ready: bool,
    /// `host:port`, for messages.
    addr: String,
    server_version: Option<String>,
    backend_pid: Option<i32>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("backend_pid", &self.backend_pid)
            .field("status", &self.status)
            .field("broken", &self.broken)
            .finish()
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// A short reason for an I/O error.
fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset by the server".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::BrokenPipe => "the server closed the connection (broken pipe)".into(),
        io::ErrorKind::NotConnected => "not connected".into(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        _ => e.to_string(),
    }
}

fn parse_db_error(fields: backend::ErrorFields<'_>) -> Result<DbError, Error> {
    let mut db = DbError {
        severity: String::new(),
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
        constraint: None,
    };
    let mut localized_severity = String::new();
    let mut fields = fields;
    while let Some(f) = fields
        .next()
        .map_err(|e| Error::Protocol(format!("bad ErrorResponse: {e}")))?
    {
        let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'V' => db.severity = v,
            b'S' => localized_severity = v,
            b'C' => db.code = v,
            b'M' => db.message = v,
            b'D' => db.detail = Some(v),
            b'H' => db.hint = Some(v),
            b'n' => db.constraint = Some(v),
            _ => {}
        }
    }
    if db.severity.is_empty() {
        db.severity = localized_severity;
    }
    Ok(db)
}

/// The row count at the end of a command tag (`INSERT 0 3` -> 3).
fn affected_rows(tag: &str) -> u64 {
    tag.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Client {
    /// Opens a connection and authenticates (SCRAM-SHA-256, md5 or
    /// cleartext, whichever the server asks for). The TCP connect and the
    /// whole startup are bounded by `config.connect_timeout`.
    pub fn connect(config: &Config) -> Result<Client, Error> {
        // One bound for the TCP connect and the whole startup.
        let deadline = Instant::now() + config.connect_timeout;
        let addr = config.hostport();
        let connect_err = |source: io::Error| Error::Connect {
            addr: addr.clone(),
            source,
        };
        let addrs: Vec<_> = (config.host.as_str(), config.port)
            .to_socket_addrs()
            .map_err(connect_err)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        let mut stream = None;
        for a in &addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(1) {
                last = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                break;
            }
            match TcpStream::connect_timeout(a, left) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let stream = stream.ok_or_else(|| connect_err(last))?;
        // Faked by wasi-libc on wasm32-wasip2 (accepted, no effect).
        let _ = stream.set_nodelay(true);
        let mut client = Client {
            stream,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(1024),
            io_timeout: config.connect_timeout,
            deadline,
            responded: false,
            status: TxStatus::Idle,
            broken: false,
            ready: false,
            addr: addr.clone(),
            server_version: None,
            backend_pid: None,
        };
        client.startup(config)?;
        client.ready = true;
        client.io_timeout = config.io_timeout;
        Ok(client)
    }

    fn startup(&mut self, config: &Config) -> Result<(), Error> {
        let mut params: Vec<(&str, &str)> = vec![
            ("user", &config.user),
            ("database", &config.dbname),
            ("client_encoding", "UTF8"),
        ];
        params.extend(config.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        frontend::startup_message(params, &mut self.wbuf).map_err(|e| {
            Error::Config(format!("startup parameter: {e} (a NUL byte in a value?)"))
        })?;
        self.send()?;
        let password = || {
            config.password.as_deref().ok_or_else(|| Error::Auth {
                code: None,
                message: format!(
                    "the server asks user `{}` for a password and the URL has none",
                    config.user
                ),
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            match self.read_message()? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    let pw = password()?;
                    self.put(|b| frontend::password_message(pw.as_bytes(), b))?;
                    self.send()?;
                }
                Message::AuthenticationMd5Password(body) => {
                    let hash =
                        md5_hash(config.user.as_bytes(), password()?.as_bytes(), body.salt());
                    self.put(|b| frontend::password_message(hash.as_bytes(), b))?;
                    self.send()?;
                }
                Message::AuthenticationSasl(body) => {
                    let mechanisms: Vec<String> = body
                        .mechanisms()
                        .map(|m| Ok(m.to_string()))
                        .collect()
                        .map_err(|e| Error::Protocol(format!("bad SASL mechanism list: {e}")))?;
                    if !mechanisms.iter().any(|m| m == SCRAM_SHA_256) {
                        return Err(Error::Auth {
                            code: None,
                            message: format!(
                                "the server offers only SASL {} (this client does {SCRAM_SHA_256} without channel binding)",
                                mechanisms.join(", ")
                            ),
                        });
                    }
                    let s = ScramSha256::new(password()?.as_bytes(), ChannelBinding::unsupported());
                    self.put(|b| frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), b))?;
                    self.send()?;
                    scram = Some(s);
                }
                Message::AuthenticationSaslContinue(body) => {
                    let s = scram.as_mut().ok_or_else(|| {
                        Error::Protocol("SASL continue without a SASL start".into())
                    })?;
                    s.update(body.data()).map_err(|e| Error::Auth {
                        code: None,
                        message: format!("bad SCRAM message from the server: {e}"),
                    })?;
                    let msg = s.message().to_vec();
                    self.put(|b| frontend::sasl_response(&msg, b))?;
                    self.send()?;
                }
                Message::AuthenticationSaslFinal(body) => {
                    let s = scram
                        .as_mut()
                        .ok_or_else(|| Error::Protocol("SASL final without a SASL start".into()))?;
                    s.finish(body.data()).map_err(|e| Error::Auth {
                        code: None,
                        message: format!("the server's SCRAM proof does not verify: {e}"),
                    })?;
                }
                Message::AuthenticationGss
                | Message::AuthenticationKerberosV5
                | Message::AuthenticationScmCredential
                | Message::AuthenticationSspi
                | Message::AuthenticationGssContinue(_) => {
                    return Err(Error::Auth {
                        code: None,
                        message: "the server asks for GSSAPI/SSPI/Kerberos, which this client lacks (use scram-sha-256 in pg_hba.conf)".into(),
                    });
                }
                Message::BackendKeyData(body) => self.backend_pid = Some(body.process_id()),
                Message::ReadyForQuery(body) => {
                    self.status = status_of(body.status());
                    return Ok(());
                }
                Message::ErrorResponse(body) => {
                    self.broken = true;
                    let db = parse_db_error(body.fields())?;
                    return Err(if db.code.starts_with("28") {
                        Error::Auth {
                            code: Some(db.code),
                            message: db.message,
                        }
                    } else {
                        Error::Db(Box::new(db))
                    });
                }
                other => return Err(self.unexpected(&other, "during startup")),
            }
        }
    }

    /// The server's `server_version`, once connected.
    pub fn server_version(&self) -> Option<&str> {
        self.server_version.as_deref()
    }

    /// The server process serving this connection.
    pub fn backend_pid(&self) -> Option<i32> {
        self.backend_pid
    }

    pub fn transaction_status(&self) -> TxStatus {
        self.status
    }

    /// Whether the connection can no longer be used (broken, timed out,
    /// closed by the server): drop it and connect again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The bound on each request.
    pub fn set_io_timeout(&mut self, timeout: Duration) {
        self.io_timeout = timeout;
    }

    /// Runs one parameterised statement (extended protocol, unnamed
    /// statement and portal) and returns its rows.
    pub fn query(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, Error> {
        Ok(self.extended(sql, &[params])?.rows)
    }

    /// [`Client::query`] for at most one row.
    pub fn query_opt(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Option<Row>, Error> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(Error::Protocol(format!(
                "expected at most one row, got {}",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    /// [`Client::query`] for exactly one row.
    pub fn query_one(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Row, Error> {
        self.query_opt(sql, params)?
            .ok_or_else(|| Error::Protocol("expected one row, got none".into()))
    }

    /// Runs one parameterised statement; returns the rows it affected.
    pub fn execute(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<u64, Error> {
        Ok(self
            .extended(sql, &[params])?
            .affected
            .first()
            .copied()
            .unwrap_or(0))
    }

    /// Runs one statement once per parameter set, pipelined: one round trip
    /// and one implicit transaction for all of them (all or nothing, unless
    /// inside an explicit transaction). Returns the rows each affected.
    pub fn execute_many(
        &mut self,
        sql: &str,
        param_sets: &[&[&dyn ToParam]],
    ) -> Result<Vec<u64>, Error> {
        if param_sets.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.extended(sql, param_sets)?.affected)
    }

    /// Runs SQL without parameters through the simple query protocol
    /// (several `;`-separated statements allowed): for DDL, `BEGIN`, ...
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.simple_query(sql).map(drop)
    }

    /// Simple query protocol; the rows of all its statements, in order.
    pub fn simple_query(&mut self, sql: &str) -> Result<Vec<Row>, Error> {
        self.start_request()?;
        self.put(|b| frontend::query(sql, b))?;
        self.send()?;
        Ok(self.read_until_ready()?.rows)
    }

    /// Runs `f` between `BEGIN` and `COMMIT`; `ROLLBACK` if it fails (or
    /// left the transaction failed).
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Client) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.batch_execute("BEGIN")?;
        match f(self) {
            Ok(v) if self.status == TxStatus::InTransaction => {
                self.batch_execute("COMMIT")?;
                Ok(v)
            }
            Ok(_) => {
                self.rollback_quietly();
                Err(Error::Protocol(
                    "the transaction failed (an error was ignored inside it)".into(),
                ))
            }
            Err(e) => {
                self.rollback_quietly();
                Err(e)
            }
        }
    }

    fn rollback_quietly(&mut self) {
        if !self.broken && self.status != TxStatus::Idle {
            let _ = self.batch_execute("ROLLBACK");
        }
    }

    fn extended(&mut self, sql: &str, param_sets: &[&[&dyn ToParam]]) -> Result<Outcome, Error> {
        self.start_request()?;
        self.put(|b| frontend::parse("", sql, std::iter::empty(), b))?;
        for params in param_sets {
            let values: Vec<Option<Cow<'_, str>>> = params.iter().map(|p| p.to_param()).collect();
            let bound = frontend::bind(
                "",
                "",
                std::iter::empty(), // every parameter in text format
                values.iter(),
                |v, buf| match v {
                    Some(s) => {
                        buf.put_slice(s.as_bytes());
                        Ok(IsNull::No)
                    }
                    None => Ok(IsNull::Yes),
                },
                std::iter::empty(), // every result column in text format
                &mut self.wbuf,
            );
            if bound.is_err() {
                self.wbuf.clear();
                return Err(Error::Config(
                    "a parameter could not be encoded (too many or too long)".into(),
                ));
            }
            self.put(|b| frontend::describe(b'P', "", b))?;
            self.put(|b| frontend::execute("", 0, b))?;
        }
        frontend::sync(&mut self.wbuf);
        self.send()?;
        self.read_until_ready()
    }

    fn start_request(&mut self) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Closed {
                detail: "the connection broke earlier".into(),
                before_response: true,
            });
        }
        self.responded = false;
        self.deadline = Instant::now() + self.io_timeout;
        Ok(())
    }

    /// Appends a message to the send buffer.
    fn put<E: std::fmt::Display>(
        &mut self,
        f: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<(), Error> {
        f(&mut self.wbuf).map_err(|e| {
            self.wbuf.clear();
            Error::Config(format!(
                "cannot encode the request: {e} (a NUL byte in it?)"
            ))
        })
    }

    fn remaining(&self) -> Result<Duration, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            Err(Error::Timeout {
                what: "answer from the server",
                after: self.io_timeout,
            })
        } else {
            Ok(left)
        }
    }

    fn io_error(&mut self, e: io::Error, what: &'static str) -> Error {
        self.broken = true;
        // Through wasi:sockets a refused connect can surface only at the
        // first write or read, as "not connected".
        let refused = matches!(
            e.kind(),
            io::ErrorKind::NotConnected | io::ErrorKind::ConnectionRefused
        );
        if refused && !self.ready && !self.responded {
            return Error::Connect {
                addr: self.addr.clone(),
                source: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
            };
        }
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
                what,
                after: self.io_timeout,
            },
            _ => Error::Closed {
                detail: describe_io(&e),
                before_response: !self.responded,
            },
        }
    }

    /// Writes the send buffer out, within the deadline.
    fn send(&mut self) -> Result<(), Error> {
        let left = self.remaining().inspect_err(|_| self.broken = true)?;
        let r = self
            .stream
            .set_write_timeout(Some(left))
            .and_then(|()| self.stream.write_all(&self.wbuf))
            .and_then(|()| self.stream.flush());
        self.wbuf.clear();
        r.map_err(|e| self.io_error(e, "room to send to the server"))
    }

    /// The next message, skipping notices and parameter reports.
    fn read_message(&mut self) -> Result<Message, Error> {
        loop {
            let msg = self.read_raw()?;
            match msg {
                Message::NoticeResponse(_) | Message::NotificationResponse(_) => {}
                Message::ParameterStatus(body) => {
                    if body.name().is_ok_and(|n| n == "server_version") {
                        self.server_version = body.value().ok().map(str::to_string);
                    }
                }
                Message::ErrorResponse(body) => {
                    let db = parse_db_error(body.fields())?;
                    if db.is_fatal() && self.ready {
                        // The server ends the session: an administrator
                        // shutdown, an idle timeout, pg_terminate_backend.
                        self.broken = true;
                        if !self.responded {
                            return Err(Error::Closed {
                                detail: format!("the server ended the session: {db}"),
                                before_response: true,
                            });
                        }
                        return Err(Error::Db(Box::new(db)));
                    }
                    self.responded = true;
                    return Ok(Message::ErrorResponse(body));
                }
                other => {
                    self.responded = true;
                    return Ok(other);
                }
            }
        }
    }

    fn read_raw(&mut self) -> Result<Message, Error> {
        loop {
            match Message::parse(&mut self.rbuf) {
                Ok(Some(m)) => return Ok(m),
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(Error::Protocol(format!("bad message from the server: {e}")));
                }
            }
            let left = self.remaining().inspect_err(|_| self.broken = true)?;
            let mut chunk = [0u8; READ_CHUNK];
            let n = match self
                .stream
                .set_read_timeout(Some(left))
                .and_then(|()| self.stream.read(&mut chunk))
            {
                Ok(0) => {
                    self.broken = true;
                    return Err(Error::Closed {
                        detail: "the server closed the connection".into(),
                        before_response: !self.responded,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e, "answer from the server")),
            };
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    fn unexpected(&mut self, msg: &Message, when: &str) -> Error {
        self.broken = true;
        let name = match msg {
            Message::CopyInResponse(_) | Message::CopyOutResponse(_) => "a COPY",
            Message::DataRow(_) => "a data row",
            Message::RowDescription(_) => "a row description",
            Message::CommandComplete(_) => "a command completion",
            _ => "an unexpected message",
        };
        Error::Protocol(format!("the server sent {name} {when}"))
    }

    /// Reads the answer to a request up to its `ReadyForQuery`. A
    /// non-fatal error is kept and returned once the server is ready again,
    /// so the connection stays usable.
    fn read_until_ready(&mut self) -> Result<Outcome, Error> {
        let mut out = Outcome {
            rows: Vec::new(),
            affected: Vec::new(),
        };
        let mut columns: Arc<[String]> = Arc::from(Vec::new());
        let mut error: Option<DbError> = None;
        loop {
            match self.read_message()? {
                Message::ParseComplete
                | Message::BindComplete
                | Message::NoData
                | Message::CloseComplete
                | Message::EmptyQueryResponse
                | Message::PortalSuspended => {}
                Message::RowDescription(body) => {
                    let names: Vec<String> = body
                        .fields()
                        .map(|f| Ok(f.name().to_string()))
                        .collect()
                        .map_err(|e| Error::Protocol(format!("bad RowDescription: {e}")))?;
                    columns = Arc::from(names);
                }
                Message::DataRow(body) => {
                    let buf = body.buffer();
                    let values: Vec<Option<String>> = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                        .collect()
                        .map_err(|e| Error::Protocol(format!("bad DataRow: {e}")))?;
                    out.rows.push(Row {
                        columns: columns.clone(),
                        values,
                    });
                }
                Message::CommandComplete(body) => {
                    let tag = body
                        .tag()
                        .map_err(|e| Error::Protocol(format!("bad CommandComplete: {e}")))?;
                    out.affected.push(affected_rows(tag));
                }
                Message::ErrorResponse(body) => {
                    let db = parse_db_error(body.fields())?;
                    error.get_or_insert(db);
                }
                Message::ReadyForQuery(body) => {
                    self.status = status_of(body.status());
                    return match error {
                        Some(db) => Err(Error::Db(Box::new(db))),
                        None => Ok(out),
                    };
                }
                other => return Err(self.unexpected(&other, "in answer to a query")),
            }
        }
    }
}

fn status_of(b: u8) -> TxStatus {
    match b {
        b'T' => TxStatus::InTransaction,
        b'E' => TxStatus::Failed,
        _ => TxStatus::Idle,
    }
}

impl Drop for Client {
    /// Says goodbye (best effort) so the server ends the session at once.
    fn drop(&mut self) {
        if !self.broken {
            self.wbuf.clear();
            frontend::terminate(&mut self.wbuf);
            let _ = self
                .stream
                .set_write_timeout(Some(Duration::from_millis(50)));
            let _ = self.stream.write_all(&self.wbuf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags() {
        assert_eq!(affected_rows("INSERT 0 3"), 3);
        assert_eq!(affected_rows("UPDATE 1"), 1);
        assert_eq!(affected_rows("CREATE TABLE"), 0);
    }

    #[test]
    fn text_arrays_quote_every_element() {
        assert_eq!(text_array([]), "{}");
        assert_eq!(
            text_array([Some("DE"), None, Some(r#"a"b\c,{}"#)]),
            r#"{"DE",NULL,"a\"b\\c,{}"}"#
        );
    }

    #[test]
    fn params_are_text_or_null() {
        let none: Option<&str> = None;
        let ps: [&dyn ToParam; 5] = [&"a", &7i64, &true, &none, &Some(2u32)];
        let got: Vec<Option<String>> = ps
            .iter()
            .map(|p| p.to_param().map(|c| c.into_owned()))
            .collect();
        assert_eq!(
            got,
            [
                Some("a".into()),
                Some("7".into()),
                Some("true".into()),
                None,
                Some("2".into())
            ]
        );
    }
}
