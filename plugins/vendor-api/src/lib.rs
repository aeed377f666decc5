//! A ytdlp-host proxy backend that asks a proxy vendor's HTTP JSON API for
//! each proxy and reports every outcome back to it.
//!
//! [`api`] is the protocol (options, answers, messages), tested natively;
//! `http` (wasm only) sends requests through wasi:http, which the host
//! allows only to granted origins; `component` (wasm only) is the contract
//! glue, through the SDK.

pub mod api;

#[cfg(target_family = "wasm")]
mod component;
#[cfg(target_family = "wasm")]
mod http;
