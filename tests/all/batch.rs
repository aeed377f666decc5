//! Batches: many URLs, N at once, one shared backend, exact counts.

use std::collections::HashMap;

use crate::common::{Env, attempts, harness};
use harness::{MediaServer, free_port, microsocks, tinyproxy};

#[test]
#[ignore = "needs yt-dlp, tinyproxy and microsocks (bash .ci/run installs them)"]
fn twenty_urls_four_at_a_time_through_real_and_dead_proxies() {
    let media = MediaServer::start();
    let http = tinyproxy(None);
    let socks = microsocks(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = Env::new();
    let mut batch = String::from("# a batch file\n\n");
    for i in 1..=20 {
        batch.push_str(&media.url(&format!("/v/{i}.mp4")));
        batch.push('\n');
        if i == 4 {
            batch.push_str("this line is not a url\n");
        }
    }
    let batch_file = env.path().join("urls.txt");
    std::fs::write(&batch_file, batch).unwrap();
    let config = env.write_config(&format!(
        "proxies = [\"{}\", \"{}\", \"{dead}\"]\n",
        http.url("http"),
        socks.url("socks5")
    ));
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        "-a",
        batch_file.to_str().unwrap(),
        "-j",
        "4",
    ]);
    // The bad line fails the run but not the batch.
    assert!(!run.ok(), "{}", run.dump());
    assert!(
        run.stderr()
            .contains("urls.txt line 7: `this line is not a url` is not a URL"),
        "{}",
        run.dump()
    );
    let results = run.json_lines();
    assert_eq!(results.len(), 20, "{}", run.dump());
    let mut through: HashMap<String, (u64, u64)> = HashMap::new();
    for r in &results {
        assert_eq!(r["status"], "done", "{r}");
        for (proxy, kind) in attempts(r) {
            let e = through.entry(proxy).or_default();
            if kind.is_none() {
                e.0 += 1;
            } else {
                assert_eq!(kind.as_deref(), Some("proxy-connect"), "{r}");
                e.1 += 1;
            }
        }
    }
    // Every event kind shows up in the stream, and the summary adds up.
    let events = run.events();
    for kind in ["queued", "started", "progress", "done", "summary"] {
        assert!(events.iter().any(|e| e["event"] == kind), "no {kind} event");
    }
    let summary = events.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["done"], 20);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["skipped"], 1);
    let total_attempts: u64 = through.values().map(|(ok, bad)| ok + bad).sum();
    assert_eq!(summary["attempts"], total_attempts);

    // No report lost: the backend's counts (saved by the bundled plugin,
    // read by a new process) equal the attempts the results list.
    let stats = env.run(&[
        "--config",
        config.to_str().unwrap(),
        "proxies",
        "stats",
        "--json",
    ]);
    assert!(stats.ok(), "{}", stats.dump());
    for row in stats.json().as_array().unwrap() {
        let url = row["url"].as_str().unwrap();
        let (ok, bad) = through.get(url).copied().unwrap_or_default();
        assert_eq!(row["successes"], ok, "{url}: {row}");
        assert_eq!(row["failures"], bad, "{url}: {row}");
    }
    let (ok_http, _) = through[&http.url("http")];
    let (ok_socks, _) = through[&socks.url("socks5")];
    assert_eq!(ok_http + ok_socks, 20);
    assert!(ok_http > 0 && ok_socks > 0, "{through:?}");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn plain_output_when_not_a_terminal() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let mut cmd = env.cmd();
    cmd.args([
        "download",
        "-o",
        env.out_dir().join("%(id)s.%(ext)s").to_str().unwrap(),
        "--proxy",
        &proxy.url("http"),
        "-j",
        "2",
        &media.url("/v/a.mp4"),
        &media.url("/v/b.mp4"),
    ]);
    let run = crate::common::Run::of(cmd);
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(
        run.stdout()
            .lines()
            .filter(|l| l.starts_with("done "))
            .count(),
        2
    );
    assert!(run.stderr().contains("started "), "{}", run.dump());
    assert!(
        run.stderr().contains("summary: 2 done, 0 failed"),
        "{}",
        run.dump()
    );
}

/// yt-dlp runs in its own process group, so a Ctrl-C at the terminal
/// reaches only the host: it must cancel (kill) the runs and say so.
#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn sigint_cancels_the_batch_and_leaves_no_yt_dlp_behind() {
    let media = MediaServer::start();
    let env = Env::new();
    let config = env.write_config("runner = \"process\"\n");
    let mut cmd = env.cmd();
    cmd.arg("--config")
        .arg(&config)
        .args(["download", "-j", "2", "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .args([
            media.url("/slow/30000/sigint-a.mp4"),
            media.url("/slow/30000/sigint-b.mp4"),
            media.url("/slow/30000/sigint-c.mp4"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let running = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains("/slow/30000/sigint-"))
            .count()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while running() < 2 {
        assert!(std::time::Instant::now() < until, "yt-dlp never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("SIGINT: cancelling 3 download(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("3 cancelled"), "{stderr}");
    // Killed before the host exits; gone from the process table a moment
    // later at most.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while running() > 0 {
        assert!(std::time::Instant::now() < until, "yt-dlp left running");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
