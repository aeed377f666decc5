//! The two runners compared with the real yt-dlp through a real tinyproxy,
//! everything on loopback, in one run:
//! - 20 short downloads (the 100 KB test clip, each URL a different id),
//!   process runner vs worker runner, 1 and 4 at a time (concurrent runs
//!   through the library's `Runner`);
//! - one long download (32 MiB generated in memory and served by this
//!   bench's own HTTP server) with each runner, median of 3.
//!
//! Whole yt-dlp runs, so a plain timing loop rather than criterion.
//!
//!     cargo bench --bench runners
//!
//! Needs yt-dlp and tinyproxy on PATH (as the tests do).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ytdlp_host_config::WorkerConfig;
use ytdlp_host_tests::{self as harness, MediaServer, tiny_http, tinyproxy};
use ytdlp_host_ytdlp::worker::{self as ytdlp_worker, PoolOptions, WorkerPool};
use ytdlp_host_ytdlp::{ProcessRunner, RunSpec, Runner};

const SHORT: usize = 20;
const LONG_BYTES: usize = 32 << 20;
const LONG_RUNS: usize = 3;

/// Serves one large in-memory file at any path.
struct BigServer {
    port: u16,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl BigServer {
    fn start(len: usize) -> BigServer {
        // Pseudo-random bytes (xorshift), so nothing on the way can
        // compress them.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let data = Shared(Arc::new(data));
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("big server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                let data = data.clone();
                std::thread::spawn(move || {
                    let header =
                        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"video/mp4"[..])
                            .expect("header");
                    let len = data.0.len();
                    let resp = tiny_http::Response::new(
                        200.into(),
                        vec![header],
                        Cursor::new(data),
                        Some(len),
                        None,
                    );
                    let _ = req.respond(resp);
                });
            }
        });
        BigServer {
            port,
            server,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/big.mp4", self.port)
    }
}

impl Drop for BigServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn spec(yt_dlp: &Path, url: String, proxy: &str, out: &Path) -> RunSpec {
    RunSpec {
        program: yt_dlp.to_path_buf(),
        url,
        proxy: Some(ytdlp_contract::proxy_url::validate(proxy).expect("proxy")),
        socket_timeout_secs: 30,
        output: Some(out.join("%(id)s.%(ext)s").to_string_lossy().into_owned()),
        extra_args: Vec::new(),
        deadline: Duration::from_secs(600),
    }
}

/// `urls` through `runner`, `jobs` at a time; panics on a failed download.
async fn batch(runner: &Arc<dyn Runner>, specs: Vec<RunSpec>, jobs: usize) -> Duration {
    let started = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(jobs));
    let mut set = tokio::task::JoinSet::new();
    for s in specs {
        let (runner, limit) = (runner.clone(), limit.clone());
        set.spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let o = runner.run(&s, &mut |_| {}).await;
            assert!(o.succeeded(), "{} {}: {o:?}", runner.name(), s.url);
            o.file.expect("a file")
        });
    }
    while let Some(r) = set.join_next().await {
        r.expect("task");
    }
    started.elapsed()
}

async fn start_pool(yt_dlp: &Path, size: usize) -> (Arc<dyn Runner>, Duration) {
    let started = Instant::now();
    let python = ytdlp_worker::find_python(yt_dlp, None).expect("the Python of yt-dlp");
    let pool = WorkerPool::start(PoolOptions::new(python, size, &WorkerConfig::default()))
        .await
        .expect("worker pool");
    (Arc::new(pool), started.elapsed())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let yt_dlp: PathBuf = harness::require("yt-dlp");
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let proxy_url = proxy.url("http");
    let big = BigServer::start(LONG_BYTES);
    let version = std::process::Command::new(&yt_dlp)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "yt-dlp {version} ({}), tinyproxy on loopback, {} CPUs",
        yt_dlp.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut round = 0;
        let mut specs = |n: usize| {
            round += 1;
            let out = dir.path().join(format!("round-{round}"));
            (1..=n)
                .map(|i| {
                    spec(
                        &yt_dlp,
                        media.url(&format!("/v/r{round}-{i}.mp4")),
                        &proxy_url,
                        &out,
                    )
                })
                .collect::<Vec<_>>()
        };

        println!("\n{SHORT} short downloads (100 KB clip) through tinyproxy:");
        println!(
            "| jobs | process: total | per URL | worker: pool start | total | per URL | speed-up (incl. start) |"
        );
        println!("|---|---|---|---|---|---|---|");
        for jobs in [1, 4] {
            let process = batch(&(Arc::new(ProcessRunner) as Arc<dyn Runner>), specs(SHORT), jobs).await;
            let (workers, start) = start_pool(&yt_dlp, jobs).await;
            let worker = batch(&workers, specs(SHORT), jobs).await;
            println!(
                "| {jobs} | {:.2} s | {:.3} s | {:.2} s | {:.2} s | {:.3} s | {:.1}x ({:.1}x) |",
                secs(process),
                secs(process) / SHORT as f64,
                secs(start),
                secs(worker),
                secs(worker) / SHORT as f64,
                secs(process) / secs(worker),
                secs(process) / secs(worker + start),
            );
        }

        println!(
            "\nOne long download ({} MiB) through tinyproxy, median of {LONG_RUNS}:",
            LONG_BYTES >> 20
        );
        let (workers, _) = start_pool(&yt_dlp, 1).await;
        let mut times: Vec<(&str, Duration)> = Vec::new();
        for runner in [Arc::new(ProcessRunner) as Arc<dyn Runner>, workers] {
            let mut runs = Vec::new();
            for _ in 0..LONG_RUNS {
                round += 1;
                let out = dir.path().join(format!("long-{round}"));
                let s = spec(&yt_dlp, big.url(), &proxy_url, &out);
                let t = batch(&runner, vec![s], 1).await;
                let size = std::fs::metadata(out.join("big.mp4")).map_or(0, |m| m.len());
                assert_eq!(size, LONG_BYTES as u64, "{}: short file", runner.name());
                runs.push(t);
            }
            times.push((runner.name(), median(runs)));
        }
        println!("| runner | time | throughput |");
        println!("|---|---|---|");
        for (name, t) in &times {
            println!(
                "| {name} | {:.2} s | {:.0} MiB/s |",
                secs(*t),
                (LONG_BYTES >> 20) as f64 / secs(*t)
            );
        }
    });
}
