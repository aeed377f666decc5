//! The process runner: one yt-dlp process per attempt. The argv (never a
//! shell), progress and the final path read from stdout, the failure read
//! from stderr, and an overall deadline that kills the whole process group.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use ytdlp_contract::{FailureDetail, FailureKind};

use crate::args::{self, ProxyVia};
use crate::classify::{self, Context, Verdict, failure_message};
use crate::run::{BoxFuture, Progress, RunOutcome, RunSpec, Runner, deadline_message};
use crate::spawn::{self, Group, STOP_GRACE, read_line_bounded};

/// Keep at most this much of stderr (the end matters).
const STDERR_KEEP: usize = 64 * 1024;
/// Longest stdout line read (a progress line is a few hundred bytes).
const MAX_LINE: usize = 64 * 1024;
/// How long stderr may stay open after yt-dlp exited (a grandchild holding
/// it must not hang the download).
const STDERR_AFTER_EXIT: Duration = Duration::from_secs(2);

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

/// The markers this runner's output template prints before a progress
/// line and the final path. A nonce per run, so nothing the user's own
/// `--print` writes can pass for one (the host deletes the partial file it
/// names on cancel).
struct Markers {
    progress: String,
    final_path: String,
}

impl Markers {
    fn new() -> Markers {
        use std::hash::BuildHasher;
        let nonce = std::hash::RandomState::new().hash_one(Instant::now());
        Markers {
            progress: format!("[progress-{nonce:016x}] "),
            final_path: format!("[final-{nonce:016x}] "),
        }
    }
}

/// The argv after the program name: the host's options (the proxy URL
/// goes on stdin, see [`run`]), the output markers this runner reads, the
/// user's options, then the URL after `--` so that no URL is ever read as
/// an option.
fn argv(spec: &RunSpec, markers: &Markers) -> Vec<OsString> {
    let mut a: Vec<OsString> = args::host_options(spec, ProxyVia::ConfigOnStdin)
        .into_iter()
        .map(OsString::from)
        .collect();
    let mut push = |s: &str| a.push(s.into());
    push("--newline");
    push("--quiet");
    push("--progress");
    push("--progress-template");
    push(&format!(
        "download:{}%(progress.{{status,downloaded_bytes,total_bytes,total_bytes_estimate,speed,eta,filename,tmpfilename}})j",
        markers.progress
    ));
    push("--print");
    push(&format!("after_move:{}%(filepath)s", markers.final_path));
    for x in &spec.extra_args {
        push(x);
    }
    push("--");
    push(&spec.url);
    a
}

