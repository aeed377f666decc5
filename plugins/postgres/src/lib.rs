//! A ytdlp-host proxy backend keeping the proxy pool and its health in
//! PostgreSQL, so that many hosts on many machines share one view of which
//! proxies work.
//!
//! - [`pg`]: a small blocking client (wire protocol, SCRAM-SHA-256 and md5
//!   from `postgres-protocol`) over `std::net::TcpStream`, so it runs on
//!   `wasm32-wasip2` through `wasi:sockets`;
//! - [`settings`]: the options;
//! - [`schema`]: the tables, created on first use and versioned;
//! - [`store`]: one SQL statement per operation, atomic across hosts;
//! - [`component`]: the contract through the SDK's `export_backend!`.

pub mod component;
pub mod pg;
pub mod schema;
pub mod settings;
pub mod store;
