//! 20 short local downloads through one good tinyproxy: bare yt-dlp (one
//! process per URL, the way people script it) against `ytdlp-host download`
//! with -j 1 and -j 4, both runners. Also the pre-flight check's cost for a
//! dead and a black-hole proxy against what the same proxy costs a yt-dlp
//! run. Real yt-dlp, real tinyproxy, all on loopback.
//!
//!     cargo bench --bench batch

use std::process::Command;
use std::time::{Duration, Instant};

use ytdlp_host_tests::{BlackHole, MediaServer, free_port, require, tinyproxy};

const N: usize = 20;

fn main() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let yt_dlp = require("yt-dlp");
    let dir = tempfile::tempdir().unwrap();
    let urls: Vec<String> = (0..N).map(|i| media.url(&format!("/v/b{i}.mp4"))).collect();

    // Bare yt-dlp, one process per URL.
    let out = dir.path().join("bare");
    let started = Instant::now();
    for u in &urls {
        let s = Command::new(&yt_dlp)
            .args(["--ignore-config", "--quiet", "--proxy", &proxy.url("http")])
            .arg("-o")
            .arg(out.join("%(id)s.%(ext)s"))
            .arg(u)
            .status()
            .unwrap();
        assert!(s.success());
    }
    let bare = started.elapsed();
    println!(
        "bare yt-dlp, {N} URLs one after another: {:.2} s ({:.0} ms each)",
        secs(bare),
        ms(bare) / N as f64
    );

    let host = |runner: &str, jobs: usize| -> Duration {
        let home = dir.path().join(format!("host-{runner}-{jobs}"));
        let started = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("YTDLP_HOST_YT_DLP", &yt_dlp)
            .args(["download", "--runner", runner, "-j", &jobs.to_string()])
            .args(["--proxy", &proxy.url("http"), "-o"])
            .arg(home.join("%(id)s.%(ext)s"))
            .args(&urls)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        started.elapsed()
    };
    for runner in ["process", "worker"] {
        for jobs in [1, 4] {
            let t = host(runner, jobs);
            println!(
                "ytdlp-host --runner {runner} -j {jobs}: {:.2} s ({:.0} ms per URL; {:+.0} ms per URL against bare yt-dlp)",
                secs(t),
                ms(t) / N as f64,
                (ms(t) - ms(bare)) / N as f64
            );
        }
    }

    // A dead proxy (closed port) and a black hole, first in the list: what
    // one URL costs with the pre-flight check (200 ms) and without it.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let hole = BlackHole::start();
    for (name, bad) in [("dead port", dead), ("black hole", hole.url())] {
        for preflight in [200u64, 0] {
            let home = dir
                .path()
                .join(format!("pf-{}-{preflight}", name.replace(' ', "-")));
            std::fs::create_dir_all(&home).unwrap();
            let cfg = home.join("config.toml");
            std::fs::write(
                &cfg,
                format!("preflight_timeout_ms = {preflight}\nrunner = \"process\"\n[plugins.memory.options]\ntimeout_ms = 2000\n"),
            )
            .unwrap();
            let started = Instant::now();
            let o = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"))
                .env("XDG_CACHE_HOME", dir.path().join("cache"))
                .env("XDG_CONFIG_HOME", home.join("config"))
                .env("XDG_STATE_HOME", home.join("state"))
                .env("YTDLP_HOST_YT_DLP", &yt_dlp)
                .arg("--config")
                .arg(&cfg)
                .args([
                    "download",
                    "--json",
                    "--proxy",
                    &bad,
                    "--proxy",
                    &proxy.url("http"),
                    "-o",
                ])
                .arg(home.join("%(id)s.%(ext)s"))
                .arg(&urls[0])
                .output()
                .unwrap();
            let total = started.elapsed();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let stdout = String::from_utf8_lossy(&o.stdout);
            let first_ms = stdout
                .lines()
                .find(|l| l.contains("\"event\":\"done\""))
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v["attempts"][0]["duration_ms"].as_u64())
                .unwrap_or(0);
            println!(
                "{name:10} first, pre-flight {}: the bad proxy cost {first_ms} ms{} (whole URL {:.2} s)",
                if preflight == 0 {
                    "off".to_string()
                } else {
                    format!("{preflight} ms")
                },
                if preflight == 0 {
                    ", a yt-dlp run"
                } else {
                    ", no yt-dlp run"
                },
                secs(total)
            );
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
