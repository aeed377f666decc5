//! The two runners, `process` (one yt-dlp per attempt) and `worker` (warm
//! Python workers driving yt-dlp's embedding API), with the real yt-dlp
//! through real tinyproxy and microsocks: the download scenarios pass with
//! both, the fault matrix gives the same kinds with both, and the worker
//! runner's isolation (a worker killed mid-download, a job past its
//! deadline, a cancelled job, the memory bound, recycling) never loses an
//! outcome.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ytdlp_contract::FailureKind;
use ytdlp_host_config::WorkerConfig;
use ytdlp_host_ytdlp::worker::{self as ytdlp_worker, PoolOptions, WorkerPool};
use ytdlp_host_ytdlp::{ProcessRunner, Progress, RunOutcome, RunSpec, Runner};

use crate::common::{Env, Run, attempts, harness};
use harness::{BlackHole, MediaServer, free_port, microsocks, proxied_requests, tinyproxy};

const RUNNERS: [&str; 2] = ["process", "worker"];

fn yt_dlp() -> PathBuf {
    harness::require("yt-dlp")
}

fn assert_clip(path: &Path) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got, harness::CLIP, "downloaded bytes differ from the clip");
}

/// `ytdlp-host download --json -o OUT/... --runner RUNNER ARGS...`
fn download(env: &Env, runner: &str, args: &[&str]) -> Run {
    let mut all = vec!["--runner", runner];
    all.extend(args);
    env.download(&all)
}

async fn pool(size: usize, cfg: WorkerConfig) -> WorkerPool {
    let python = ytdlp_worker::find_python(&yt_dlp(), None).expect("the Python of yt-dlp");
    WorkerPool::start(PoolOptions::new(python, size, &cfg))
        .await
        .expect("a worker pool")
}

fn spec(url: &str, proxy: Option<&str>, out: &Path) -> RunSpec {
    RunSpec {
        program: yt_dlp(),
        url: url.to_string(),
        proxy: proxy.map(|p| ytdlp_contract::proxy_url::validate(p).expect("proxy URL")),
        socket_timeout_secs: 10,
        output: Some(out.join("%(id)s.%(ext)s").to_string_lossy().into_owned()),
        extra_args: Vec::new(),
        deadline: Duration::from_secs(120),
    }
}

fn failure(o: &RunOutcome) -> (FailureKind, String) {
    o.failure
        .clone()
        .unwrap_or_else(|| panic!("expected a failure, got {o:?}"))
}

/// Is `pid` gone (reaped, or a zombie waiting for it)?
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A media URL that never finishes: video/mp4 with a large Content-Length,
/// 16 KiB every 50 ms. The writer threads end when the client goes away.
struct Trickle {
    port: u16,
    server: Arc<harness::tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct TrickleBody {
    left: usize,
    stop: Arc<AtomicBool>,
}

impl Read for TrickleBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || self.stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(50));
        let n = buf.len().min(16 * 1024).min(self.left);
        buf[..n].fill(0);
        self.left -= n;
        Ok(n)
    }
}

impl Trickle {
    fn start() -> Trickle {
        use harness::tiny_http;
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("trickle server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let s = server.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let len = 50 << 20;
                    let header =
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"video/mp4"[..])
                            .expect("header");
                    let body = TrickleBody { left: len, stop };
                    let resp =
                        tiny_http::Response::new(200.into(), vec![header], body, Some(len), None);
                    let _ = req.respond(resp);
                });
            }
        });
        Trickle {
            port,
            server,
            stop: stopped,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/slow.mp4", self.port)
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts `spec` on `pool` in a task; returns it with the first progress
/// update that shows bytes (the download is under way).
async fn start_slow_job(
    pool: &Arc<WorkerPool>,
    spec: RunSpec,
) -> (tokio::task::JoinHandle<RunOutcome>, Progress) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let p = pool.clone();
    let job = tokio::spawn(async move { p.run(&spec, move |u| drop(tx.send(u))).await });
    let first = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(u) = rx.recv().await {
            if u.downloaded_bytes.unwrap_or_default() > 0.0 {
                return u;
            }
        }
        panic!("the job ended without progress")
    })
    .await
    .expect("progress within 60 s");
    (job, first)
}

