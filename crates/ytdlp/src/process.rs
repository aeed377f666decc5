//! The process runner: one yt-dlp process per attempt. The argv (never a
//! shell), progress and the final path read from stdout, the failure read
//! from stderr, and an overall deadline that kills the whole process group.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use ytdlp_contract::{FailureKind, ProxyUrl};

use crate::args;
use crate::classify::{self, failure_message};
use crate::run::{BoxFuture, Progress, RunOutcome, RunSpec, Runner, deadline_message};
use crate::spawn::{self, GroupGuard, kill_group};

const PROGRESS_PREFIX: &str = "[progress] ";
const FINAL_PREFIX: &str = "[final] ";
/// Keep at most this much of stderr (the end matters).
const STDERR_KEEP: usize = 64 * 1024;

/// One yt-dlp process per attempt; any yt-dlp, the standalone binary too.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRunner;

impl Runner for ProcessRunner {
    fn name(&self) -> &'static str {
        "process"
    }

    fn run<'a>(
        &'a self,
        spec: &'a RunSpec,
        on_progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> BoxFuture<'a, RunOutcome> {
        Box::pin(run(spec, on_progress))
    }
}

/// The argv after the program name: the host's options, the output markers
/// this runner reads, the user's options, then the URL after `--` so that
/// no URL is ever read as an option.
pub fn argv(spec: &RunSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = args::host_options(spec)
        .into_iter()
        .map(OsString::from)
        .collect();
    let mut push = |s: &str| a.push(s.into());
    push("--newline");
    push("--quiet");
    push("--progress");
    push("--progress-template");
    push(&format!(
        "download:{PROGRESS_PREFIX}%(progress.{{status,downloaded_bytes,total_bytes,total_bytes_estimate,speed,eta,filename,tmpfilename}})j"
    ));
    push("--print");
    push(&format!("after_move:{FINAL_PREFIX}%(filepath)s"));
    for x in &spec.extra_args {
        push(x);
    }
    push("--");
    push(&spec.url);
    a
}

/// Runs yt-dlp once, calling `on_progress` for each progress line.
pub async fn run(spec: &RunSpec, on_progress: &mut (dyn FnMut(Progress) + Send)) -> RunOutcome {
    let started = Instant::now();
    let mut cmd = spawn::command(&spec.program);
    cmd.args(argv(spec))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunOutcome::failed(
                FailureKind::Host,
                format!("cannot run yt-dlp at {}: {e}", spec.program.display()),
                started.elapsed(),
            );
        }
    };
    let pid = child.id();
    // Until the run ends normally, dropping this (a cancelled download)
    // kills the whole group and removes the partial file.
    let mut guard = GroupGuard {
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
            return RunOutcome::failed(
                FailureKind::Unknown,
                deadline_message(spec.deadline),
                started.elapsed(),
            );
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
        let mut message = failure_message(classify::error_line(&stderr));
        if message.is_empty() {
            message = match exit_code {
                Some(c) => format!("yt-dlp exited with code {c} and printed no error"),
                None => "yt-dlp was killed by a signal".to_string(),
            };
        }
        Some((kind, message))
    };
    RunOutcome {
        exit_code,
        duration: started.elapsed(),
        file: if success { file } else { None },
        failure,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ytdlp_contract::proxy_url;

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
