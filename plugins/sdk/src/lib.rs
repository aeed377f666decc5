//! Write a [ytdlp-host](https://example.invalid/ytdlp-host) proxy backend in
//! Rust: implement [`Backend`] and call [`export_backend!`]. The crate builds
//! the WebAssembly component glue (wit-bindgen, contract `ytdlp:proxy@0.1.0`)
//! for the `wasm32-wasip2` target; on other targets it is plain Rust, so a
//! backend's logic can be unit-tested natively.
//!
//! ```
//! use ytdlp_plugin_sdk::{Backend, Failure, GetProxyError, Options, Proxy, opt};
//!
//! /// Hands out one proxy from the `proxy` option.
//! struct One {
//!     url: String,
//! }
//!
//! impl Backend for One {
//!     fn init(options: &Options) -> Result<Self, String> {
//!         let url = opt(options, "proxy").ok_or("option `proxy` is required")?;
//!         Ok(One { url: url.to_string() })
//!     }
//!
//!     fn get_proxy(&mut self, _options: &Options) -> Result<Proxy, GetProxyError> {
//!         Ok(Proxy { url: self.url.clone(), timeout_ms: 30_000 })
//!     }
//!
//!     fn report_success(&mut self, _proxy_url: &str, _options: &Options) {}
//!
//!     fn report_failure(&mut self, _proxy_url: &str, _failure: &Failure, _options: &Options) {}
//! }
//!
//! ytdlp_plugin_sdk::export_backend!(One);
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`); the `.wasm` in `target/wasm32-wasip2/release/` is the plugin.
//!
//! The component exports `backend`, `stats` and `admin`; a backend that does
//! not override [`Backend::stats`] or the admin calls answers them with an
//! error that says so.

/// Key/value options, in order; a key may repeat (a list).
pub type Options = Vec<(String, String)>;

/// The last value of `key`, if any.
pub fn opt<'a>(options: &'a Options, key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Every value of `key`, in order.
pub fn opt_all<'a>(options: &'a Options, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    options
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A proxy for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// `scheme://[user:password@]host:port`, scheme one of http, https,
    /// socks4, socks4a, socks5, socks5h.
    pub url: String,
    /// Per-operation timeout through this proxy (yt-dlp's `--socket-timeout`).
    pub timeout_ms: u32,
}

/// Why there is no proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetProxyError {
    /// Working, but nothing usable now; `retry_at_ms` (Unix ms) if known.
    NoProxy {
        message: String,
        retry_at_ms: Option<u64>,
    },
    /// The backend itself cannot serve (its store or API is down).
    Unavailable(String),
}

/// The host's classification of a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    ProxyConnect,
    ProxyTimeout,
    ProxyAuth,
    Blocked,
    Content,
    Host,
    Unknown,
}

impl FailureKind {
    /// Every kind, in the contract's order (`kind as usize` indexes it).
    pub const ALL: [FailureKind; 7] = [
        FailureKind::ProxyConnect,
        FailureKind::ProxyTimeout,
        FailureKind::ProxyAuth,
        FailureKind::Blocked,
        FailureKind::Content,
        FailureKind::Host,
        FailureKind::Unknown,
    ];

    /// The contract's name: `proxy-connect`, `blocked`, ...
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::ProxyConnect => "proxy-connect",
            FailureKind::ProxyTimeout => "proxy-timeout",
            FailureKind::ProxyAuth => "proxy-auth",
            FailureKind::Blocked => "blocked",
            FailureKind::Content => "content",
            FailureKind::Host => "host",
            FailureKind::Unknown => "unknown",
        }
    }

    /// The proxy's own fault (connect, timeout, auth): count it against the
    /// proxy. `Blocked` is per site; the others are never the proxy's.
    pub fn is_proxy_fault(self) -> bool {
        matches!(
            self,
            FailureKind::ProxyConnect | FailureKind::ProxyTimeout | FailureKind::ProxyAuth
        )
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// A proxy's state in stats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyState {
    Active,
    /// Until this time (Unix ms).
    CoolingDown(u64),
    Disabled,
}

/// Statistics of one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyStats {
    pub url: String,
    pub successes: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub state: ProxyState,
    pub last_used_ms: Option<u64>,
    pub extra: Vec<(String, String)>,
}

/// A proxy backend. One value lives per plugin instance, created by
/// [`Backend::init`]; calls are never concurrent.
pub trait Backend: Sized + 'static {
    /// Reads the init options; an error refuses them (shown to the user).
    fn init(options: &Options) -> Result<Self, String>;

    /// A proxy for the next attempt. Call options carry `host.url`,
    /// `host.site`, `host.attempt` and `host.download-id`.
    fn get_proxy(&mut self, options: &Options) -> Result<Proxy, GetProxyError>;

    fn report_success(&mut self, proxy_url: &str, options: &Options);

    fn report_failure(&mut self, proxy_url: &str, failure: &Failure, options: &Options);

    /// Statistics for `ytdlp-host proxies stats`.
    fn stats(&mut self, _options: &Options) -> Result<Vec<ProxyStats>, String> {
        Err("this backend keeps no statistics".to_string())
    }

    /// `ytdlp-host proxies add`: how many were new.
    fn add_proxies(&mut self, _urls: Vec<String>, _options: &Options) -> Result<u32, String> {
        Err("this backend's proxy list cannot be changed at run time".to_string())
    }

    /// `ytdlp-host proxies remove`: how many were known.
    fn remove_proxies(&mut self, _urls: Vec<String>, _options: &Options) -> Result<u32, String> {
        Err("this backend's proxy list cannot be changed at run time".to_string())
    }
}

/// Exports a [`Backend`] as the plugin's component interface.
#[macro_export]
macro_rules! export_backend {
    ($t:ty) => {
        #[cfg(target_family = "wasm")]
        type __YtdlpPluginAdapter = $crate::glue::Adapter<$t>;
        #[cfg(target_family = "wasm")]
        $crate::glue::__export_world!(__YtdlpPluginAdapter with_types_in $crate::glue::bindings);
    };
}

#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod glue;
