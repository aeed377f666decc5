//! Downloads with the real yt-dlp through real proxies.

use crate::common::{Env, attempts, harness};
use harness::{
    BlackHole, MediaServer, fixtures, free_port, microsocks, proxied_requests, tinyproxy,
};

fn assert_clip(path: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(got, harness::CLIP, "downloaded bytes differ from the clip");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn downloads_through_tinyproxy() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let run = env.download(&["--proxy", &proxy.url("http"), &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["status"], "done");
    assert_clip(results[0]["file"].as_str().unwrap());
    assert_eq!(attempts(&results[0]), [(proxy.url("http"), None)]);
    assert!(
        proxied_requests(&proxy.log(), &format!("127.0.0.1:{}/clip.mp4", media.port)) >= 1,
        "tinyproxy saw no request:\n{}",
        proxy.log()
    );
}

#[test]
#[ignore = "needs yt-dlp and microsocks (bash .ci/run installs them)"]
fn downloads_through_microsocks() {
    let media = MediaServer::start();
    let proxy = microsocks(None);
    let env = Env::new();
    let run = env.download(&["--proxy", &proxy.url("socks5"), &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results[0]["status"], "done");
    assert_clip(results[0]["file"].as_str().unwrap());
    assert!(
        proxy.log().contains("client"),
        "microsocks logged no client:\n{}",
        proxy.log()
    );
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn dead_proxy_is_reported_retried_elsewhere_and_disabled_after_threshold() {
    let media = MediaServer::start();
    let good = tinyproxy(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = Env::new();
    let urls: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| media.url(&format!("/v/{n}.mp4")))
        .collect();
    let good_url = good.url("http");
    // yt-dlp's own runs find the dead proxy here: with the pre-flight check
    // on, one failed check benches it at once (tests/all/pacing.rs).
    let config = env.write_config("preflight_timeout_ms = 0\n");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--proxy",
        &dead,
        "--proxy",
        &good_url,
    ];
    args.extend(urls.iter().map(String::as_str));
    let run = env.download(&args);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results.len(), 5);
    for r in &results {
        assert_eq!(r["status"], "done", "{r}");
    }
    // Round robin starts at the dead proxy for each of the first three URLs;
    // its third consecutive proxy-connect failure (threshold 3) disables it.
    for r in &results[..3] {
        assert_eq!(
            attempts(r),
            [
                (dead.clone(), Some("proxy-connect".to_string())),
                (good.url("http"), None)
            ],
            "{r}"
        );
    }
    for r in &results[3..] {
        assert_eq!(attempts(r), [(good.url("http"), None)], "{r}");
    }
}

/// yt-dlp's own verdict on a black hole (the pre-flight check, which
/// would catch it first, is off here; tests/all/health.rs covers it).
#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn black_hole_proxy_is_a_proxy_timeout() {
    let media = MediaServer::start();
    let hole = BlackHole::start();
    let good = tinyproxy(None);
    let env = Env::new();
    let config =
        env.write_config("preflight_timeout_ms = 0\n[plugins.memory.options]\ntimeout_ms = 1000\n");
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
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn not_found_is_not_blamed_on_the_proxy() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    // Threshold 1: a single failure counted against the proxy would disable it.
    let config = env.write_config("[plugins.memory.options]\nfailure_threshold = 1\n");
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        "--proxy",
        &proxy.url("http"),
        &media.url("/missing.mp4"),
        &media.url("/clip.mp4"),
    ]);
    assert!(!run.ok(), "a failed URL must fail the run: {}", run.dump());
    let results = run.json_lines();
    assert_eq!(results[0]["status"], "failed");
    assert_eq!(results[0]["kind"], "content");
    // Content errors are not retried through another proxy.
    assert_eq!(attempts(&results[0]).len(), 1);
    assert_eq!(results[1]["status"], "done", "{}", run.dump());
    assert_eq!(attempts(&results[1]), [(proxy.url("http"), None)]);
    assert!(run.stderr().contains("/missing.mp4"), "{}", run.dump());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn blocked_site_is_classified_and_retried_elsewhere() {
    let media = MediaServer::start();
    let a = tinyproxy(None);
    let b = tinyproxy(None);
    let env = Env::new();
    // `--max-wait 0`: once both proxies are paced for the site after its
    // 429s, the URL ends instead of waiting for them.
    let run = env.download(&[
        "--max-wait",
        "0",
        "--proxy",
        &a.url("http"),
        "--proxy",
        &b.url("http"),
        &media.url("/status/429"),
    ]);
    assert!(!run.ok());
    let r = &run.json_lines()[0];
    assert_eq!(r["kind"], "blocked");
    let tried: Vec<_> = attempts(r).into_iter().map(|(p, _)| p).collect();
    assert!(
        tried.contains(&a.url("http")) && tried.contains(&b.url("http")),
        "{r}"
    );
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn credentials_work_and_never_show() {
    let media = MediaServer::start();
    let proxy = tinyproxy(Some(("alice", "s3cr3t-pw")));
    let env = Env::new();
    let good = format!("http://alice:s3cr3t-pw@127.0.0.1:{}", proxy.port);
    let bad = format!("http://alice:wr0ng-pw@127.0.0.1:{}", proxy.port);
    let run = env.download(&["--proxy", &bad, "--proxy", &good, &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    // Both show as the same masked URL; their ids tell them apart.
    let masked = format!("http://***@127.0.0.1:{}", proxy.port);
    assert_eq!(
        attempts(r),
        [
            (masked.clone(), Some("proxy-auth".to_string())),
            (masked.clone(), None)
        ]
    );
    let ids: Vec<&str> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["proxy_id"].as_str().unwrap())
        .collect();
    assert_ne!(ids[0], ids[1], "{r}");
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        !all.contains("s3cr3t") && !all.contains("wr0ng") && !all.contains("alice"),
        "{all}"
    );
    let stats = env.run(&["--proxy", &good, "proxies", "stats"]);
    assert!(stats.ok(), "{}", stats.dump());
    assert!(!stats.stdout().contains("s3cr3t"), "{}", stats.dump());
    assert!(stats.stdout().contains(&masked), "{}", stats.dump());
    assert!(stats.stdout().contains(ids[1]), "{}", stats.dump());
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn no_proxy_policy_direct_or_fail() {
    let media = MediaServer::start();
    let env = Env::new();
    let direct = env.download(&[&media.url("/clip.mp4")]);
    assert!(direct.ok(), "{}", direct.dump());
    let r = &direct.json_lines()[0];
    assert_eq!(r["status"], "done");
    assert_eq!(attempts(r), [("direct".to_string(), None)]);
    assert!(
        direct.stderr().contains("no proxies configured"),
        "{}",
        direct.dump()
    );

    let fail = env.download(&["--on-no-proxy", "fail", &media.url("/clip.mp4")]);
    assert!(!fail.ok());
    let r = &fail.json_lines()[0];
    assert_eq!(r["status"], "failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("no proxies configured"),
        "{r}"
    );
    assert_eq!(attempts(r), []);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn per_download_options_reach_a_user_plugin() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    env.install_plugin(fixtures::OPTIONS_ECHO, "echo");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = env.write_config(&format!(
        "backend = \"echo\"\n[plugins.echo.options]\nuse_proxy = \"{dead}\"\n"
    ));
    let cfg = config.to_str().unwrap();
    // The config's option alone: the plugin hands out the dead proxy.
    let run = env.download(&[
        "--config",
        cfg,
        "--max-attempts",
        "1",
        &media.url("/clip.mp4"),
    ]);
    assert!(!run.ok());
    // Its failed pre-flight check uses up no attempt; the plugin hands the
    // same proxy out again, which does (nothing else is left).
    let dead_twice = (dead.clone(), Some("proxy-connect".to_string()));
    assert_eq!(
        attempts(&run.json_lines()[0]),
        [dead_twice.clone(), dead_twice]
    );
    // The download's option wins over the config's.
    let opt = format!("use_proxy={}", proxy.url("http"));
    let run = env.download(&[
        "--config",
        cfg,
        "--backend-opt",
        &opt,
        &media.url("/clip.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(attempts(&run.json_lines()[0]), [(proxy.url("http"), None)]);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn extra_yt_dlp_arguments_are_passed_through() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let run = env.download(&[
        "--proxy",
        &proxy.url("http"),
        &media.url("/clip.mp4"),
        "--",
        "--simulate",
    ]);
    assert!(run.ok(), "{}", run.dump());
    // --simulate: yt-dlp succeeds but writes no file.
    assert!(!env.out_dir().join("clip.mp4").exists());
}
