//! ytdlp-host's core: where downloads happen.
//!
//! - [`downloader`]: one URL from start to end; where a proxy is chosen
//!   for it, checked, reported on and retried elsewhere;
//! - [`chain`]: several backends as one source, asked in order;
//! - [`source`]: the [`ProxySource`] interface the downloader asks, and its
//!   implementation over a plugin;
//! - [`preflight`]: the quick check of a proxy before a run;
//! - [`queue`]: the download queue ([`Host`]): ids, concurrency, events,
//!   cancellation, shutdown;
//! - [`builder`]: [`HostBuilder`], the composition root the CLI, `serve`
//!   and library users build through.
//!
//! The downloader and the queue depend on two small interfaces,
//! [`ProxySource`] and [`ytdlp_host_ytdlp::Runner`], so their policy is
//! tested with scripted fakes (`tests.rs`), without yt-dlp.

pub mod builder;
pub mod chain;
pub mod downloader;
pub mod preflight;
pub mod proxies_file;
pub mod queue;
pub mod source;
pub mod tiers;

#[cfg(test)]
mod tests;

pub use builder::{BuildError, HostBuilder};
pub use chain::{ChainSource, Link};
pub use downloader::{
    Attempt, AttemptEvent, DownloadRequest, DownloadResult, Downloader, Settings, Status,
    first_request, site_of,
};
pub use queue::{
    CancelOutcome, DownloadId, DownloadStatus, Event, FleetOptions, Host, Limits, Page,
    QueueCounts, QueueObserver, Restored, Retention, State, SubmitError, consumer_name,
};
pub use source::{PluginSource, ProxySource};
