//! Where yt-dlp (and the warm workers) are spawned: one command builder for
//! both runners, and [`Group`], which owns a child and its process group.
//!
//! - Each child leads its own process group, so a kill reaches whatever it
//!   started (ffmpeg).
//! - Each child gets `PR_SET_PDEATHSIG` (SIGKILL): if the host dies, even by
//!   SIGKILL, so does the child. The signal follows the thread that spawned
//!   the child; children are spawned from the async runtime's worker
//!   threads, which live as long as the host.
//! - A group is signalled only while its leader is not yet reaped, so its
//!   id cannot have been reused by another process; a stop is SIGTERM, a
//!   short wait for the leader, then SIGKILL to the group.
//! - Dropped before the end (a cancelled download), a [`Group`] kills its
//!   processes and removes the run's partial file.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long a stopped group gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_millis(300);

/// A command for yt-dlp: no `NO_PROXY` (with urllib it silently bypasses
/// `--proxy` for the hosts it covers), OS messages not localised (the
/// classifier reads them), its own process group, SIGKILLed with the host.
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    command_dying_with(program, libc::SIGKILL)
}

/// [`command`], with `signal` sent when the host dies (the worker takes
/// SIGTERM and kills its own group, ffmpeg included).
pub fn command_dying_with(program: impl AsRef<std::ffi::OsStr>, signal: libc::c_int) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("LC_ALL", "C.UTF-8")
        .env("LANGUAGE", "C")
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls (getppid, prctl, raise).
    unsafe {
        cmd.pre_exec(move || {
            let parent = libc::getppid();
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    cmd
}

fn signal_group(pid: u32, sig: libc::c_int) {
    // pid 0 would be our own group; a pid is never 0 for a spawned child,
    // but the guard costs nothing.
    if pid > 0 {
        // SAFETY: killpg only sends a signal, to the child's own group.
        unsafe {
            libc::killpg(pid as libc::pid_t, sig);
        }
    }
}

/// Has the process `pid` exited? Checked without reaping it, so its id
/// (and its group's) stays reserved.
fn exited_unreaped(pid: u32) -> bool {
    // SAFETY: waitid writes only into `info`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

/// Removes a run's partial file (yt-dlp's `.part`, its fragments, its
/// `.ytdl` state), if any.
pub fn remove_partial(partial: Option<&Path>) {
    let Some(p) = partial else {
        return;
    };
    let _ = std::fs::remove_file(p);
    let (Some(dir), Some(name)) = (p.parent(), p.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let stem = name.strip_suffix(".part").unwrap_or(name);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            if n.starts_with(stem)
                && (n.contains(".part-Frag") || n.ends_with(".ytdl") || n.ends_with(".part"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A spawned child that leads its own process group.
pub struct Group {
    child: Option<Child>,
    pid: u32,
    reaped: bool,
    partial: Option<PathBuf>,
}

impl Group {
    /// Spawns `cmd` (made with [`command`]).
    pub fn spawn(cmd: &mut Command) -> io::Result<Group> {
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .filter(|p| *p > 0)
            .ok_or_else(|| io::Error::other("the child has no process id right after spawning"))?;
        Ok(Group {
            child: Some(child),
            pid,
            reaped: false,
            partial: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child, to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("a group has its child until dropped")
    }

    /// The partial file to remove if the run is abandoned.
    pub fn set_partial(&mut self, path: PathBuf) {
        self.partial = Some(path);
    }

    /// Waits for the leader to exit, and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child().wait().await;
        self.reaped = true;
        status
    }

    /// Is the leader still running? (Reaps it if it is not.)
    pub fn alive(&mut self) -> bool {
        match self.child().try_wait() {
            Ok(None) => true,
            _ => {
                self.reaped = true;
                false
            }
        }
    }

    /// Stops the group: SIGTERM, up to `grace` for the leader to exit,
    /// SIGKILL to whatever is left of the group, then reaps the leader.
    pub async fn stop(&mut self, grace: Duration) {
        if self.reaped {
            return;
        }
        signal_group(self.pid, libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until && !exited_unreaped(self.pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The leader is unreaped (running or a zombie): the group id is
        // still ours.
        signal_group(self.pid, libc::SIGKILL);
        let _ = self.wait().await;
    }

    /// Kills the group at once (SIGKILL), if the leader is not reaped.
    pub fn kill_now(&mut self) {
        if !self.reaped {
            signal_group(self.pid, libc::SIGKILL);
        }
    }
}

impl Drop for Group {
    /// Abandoned before the end (a cancelled download): the group is killed
    /// at once and the partial file removed before the drop returns, so a
    /// caller that waits for the cancellation finds both gone. (A graceful
    /// stop is [`Group::stop`], for the deadline and a worker's
    /// replacement.) The leader stays unreaped until the child's
    /// kill-on-drop reaps it, so the group id is still ours when signalled.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        self.kill_now();
        remove_partial(self.partial.as_deref());
    }
}

/// Reads a line of at most `max` bytes (the rest of a longer line is
/// skipped), without its newline. `None` at the end of the stream.
pub async fn read_line_bounded<R>(r: &mut R, max: usize) -> io::Result<Option<String>>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut line: Vec<u8> = Vec::new();
    let mut any = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(any.then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_cut_and_the_rest_skipped() {
        let data = format!("short\n{}\nlast", "x".repeat(100));
        let mut r = tokio::io::BufReader::with_capacity(16, data.as_bytes());
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            "short"
        );
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            "x".repeat(10)
        );
        assert_eq!(
            read_line_bounded(&mut r, 10).await.unwrap().unwrap(),
            "last"
        );
        assert_eq!(read_line_bounded(&mut r, 10).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_stopped_group_loses_its_children_too() {
        // A shell in its own group that starts a grandchild which ignores
        // SIGTERM: stop() must still end both.
        let mut cmd = command("sh");
        cmd.args(["-c", "trap '' TERM; sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped());
        let mut g = Group::spawn(&mut cmd).unwrap();
        let mut out = tokio::io::BufReader::new(g.child().stdout.take().unwrap());
        let grandchild: i32 = read_line_bounded(&mut out, 32)
            .await
            .unwrap()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        g.stop(Duration::from_millis(100)).await;
        // The grandchild is gone (or a zombie about to be reaped by init).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            let stat = std::fs::read_to_string(format!("/proc/{grandchild}/stat"));
            stat.map_or(true, |s| s.split_whitespace().nth(2) == Some("Z"))
        });
        assert!(gone, "grandchild {grandchild} survived");
    }
}
