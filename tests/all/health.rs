//! Proxy health across runs with the real yt-dlp and real proxies: a proxy
//! that dies is benched, stays benched in the next process, and comes back
//! after its cooldown; a 429 benches a proxy for that site only.

use std::time::{Duration, Instant};

use crate::common::{Env, attempts, harness};
use harness::{MediaServer, tinyproxy, tinyproxy_on};

fn stats(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend(["proxies", "stats", "--json"]);
    let run = env.run(&all);
    assert!(run.ok(), "{}", run.dump());
    run.json().as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [serde_json::Value], url: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["url"] == url)
        .unwrap_or_else(|| panic!("no {url} in {rows:?}"))
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_dead_proxy_is_benched_across_runs_and_comes_back_after_its_cooldown() {
    let media = MediaServer::start();
    let mut a = tinyproxy(None);
    let b = tinyproxy(None);
    let (a_url, b_url) = (a.url("http"), b.url("http"));
    let env = Env::new();
    let config = env.write_config(&format!(
        "proxies = [\"{a_url}\", \"{b_url}\"]\n\
         [plugins.memory.options]\n\
         failure_threshold = 2\nbackoff_base_ms = 6000\njitter = \"none\"\n"
    ));
    let cfg = config.to_str().unwrap();

    // Run 1: both work.
    let run = env.download(&[
        "--config",
        cfg,
        &media.url("/v/1.mp4"),
        &media.url("/v/2.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());

    // A dies. Run 2: round robin offers A first; the pre-flight check
    // finds it dead without a yt-dlp run, which benches it at once; both
    // URLs still download through B.
    let port = a.port;
    a.stop();
    let urls: Vec<String> = (3..5).map(|i| media.url(&format!("/v/{i}.mp4"))).collect();
    let mut args = vec!["--config", cfg];
    args.extend(urls.iter().map(String::as_str));
    let run = env.download(&args);
    assert!(run.ok(), "{}", run.dump());
    let mut a_failures = 0;
    for r in run.json_lines() {
        assert_eq!(r["status"], "done", "{r}");
        for (proxy, kind) in attempts(&r) {
            if proxy == a_url {
                assert_eq!(kind.as_deref(), Some("proxy-connect"), "{r}");
                let first = &r["attempts"][0];
                assert!(
                    first["message"].as_str().unwrap().contains("pre-flight")
                        && first["duration_ms"].as_u64().unwrap() < 1000,
                    "pre-flight, not a yt-dlp run: {r}"
                );
                a_failures += 1;
            }
        }
    }
    // The check is certain: one failed pre-flight benches A at once (a
    // run's proxy fault would need `failure_threshold` in a row).
    assert_eq!(a_failures, 1, "{}", run.dump());

    // Run 3, a new process: A is still cooling down and is not handed out.
    let rows = stats(&env, &["--config", cfg]);
    assert_eq!(row(&rows, &a_url)["state"], "cooling-down", "{rows:?}");
    assert_eq!(row(&rows, &a_url)["failures"], 1);
    assert_eq!(row(&rows, &b_url)["successes"], 3);
    let run = env.download(&["--config", cfg, &media.url("/v/7.mp4")]);
    assert_eq!(attempts(&run.json_lines()[0]), [(b_url.clone(), None)]);

    // A comes back where it was; after its cooldown it is handed out again
    // (on probation), and one success restores it.
    let _a = tinyproxy_on(port, None);
    let until = row(&rows, &a_url)["until_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::thread::sleep(Duration::from_millis(until.saturating_sub(now) + 100));
    let urls: Vec<String> = (8..10).map(|i| media.url(&format!("/v/{i}.mp4"))).collect();
    let mut args = vec!["--config", cfg];
    args.extend(urls.iter().map(String::as_str));
    let run = env.download(&args);
    assert!(run.ok(), "{}", run.dump());
    let used: Vec<String> = run
        .json_lines()
        .iter()
        .flat_map(|r| attempts(r).into_iter().map(|(p, _)| p))
        .collect();
    assert!(used.contains(&a_url), "A never came back: {used:?}");
    let rows = stats(&env, &["--config", cfg]);
    assert_eq!(row(&rows, &a_url)["state"], "active", "{rows:?}");
    assert_eq!(row(&rows, &a_url)["consecutive_failures"], 0);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn too_many_requests_benches_the_proxy_for_that_site_only() {
    let media = MediaServer::start();
    let a = tinyproxy(None);
    let env = Env::new();
    let a_url = a.url("http");
    // Two names for one server: two sites as far as bans go.
    let by_ip = |p: &str| format!("http://127.0.0.1:{}{p}", media.port);
    let by_name = |p: &str| format!("http://localhost:{}{p}", media.port);
    let run = env.download(&[
        "--proxy",
        &a_url,
        "--on-no-proxy",
        "fail",
        &by_ip("/status/429"),
        &by_ip("/clip.mp4"),
        &by_name("/clip.mp4"),
    ]);
    let results = run.json_lines();
    assert_eq!(results[0]["kind"], "blocked", "{}", run.dump());
    // The same site: no proxy left for it (policy fail says why). One URL
    // refused is a strike, not a ban; but the 429 halved the proxy's rate
    // there (to 1 per learn window, the 429 counting as its run).
    assert_eq!(results[1]["status"], "failed", "{}", run.dump());
    let err = results[1]["error"].as_str().unwrap();
    assert!(err.contains("at their rate budget for 127.0.0.1"), "{err}");
    assert!(err.contains("next proxy back in"), "{err}");
    // Another site: the proxy is fine.
    assert_eq!(results[2]["status"], "done", "{}", run.dump());
    assert_eq!(attempts(&results[2]), [(a_url.clone(), None)]);
    // Not a proxy fault: it stays active.
    let rows = stats(&env, &["--proxy", &a_url]);
    assert_eq!(row(&rows, &a_url)["state"], "active");
    assert_eq!(row(&rows, &a_url)["consecutive_failures"], 0);
    // Counted as blocked; the pacing itself is not saved for a new process.
    let extra = row(&rows, &a_url)["extra"].to_string();
    assert!(extra.contains("failures.blocked"), "{extra}");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn the_pre_flight_check_finds_a_black_hole_fast() {
    let media = MediaServer::start();
    let hole = harness::BlackHole::start();
    let good = tinyproxy(None);
    let env = Env::new();
    let config = env.write_config("preflight_timeout_ms = 200\n");
    let started = Instant::now();
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        "--proxy",
        &hole.url(),
        "--proxy",
        &good.url("http"),
        &media.url("/clip.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_eq!(
        attempts(r),
        [
            (hole.url(), Some("proxy-timeout".to_string())),
            (good.url("http"), None)
        ]
    );
    assert!(
        r["attempts"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pre-flight")
    );
    // yt-dlp alone would spend 4 s or more on the black hole.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn proxies_added_at_run_time_keep_their_place_and_health() {
    let env = Env::new();
    let base = ["--proxy", "http://127.0.0.1:3128"];
    let mut args = base.to_vec();
    args.extend([
        "proxies",
        "add",
        "socks5://u:pw@127.0.0.1:1080",
        "http://127.0.0.1:3128",
    ]);
    let run = env.run(&args);
    assert!(run.ok(), "{}", run.dump());
    assert!(run.stdout().contains("added 1 new of 2"), "{}", run.dump());
    let mut args = base.to_vec();
    args.extend([
        "proxies",
        "report",
        "socks5://u:pw@127.0.0.1:1080",
        "--failure",
        "proxy-timeout",
        "--count",
        "2",
    ]);
    assert!(env.run(&args).ok());
    // A new process, same config: the added proxy and its failures are there.
    let rows = stats(&env, &base);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(row(&rows, "socks5://***@127.0.0.1:1080")["failures"], 2);
    let mut args = base.to_vec();
    args.extend(["proxies", "remove", "socks5://u:pw@127.0.0.1:1080"]);
    assert!(env.run(&args).ok());
    assert_eq!(stats(&env, &base).len(), 1);
}
