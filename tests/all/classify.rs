//! The failure classifier with the real yt-dlp, both runners: real sites'
//! failures (a geo restriction, a 429 with Retry-After, refused HLS
//! fragments) from a local site and the fixture extractor plugin
//! (crates/ytdlp/fixtures/site/plugin), the proxy's own answers (a tunnel's
//! 407, privoxy's error page), and a direct run's refused connection. Both
//! runners give the same kind, and the detail each can see.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ytdlp_contract::{Failure, FailureKind, Phase};
use ytdlp_host_config::WorkerConfig;
use ytdlp_host_ytdlp::worker::{PoolOptions, WorkerPool, find_python};
use ytdlp_host_ytdlp::{ProcessRunner, RunSpec, Runner};

use crate::common::harness;
use harness::{free_port, tinyproxy, wait_port};

/// The folder holding the plugin package (`plugin/yt_dlp_plugins/...`).
fn plugin_dirs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ytdlp/fixtures/site")
}

/// The fixture site's answers (fixtures/site/site.py's, the few used here).
struct Site {
    port: u16,
    server: Arc<harness::tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Site {
    fn start() -> Site {
        use harness::tiny_http::{Header, Response};
        let server = Arc::new(harness::tiny_http::Server::http("127.0.0.1:0").expect("site"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let h = |k: &str, v: &str| Header::from_bytes(k, v).expect("header");
                let path = req.url().split('?').next().unwrap_or("").to_string();
                let resp = if path.starts_with("/api/geo/") {
                    Response::from_string(
                        r#"{"error": {"type": "geo", "message": "The uploader has not made this video available in your country", "countries": ["DE", "FR"]}}"#,
                    )
                    .with_header(h("Content-Type", "application/json"))
                } else if path == "/status/429" {
                    Response::from_string("slow down")
                        .with_status_code(429)
                        .with_header(h("Retry-After", "30"))
                } else if path == "/hls/index.m3u8" {
                    Response::from_string(
                        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:2.0,\nseg0.ts\n#EXTINF:2.0,\nseg1.ts\n#EXT-X-ENDLIST\n",
                    )
                    .with_header(h("Content-Type", "application/vnd.apple.mpegurl"))
                } else if path.starts_with("/hls/") {
                    Response::from_string("Forbidden").with_status_code(403)
                } else {
                    Response::from_string("not found").with_status_code(404)
                };
                let _ = req.respond(resp);
            }
        });
        Site {
            port,
            server,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A real privoxy on a free loopback port (stopped by its own handle).
struct Privoxy {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Privoxy {
    fn start() -> Privoxy {
        let exe = harness::find("privoxy")
            .or_else(|| Some(PathBuf::from("/usr/sbin/privoxy")).filter(|p| p.is_file()))
            .expect("privoxy");
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("config");
        std::fs::write(
            &conf,
            format!(
                "listen-address 127.0.0.1:{port}\nconfdir /etc/privoxy\ntempldir /etc/privoxy/templates\nlogdir {}\ntoggle 0\nenable-remote-toggle 0\nenable-edit-actions 0\n",
                dir.path().display()
            ),
        )
        .expect("privoxy config");
        let child = Command::new(exe)
            .arg("--no-daemon")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("privoxy starts");
        wait_port(port, "privoxy");
        Privoxy {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Privoxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A failure to provoke, and what both runners should make of it.
#[derive(Clone)]
struct Case {
    name: &'static str,
    proxy: Option<String>,
    url: String,
    kind: FailureKind,
    status: Option<u16>,
    phase: Phase,
    from_proxy: bool,
}

fn spec(url: &str, proxy: Option<&str>, out: &Path) -> RunSpec {
    RunSpec {
        program: harness::require("yt-dlp"),
        url: url.to_string(),
        proxy: proxy.map(|p| ytdlp_contract::proxy_url::validate(p).expect("proxy URL")),
        socket_timeout_secs: 5,
        output: Some(out.join("%(id)s.%(ext)s").to_string_lossy().into_owned()),
        extra_args: Vec::new(),
        deadline: Duration::from_secs(120),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs yt-dlp, tinyproxy and privoxy (bash .ci/run installs them)"]
async fn both_runners_classify_real_failures_alike_and_fill_the_detail() {
    use FailureKind::*;
    let site = Site::start();
    let open = tinyproxy(None);
    let auth = tinyproxy(Some(("alice", "s3cr3t")));
    let privoxy = Privoxy::start();
    let down = free_port();
    // The worker's Python finds the plugin on its sys.path; the process
    // runner's yt-dlp with --plugin-dirs.
    let mut python = find_python(&harness::require("yt-dlp"), None).expect("yt-dlp's Python");
    assert!(python.sys_path.is_none(), "a zipapp yt-dlp: {python:?}");
    python.sys_path = Some(plugin_dirs().join("plugin"));
    let workers: Arc<dyn Runner> = Arc::new(
        WorkerPool::start(PoolOptions::new(python, 2, &WorkerConfig::default()))
            .await
            .expect("a worker pool"),
    );
    let tp = open.url("http");
    let px = format!("http://127.0.0.1:{}", privoxy.port);
    let cases = vec![
        Case {
            name: "geo",
            proxy: Some(tp.clone()),
            url: site.url("/fx/geo/g1"),
            kind: GeoRestricted,
            status: None,
            phase: Phase::Request,
            from_proxy: false,
        },
        Case {
            name: "429",
            proxy: Some(tp.clone()),
            url: site.url("/status/429"),
            kind: Blocked,
            status: Some(429),
            phase: Phase::Request,
            from_proxy: false,
        },
        Case {
            name: "HLS fragments refused",
            proxy: Some(tp.clone()),
            url: site.url("/hls/index.m3u8"),
            kind: Blocked,
            status: Some(403),
            phase: Phase::Transfer,
            from_proxy: false,
        },
        Case {
            name: "tunnel 407",
            proxy: Some(auth.url("http")),
            url: format!("https://127.0.0.1:{down}/clip.mp4"),
            kind: ProxyAuth,
            status: Some(407),
            phase: Phase::Connect,
            from_proxy: true,
        },
        Case {
            name: "privoxy cannot reach the site",
            proxy: Some(px),
            url: format!("http://127.0.0.1:{down}/clip.mp4"),
            kind: Unknown,
            status: Some(503),
            phase: Phase::Connect,
            from_proxy: true,
        },
        Case {
            name: "direct, refused",
            proxy: None,
            url: format!("http://127.0.0.1:{down}/clip.mp4"),
            kind: Unknown,
            status: None,
            phase: Phase::Connect,
            from_proxy: false,
        },
    ];
    let out = tempfile::tempdir().unwrap();
    // Three runs at a time: the machine is small.
    let limit = Arc::new(tokio::sync::Semaphore::new(3));
    let mut set = tokio::task::JoinSet::new();
    for runner in [Arc::new(ProcessRunner) as Arc<dyn Runner>, workers] {
        for case in cases.clone() {
            let (runner, limit) = (runner.clone(), limit.clone());
            let mut s = spec(&case.url, case.proxy.as_deref(), out.path());
            if runner.name() == "process" {
                s.extra_args = vec![
                    "--plugin-dirs".into(),
                    plugin_dirs().to_string_lossy().into_owned(),
                ];
            }
            set.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let o = runner.run(&s, &mut |_| {}).await;
                (runner.name(), case, o.failure)
            });
        }
    }
    let mut wrong = Vec::new();
    while let Some(r) = set.join_next().await {
        let (runner, case, f) = r.unwrap();
        let Case {
            name,
            kind,
            status,
            phase,
            from_proxy,
            ..
        } = case;
        let Some(Failure {
            kind: got,
            message,
            detail: d,
        }) = f
        else {
            wrong.push(format!("{runner}: {name}: succeeded"));
            continue;
        };
        // The process runner sees no status behind skipped fragments
        // (yt-dlp's retry lines go nowhere under --quiet).
        let status = status.filter(|_| !(runner == "process" && name.starts_with("HLS")));
        let got_all = (got, d.http_status, d.phase, d.from_proxy);
        if got_all != (kind, status, Some(phase), from_proxy) {
            wrong.push(format!(
                "{runner}: {name}: {got_all:?}, want {:?}: {message}",
                (kind, status, Some(phase), from_proxy)
            ));
        }
        if name == "geo" && d.countries != ["DE", "FR"] {
            wrong.push(format!("{runner}: geo countries {:?}", d.countries));
        }
        // Retry-After is in the worker's exception only.
        let retry = (name == "429" && runner == "worker").then_some(30_000);
        if d.retry_after_ms != retry {
            wrong.push(format!(
                "{runner}: {name}: retry after {:?}",
                d.retry_after_ms
            ));
        }
        assert!(!message.contains("s3cr3t"), "{message}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
