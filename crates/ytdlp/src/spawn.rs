//! Where yt-dlp (and the warm workers) are spawned: one command builder for
//! both runners, each child in its own process group so a kill reaches
//! whatever it started (ffmpeg), and a guard that kills the group and
//! removes the partial file when a run is abandoned.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// A command for yt-dlp or a worker: no `NO_PROXY` (with urllib it silently
/// bypasses `--proxy` for the hosts it covers), its own process group,
/// killed if dropped.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// SIGKILL to the whole process group of `pid`.
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.filter(|p| *p > 0) {
        // SAFETY: killpg only sends a signal; the group is the child's own
        // (process_group(0) at spawn), so nothing else is hit; pid 0 (our
        // own group) is filtered out above.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Removes a run's partial file (yt-dlp's `.part`), if any.
pub fn remove_partial(partial: Option<&Path>) {
    if let Some(p) = partial {
        let _ = std::fs::remove_file(p);
    }
}

/// Kills a run's process group and removes its partial file when dropped
/// while armed: the run's future was dropped before the end (cancelled).
pub struct GroupGuard {
    pub pid: Option<u32>,
    pub partial: Option<PathBuf>,
    pub armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pid);
            remove_partial(self.partial.as_deref());
        }
    }
}
