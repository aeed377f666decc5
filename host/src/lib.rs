//! ytdlp-host: run yt-dlp behind rotating proxies chosen by WebAssembly
//! component plugins.
//!
//! Where things happen:
//! - [`config`]: the TOML configuration;
//! - [`loading`]: finding plugin files, checking and compiling them
//!   ([`compile_cache`] keeps compiled code);
//! - [`sandbox`]: what a plugin may reach (grants) and its limits;
//! - [`backend`]: calls into a plugin (`get-proxy`, `report-*`, `get-stats`);
//! - [`download`]: one URL: choose a proxy, run yt-dlp, report, retry;
//! - [`host`]: the download queue (ids, concurrency, events, cancel);
//! - [`preflight`]: a quick check of a proxy before a yt-dlp run;
//! - [`runner`]: the ways to run yt-dlp; [`ytdlp_run`]: spawning a yt-dlp
//!   process; [`ytdlp_locate`]: finding yt-dlp;
//! - [`classify`]: why a run failed; [`proxy_url`]: validation, masking;
//! - [`conformance`]: the plugin conformance kit (`plugins test`);
//! - [`service`]: the HTTP API of `ytdlp-host serve`;
//! - [`cli`]: the `ytdlp-host` command line.

pub mod backend;
pub mod classify;
pub mod cli;
pub mod compile_cache;
pub mod config;
pub mod conformance;
pub mod download;
pub mod host;
pub mod loading;
pub mod preflight;
pub mod proxy_url;
pub mod runner;
pub mod sandbox;
pub mod service;
pub mod ytdlp_locate;
pub mod ytdlp_run;

#[cfg(test)]
mod fuzz_props;
pub mod ytdlp_worker;
