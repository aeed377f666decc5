//! The one decision of a failure's kind and detail. Both front ends,
//! yt-dlp's stderr ([`super::stderr`]) and the worker's exception chain
//! ([`super::chain`]), reduce what they see to [`Signals`]; [`decide`]
//! turns signals and the run's [`Context`] into a [`Verdict`], so the two
//! runners classify the same fault the same way by construction.
//!
//! The phase of a failure ([`Phase`]):
//! - `Connect`: no answer from the site: the proxy's own answer or refusal
//!   (a tunnel error, its HTTP error page, a SOCKS reply), a refused, reset
//!   or silent connection while extracting;
//! - `Transfer`: anything else that failed while yt-dlp downloaded the media
//!   or its fragments (`unable to download video data`, `[download] Got
//!   error`, `The downloaded file is empty`);
//! - `Request`: the site's answer while extracting (an HTTP error, a bot
//!   check, a geo restriction, a private video);
//! - none: the host's own setup, a URL that is not one, or nothing known.

use ytdlp_contract::{Failure, FailureDetail, FailureKind, Phase, ProxyUrl};

use crate::run::RunSpec;

/// What the host knows about a run beyond what it printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// Through a proxy. A direct run (`RunSpec.proxy` is `None`) never
    /// yields a `proxy-*` kind.
    pub proxied: bool,
    /// Through an HTTP(S) proxy: the only kind that answers HTTP itself (a
    /// SOCKS proxy only relays).
    pub http_proxy: bool,
    pub proxy_has_credentials: bool,
    /// The URL is https: through an HTTP proxy its requests go through a
    /// CONNECT tunnel, inside which every HTTP answer is the site's.
    pub https_url: bool,
}

impl Context {
    pub fn new(proxy: Option<&ProxyUrl>, url: &str) -> Context {
        Context {
            proxied: proxy.is_some(),
            http_proxy: proxy.is_some_and(|p| p.scheme().starts_with("http")),
            proxy_has_credentials: proxy.is_some_and(ProxyUrl::has_credentials),
            https_url: url
                .get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
        }
    }

    pub fn of(spec: &RunSpec) -> Context {
        Context::new(spec.proxy.as_ref(), &spec.url)
    }
}

/// Where yt-dlp was when it failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    #[default]
    Unknown,
    /// Reading the page or API (the error names the extractor: `[youtube]`).
    Extraction,
    /// Downloading the media or its fragments.
    Download,
}

/// What a failed run showed, whoever read it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signals {
    /// The host's own setup failed (yt-dlp missing, options refused).
    pub host_setup: bool,
    /// The status of an HTTP error answer (the site's, or the proxy's).
    pub http_status: Option<u16>,
    /// Its reason phrase (or the whole error line), lower case.
    pub http_reason: String,
    /// The HTTP answer is the proxy's own page (`Some(true)`) or the site's,
    /// relayed (`Some(false)`), by its headers (from the exception chain).
    pub proxy_page: Option<bool>,
    /// The HTTP answer came for an https URL (from the exception chain).
    pub answer_https: Option<bool>,
    /// The answer's `Retry-After`, in milliseconds (from the exception
    /// chain: stderr never shows it).
    pub retry_after_ms: Option<u64>,
    /// The proxy's answer to CONNECT: `Tunnel connection failed: NNN`.
    pub tunnel_status: Option<u16>,
    /// The proxy wants (other) credentials: "Proxy Authentication Required".
    pub proxy_auth_required: bool,
    /// A SOCKS proxy refused the offered authentication.
    pub socks_auth_rejected: bool,
    /// A SOCKS proxy's "general failure" reply (microsocks' answer to wrong
    /// credentials).
    pub socks_general_failure: bool,
    /// Some other SOCKS error reply (from the exception chain).
    pub socks_error: bool,
    /// The error is the proxy layer's (`ProxyError`, a SOCKS error), by
    /// type or by its printed class.
    pub proxy_error: bool,
    /// The peer refused or closed the connection without an answer.
    pub connection_dropped: bool,
    /// A socket timed out (from the exception chain).
    pub timeout: bool,
    /// The connection failed at the transport or proxy layer (from the
    /// exception chain).
    pub connection_failed: bool,
    /// yt-dlp does not support the URL (from the exception chain).
    pub unsupported_url: bool,
    /// The site refused this address's country.
    pub geo_restricted: bool,
    /// The countries the site allows (ISO 3166-1 alpha-2), when it says.
    pub countries: Vec<String>,
    pub stage: Stage,
    /// The HTTP status of the last retried error (`[download] Got error:
    /// HTTP Error 403`): what refused the fragments behind "The downloaded
    /// file is empty".
    pub retry_status: Option<u16>,
    /// The error text, lower case, curly apostrophes made straight, for the
    /// text rules that come last.
    pub text: String,
}

