//! ytdlp-host's plugin host: everything between the host and a WebAssembly
//! plugin.
//!
//! - [`runtime`]: the wasmtime engine with its epoch ticker, the linker, the
//!   compile cache ([`cache`]);
//! - [`loading`]: finding plugin files and checking that one is a plugin
//!   this host can run;
//! - [`sandbox`]: what a plugin may reach ([`sandbox::policy`]: grants) and
//!   where its limits are set ([`sandbox::limits`]);
//! - [`backend`]: calls into a plugin (`init`, `get-proxy`, `report-*`,
//!   `get-stats`, `add/remove-proxies`) under those limits, with typed
//!   errors;
//! - [`bindings`]: the contract's generated bindings and their conversions;
//! - [`conformance`]: the conformance kit (`ytdlp-host plugins test`).

pub mod backend;
pub mod bindings;
pub mod cache;
pub mod conformance;
pub mod engine;
pub mod exec;
pub mod handle;
pub mod loading;
pub mod runtime;
pub mod sandbox;

pub use backend::{Backend, BackendError, Call, OptionInfo, PluginInfo, ProxyChoice, StatsRow};
pub use cache::{CacheOutcome, CompileCache};
pub use handle::BackendHandle;
pub use loading::{CatalogEntry, Contract, LoadError, Plugin, Source};
pub use runtime::PluginRuntime;
pub use sandbox::keyvalue::open_store;
