//! One run of yt-dlp, whatever runs it: what to run ([`RunSpec`]), what it
//! reports on the way ([`Progress`]), how it ended ([`RunOutcome`]), and the
//! [`Runner`] interface both runners implement.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ytdlp_contract::{Failure, FailureKind, ProxyUrl};

/// A future that can be stored behind a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub program: PathBuf,
    pub url: String,
    /// `None`: a direct connection (`--proxy ""`).
    pub proxy: Option<ProxyUrl>,
    /// yt-dlp's `--socket-timeout`, seconds.
    pub socket_timeout_secs: u64,
    /// `-o`; yt-dlp's default when `None`.
    pub output: Option<String>,
    /// The user's own yt-dlp arguments, passed through.
    pub extra_args: Vec<String>,
    /// Overall deadline of the run.
    pub deadline: Duration,
}

/// One progress update, in the shape of yt-dlp's progress template (both
/// runners report the same fields).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct Progress {
    pub status: Option<String>,
    pub downloaded_bytes: Option<f64>,
    pub total_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes_estimate: Option<f64>,
    pub speed: Option<f64>,
    pub eta: Option<f64>,
    /// The file being written (the final name, and the `.part` one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfilename: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit_code: Option<i32>,
    pub duration: Duration,
    pub file: Option<PathBuf>,
    /// `None` on success.
    pub failure: Option<Failure>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// A run that failed before or without yt-dlp's verdict.
    pub fn failed(kind: FailureKind, message: String, duration: Duration) -> RunOutcome {
        RunOutcome {
            exit_code: None,
            duration,
            file: None,
            failure: Some(Failure::new(kind, message)),
        }
    }
}

/// Runs yt-dlp once per call. Dropping the returned future cancels the run:
/// yt-dlp (and whatever it started) is killed and its partial file removed.
pub trait Runner: Send + Sync {
    /// `process` or `worker`, for messages.
    fn name(&self) -> &'static str;

    fn run<'a>(
        &'a self,
        spec: &'a RunSpec,
        on_progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> BoxFuture<'a, RunOutcome>;
}

/// The message of a run killed at its deadline (the same for both runners).
pub fn deadline_message(deadline: Duration) -> String {
    format!(
        "yt-dlp ran longer than {} s and was killed",
        deadline.as_secs()
    )
}