// ---------------------------------------------------------------------------
// The download scenarios, with both runners

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn downloads_through_tinyproxy_with_both_runners() {
    let media = MediaServer::start();
    for runner in RUNNERS {
        let proxy = tinyproxy(None);
        let env = Env::new();
        let run = download(
            &env,
            runner,
            &["--proxy", &proxy.url("http"), &media.url("/clip.mp4")],
        );
        assert!(run.ok(), "{runner}: {}", run.dump());
        let results = run.json_lines();
        assert_eq!(results.len(), 1, "{runner}");
        assert_eq!(results[0]["status"], "done", "{runner}");
        assert_clip(Path::new(results[0]["file"].as_str().unwrap()));
        assert_eq!(
            attempts(&results[0]),
            [(proxy.url("http"), None)],
            "{runner}"
        );
        assert!(
            proxied_requests(&proxy.log(), &format!("127.0.0.1:{}/clip.mp4", media.port)) >= 1,
            "{runner}: tinyproxy saw no request:\n{}",
            proxy.log()
        );
    }
}

#[test]
#[ignore = "needs yt-dlp and microsocks (bash .ci/run installs them)"]
fn downloads_through_microsocks_with_both_runners() {
    let media = MediaServer::start();
    for runner in RUNNERS {
        let proxy = microsocks(None);
        let env = Env::new();
        let run = download(
            &env,
            runner,
            &["--proxy", &proxy.url("socks5"), &media.url("/clip.mp4")],
        );
        assert!(run.ok(), "{runner}: {}", run.dump());
        let results = run.json_lines();
        assert_eq!(results[0]["status"], "done", "{runner}");
        assert_clip(Path::new(results[0]["file"].as_str().unwrap()));
        assert!(
            proxy.log().contains("client"),
            "{runner}: microsocks logged no client:\n{}",
            proxy.log()
        );
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_dead_proxy_is_retried_elsewhere_with_both_runners() {
    let media = MediaServer::start();
    let good = tinyproxy(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    for runner in RUNNERS {
        let env = Env::new();
        let run = download(
            &env,
            runner,
            &[
                "--proxy",
                &dead,
                "--proxy",
                &good.url("http"),
                &media.url("/clip.mp4"),
            ],
        );
        assert!(run.ok(), "{runner}: {}", run.dump());
        let r = &run.json_lines()[0];
        assert_eq!(r["status"], "done", "{runner}: {r}");
        assert_eq!(
            attempts(r),
            [
                (dead.clone(), Some("proxy-connect".to_string())),
                (good.url("http"), None)
            ],
            "{runner}"
        );
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn not_found_is_not_blamed_on_the_proxy_with_both_runners() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    for runner in RUNNERS {
        let env = Env::new();
        // Threshold 1: one failure counted against the proxy would disable it.
        let config = env.write_config("[plugins.memory.options]\nfailure_threshold = 1\n");
        let run = download(
            &env,
            runner,
            &[
                "--config",
                config.to_str().unwrap(),
                "--proxy",
                &proxy.url("http"),
                &media.url("/missing.mp4"),
                &media.url("/clip.mp4"),
            ],
        );
        assert!(
            !run.ok(),
            "{runner}: a failed URL must fail the run: {}",
            run.dump()
        );
        let results = run.json_lines();
        let missing = results
            .iter()
            .find(|r| r["url"].as_str().unwrap().ends_with("/missing.mp4"))
            .unwrap();
        let clip = results
            .iter()
            .find(|r| r["url"].as_str().unwrap().ends_with("/clip.mp4"))
            .unwrap();
        assert_eq!(missing["status"], "failed", "{runner}");
        assert_eq!(missing["kind"], "content", "{runner}");
        assert_eq!(
            attempts(missing).len(),
            1,
            "{runner}: content errors are not retried"
        );
        assert_eq!(clip["status"], "done", "{runner}: {}", run.dump());
        assert_eq!(attempts(clip), [(proxy.url("http"), None)], "{runner}");
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn simulate_writes_no_file_with_both_runners() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    for runner in RUNNERS {
        let env = Env::new();
        let run = download(
            &env,
            runner,
            &[
                "--proxy",
                &proxy.url("http"),
                &media.url("/clip.mp4"),
                "--",
                "--simulate",
                "-f",
                "best",
            ],
        );
        assert!(run.ok(), "{runner}: {}", run.dump());
        assert!(!env.out_dir().join("clip.mp4").exists(), "{runner}");
    }
}

/// A fresh `YoutubeDL` per job: a cookie the site set during one job is not
/// sent in the next one on the same worker.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn no_cookie_carries_over_from_one_job_to_the_next() {
    use harness::tiny_http;
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("server"));
    let port = server.server_addr().to_ip().expect("ip").port();
    let cookies = Arc::new(std::sync::Mutex::new(Vec::<(String, Option<String>)>::new()));
    let (s, seen) = (server.clone(), cookies.clone());
    let thread = std::thread::spawn(move || {
        for req in s.incoming_requests() {
            let cookie = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Cookie"))
                .map(|h| h.value.to_string());
            let url = req.url().to_string();
            seen.lock().unwrap().push((url.clone(), cookie));
            // Each job's cookie names its URL's job.
            let job = url.trim_start_matches("/c/").trim_end_matches(".mp4");
            let h = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).expect("header");
            let resp = tiny_http::Response::from_data(harness::CLIP.to_vec())
                .with_header(h("Content-Type", "video/mp4"))
                .with_header(h("Set-Cookie", &format!("session=job-{job}; Path=/")));
            let _ = req.respond(resp);
        }
    });
    let pool = pool(1, WorkerConfig::default()).await;
    let out = tempfile::tempdir().unwrap();
    for n in 1..=2 {
        let url = format!("http://127.0.0.1:{port}/c/{n}.mp4");
        let o = pool.run(&spec(&url, None, out.path()), |_| {}).await;
        assert!(o.succeeded(), "{o:?}");
    }
    assert_eq!(pool.spawned(), 1, "both jobs ran on the same worker");
    server.unblock();
    thread.join().unwrap();
    let seen = cookies.lock().unwrap().clone();
    assert!(seen.iter().any(|(u, _)| u == "/c/2.mp4"), "{seen:?}");
    // Within a job the cookie is sent back (so its absence below means
    // something).
    assert!(
        seen.iter()
            .any(|(u, c)| u.starts_with("/c/1") && c.as_deref() == Some("session=job-1")),
        "{seen:?}"
    );
    for (url, cookie) in &seen {
        if url.starts_with("/c/2") {
            assert_ne!(
                cookie.as_deref(),
                Some("session=job-1"),
                "job 2 sent job 1's cookie: {seen:?}"
            );
        }
    }
    assert_eq!(
        seen.iter().find(|(u, _)| u.starts_with("/c/2")).unwrap().1,
        None
    );
}

/// Same progress shape and the same final path from both runners.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
async fn both_runners_report_progress_and_the_final_path_alike() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let workers: Arc<dyn Runner> = Arc::new(pool(1, WorkerConfig::default()).await);
    for runner in [Arc::new(ProcessRunner) as Arc<dyn Runner>, workers] {
        let out = tempfile::tempdir().unwrap();
        let mut updates: Vec<Progress> = Vec::new();
        let s = spec(
            &media.url("/clip.mp4"),
            Some(&proxy.url("http")),
            out.path(),
        );
        let o = runner.run(&s, &mut |p| updates.push(p)).await;
        assert!(o.succeeded(), "{}: {o:?}", runner.name());
        let file = o.file.clone().expect("final path");
        assert_eq!(file, out.path().join("clip.mp4"), "{}", runner.name());
        assert_clip(&file);
        let last = updates
            .last()
            .unwrap_or_else(|| panic!("{}: no progress", runner.name()));
        assert_eq!(
            last.status.as_deref(),
            Some("finished"),
            "{}: {last:?}",
            runner.name()
        );
        assert_eq!(
            last.downloaded_bytes,
            Some(harness::CLIP.len() as f64),
            "{}",
            runner.name()
        );
        assert_eq!(
            last.total_bytes,
            Some(harness::CLIP.len() as f64),
            "{}",
            runner.name()
        );
    }
}

// ---------------------------------------------------------------------------
// The fault matrix, with both runners

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs yt-dlp, tinyproxy and microsocks (bash .ci/run installs them)"]
async fn the_fault_matrix_gives_the_same_kinds_with_both_runners() {
    use FailureKind::*;
    let media = MediaServer::start();
    let open = tinyproxy(None);
    let auth = tinyproxy(Some(("alice", "s3cr3t")));
    let socks_auth = microsocks(Some(("alice", "s3cr3t")));
    let hole = BlackHole::start();
    let (dead, down) = (free_port(), free_port());
    let clip = media.url("/clip.mp4");
    let cases: Vec<(&str, String, String, FailureKind)> = vec![
        (
            "dead proxy port",
            format!("http://127.0.0.1:{dead}"),
            clip.clone(),
            ProxyConnect,
        ),
        ("black-hole proxy", hole.url(), clip.clone(), ProxyTimeout),
        ("407", auth.url("http"), clip.clone(), ProxyAuth),
        (
            "wrong password on tinyproxy",
            format!("http://alice:wr0ng@127.0.0.1:{}", auth.port),
            clip.clone(),
            ProxyAuth,
        ),
        (
            "SOCKS auth refused",
            socks_auth.url("socks5"),
            clip.clone(),
            ProxyAuth,
        ),
        (
            "SOCKS wrong password",
            format!("socks5://alice:wr0ng@127.0.0.1:{}", socks_auth.port),
            clip.clone(),
            ProxyAuth,
        ),
        ("404", open.url("http"), media.url("/missing.mp4"), Content),
        ("429", open.url("http"), media.url("/status/429"), Blocked),
        ("403", open.url("http"), media.url("/status/403"), Blocked),
        (
            "unsupported URL",
            open.url("http"),
            media.url("/page"),
            Content,
        ),
        (
            "target down behind tinyproxy",
            open.url("http"),
            format!("http://127.0.0.1:{down}/clip.mp4"),
            Unknown,
        ),
    ];
    let workers: Arc<dyn Runner> = Arc::new(pool(4, WorkerConfig::default()).await);
    let out = tempfile::tempdir().unwrap();
    // Four runs at a time: the machine is small.
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut set = tokio::task::JoinSet::new();
    for runner in [Arc::new(ProcessRunner) as Arc<dyn Runner>, workers] {
        for (name, proxy, url, want) in cases.clone() {
            let (runner, limit) = (runner.clone(), limit.clone());
            let mut s = spec(&url, Some(&proxy), out.path());
            if name == "black-hole proxy" {
                s.socket_timeout_secs = 1;
            }
            set.spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let o = runner.run(&s, &mut |_| {}).await;
                (runner.name(), name, want, o)
            });
        }
    }
    let mut wrong = Vec::new();
    let mut seen = 0;
    while let Some(r) = set.join_next().await {
        let (runner, name, want, o) = r.unwrap();
        seen += 1;
        let (kind, message) = failure(&o);
        if kind != want {
            wrong.push(format!("{runner}: {name}: {kind} (want {want}): {message}"));
        }
        assert!(
            !message.contains("s3cr3t") && !message.contains("wr0ng"),
            "{message}"
        );
    }
    assert_eq!(seen, 2 * cases.len());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

