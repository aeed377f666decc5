//! The bundled in-memory proxy backend of ytdlp-host.
//!
//! The proxy logic lives in [`engine`], plain Rust that is unit-tested
//! natively; `component` (wasm only) adapts it to the WIT contract. The host
//! embeds the wasm build and loads it like any user plugin.

pub mod engine;
pub mod state;

#[cfg(target_family = "wasm")]
mod component;
