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

// The contract's model, written once in `ytdlp-contract` and shared with
// the host: failure kinds, proxy states and stats, options and their
// parsing helpers, limits.
pub use ytdlp_contract::options::{is_host_key, opt, opt_all, parse_bool, parse_num, unknown};
pub use ytdlp_contract::{self as contract, FailureKind, NoProxy, Options, ProxyState, ProxyStats};

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

impl From<NoProxy> for GetProxyError {
    fn from(np: NoProxy) -> Self {
        GetProxyError::NoProxy {
            message: np.message,
            retry_at_ms: np.retry_at_ms,
        }
    }
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
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