// ---------------------------------------------------------------------------
// Worker isolation

/// kill -9 of a worker mid-download through the binary: the URL still gets
/// its outcome (a `host` failure that names the signal), not a hang.
#[test]
fn a_worker_killed_mid_download_gives_a_host_failure() {
    let slow = Trickle::start();
    let env = Env::new();
    let mut c = env.cmd();
    c.args(["download", "--json", "--runner", "worker", "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .arg(slow.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().expect("run ytdlp-host");
    let host_pid = child.id();
    // The worker is the host's child running the worker script; the .part
    // file shows the download is under way.
    let mut worker = None;
    wait_until("the worker is downloading", Duration::from_secs(60), || {
        worker = children_of(host_pid)
            .into_iter()
            .find(|&p| cmdline(p).contains("ytdlp_worker"));
        worker.is_some() && part_files(&env.out_dir()) > 0
    });
    let worker = worker.unwrap();
    // SAFETY: signals a process this test's child started.
    unsafe { libc::kill(worker as libc::pid_t, libc::SIGKILL) };
    let run = Run {
        output: child.wait_with_output().expect("ytdlp-host ends"),
    };
    assert!(!run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["kind"], "host", "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("signal 9"), "{error}");
    assert_eq!(attempts(r).len(), 1, "a host failure is not retried: {r}");
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|pp| pp.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn part_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
                .count()
        })
        .unwrap_or(0)
}

/// The pool replaces a killed worker: the next job runs on a new one.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn a_killed_worker_is_replaced_and_the_next_job_runs() {
    let slow = Trickle::start();
    let media = MediaServer::start();
    let pool = Arc::new(pool(1, WorkerConfig::default()).await);
    let out = tempfile::tempdir().unwrap();
    let (job, _) = start_slow_job(&pool, spec(&slow.url(), None, out.path())).await;
    let busy = pool.busy_pids();
    assert_eq!(busy.len(), 1);
    // SAFETY: signals a worker this test's pool started.
    unsafe { libc::kill(busy[0] as libc::pid_t, libc::SIGKILL) };
    let o = tokio::time::timeout(Duration::from_secs(30), job)
        .await
        .expect("an outcome")
        .unwrap();
    let (kind, message) = failure(&o);
    assert_eq!(kind, FailureKind::Host, "{message}");
    assert!(message.contains("signal 9"), "{message}");
    let o = pool
        .run(&spec(&media.url("/clip.mp4"), None, out.path()), |_| {})
        .await;
    assert!(o.succeeded(), "{o:?}");
    assert_clip(&o.file.unwrap());
    assert!(!pool.idle_pids().contains(&busy[0]));
    assert_eq!(pool.spawned(), 2);
}

