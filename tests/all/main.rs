//! Integration tests of ytdlp-host: one test binary, a module per concern.
//! Every test runs the real `ytdlp-host` binary and the real yt-dlp against
//! real servers on loopback (see the `ytdlp-host-tests` harness).

mod batch;
mod common;
mod conformance;
mod download;
mod examples;
mod health;
mod hostile;
mod plugins;
mod redis;
mod runners;
mod service;
mod vendor_api;
