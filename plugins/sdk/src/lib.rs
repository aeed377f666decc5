//! Write a [ytdlp-host](https://example.invalid/ytdlp-host) proxy backend in
//! Rust: implement [`Backend`] and call [`export_backend!`]. The crate builds
//! the WebAssembly component glue (wit-bindgen, contract `ytdlp:proxy@0.2.0`,
//! world `proxy-backend-full`) for the `wasm32-wasip2` target; on other
//! targets it is plain Rust, so a backend's logic can be unit-tested
//! natively.
//!
//! ```
//! use ytdlp_plugin_sdk::{
//!     Backend, Failure, GetProxyError, OptionInfo, Options, PluginError, PluginInfo, Proxy,
//!     Request, Success, opt, plugin_info,
//! };
//!
//! /// Hands out the proxy of the `proxy` option, for any site.
//! struct One {
//!     proxy: Proxy,
//! }
//!
//! impl Backend for One {
//!     fn init(options: &Options) -> Result<Self, PluginError> {
//!         let url = opt(options, "proxy").ok_or(PluginError::invalid("proxy", "is required"))?;
//!         // The id is the URL's identity without the password: reports name it.
//!         let proxy = Proxy::new(url, 30_000);
//!         proxy.check().map_err(|why| PluginError::invalid("proxy", why))?;
//!         Ok(One { proxy })
//!     }
//!
//!     fn get_proxy(&mut self, request: &Request, _: &Options) -> Result<Proxy, GetProxyError> {
//!         // Never hand out a proxy outside what the request wants.
//!         if !request.want.admits(&self.proxy.meta) {
//!             return Err(GetProxyError::no_proxy(request.want.unmet_message(1, [&self.proxy.meta])));
//!         }
//!         Ok(self.proxy.clone())
//!     }
//!
//!     fn report_success(&mut self, _id: &str, _: &Request, _: &Success, _: &Options) {}
//!
//!     fn report_failure(&mut self, _id: &str, _: &Request, _: &Failure, _: &Options) {}
//!
//!     fn describe() -> PluginInfo {
//!         plugin_info!()
//!             .summary("one proxy for everything")
//!             .option(OptionInfo::init("proxy", "the proxy URL").secret())
//!     }
//! }
//!
//! ytdlp_plugin_sdk::export_backend!(One);
//! # fn main() {
//! #     let mut one = One::init(&vec![("proxy".into(), "http://u:p@10.0.0.1:3128".into())]).unwrap();
//! #     let p = one.get_proxy(&Request::default(), &Vec::new()).unwrap();
//! #     assert_eq!(p.url, "http://u:p@10.0.0.1:3128");
//! # }
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`); the `.wasm` in `target/wasm32-wasip2/release/` is the plugin.
//!
//! What the glue does for a backend:
//! - it exports `backend`, `stats`, `admin` and `describe`; a backend that
//!   does not override [`Backend::stats`] or the admin calls answers them
//!   `unsupported`, which the host reports as "not implemented";
//! - it splits each [`Proxy`]'s URL into the contract's record (scheme,
//!   host, port, credentials) after [`Proxy::check`]; a proxy that fails
//!   the check is answered as `backend-unavailable` naming the problem
//!   (never the credentials), and an empty id becomes the URL's
//!   [`ProxyUrl::identity_id`];
//! - stats rows ([`ProxyStats`]) carry a [`Proxy`] and are checked the same
//!   way (a bad row fails `get-stats` as `unavailable`);
//! - `add-proxies` specs become [`ProxyEntry`]s
//!   ([`ProxyEntry::from_spec`]); a bad one refuses the call as
//!   `invalid-value` of key `proxy`;
//! - `describe` is [`Backend::describe`], an empty name or version filled
//!   with the package name and version of the crate that calls
//!   [`export_backend!`].

mod info;
pub mod kv;
mod proxy;
mod rate;

pub use info::{OptionInfo, OptionScope, PluginInfo};
pub use proxy::{Failure, Proxy, ProxyStats};
pub use rate::{Rate, parse_site_rate, window_text};
// The contract's model, written once in `ytdlp-contract` and shared with
// the host: requests, failure kinds and details, proxy metadata and states,
// typed refusals, options and their parsing helpers, limits, proxy lists.
pub use ytdlp_contract::options::{
    flag, fraction, is_host_key, num, opt, opt_all, parse_bool, parse_num, unknown,
};
pub use ytdlp_contract::proxy_list::{ProxyEntry, parse_entry};
pub use ytdlp_contract::{
    self as contract, FailureDetail, FailureKind, NoProxy, Options, Phase, PluginError, ProxyMeta,
    ProxyState, ProxyUrl, Request, Site, Success, Wanted, parse_region, parse_tag, region_matches,
};

/// Why there is no proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetProxyError {
    /// Working, but nothing usable now for this request (none configured,
    /// none matching its `want`, all out); `retry_at_ms` (Unix ms) if known.
    NoProxy {
        message: String,
        retry_at_ms: Option<u64>,
    },
    /// The backend itself cannot serve (its store or API is down).
    Unavailable(String),
}

impl GetProxyError {
    /// No proxy now, no idea when.
    pub fn no_proxy(message: impl Into<String>) -> GetProxyError {
        GetProxyError::NoProxy {
            message: message.into(),
            retry_at_ms: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> GetProxyError {
        GetProxyError::Unavailable(message.into())
    }
}

impl From<NoProxy> for GetProxyError {
    fn from(np: NoProxy) -> Self {
        GetProxyError::NoProxy {
            message: np.message,
            retry_at_ms: np.retry_at_ms,
        }
    }
}

/// A proxy backend. One value lives per plugin instance, created by
/// [`Backend::init`]; calls are never concurrent.
///
/// Options: at `init`, the backend's options from the host's config; at
/// every other call, those merged with the options given for that
/// download. The host's context (URL, site, attempt, ...) is the
/// [`Request`], never an option.
pub trait Backend: Sized + 'static {
    /// Reads the init options; an error refuses them (shown to the user,
    /// naming the option).
    fn init(options: &Options) -> Result<Self, PluginError>;

    /// A proxy for the next attempt at `request`: one that satisfies
    /// `request.want` ([`Wanted::admits`]), preferably not one of
    /// `request.avoid`, the cheapest tier first.
    fn get_proxy(&mut self, request: &Request, options: &Options) -> Result<Proxy, GetProxyError>;

    /// The attempt at `request` through the proxy `proxy_id` (as handed
    /// out) downloaded its URL.
    fn report_success(
        &mut self,
        proxy_id: &str,
        request: &Request,
        outcome: &Success,
        options: &Options,
    );

    /// The attempt at `request` through `proxy_id` failed. Count only the
    /// proxy's own faults ([`FailureKind::is_proxy_fault`]) against it;
    /// `blocked` is per site (`request.site.domain`), `geo-restricted` per
    /// URL.
    fn report_failure(
        &mut self,
        proxy_id: &str,
        request: &Request,
        failure: &Failure,
        options: &Options,
    );

    /// Statistics for `ytdlp-host proxies stats`.
    fn stats(&mut self, _options: &Options) -> Result<Vec<ProxyStats>, PluginError> {
        Err(PluginError::unsupported("this backend keeps no statistics"))
    }

    /// `ytdlp-host proxies add`: how many were new.
    fn add_proxies(
        &mut self,
        _proxies: Vec<ProxyEntry>,
        _options: &Options,
    ) -> Result<u32, PluginError> {
        Err(PluginError::unsupported(
            "this backend's proxy list cannot be changed at run time",
        ))
    }

    /// `ytdlp-host proxies remove`, by id or URL: how many were known.
    fn remove_proxies(
        &mut self,
        _ids: Vec<String>,
        _options: &Options,
    ) -> Result<u32, PluginError> {
        Err(PluginError::unsupported(
            "this backend's proxy list cannot be changed at run time",
        ))
    }

    /// What the plugin is and which options it reads. The default names
    /// the plugin crate (package name and version) and lists no options;
    /// override it with [`plugin_info!`] and one [`OptionInfo`] per option
    /// so the host can refuse unknown options and hide secret ones.
    fn describe() -> PluginInfo {
        PluginInfo::default()
    }
}

/// Exports a [`Backend`] as the plugin's component interface (on
/// `wasm32`; elsewhere it expands to nothing, so the crate still builds and
/// tests natively).
#[macro_export]
macro_rules! export_backend {
    ($t:ty) => {
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __YtdlpPluginCrate;
            impl $crate::glue::CrateInfo for __YtdlpPluginCrate {
                const NAME: &'static str = env!("CARGO_PKG_NAME");
                const VERSION: &'static str = env!("CARGO_PKG_VERSION");
            }
            type __YtdlpPluginAdapter = $crate::glue::Adapter<$t, __YtdlpPluginCrate>;
            $crate::glue::__export_world!(__YtdlpPluginAdapter with_types_in $crate::glue::bindings);
        };
    };
}

#[cfg(target_family = "wasm")]
#[doc(hidden)]
pub mod glue;