/// Past its deadline a job is killed with the process runner's kind and
/// words; the worker is replaced.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn a_job_past_its_deadline_is_killed_with_both_runners() {
    let slow = Trickle::start();
    let media = MediaServer::start();
    let pool = Arc::new(pool(1, WorkerConfig::default()).await);
    let out = tempfile::tempdir().unwrap();
    let mut s = spec(&slow.url(), None, out.path());
    s.deadline = Duration::from_secs(3);
    let o = ProcessRunner.run(&s, &mut |_| {}).await;
    let (process_kind, process_message) = failure(&o);

    let first = pool.idle_pids();
    let started = Instant::now();
    let o = pool.run(&s, |_| {}).await;
    let (kind, message) = failure(&o);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The host's own limit: `host`, not retried through other proxies.
    assert_eq!(kind, FailureKind::Host, "{message}");
    assert_eq!(
        (kind, message.as_str()),
        (process_kind, process_message.as_str())
    );
    assert!(message.contains("longer than 3 s"), "{message}");
    wait_until("the late worker is gone", Duration::from_secs(10), || {
        first.iter().all(|&p| gone(p))
    });
    let o = pool
        .run(&spec(&media.url("/clip.mp4"), None, out.path()), |_| {})
        .await;
    assert!(o.succeeded(), "{o:?}");
}

