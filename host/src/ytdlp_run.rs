//! One yt-dlp run: the argv (never a shell), the environment, progress and
//! the final path read from stdout, the failure read from stderr, and an
//! overall deadline that kills the whole process group.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

use crate::classify::{self, FailureKind};
use crate::proxy_url::{self, ProxyUrl};

const PROGRESS_PREFIX: &str = "[progress] ";
const FINAL_PREFIX: &str = "[final] ";
/// Keep at most this much of stderr (the end matters).
const STDERR_KEEP: usize = 64 * 1024;

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

/// One progress update, from yt-dlp's progress template.
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
    pub failure: Option<(FailureKind, String)>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// The argv after the program name. The URL comes after `--` so that no
/// URL is ever read as an option.
pub fn argv(spec: &RunSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(s.into());
    push("--ignore-config");
    push("--proxy");
    push(spec.proxy.as_ref().map(ProxyUrl::expose).unwrap_or(""));
    push("--socket-timeout");
    push(&spec.socket_timeout_secs.max(1).to_string());
    push("--newline");
    push("--quiet");
    push("--progress");
    push("--progress-template");
    push(&format!(
        "download:{PROGRESS_PREFIX}%(progress.{{status,downloaded_bytes,total_bytes,total_bytes_estimate,speed,eta,filename,tmpfilename}})j"
    ));
    push("--print");
    push(&format!("after_move:{FINAL_PREFIX}%(filepath)s"));
    if let Some(o) = &spec.output {
        push("-o");
        push(o);
    }
    for x in &spec.extra_args {
        push(x);
    }
    push("--");
    push(&spec.url);
    a
}

/// Runs yt-dlp once, calling `on_progress` for each progress line.
pub async fn run(spec: &RunSpec, mut on_progress: impl FnMut(Progress)) -> RunOutcome {
    let started = Instant::now();
    let mut cmd = Command::new(&spec.program);
    cmd.args(argv(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // With urllib, NO_PROXY covering the target silently bypasses --proxy.
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        // Its own group, so a deadline kills yt-dlp and whatever it started
        // (ffmpeg).
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunOutcome {
                exit_code: None,
                duration: started.elapsed(),
                file: None,
                failure: Some((
                    FailureKind::Host,
                    format!("cannot run yt-dlp at {}: {e}", spec.program.display()),
                )),
            };
        }
    };
    let pid = child.id();
    // Until the run ends normally, dropping this (a cancelled download)
    // kills the whole group and removes the partial file.
    let mut guard = RunGuard {
        pid,
        partial: None,
        armed: true,
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 2 * STDERR_KEEP {
                        buf.drain(..buf.len() - STDERR_KEEP);
                    }
                }
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    });

    let mut file = None;
    let mut lines = BufReader::new(stdout).lines();
    let work = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(json) = line.strip_prefix(PROGRESS_PREFIX) {
                if let Ok(p) = serde_json::from_str::<Progress>(json) {
                    if let Some(tmp) = &p.tmpfilename {
                        guard.partial = Some(PathBuf::from(tmp));
                    }
                    on_progress(p);
                }
            } else if let Some(path) = line.strip_prefix(FINAL_PREFIX) {
                file = Some(PathBuf::from(path.trim_end()));
            }
        }
        child.wait().await
    };
    let waited = tokio::time::timeout(spec.deadline, work).await;
    guard.armed = false;
    let status = match waited {
        Ok(status) => status.ok(),
        Err(_) => {
            kill_group(pid);
            let _ = stderr_task.await;
            return RunOutcome {
                exit_code: None,
                duration: started.elapsed(),
                file: None,
                failure: Some((
                    FailureKind::Unknown,
                    format!(
                        "yt-dlp ran longer than {} s and was killed",
                        spec.deadline.as_secs()
                    ),
                )),
            };
        }
    };
    let stderr = stderr_task.await.unwrap_or_default();
    let exit_code = status.and_then(|s| s.code());
    let success = status.is_some_and(|s| s.success());
    let failure = if success {
        None
    } else {
        let has_creds = spec.proxy.as_ref().is_some_and(ProxyUrl::has_credentials);
        let kind = match (status, exit_code) {
            // Killed by a signal: not yt-dlp's verdict on the proxy.
            (Some(_), None) => FailureKind::Host,
            _ => classify::classify(&stderr, exit_code, has_creds),
        };
        // yt-dlp's "please report this issue" boilerplate says nothing here.
        let mut line = classify::error_line(&stderr)
            .split("; please report this issue")
            .next()
            .unwrap_or_default()
            .to_string();
        if line.is_empty() {
            line = match exit_code {
                Some(c) => format!("yt-dlp exited with code {c} and printed no error"),
                None => "yt-dlp was killed by a signal".to_string(),
            };
        }
        let line = crate::backend::cap(&line.replace('\r', " "), 500);
        Some((kind, proxy_url::mask(&line)))
    };
    RunOutcome {
        exit_code,
        duration: started.elapsed(),
        file: if success { file } else { None },
        failure,
    }
}

/// Kills a run's process group (and removes its partial file) when a run is
/// abandoned: its future dropped before the end.
struct RunGuard {
    pid: Option<u32>,
    partial: Option<PathBuf>,
    armed: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.pid);
            if let Some(p) = &self.partial {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// SIGKILL to the whole process group of `pid`.
pub fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: killpg only sends a signal; the group is the child's own
        // (process_group(0) at spawn), so nothing else is hit.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            program: "yt-dlp".into(),
            url: "-not-an-option".into(),
            proxy: Some(proxy_url::validate("http://u:p@127.0.0.1:3128").unwrap()),
            socket_timeout_secs: 0,
            output: Some("%(id)s.%(ext)s".into()),
            extra_args: vec!["--format".into(), "best".into()],
            deadline: Duration::from_secs(5),
        }
    }

    #[test]
    fn argv_has_the_wrapper_options_and_the_url_last_after_dashdash() {
        let a: Vec<String> = argv(&spec())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        assert_eq!(a[0], "--ignore-config");
        let at = |k: &str| a.iter().position(|x| x == k).unwrap();
        assert_eq!(a[at("--proxy") + 1], "http://u:p@127.0.0.1:3128");
        assert_eq!(a[at("--socket-timeout") + 1], "1");
        assert_eq!(a[at("-o") + 1], "%(id)s.%(ext)s");
        assert!(at("--format") < at("--"));
        assert_eq!(&a[a.len() - 2..], ["--", "-not-an-option"]);
    }

    #[test]
    fn direct_runs_pass_an_empty_proxy() {
        let mut s = spec();
        s.proxy = None;
        let a = argv(&s);
        let i = a.iter().position(|x| x == "--proxy").unwrap();
        assert_eq!(a[i + 1], "");
    }
}