/// A failure's kind and what else is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kind: FailureKind,
    pub detail: FailureDetail,
}

impl Verdict {
    pub fn failure(self, message: String) -> Failure {
        Failure {
            kind: self.kind,
            message,
            detail: self.detail,
        }
    }
}

/// What produced the failure (for its phase and `from_proxy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Host,
    /// The proxy's own answer: a tunnel error, its HTTP page, a SOCKS reply.
    Proxy,
    /// The site's answer, or an extractor's verdict on it.
    Site,
    /// A timeout.
    Silence,
    /// A refused, reset or failed connection.
    Connection,
    /// Fragments refused ("The downloaded file is empty").
    Fragments,
    /// The URL itself.
    Input,
    Nothing,
}

/// The kind and detail of a failure.
pub fn decide(s: &Signals, ctx: &Context) -> Verdict {
    let (kind, cause) = kind(s, ctx);
    // Without a proxy there is no proxy layer to blame.
    let from_proxy = ctx.proxied
        && match cause {
            Cause::Proxy => true,
            Cause::Connection => s.proxy_error || s.connection_dropped,
            Cause::Silence => s.proxy_error,
            _ => false,
        };
    let phase = match cause {
        Cause::Host | Cause::Input => None,
        _ if from_proxy => Some(Phase::Connect),
        _ if s.stage == Stage::Download => Some(Phase::Transfer),
        Cause::Proxy | Cause::Silence | Cause::Connection => Some(Phase::Connect),
        Cause::Fragments => Some(Phase::Transfer),
        Cause::Site => Some(Phase::Request),
        Cause::Nothing => (s.stage == Stage::Extraction).then_some(Phase::Request),
    };
    let http_status = match cause {
        Cause::Host | Cause::Input => None,
        _ => s
            .tunnel_status
            .or(s.http_status)
            .or(s.retry_status.filter(|_| fragments_failed(s))),
    };
    Verdict {
        kind,
        detail: FailureDetail {
            http_status,
            retry_after_ms: s.retry_after_ms.filter(|_| http_status.is_some()),
            phase,
            from_proxy,
            countries: if kind == FailureKind::GeoRestricted {
                s.countries.clone()
            } else {
                Vec::new()
            },
        },
    }
}

/// Fragments could not be had: "The downloaded file is empty" (skipped
/// after their retries), "fragment N not found, unable to continue".
fn fragments_failed(s: &Signals) -> bool {
    s.text.contains("the downloaded file is empty") || s.text.contains("unable to continue")
}

/// Reason phrases only proxies send: tinyproxy's "500 Unable to connect",
/// privoxy's "503 Connect failed" and "502 No data received from server or
/// forwarder". (Squid's are the standard phrases; its headers tell.)
pub(super) fn proxy_phrase(reason: &str) -> bool {
    [
        "unable to connect",
        "connect failed",
        "no data received from server",
    ]
    .iter()
    .any(|p| reason.contains(p))
}

/// Is the HTTP answer the proxy's own page? `Some(false)` when it cannot
/// be (no HTTP proxy, or the request went through a tunnel), what its
/// headers said when the worker reported them, else `None` (stderr shows
/// no headers).
fn proxys_own_page(s: &Signals, ctx: &Context) -> Option<bool> {
    if !ctx.proxied || !ctx.http_proxy || s.answer_https.unwrap_or(ctx.https_url) {
        return Some(false);
    }
    s.proxy_page
}

