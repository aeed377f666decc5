//! The ways to run yt-dlp, behind one interface: `process` (one yt-dlp
//! process per attempt, [`crate::ytdlp_run`]). Each runner takes the same
//! [`RunSpec`], reports progress in the same shape and classifies failures
//! into the same kinds.

use crate::ytdlp_run::{self, Progress, RunOutcome, RunSpec};

/// How yt-dlp runs.
#[derive(Clone, Default)]
pub enum Runner {
    /// One yt-dlp process per attempt.
    #[default]
    Process,
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
        }
    }

    /// Runs one attempt. Dropping the future cancels it: the run is killed
    /// (its whole process group, for the process runner).
    pub async fn run(&self, spec: &RunSpec, on_progress: impl FnMut(Progress)) -> RunOutcome {
        match self {
            Runner::Process => ytdlp_run::run(spec, on_progress).await,
        }
    }
}