/// Runs yt-dlp once, calling `on_progress` for each progress line. The
/// proxy URL (credentials and all) reaches yt-dlp as a config file on its
/// stdin (`--config-locations -`), never in its argv, which any local user
/// can read in `ps`.
pub async fn run(spec: &RunSpec, on_progress: &mut (dyn FnMut(Progress) + Send)) -> RunOutcome {
    let started = Instant::now();
    let markers = Markers::new();
    let mut cmd = spawn::command(&spec.program);
    cmd.args(argv(spec, &markers))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Dropped before the end (a cancelled download), the group is stopped
    // and the partial file removed.
    let mut group = match Group::spawn(&mut cmd) {
        Ok(g) => g,
        Err(e) => {
            return RunOutcome::failed(
                FailureKind::Host,
                format!("cannot run yt-dlp at {}: {e}", spec.program.display()),
                started.elapsed(),
            );
        }
    };
    if let Some(mut stdin) = group.child().stdin.take() {
        let config = args::proxy_config(spec);
        // A failed write shows as yt-dlp's own error.
        let _ = stdin.write_all(config.as_bytes()).await;
        drop(stdin);
    }
    let stdout = group.child().stdout.take().expect("piped stdout");
    let mut stderr = group.child().stderr.take().expect("piped stderr");
    let mut stderr_task = tokio::spawn(async move {
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
    let mut stdout = BufReader::new(stdout);
    let work = async {
        while let Ok(Some(line)) = read_line_bounded(&mut stdout, MAX_LINE).await {
            if let Some(json) = line.strip_prefix(&markers.progress) {
                if let Ok(p) = serde_json::from_str::<Progress>(json) {
                    if let Some(tmp) = &p.tmpfilename {
                        group.set_partial(PathBuf::from(tmp));
                    }
                    on_progress(p);
                }
            } else if let Some(path) = line.strip_prefix(&markers.final_path) {
                file = Some(PathBuf::from(path.trim_end()));
            }
        }
        group.wait().await
    };
    let waited = tokio::time::timeout(spec.deadline, work).await;
    let status = match waited {
        Ok(status) => status.ok(),
        Err(_) => {
            group.stop(STOP_GRACE).await;
            stderr_task.abort();
            // The host's own limit, not the proxy's fault: not retried
            // through other proxies.
            return RunOutcome::failed(
                FailureKind::Host,
                deadline_message(spec.deadline),
                started.elapsed(),
            );
        }
    };
    let stderr = match tokio::time::timeout(STDERR_AFTER_EXIT, &mut stderr_task).await {
        Ok(joined) => joined.unwrap_or_default(),
        Err(_) => {
            stderr_task.abort();
            String::new()
        }
    };
    let exit_code = status.and_then(|s| s.code());
    let success = status.is_some_and(|s| s.success());
    let failure = if success {
        None
    } else {
        let verdict = match (status, exit_code) {
            // Killed by a signal: not yt-dlp's verdict on the proxy.
            (Some(_), None) => Verdict {
                kind: FailureKind::Host,
                detail: FailureDetail::default(),
            },
            // The detail is what stderr shows: the status, the proxy
            // layer, the countries. Never `retry_after_ms`: yt-dlp prints
            // no header there (only `--print-traffic` would, on stdout,
            // with every request's headers and credentials).
            _ => classify::classify(&stderr, exit_code, &Context::of(spec)),
        };
        let mut message = failure_message(&classify::error_block(&stderr));
        if message.is_empty() {
            message = match exit_code {
                Some(c) => format!("yt-dlp exited with code {c} and printed no error"),
                None => "yt-dlp was killed by a signal".to_string(),
            };
        }
        Some(verdict.failure(message))
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

    fn argv_of(s: &RunSpec) -> (Vec<String>, Markers) {
        let m = Markers::new();
        let a = argv(s, &m)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        (a, m)
    }

    #[test]
    fn argv_has_the_wrapper_options_and_the_url_last_after_dashdash() {
        let (a, m) = argv_of(&spec());
        assert_eq!(a[0], "--ignore-config");
        let at = |k: &str| a.iter().position(|x| x == k).unwrap();
        // The proxy is not in the argv (anyone can read that), but in the
        // config yt-dlp reads on its stdin.
        assert_eq!(a[at("--config-locations") + 1], "-");
        assert!(!a.iter().any(|x| x.contains("u:p@")), "{a:?}");
        assert_eq!(
            args::proxy_config(&spec()),
            "--proxy 'http://u:p@127.0.0.1:3128'\n"
        );
        assert_eq!(a[at("--socket-timeout") + 1], "1");
        assert_eq!(a[at("-o") + 1], "%(id)s.%(ext)s");
        assert!(at("--format") < at("--"));
        assert_eq!(&a[a.len() - 2..], ["--", "-not-an-option"]);
        // Each run marks its lines with a nonce of its own.
        assert!(a.iter().any(|x| x.contains(&m.progress)));
        assert_ne!(m.progress, Markers::new().progress);
    }

    /// A stand-in yt-dlp that replays a recorded stderr and fails.
    fn replaying(fixture: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let recorded = format!("{}/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::temp_dir().join(format!("ytdlp-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(fixture.replace('/', "_"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\ncat >/dev/null\ncat '{recorded}' >&2\nexit 1\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn a_failed_run_gets_the_kind_and_detail_its_stderr_shows() {
        let mut s = spec();
        s.proxy = Some(proxy_url::validate("http://127.0.0.1:3128").unwrap());
        s.program = replaying("stderr/site/urllib-geo.txt");
        let f = run(&s, &mut |_| {}).await.failure.unwrap();
        assert_eq!(f.kind, FailureKind::GeoRestricted);
        assert_eq!(f.detail.countries, ["DE", "FR"]);
        // The message is the whole geo message, as the worker's is.
        assert_eq!(
            f.message,
            "ERROR: [fixture] geo2: The uploader has not made this video available in your country This video is available in Germany, France. You might want to use a VPN or a proxy server (with --proxy) to workaround."
        );
        s.program = replaying("stderr/site/requests-api-429.txt");
        let f = run(&s, &mut |_| {}).await.failure.unwrap();
        assert_eq!(
            (f.kind, f.detail.http_status),
            (FailureKind::Blocked, Some(429))
        );
        assert_eq!(f.detail.retry_after_ms, None, "stderr has no headers");
        // The same refused connection, direct and through a proxy.
        s.program = replaying("stderr/site/urllib-direct-refused.txt");
        let f = run(&s, &mut |_| {}).await.failure.unwrap();
        assert_eq!(
            (f.kind, f.detail.from_proxy),
            (FailureKind::ProxyConnect, true)
        );
        s.proxy = None;
        let f = run(&s, &mut |_| {}).await.failure.unwrap();
        assert_eq!((f.kind, f.detail.from_proxy), (FailureKind::Unknown, false));
        let _ = std::fs::remove_dir_all(s.program.parent().unwrap());
    }

    #[test]
    fn direct_runs_pass_an_empty_proxy() {
        let mut s = spec();
        s.proxy = None;
        assert_eq!(args::proxy_config(&s), "--proxy ''\n");
    }
}