fn kind(s: &Signals, ctx: &Context) -> (FailureKind, Cause) {
    use FailureKind::*;
    // Without a proxy, a failed connection is the site's or the host's own
    // network's: `unknown`, not `content` (the same URL may work later).
    let via_proxy = |k: FailureKind| if ctx.proxied { k } else { Unknown };
    if s.host_setup {
        return (Host, Cause::Host);
    }
    // Before the HTTP rules: a geo restriction has no status.
    if s.geo_restricted {
        return (GeoRestricted, Cause::Site);
    }
    // The proxy's own answers come first: they mention no target.
    if let Some(code) = s.tunnel_status {
        let k = match code {
            // A 401 to CONNECT is the proxy's (tinyproxy's answer to wrong
            // credentials): nothing reached the site yet.
            401 | 407 => ProxyAuth,
            // The proxy could not reach the site (as tinyproxy's plain-HTTP
            // "500 Unable to connect"): neither clearly the proxy's fault
            // nor the content's.
            500..=504 => Unknown,
            _ => ProxyConnect,
        };
        return (via_proxy(k), Cause::Proxy);
    }
    if s.proxy_auth_required || s.http_status == Some(407) {
        return (via_proxy(ProxyAuth), Cause::Proxy);
    }
    if s.socks_auth_rejected || ctx.proxy_has_credentials && s.socks_general_failure {
        return (via_proxy(ProxyAuth), Cause::Proxy);
    }
    let status = s
        .http_status
        .or(s.retry_status.filter(|_| fragments_failed(s)));
    if let Some(code) = status {
        let own = proxys_own_page(s, ctx);
        return match code {
            // tinyproxy answers wrong credentials with a plain 401. Without
            // headers (stderr) a 401 over plain HTTP through a proxy given
            // credentials is taken for that; a site's 401 is `content`.
            401 if own.unwrap_or(ctx.proxy_has_credentials) => (ProxyAuth, Cause::Proxy),
            403 | 429 => (Blocked, Cause::Site),
            // A proxy's error page (tinyproxy's 500, squid's and privoxy's
            // 502/503): the proxy is alive but could not reach the site.
            500..=504 if own.unwrap_or_else(|| proxy_phrase(&s.http_reason)) => {
                (Unknown, Cause::Proxy)
            }
            // Gateway errors that may be a proxy's page (squid words them
            // like any server) or an overloaded site: not clearly anyone's.
            502..=504 => (Unknown, Cause::Site),
            _ => (Content, Cause::Site),
        };
    }
    if s.socks_error {
        return (via_proxy(ProxyConnect), Cause::Proxy);
    }
    if s.timeout {
        return (via_proxy(ProxyTimeout), Cause::Silence);
    }
    if s.connection_failed {
        return (via_proxy(ProxyConnect), Cause::Connection);
    }
    if s.unsupported_url {
        return (Content, Cause::Site);
    }
    match text_rules(&s.text) {
        (k @ (ProxyTimeout | ProxyConnect), cause) => (via_proxy(k), cause),
        other => other,
    }
}

/// What the error text alone says, after every typed signal. The site's
/// verdicts come first (bot checks before "video unavailable", which also
/// opens YouTube's rate limit), the transport's wording last.
fn text_rules(l: &str) -> (FailureKind, Cause) {
    use FailureKind::*;
    let has = |s: &str| l.contains(s);
    // This address refused: keyed on "not a bot", never on "sign in" (a
    // private, age-gated or members-only video says "sign in" too).
    if has("not a bot")
        || has("captcha")
        || has("your ip is likely being blocked")
        || has("this content isn't available")
        || has("has been rate-limited")
    {
        return (Blocked, Cause::Site);
    }
    if has("is not a valid url") || has("unsupported url scheme") {
        return (Content, Cause::Input);
    }
    if has("sign in to confirm your age")
        || has("private video")
        || has("members-only")
        || has("join this channel")
        || has("copyright grounds")
        || has("video unavailable")
        || has("unsupported url")
        || has("requested format is not available")
        || has("no video formats found")
    {
        return (Content, Cause::Site);
    }
    // Every fragment refused and skipped; with no status seen (stderr under
    // `--quiet`), a refusal is the likely cause (googlevideo's 403s).
    if has("the downloaded file is empty") {
        return (Blocked, Cause::Fragments);
    }
    if has("unable to continue") {
        return (Unknown, Cause::Fragments);
    }
    if has("timed out") || has("timeout") {
        return (ProxyTimeout, Cause::Silence);
    }
    if has("unsupported proxy type")
        || has("proxyerror(")
        || has("unable to connect to proxy")
        || has("tunnel connection failed")
        || has("connection refused")
        || has("connection reset")
        || has("connection aborted")
        || has("remote end closed connection")
        || has("transporterror(")
        || has("network is unreachable")
        || has("socks")
    {
        return (ProxyConnect, Cause::Connection);
    }
    (Unknown, Cause::Nothing)
}
