//! ytdlp-host as a library: run yt-dlp behind rotating proxies chosen by
//! WebAssembly component plugins.
//!
//! Build a [`Host`] with [`HostBuilder`], submit [`DownloadRequest`]s, watch
//! [`Event`]s, wait for each [`DownloadResult`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ytdlp_host::{DownloadRequest, HostBuilder};
//!
//! let host = HostBuilder::new()
//!     .proxy("http://127.0.0.1:3128")
//!     .concurrency(2)
//!     .build()
//!     .await?;
//! let id = host.submit(DownloadRequest::new("https://example.com/v/1"))?;
//! let status = host.wait(&id).await;
//! # Ok(()) }
//! ```
//!
//! The crates behind it, each with one job (dependencies point one way):
//! `ytdlp-contract` (the plugin contract's model) <- `ytdlp-host-config` <-
//! { `ytdlp-host-plugin-host` (wasmtime, the sandbox), `ytdlp-host-ytdlp`
//! (running yt-dlp) } <- `ytdlp-host-core` (downloads, the queue, the
//! builder) <- `ytdlp-host-service` (`serve`) <- this crate (and the CLI).

pub use ytdlp_contract::FailureKind;
pub use ytdlp_host_config::{Config, NoProxyPolicy, RunnerKind};
pub use ytdlp_host_core::{
    Attempt, BuildError, CancelOutcome, DownloadId, DownloadRequest, DownloadResult,
    DownloadStatus, Event, Host, HostBuilder, Page, QueueCounts, QueueObserver, Retention, State,
    Status, SubmitError,
};
