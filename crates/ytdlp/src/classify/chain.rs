//! The exception-chain front end: the signals in the chain the warm worker
//! reports for a failed job (exception types with their modules, HTTP
//! status and reason, errno), as typed as yt-dlp makes them.

use serde::Deserialize;

use super::signals::Signals;

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
}

impl ExcInfo {
    fn is(&self, qualname: &str) -> bool {
        self.types.iter().any(|t| t == qualname)
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

/// The typed signals of a chain (text signals come from the error line).
pub fn signals(chain: &[ExcInfo]) -> Signals {
    let mut s = Signals::default();
    // The proxy's or the site's HTTP answer.
    if let Some(e) = chain.iter().find(|e| e.http_status().is_some()) {
        s.http_status = e.http_status().and_then(|c| u16::try_from(c).ok());
        s.http_reason = e.reason.as_deref().unwrap_or("").to_ascii_lowercase();
    }
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
    s.geo_restricted = chain
        .iter()
        .any(|e| e.is("yt_dlp.utils.GeoRestrictedError"));
    s
}

/// Signals of a chain over those of its error line: the typed ones win
/// where both speak.
pub fn merge(typed: Signals, text: Signals) -> Signals {
    Signals {
        host_setup: text.host_setup,
        http_status: typed.http_status.or(text.http_status),
        http_reason: if typed.http_status.is_some() {
            typed.http_reason
        } else {
            text.http_reason
        },
        proxy_auth_required: text.proxy_auth_required,
        socks_auth_rejected: typed.socks_auth_rejected || text.socks_auth_rejected,
        socks_general_failure: typed.socks_general_failure || text.socks_general_failure,
        socks_error: typed.socks_error,
        timeout: typed.timeout,
        connection_failed: typed.connection_failed,
        unsupported_url: typed.unsupported_url,
        geo_restricted: typed.geo_restricted,
        text: text.text,
    }
}
