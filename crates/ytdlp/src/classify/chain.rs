//! The exception-chain front end: the signals in the chain the warm worker
//! reports for a failed job (exception types with their modules, HTTP
//! status, reason and a few headers, errno, a geo restriction's
//! countries), as typed as yt-dlp makes them.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Deserialize;

use super::retry_after::retry_after_ms;
use super::signals::{Signals, proxy_phrase};

/// One exception of the chain the worker reports, outermost first.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExcInfo {
    /// The class and its bases, as `module.QualName`.
    pub types: Vec<String>,
    pub msg: String,
    /// yt-dlp's `HTTPError.status`.
    pub status: Option<i64>,
    /// urllib's `HTTPError.code`.
    pub code: Option<i64>,
    /// `OSError.errno` (SOCKS errors carry their reply code here).
    pub errno: Option<i64>,
    /// The HTTP reason phrase.
    pub reason: Option<String>,
    /// A few headers of the HTTP answer (worker.py's `HEADERS`), by name.
    pub headers: BTreeMap<String, String>,
    /// The scheme of the URL that answered.
    pub url_scheme: Option<String>,
    /// `GeoRestrictedError.countries`: the countries the site allows.
    pub countries: Option<Vec<String>>,
}

impl ExcInfo {
    fn is(&self, qualname: &str) -> bool {
        self.types.iter().any(|t| t == qualname)
    }

    /// A header, whatever the case of its name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn http_status(&self) -> Option<i64> {
        if self.is("yt_dlp.networking.exceptions.HTTPError") {
            self.status.or(self.code)
        } else if self.is("urllib.error.HTTPError") {
            self.code.or(self.status)
        } else {
            None
        }
    }
}

const SOCKS_ERROR: &str = "yt_dlp.socks.ProxyError";
const SOCKS5_GENERAL_FAILURE: i64 = 0x01;
const SOCKS5_BAD_CREDENTIALS: i64 = 0xFE;
const SOCKS5_NO_ACCEPTABLE_AUTH: i64 = 0xFF;
/// The proxy layer's errors, in yt-dlp and in the stacks under it.
const PROXY_ERRORS: [&str; 4] = [
    "yt_dlp.networking.exceptions.ProxyError",
    "requests.exceptions.ProxyError",
    "urllib3.exceptions.ProxyError",
    SOCKS_ERROR,
];
/// Servers whose name marks an answer as the proxy's own page.
const PROXY_SERVERS: [&str; 3] = ["tinyproxy", "squid", "privoxy"];

/// The typed signals of a chain (text signals come from the error line).
pub fn signals(chain: &[ExcInfo]) -> Signals {
    signals_at(chain, SystemTime::now())
}