/// Dropping a job's future kills its worker and removes the partial file.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn cancelling_a_job_kills_its_worker() {
    let slow = Trickle::start();
    let pool = Arc::new(pool(1, WorkerConfig::default()).await);
    let out = tempfile::tempdir().unwrap();
    let (job, progress) = start_slow_job(&pool, spec(&slow.url(), None, out.path())).await;
    let pid = pool.busy_pids()[0];
    assert!(progress.tmpfilename.is_some(), "{progress:?}");
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());
    wait_until(
        "the cancelled job's worker is gone",
        Duration::from_secs(10),
        || gone(pid),
    );
    wait_until(
        "the partial file is removed",
        Duration::from_secs(10),
        || part_files(out.path()) == 0,
    );
    assert!(pool.busy_pids().is_empty());
}

/// A worker beyond the memory bound is replaced; the job gets a host
/// failure that says so.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn a_worker_beyond_the_memory_bound_is_replaced() {
    let media = MediaServer::start();
    let cfg = WorkerConfig {
        max_rss_mib: std::num::NonZeroU64::new(1),
        ..WorkerConfig::default()
    };
    let pool = pool(1, cfg).await;
    let first = pool.idle_pids();
    let out = tempfile::tempdir().unwrap();
    let o = pool
        .run(&spec(&media.url("/clip.mp4"), None, out.path()), |_| {})
        .await;
    let (kind, message) = failure(&o);
    assert_eq!(kind, FailureKind::Host, "{message}");
    assert!(message.contains("grew beyond 1 MiB"), "{message}");
    wait_until("the big worker is gone", Duration::from_secs(10), || {
        first.iter().all(|&p| gone(p))
    });
    assert_eq!(pool.spawned(), 2, "a replacement was started");
}

/// After `max_jobs` jobs a worker is replaced.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
async fn workers_are_recycled_after_max_jobs() {
    let media = MediaServer::start();
    let cfg = WorkerConfig {
        max_jobs: std::num::NonZeroU32::new(2),
        ..WorkerConfig::default()
    };
    let pool = pool(1, cfg).await;
    let out = tempfile::tempdir().unwrap();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let o = pool
            .run(&spec(&media.url("/clip.mp4"), None, out.path()), |_| {})
            .await;
        assert!(o.succeeded(), "{o:?}");
        pids.push(pool.idle_pids());
    }
    assert_eq!(pids[0].len(), 1);
    assert_ne!(pids[0], pids[1], "recycled after 2 jobs");
    assert_eq!(pids[1], pids[2]);
    assert_eq!(pool.spawned(), 2);
}

