//! The model of the ytdlp-host plugin contract (`wit/`), written once and
//! shared by the host and by the plugins (through `plugins/sdk`):
//!
//! - [`FailureKind`]: why an attempt failed, with the contract's names, and
//!   [`Failure`] with its [`FailureDetail`];
//! - [`Request`], [`Site`], [`Wanted`], [`ProxyMeta`]: what the host tells a
//!   backend about an attempt, and what is known about a proxy;
//! - [`PluginError`]: a plugin's typed refusal; [`Success`];
//! - [`proxy_list`]: proxy lists in the common formats, with metadata;
//! - [`ProxyState`], [`ProxyStats`], [`NoProxy`]: what a backend reports;
//! - [`options`]: key/value options, the reserved `host.` keys, parsing
//!   helpers every plugin needs;
//! - [`limits`]: bounds the contract states (a proxy's timeout, ...);
//! - [`proxy_url`]: what a proxy URL may be, and masking its password;
//! - [`text`]: shortening text for one-line messages;
//! - [`atomic_file`]: writing a file so readers never see half of it.
//!
//! No wasmtime, no async runtime, no CLI library: this crate builds for the
//! host and for `wasm32-wasip2` guests alike.

pub mod atomic_file;
mod failure;
pub mod limits;
pub mod options;
mod plugin_error;
pub mod proxy_list;
pub mod proxy_url;
mod request;
mod stats;
pub mod text;

pub use failure::{Failure, FailureDetail, FailureKind, Phase};
pub use options::Options;
pub use plugin_error::{PluginError, Success};
pub use proxy_url::ProxyUrl;
pub use request::{ProxyMeta, Request, Site, Wanted, parse_region, parse_tag, region_matches};
pub use stats::{NoProxy, ProxyState, ProxyStats};

/// Now, in milliseconds since the Unix epoch (the contract's clock for
/// `retry-at-ms`, `cooling-down` and `last-used-ms`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
