//! The one decision of a failure's kind. Both front ends, yt-dlp's stderr
//! ([`super::stderr`]) and the worker's exception chain ([`super::chain`]),
//! reduce what they see to [`Signals`]; [`decide`] turns signals into a
//! [`FailureKind`], so the two runners classify the same fault the same way
//! by construction.

use ytdlp_contract::FailureKind;

/// What a failed run showed, whoever read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signals {
    /// The host's own setup failed (yt-dlp missing, options refused).
    pub host_setup: bool,
    /// The status of an HTTP error answer (the site's, or the proxy's).
    pub http_status: Option<u16>,
    /// Its reason phrase (or the whole error line), lower case.
    pub http_reason: String,
    /// The proxy wants (other) credentials: "Proxy Authentication Required".
    pub proxy_auth_required: bool,
    /// A SOCKS proxy refused the offered authentication.
    pub socks_auth_rejected: bool,
    /// A SOCKS proxy's "general failure" reply (microsocks' answer to wrong
    /// credentials).
    pub socks_general_failure: bool,
    /// Some other SOCKS error reply (from the exception chain).
    pub socks_error: bool,
    /// A socket timed out (from the exception chain).
    pub timeout: bool,
    /// The connection failed at the transport or proxy layer (from the
    /// exception chain).
    pub connection_failed: bool,
    /// yt-dlp does not support the URL (from the exception chain).
    pub unsupported_url: bool,
    /// The site refused this address's country (from the exception chain).
    pub geo_restricted: bool,
    /// The error line, lower case, for the text rules that come last.
    pub text: String,
}

/// The kind of a failure. `proxy_has_credentials` matters for 401 and
/// SOCKS "general failure": from a proxy that was given credentials they
/// mean the credentials were wrong (tinyproxy answers 401, not 407).
pub fn decide(s: &Signals, proxy_has_credentials: bool) -> FailureKind {
    use FailureKind::*;
    if s.host_setup {
        return Host;
    }
    // The proxy's own answers come first: they mention no target.
    if s.proxy_auth_required || s.http_status == Some(407) {
        return ProxyAuth;
    }
    if s.socks_auth_rejected || proxy_has_credentials && s.socks_general_failure {
        return ProxyAuth;
    }
    if let Some(code) = s.http_status {
        return match code {
            401 if proxy_has_credentials => ProxyAuth,
            403 | 429 => Blocked,
            // tinyproxy's "500 Unable to connect": the proxy is alive but
            // could not reach the target. Neither clearly the proxy's nor
            // the content's fault.
            500..=504 if s.http_reason.contains("unable to connect") => Unknown,
            _ => Content,
        };
    }
    if s.socks_error {
        return ProxyConnect;
    }
    if s.timeout {
        return ProxyTimeout;
    }
    if s.connection_failed {
        return ProxyConnect;
    }
    if s.unsupported_url {
        return Content;
    }
    if s.geo_restricted {
        return Blocked;
    }
    text_rules(&s.text)
}

/// What the error text alone says, after every typed signal.
fn text_rules(l: &str) -> FailureKind {
    let has = |s: &str| l.contains(s);
    if has("sign in to confirm") || has("not a bot") || has("captcha") {
        return FailureKind::Blocked;
    }
    if has("unsupported url")
        || has("is not a valid url")
        || has("unsupported url scheme")
        || has("video unavailable")
        || has("private video")
        || has("requested format is not available")
        || has("no video formats found")
    {
        return FailureKind::Content;
    }
    if has("timed out") || has("timeout") {
        return FailureKind::ProxyTimeout;
    }
    if has("unsupported proxy type")
        || has("proxyerror(")
        || has("unable to connect to proxy")
        || has("tunnel connection failed")
        || has("connection refused")
        || has("connection reset")
        || has("remote end closed connection")
        || has("transporterror(")
        || has("network is unreachable")
        || has("socks")
    {
        return FailureKind::ProxyConnect;
    }
    FailureKind::Unknown
}
