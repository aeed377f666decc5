//! Process start to first proxy chosen (`ytdlp-host proxies get`), with a
//! cold compile cache (fresh cache directory every run) and a warm one.
//! Whole processes, so a plain timing loop rather than criterion.
//!
//!     cargo bench --bench startup

use std::process::Command;
use std::time::{Duration, Instant};

fn run(cache: &std::path::Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"))
        .env("XDG_CACHE_HOME", cache)
        .env("XDG_CONFIG_HOME", cache.join("no-config"))
        .env("XDG_STATE_HOME", cache.join("state"))
        .args(["--proxy", "http://127.0.0.1:3128", "proxies", "get"])
        .output()
        .expect("run ytdlp-host");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // we need. Keep the run short either way.
    let runs = 21;
    let dir = tempfile::tempdir().unwrap();
    let cold: Vec<Duration> = (0..runs)
        .map(|i| run(&dir.path().join(format!("cold-{i}"))))
        .collect();
    let warm_dir = dir.path().join("warm");
    run(&warm_dir);
    let warm: Vec<Duration> = (0..runs).map(|_| run(&warm_dir)).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start to first proxy, median of {runs}: cold cache {:.1} ms (min {:.1}), warm cache {:.1} ms (min {:.1})",
        ms(median(cold.clone())),
        ms(*cold.iter().min().unwrap()),
        ms(median(warm.clone())),
        ms(*warm.iter().min().unwrap())
    );
}
