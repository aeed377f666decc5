//! Load on `ytdlp-host serve`: 2,000 submissions from 32 concurrent
//! connections (a client in this process, the service in its own), with
//! the real yt-dlp downloading each through a real tinyproxy from a local
//! media server, everything on loopback. Per run: submit latency (p50, p99,
//! max), the burst's rate, downloads per second until the last one ended,
//! the service's RSS before, at the end and at its peak, and the count of
//! ids submitted against ids finished (they must be equal).
//!
//!     cargo bench --bench serve_load            # 3 runs
//!     LOAD_RUNS=5 LOAD_N=2000 LOAD_CONNS=32 cargo bench --bench serve_load

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use ytdlp_host_tests::{MediaServer, require, tinyproxy};

const TOKEN: &str = "load-benchmark-token-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of a process, MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn get(agent: &ureq::Agent, url: &str) -> Value {
    agent
        .get(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap_or(Value::Null)
}

fn metric(agent: &ureq::Agent, base: &str, name: &str) -> f64 {
    let text = agent
        .get(format!("{base}/metrics"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct RunResult {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    submit_per_s: f64,
    downloads_per_s: f64,
    rss_before: f64,
    rss_after: f64,
    rss_peak: f64,
    submitted: usize,
    finished: usize,
}

fn run(
    n: usize,
    conns: usize,
    media: &MediaServer,
    proxy: &str,
    yt_dlp: &std::path::Path,
    store: &str,
) -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "proxies = [\"{proxy}\"]\noutput = \"%(id)s.%(ext)s\"\n[serve]\ndownload_dir = \"{}\"\nkeep_finished = {{ count = 100000 }}\n{store}",
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"))
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_STATE_HOME", dir.path().join("state"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("YTDLP_HOST_YT_DLP", yt_dlp)
        .env("YTDLP_HOST_TOKEN", TOKEN)
        .arg("--config")
        .arg(&cfg)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--queue-limit",
            "100000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let serve = Serve { child, base };
    let pid = serve.child.id();
    // Let the worker pool come up before measuring the idle size.
    std::thread::sleep(Duration::from_secs(2));
    let (rss_before, _) = rss_mib(pid);

    let started = Instant::now();
    let per = n.div_ceil(conns);
    let results: Vec<(Vec<f64>, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let base = serve.base.clone();
                s.spawn(move || {
                    let agent = agent();
                    let (mut lat, mut ids) = (Vec::new(), Vec::new());
                    for i in (c * per)..((c + 1) * per).min(n) {
                        let body = json!({ "url": media.url(&format!("/v/load-{i}.mp4")) });
                        let t = Instant::now();
                        let mut r = agent
                            .post(format!("{base}/downloads"))
                            .header("authorization", format!("Bearer {TOKEN}"))
                            .header("content-type", "application/json")
                            .send(body.to_string())
                            .unwrap();
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        assert_eq!(r.status().as_u16(), 201);
                        let v: Value = r.body_mut().read_json().unwrap();
                        ids.push(v["id"].as_str().unwrap().to_string());
                    }
                    (lat, ids)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let burst = started.elapsed();
    let mut lat: Vec<f64> = results.iter().flat_map(|(l, _)| l.clone()).collect();
    lat.sort_by(f64::total_cmp);
    let submitted: HashSet<String> = results.iter().flat_map(|(_, i)| i.clone()).collect();
    assert_eq!(submitted.len(), n, "ids are unique");

    // Until every download ended.
    let agent = agent();
    loop {
        let ended = metric(
            &agent,
            &serve.base,
            "ytdlp_host_downloads_total{outcome=\"done\"}",
        ) + metric(
            &agent,
            &serve.base,
            "ytdlp_host_downloads_total{outcome=\"failed\"}",
        );
        if ended as usize >= n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "stuck at {ended}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let all = started.elapsed();
    let (rss_after, rss_peak) = rss_mib(pid);

    // The ids the service reports done, page by page.
    let mut finished = 0;
    let mut after: Option<String> = None;
    loop {
        let q = after
            .as_ref()
            .map_or(String::new(), |a| format!("&after={a}"));
        let page = get(
            &agent,
            &format!("{}/downloads?state=done&limit=1000{q}", serve.base),
        );
        finished += page["downloads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| submitted.contains(d["id"].as_str().unwrap()))
            .count();
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    RunResult {
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: *lat.last().unwrap(),
        submit_per_s: n as f64 / burst.as_secs_f64(),
        downloads_per_s: n as f64 / all.as_secs_f64(),
        rss_before,
        rss_after,
        rss_peak,
        submitted: submitted.len(),
        finished,
    }
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let runs = env_usize("LOAD_RUNS", 3);
    let n = env_usize("LOAD_N", 2000);
    let conns = env_usize("LOAD_CONNS", 32);
    let yt_dlp = require("yt-dlp");
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    // LOAD_STORE=redis: the queue (and the plugin's health) in a local
    // redis-server instead of the default SQLite file.
    let redis =
        (std::env::var("LOAD_STORE").as_deref() == Ok("redis")).then(ytdlp_host_tests::redis);
    let store = redis.as_ref().map_or(String::new(), |r| {
        format!("[store]\nurl = \"redis://127.0.0.1:{}\"\n", r.port)
    });
    println!(
        "{n} submissions from {conns} connections, {runs} runs (a fresh service each), store: {}",
        if redis.is_some() { "redis" } else { "sqlite" }
    );
    let mut all = Vec::new();
    for r in 1..=runs {
        let x = run(n, conns, &media, &proxy.url("http"), &yt_dlp, &store);
        println!(
            "run {r}: submit p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms ({:.0} submissions/s); {:.2} downloads/s; RSS {:.1} MiB before, {:.1} after, {:.1} peak; submitted {}, finished {}",
            x.p50_ms,
            x.p99_ms,
            x.max_ms,
            x.submit_per_s,
            x.downloads_per_s,
            x.rss_before,
            x.rss_after,
            x.rss_peak,
            x.submitted,
            x.finished
        );
        assert_eq!(x.submitted, x.finished, "every submitted id finished done");
        all.push(x);
    }
    let show = |name: &str, unit: &str, f: &dyn Fn(&RunResult) -> f64| {
        let (m, lo, hi) = median(all.iter().map(f).collect());
        println!("{name}: median {m:.2} {unit} (min {lo:.2}, max {hi:.2})");
    };
    show("submit p50", "ms", &|x| x.p50_ms);
    show("submit p99", "ms", &|x| x.p99_ms);
    show("submissions/s", "", &|x| x.submit_per_s);
    show("downloads/s", "", &|x| x.downloads_per_s);
    show("RSS before", "MiB", &|x| x.rss_before);
    show("RSS after", "MiB", &|x| x.rss_after);
    show("RSS peak", "MiB", &|x| x.rss_peak);
}
