//! A ytdlp-host proxy backend that keeps the proxy pool and its health in
//! Redis, so that many hosts on many machines share one view of which
//! proxies work.
//!
//! [`settings`] parses the options; [`store`] talks to Redis (one Lua
//! script per operation, atomic across hosts) and is tested natively
//! against a real redis-server; `component` (wasm only) adapts both to the
//! WIT contract.

pub mod settings;
pub mod store;

#[cfg(target_family = "wasm")]
mod component;
