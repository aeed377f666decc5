//! The goodput rules with the real yt-dlp, real tinyproxies with their own
//! egress addresses and the harness site that rate-limits per address:
//! pre-flight failures use up no attempt, a paced (proxy, site) pair is not
//! handed out and the URL waits for it (policy `wait`, the default with
//! proxies), a site's `Retry-After` is honoured, and nothing ever goes out
//! from the user's own address.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::common::{Env, Run, attempts, harness};
use harness::pool::USER_ADDR;
use harness::site::{Answer, RateLimit, Site, SiteConfig};
use harness::{CLIP, free_port, require, tinyproxy_with};

const EGRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);

fn events(run: &Run, name: &str) -> Vec<serde_json::Value> {
    run.events()
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

fn assert_done(r: &serde_json::Value) {
    assert_eq!(r["status"], "done", "{r}");
    let file = r["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), CLIP, "{file}");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn pre_flight_failures_use_up_no_attempt() {
    require("yt-dlp");
    let site = Site::start(SiteConfig::default());
    let good = tinyproxy_with(free_port(), None, Some(EGRESS));
    let dead: Vec<String> = (0..3)
        .map(|_| format!("http://127.0.0.1:{}", free_port()))
        .collect();
    let env = Env::new();
    // One attempt per URL, three dead proxies first in the rotation;
    // cooldowns without jitter, so a benched proxy stays out.
    let mut args = vec!["--max-attempts", "1", "--backend-opt", "jitter=none"];
    for d in &dead {
        args.extend(["--proxy", d.as_str()]);
    }
    let good_url = good.url("http");
    args.extend(["--proxy", &good_url]);
    let url = site.url("/v/pf.mp4");
    args.push(&url);
    let run = env.download(&args);
    assert!(run.ok(), "{}", run.dump());
    let r = &run.json_lines()[0];
    assert_done(r);
    let tried = attempts(r);
    // Three dead ones found by the check (no yt-dlp run each), then one
    // run through the good one: the URL's one attempt.
    assert_eq!(tried.len(), 4, "{tried:?}");
    for (i, d) in dead.iter().enumerate() {
        assert_eq!(tried[i], (d.clone(), Some("proxy-connect".into())));
        assert_eq!(r["attempts"][i]["detail"]["phase"], "preflight", "{r}");
    }
    assert_eq!(tried[3], (good_url.clone(), None));
    // The dead ones were benched at once (the check is certain): the next
    // process sends the next URL straight to the good one.
    let run = env.download(&[
        "--max-attempts",
        "1",
        "--backend-opt",
        "jitter=none",
        "--proxy",
        &dead[0],
        "--proxy",
        &dead[1],
        "--proxy",
        &dead[2],
        "--proxy",
        &good_url,
        &site.url("/v/pf2.mp4"),
    ]);
    let r = &run.json_lines()[0];
    assert_done(r);
    assert_eq!(attempts(r), [(good_url, None)], "{}", run.dump());
    assert_eq!(site.requests_from(USER_ADDR), 0);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_paced_pair_is_not_handed_out_and_the_url_waits_for_it() {
    require("yt-dlp");
    let site = Site::start(SiteConfig::default());
    let proxy = tinyproxy_with(free_port(), None, Some(EGRESS));
    let env = Env::new();
    // One run per 3 s through the one proxy for this site.
    let config = env.write_config(&format!(
        "proxies = [\"{}\"]\n[plugins.memory.options]\nsite_rate = \"127.0.0.1=1/3s\"\n",
        proxy.url("http")
    ));
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        &site.url("/v/w1.mp4"),
        &site.url("/v/w2.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert_done(r);
        assert_eq!(attempts(r).len(), 1, "{r}");
    }
    // The second URL waited (one JSON event saying until when and why),
    // and its run came a budget window after the first's.
    let waits = events(&run, "waiting");
    assert_eq!(waits.len(), 1, "{}", run.dump());
    assert!(
        waits[0]["reason"].as_str().unwrap().contains("rate budget"),
        "{}",
        waits[0]
    );
    assert!(waits[0]["until_ms"].as_u64().is_some(), "{}", waits[0]);
    let hits = site.hits();
    let first = |id: &str| {
        hits.iter()
            .find(|h| h.path.contains(id))
            .map(|h| h.at)
            .unwrap_or_else(|| panic!("no request for {id}: {hits:?}"))
    };
    // The budget counts handouts; the site sees the runs, which start a
    // yt-dlp start-up later (longer for the first on a loaded machine), so
    // the gap the site sees may be a little under the window.
    let gap = first("w2").saturating_sub(first("w1"));
    assert!(
        gap >= Duration::from_millis(2000),
        "the second run came {gap:?} after the first (budget 1 per 3 s)"
    );
    assert_eq!(site.requests_from(USER_ADDR), 0, "never direct");
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_sites_retry_after_is_honoured_then_the_url_is_downloaded() {
    require("yt-dlp");
    // Two requests per 3 s per address (one download), then 429 with
    // Retry-After: 3 and every request before then refused again.
    let site = Site::start(SiteConfig {
        limit: Some(RateLimit {
            requests: 2,
            window: Duration::from_secs(3),
            retry_after: Duration::from_secs(3),
        }),
        ..SiteConfig::default()
    });
    let proxy = tinyproxy_with(free_port(), None, Some(EGRESS));
    let env = Env::new();
    // Short bans and a short learning window, so that the site's
    // Retry-After is what decides the wait.
    let config = env.write_config(&format!(
        "proxies = [\"{}\"]\nrunner = \"worker\"\n[plugins.memory.options]\nsite_ban_base_ms = 500\nsite_ban_jitter = 0\nlearn_window_ms = 2000\n",
        proxy.url("http")
    ));
    let run = env.download(&[
        "--config",
        config.to_str().unwrap(),
        &site.url("/v/r1.mp4"),
        &site.url("/v/r2.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_done(&results[0]);
    assert_done(&results[1]);
    // r2's first run met the 429; the host heard its Retry-After (worker
    // runner) and waited it out instead of knocking again.
    let tried = attempts(&results[1]);
    assert_eq!(tried[0].1.as_deref(), Some("blocked"), "{tried:?}");
    assert_eq!(
        results[1]["attempts"][0]["detail"]["retry_after_ms"], 3000,
        "{}",
        results[1]
    );
    let waits = events(&run, "waiting");
    assert!(!waits.is_empty(), "{}", run.dump());
    // One 429 in all: nothing knocked during the penalty.
    assert_eq!(site.answered(Answer::TooMany), 1, "{:?}", site.hits());
    assert_eq!(site.requests_from(USER_ADDR), 0, "never direct");
}
