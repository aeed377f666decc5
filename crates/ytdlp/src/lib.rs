//! ytdlp-host's yt-dlp layer: everything about yt-dlp itself, nothing about
//! proxies' health or plugins.
//!
//! - [`locate`]: finding yt-dlp (and installing a private copy);
//! - [`args`]: the options the host owns on every run (and the refusal of
//!   user arguments that override them);
//! - [`policy`]: what an API caller may ask of yt-dlp, and output paths
//!   confined to the download directory;
//! - [`spawn`]: where yt-dlp and the workers are spawned (process groups,
//!   the guard that kills an abandoned run);
//! - [`run`]: a run's spec, progress and outcome, and the [`Runner`]
//!   interface;
//! - [`process`]: the process runner; [`worker`]: the warm worker pool;
//!   [`select`]: choosing one;
//! - [`classify`]: why a run failed, from stderr or the exception chain.

pub mod args;
pub mod classify;
pub mod locate;
pub mod policy;
pub mod process;
pub mod run;
pub mod select;
pub mod spawn;
pub mod worker;

pub use process::ProcessRunner;
pub use run::{BoxFuture, Progress, RunOutcome, RunSpec, Runner};
pub use select::select;
pub use worker::WorkerPool;
