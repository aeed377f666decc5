//! The ways to run yt-dlp, behind one interface: `process` (one yt-dlp
//! process per attempt, [`crate::ytdlp_run`]) and `worker` (a pool of warm
//! Python workers driving yt-dlp's embedding API, [`crate::ytdlp_worker`]).
//! Each runner takes the same [`RunSpec`], reports progress in the same
//! shape and classifies failures into the same kinds.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ytdlp_run::{self, Progress, RunOutcome, RunSpec};
use crate::ytdlp_worker::{self, PoolOptions, WorkerConfig, WorkerPool};

/// How yt-dlp runs.
#[derive(Clone, Default)]
pub enum Runner {
    /// One yt-dlp process per attempt.
    #[default]
    Process,
    /// Warm workers; one pool per host, shared by every download.
    Workers(Arc<WorkerPool>),
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Runner {
    pub fn name(&self) -> &'static str {
        match self {
            Runner::Process => "process",
            Runner::Workers(_) => "worker",
        }
    }

    /// Runs one attempt. Dropping the future cancels it: the run is killed
    /// (its whole process group, for the process runner; the worker, which
    /// is replaced, for the worker runner).
    pub async fn run(&self, spec: &RunSpec, on_progress: impl FnMut(Progress)) -> RunOutcome {
        match self {
            Runner::Process => ytdlp_run::run(spec, on_progress).await,
            Runner::Workers(pool) => pool.run(spec, on_progress).await,
        }
    }
}

/// The runner asked for (config `runner`, `download --runner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// Warm Python workers driving yt-dlp's embedding API.
    Worker,
    /// One yt-dlp process per attempt.
    Process,
}

/// Builds the runner for a host. `requested: None` means the default:
/// `worker` when yt-dlp's Python module imports (and the yt-dlp options are
/// ones the worker supports), else `process` with a one-line notice.
/// An explicit `worker` that cannot work is an error that says why.
/// `concurrency` is the pool's size (the number of concurrent downloads).
pub async fn select(
    requested: Option<RunnerKind>,
    yt_dlp: &Path,
    worker: &WorkerConfig,
    concurrency: usize,
    extra_args: &[String],
) -> anyhow::Result<Runner> {
    if requested == Some(RunnerKind::Process) {
        return Ok(Runner::Process);
    }
    let pool = async {
        ytdlp_worker::check_args(extra_args)?;
        let python = ytdlp_worker::find_python(yt_dlp, worker.python.as_deref())?;
        WorkerPool::start(PoolOptions::new(python, concurrency, worker)).await
    };
    match pool.await {
        Ok(pool) => Ok(Runner::Workers(Arc::new(pool))),
        Err(why) if requested == Some(RunnerKind::Worker) => {
            if why.contains("runner = \"process\"") {
                anyhow::bail!("runner `worker`: {why}")
            }
            anyhow::bail!(
                "runner `worker`: {why}; use `runner = \"process\"` (or `--runner process`)"
            )
        }
        Err(why) => {
            let why = why
                .split(';')
                .next()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default();
            tracing::warn!("using the process runner: {why}");
            Ok(Runner::Process)
        }
    }
}
