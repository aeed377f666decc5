//! Smoke test of the goodput scenario (`cargo bench --bench goodput`): the
//! smallest mix, ytdlp-host only, default settings. It checks that the
//! pieces fit and that what the host reports agrees with what the site
//! counted, not how fast or how well it does (that is the bench's job).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::common::Env;
use crate::common::harness::pool::USER_ADDR;
use crate::common::harness::scenario::{Scenario, mix};
use crate::common::harness::site::Answer;
use crate::common::harness::{CLIP, require};

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn smallest_mix_outcomes_agree_with_the_site() {
    require("yt-dlp");
    require("tinyproxy");
    // One good proxy; five URLs (one a 404) make nine requests, over the
    // site's six per window: the 429 path is taken.
    let m = mix("one-good").unwrap().with_media(4);
    let sc = Scenario::start(&m, 1);
    let env = Env::new();
    let mut args: Vec<String> = Vec::new();
    for p in sc.pool.urls() {
        args.extend(["--proxy".to_string(), p]);
    }
    args.extend(sc.urls.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = env.download(&args);
    assert!(
        !run.stderr().contains("panicked"),
        "the host panicked:\n{}",
        run.dump()
    );
    let code = run.output.status.code();
    assert!(matches!(code, Some(0) | Some(1)), "{}", run.dump());

    let results = run.json_lines();
    assert_eq!(
        results.len(),
        sc.urls.len(),
        "one result per URL:\n{}",
        run.dump()
    );
    let hits = sc.site.hits();
    let mut direct_attempts = 0;
    for r in &results {
        let url = r["url"].as_str().unwrap();
        let path = url.split_once("127.0.0.1:").unwrap().1;
        let path = &path[path.find('/').unwrap()..];
        let answers: Vec<Answer> = hits
            .iter()
            .filter(|h| h.path == path)
            .map(|h| h.answer)
            .collect();
        direct_attempts += r["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["proxy"].is_null())
            .count();
        match r["status"].as_str() {
            Some("done") => {
                let file = r["file"].as_str().expect("a done URL has its file");
                assert_eq!(
                    std::fs::metadata(file).unwrap().len(),
                    CLIP.len() as u64,
                    "{file}"
                );
                assert!(
                    answers.contains(&Answer::Media),
                    "{url} done but the site never served it: {answers:?}"
                );
            }
            Some("failed") => {
                let kind = r["kind"].as_str();
                let tried = !r["attempts"].as_array().unwrap().is_empty();
                // Without an attempt (no proxy to be had) there is no kind
                // to give; with one, there is.
                assert_eq!(kind.is_some(), tried, "{r}");
                assert!(r["error"].is_string(), "a failure says why: {r}");
                if path.starts_with("/gone/") && answers.contains(&Answer::NotFound) {
                    assert_eq!(kind, Some("content"), "the site said 404: {r}");
                }
            }
            other => panic!("status {other:?}: {r}"),
        }
        if path.starts_with("/gone/") {
            assert_eq!(r["status"], "failed", "a 404 is never done: {r}");
        }
    }
    // The host's word and the site's count agree on direct downloads.
    let direct = sc.site.requests_from(USER_ADDR);
    assert_eq!(
        direct_attempts == 0,
        direct == 0,
        "{direct_attempts} direct attempts, {direct} requests from {USER_ADDR}:\n{}",
        run.dump()
    );
    // Everything else came from the proxy's own egress address.
    let egress: BTreeSet<IpAddr> = sc
        .pool
        .members
        .iter()
        .filter_map(|m| m.egress.map(IpAddr::V4))
        .chain([IpAddr::V4(USER_ADDR)])
        .collect();
    for from in sc.site.tally().keys() {
        assert!(egress.contains(from), "a request from {from}");
    }
    let served = sc.site.answered(Answer::Media);
    let done = results.iter().filter(|r| r["status"] == "done").count();
    assert!(
        served >= done,
        "{served} media answers for {done} downloads"
    );
    assert_ne!(
        sc.pool.members[0].egress,
        Some(Ipv4Addr::LOCALHOST),
        "the proxy has its own address"
    );
}