/// 20 URLs, 4 at a time, on workers, through tinyproxy.
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn twenty_urls_with_four_jobs_on_workers() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let urls: Vec<String> = (1..=20)
        .map(|n| media.url(&format!("/v/{n}.mp4")))
        .collect();
    let proxy_url = proxy.url("http");
    let mut args = vec!["-j", "4", "--proxy", &proxy_url];
    args.extend(urls.iter().map(String::as_str));
    let started = Instant::now();
    let run = download(&env, "worker", &args);
    let elapsed = started.elapsed();
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results.len(), 20);
    let mut files: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r["status"], "done", "{r}");
            r["file"].as_str().unwrap().to_string()
        })
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 20);
    for f in &files {
        assert_clip(Path::new(f));
    }
    eprintln!("20 URLs, -j 4, worker runner: {elapsed:?}");
}

// ---------------------------------------------------------------------------
// Options and selection

/// Every option the worker runner documents is one this yt-dlp's own parser
/// accepts (the worker builds its params with that parser).
#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn every_supported_option_is_accepted_by_yt_dlp() {
    let python = ytdlp_worker::find_python(&yt_dlp(), None).expect("python");
    let mut argv: Vec<String> = Vec::new();
    for (names, sample) in ytdlp_worker::SUPPORTED_OPTIONS {
        for name in *names {
            argv.push(name.to_string());
            if let Some(v) = sample {
                argv.push(v.to_string());
            }
        }
    }
    ytdlp_worker::check_args(&argv).expect("the list passes its own check");
    let out = std::process::Command::new(&python.python)
        .arg("-c")
        .arg("import sys, yt_dlp; yt_dlp.parse_options(['--ignore-config'] + sys.argv[1:])")
        .args(&argv)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn an_unsupported_option_is_refused_by_worker_and_falls_back_by_default() {
    let media = MediaServer::start();
    let env = Env::new();
    let run = download(
        &env,
        "worker",
        &[&media.url("/clip.mp4"), "--", "--embed-metadata"],
    );
    assert!(!run.ok());
    assert!(
        run.stderr().contains("`--embed-metadata`")
            && run.stderr().contains("runner = \"process\""),
        "{}",
        run.dump()
    );
    // No runner asked for: the process runner, with a one-line notice.
    let run = env.download(&[&media.url("/clip.mp4"), "--", "--no-embed-metadata"]);
    assert!(run.ok(), "{}", run.dump());
    let notices: Vec<&str> = run
        .output
        .stderr
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.contains("using the process runner"))
        .collect();
    assert_eq!(notices.len(), 1, "{}", run.dump());
    assert!(notices[0].contains("--no-embed-metadata"), "{}", notices[0]);
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn worker_is_the_default_when_yt_dlp_imports_else_process_with_a_notice() {
    let media = MediaServer::start();
    let env = Env::new();
    let mut c = env.cmd();
    c.args(["-v", "download", "--json", "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .arg(media.url("/clip.mp4"));
    let run = Run::of(c);
    assert!(run.ok(), "{}", run.dump());
    assert!(run.stderr().contains("warm worker"), "{}", run.dump());

    // A Python that cannot import yt_dlp (a fake, named so: `-S` leaves out
    // site-packages).
    let fake = env.path().join("fake-python-without-yt-dlp");
    std::fs::write(&fake, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = env.cmd();
    c.env(ytdlp_worker::PYTHON_ENV_VAR, &fake)
        .args(["download", "--json", "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .arg(media.url("/clip.mp4"));
    let run = Run::of(c);
    assert!(run.ok(), "{}", run.dump());
    assert!(
        run.stderr().contains("using the process runner"),
        "{}",
        run.dump()
    );
    assert!(run.stderr().contains("yt_dlp"), "{}", run.dump());

    let mut c = env.cmd();
    c.env(ytdlp_worker::PYTHON_ENV_VAR, &fake)
        .args(["download", "--runner", "worker", "--json"])
        .arg(media.url("/clip.mp4"));
    let run = Run::of(c);
    assert!(!run.ok(), "{}", run.dump());
    assert!(run.stderr().contains("runner `worker`"), "{}", run.dump());
}
