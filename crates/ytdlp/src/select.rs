//! Choosing the runner for a host: `process` (one yt-dlp process per
//! attempt, [`crate::process`]) or `worker` (a pool of warm Python workers
//! driving yt-dlp's embedding API, [`crate::worker`]). Both take the same
//! [`crate::RunSpec`], report progress in the same shape and classify
//! failures into the same kinds.

use std::path::Path;
use std::sync::Arc;

use ytdlp_host_config::{RunnerKind, WorkerConfig};

use crate::process::ProcessRunner;
use crate::run::Runner;
use crate::worker::{self, PoolOptions, WorkerPool};

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
) -> anyhow::Result<Arc<dyn Runner>> {
    // Whatever the runner: an override of the host's own options is a lie
    // in the host's report, not a choice of runner.
    crate::args::check_user_args(extra_args).map_err(anyhow::Error::msg)?;
    if requested == Some(RunnerKind::Process) {
        return Ok(Arc::new(ProcessRunner));
    }
    let pool = async {
        worker::check_args(extra_args)?;
        let python = worker::find_python(yt_dlp, worker.python.as_deref())?;
        WorkerPool::start(PoolOptions::new(python, concurrency, worker)).await
    };
    match pool.await {
        Ok(pool) => Ok(Arc::new(pool)),
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
            Ok(Arc::new(ProcessRunner))
        }
    }
}
