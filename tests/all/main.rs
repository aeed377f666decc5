//! Integration tests of ytdlp-host: one test binary, a module per concern.
//! The tests run the real `ytdlp-host` binary and the real yt-dlp against
//! real servers on loopback (see the `ytdlp-host-tests` harness).
//!
//! Tests that need a tool `bash .ci/run` installs (yt-dlp, tinyproxy,
//! microsocks, redis-server, the example plugins' toolchains) are
//! `#[ignore = "needs ..."]`: plain `cargo test` runs the rest and lists
//! those as ignored with the tool named; `cargo test -- --include-ignored`
//! (the README's test command, which `.ci/run` runs) runs them all.

mod batch;
mod chain;
mod classify;
mod common;
mod conformance;
mod download;
mod examples;
mod fleet;
mod goodput;
mod guide;
mod hardening;
mod health;
mod hostile;
mod layers;
mod pacing;
mod plugins;
mod postgres;
mod redis;
mod routing;
mod runners;
mod service;
mod service_attacks;
mod service_schemathesis;
mod service_state;
mod store;
mod vendor_api;
mod yt_dlp_options;