/// [`signals`], with `now` for a `Retry-After` date when the answer has no
/// `Date` of its own.
pub fn signals_at(chain: &[ExcInfo], now: SystemTime) -> Signals {
    let mut s = Signals::default();
    // The proxy's or the site's HTTP answer: the outermost one, with the
    // headers of whichever layer kept them.
    if let Some(e) = chain.iter().find(|e| e.http_status().is_some()) {
        s.http_status = e.http_status().and_then(|c| u16::try_from(c).ok());
        s.http_reason = e.reason.as_deref().unwrap_or("").to_ascii_lowercase();
        let answer = chain
            .iter()
            .find(|e| e.http_status().is_some() && !e.headers.is_empty())
            .unwrap_or(e);
        s.proxy_page = proxy_page(answer, &s.http_reason);
        s.answer_https = chain
            .iter()
            .find_map(|e| e.url_scheme.as_deref())
            .map(|scheme| scheme == "https");
        s.retry_after_ms = answer
            .header("Retry-After")
            .and_then(|v| retry_after_ms(v, answer.header("Date"), now));
    }
    // The proxy's answer to CONNECT has no status attribute anywhere: its
    // code is only in the message.
    s.tunnel_status = chain.iter().find_map(|e| {
        let m = e.msg.to_ascii_lowercase();
        let at = m.find("tunnel connection failed: ")? + 26;
        m.get(at..at + 3)?.parse().ok()
    });
    // The SOCKS reply code.
    if let Some(e) = chain.iter().find(|e| e.is(SOCKS_ERROR)) {
        match e.errno {
            Some(SOCKS5_NO_ACCEPTABLE_AUTH | SOCKS5_BAD_CREDENTIALS) => {
                s.socks_auth_rejected = true
            }
            Some(SOCKS5_GENERAL_FAILURE) => {
                s.socks_general_failure = true;
                s.socks_error = true;
            }
            _ => s.socks_error = true,
        }
    }
    s.proxy_error = chain.iter().any(|e| PROXY_ERRORS.iter().any(|t| e.is(t)));
    // RemoteDisconnected is a ConnectionResetError.
    s.connection_dropped = chain
        .iter()
        .any(|e| e.is("builtins.ConnectionRefusedError") || e.is("builtins.ConnectionResetError"));
    // A socket timeout under the transport error (socket.timeout is
    // TimeoutError; urllib3's own TimeoutError is a different class that
    // also covers refused connections, so it does not count).
    s.timeout = chain.iter().any(|e| e.is("builtins.TimeoutError"));
    s.connection_failed = chain.iter().any(|e| {
        e.is("yt_dlp.networking.exceptions.ProxyError")
            || e.is("builtins.ConnectionError")
            || e.is("yt_dlp.networking.exceptions.TransportError")
                && !e.is("yt_dlp.networking.exceptions.IncompleteRead")
                && !e.is("yt_dlp.networking.exceptions.SSLError")
    });
    s.unsupported_url = chain.iter().any(|e| e.is("yt_dlp.utils.UnsupportedError"));
    // Also under the TypeError yt-dlp raises printing a code its own table
    // lacks: the exception keeps the codes.
    if let Some(e) = chain
        .iter()
        .find(|e| e.is("yt_dlp.utils.GeoRestrictedError"))
    {
        s.geo_restricted = true;
        s.countries = e
            .countries
            .iter()
            .flatten()
            .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            .map(|c| c.to_ascii_uppercase())
            .collect();
    }
    s
}

/// Whether an HTTP answer is the proxy's own page, by its headers: a
/// proxy's server name (tinyproxy's 401, squid's error pages), squid's
/// `X-Squid-Error`, a `Proxy-Authenticate`, or neither `Server` nor `Via`
/// with a proxy's reason phrase (privoxy names itself nowhere). `None`
/// without headers.
fn proxy_page(answer: &ExcInfo, reason: &str) -> Option<bool> {
    if answer.headers.is_empty() {
        return None;
    }
    let server = answer.header("Server").unwrap_or("").to_ascii_lowercase();
    Some(
        PROXY_SERVERS.iter().any(|p| server.starts_with(p))
            || answer.header("X-Squid-Error").is_some()
            || answer.header("Proxy-Authenticate").is_some()
            || answer.header("Server").is_none()
                && answer.header("Via").is_none()
                && proxy_phrase(reason),
    )
}

/// Signals of a chain over those of its error line: the typed ones win
/// where both speak.
pub fn merge(typed: Signals, text: Signals) -> Signals {
    let geo_typed = typed.geo_restricted;
    Signals {
        host_setup: text.host_setup,
        http_status: typed.http_status.or(text.http_status),
        http_reason: if typed.http_status.is_some() {
            typed.http_reason
        } else {
            text.http_reason
        },
        proxy_page: typed.proxy_page,
        answer_https: typed.answer_https,
        retry_after_ms: typed.retry_after_ms,
        tunnel_status: typed.tunnel_status.or(text.tunnel_status),
        proxy_auth_required: text.proxy_auth_required,
        socks_auth_rejected: typed.socks_auth_rejected || text.socks_auth_rejected,
        socks_general_failure: typed.socks_general_failure || text.socks_general_failure,
        socks_error: typed.socks_error,
        proxy_error: typed.proxy_error || text.proxy_error,
        connection_dropped: typed.connection_dropped || text.connection_dropped,
        timeout: typed.timeout,
        connection_failed: typed.connection_failed,
        unsupported_url: typed.unsupported_url,
        geo_restricted: geo_typed || text.geo_restricted,
        countries: if geo_typed {
            typed.countries
        } else {
            text.countries
        },
        stage: text.stage,
        retry_status: text.retry_status,
        text: text.text,
    }
}
