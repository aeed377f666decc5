//! `ytdlp-host serve` keeps bounded state and answers honestly: finished
//! downloads are forgotten after `keep_finished`, lists are pages, a burst
//! beyond the queue is refused cleanly, metrics are scraped (read scope),
//! logs can be JSON. Real yt-dlp, real tinyproxy.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Env, harness};
use crate::service::Service;
use harness::{MediaServer, free_port, tinyproxy};
use ytdlp_host_service::auth::{Scope, digest_line};

const WRITE: &str = "state-write-token-0123456789";
const READ: &str = "state-read-token-0123456789";

fn tokens(env: &Env) -> String {
    let path = env.path().join("tokens");
    std::fs::write(
        &path,
        format!(
            "{}\n{}\n",
            digest_line(WRITE, Scope::Write),
            digest_line(READ, Scope::Read)
        ),
    )
    .unwrap();
    format!("tokens_file = \"{}\"\n", path.display())
}

fn ids(page: &Value) -> Vec<String> {
    page["downloads"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// The metrics text, checked to be well-formed OpenMetrics: samples of
/// `name{labels} value`, ending in `# EOF`. Sample name (with labels) ->
/// value.
fn scrape(svc: &Service, auth: &str) -> (String, BTreeMap<String, f64>) {
    let a = svc.call("GET", "/metrics", &[("authorization", auth)], None);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        a.headers
    );
    let text = a.body.as_str().expect("text").to_string();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric.starts_with("ytdlp_host_")
                && metric
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{line}"
        );
        assert!(
            !name.contains('{') || name.ends_with('}'),
            "labels not closed: {line}"
        );
        samples.insert(name.to_string(), value);
    }
    (text, samples)
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_forgets_finished_downloads_after_keep_finished() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        &format!("proxies = [\"{}\"]\n", proxy.url("http")),
        &format!(
            "{}keep_finished = {{ count = 2, age_secs = 3 }}\n",
            tokens(&env)
        ),
        &[],
        Some(WRITE),
    );
    let all: Vec<String> = (0..4)
        .map(|i| {
            let id = svc.submit(&media.url(&format!("/v/keep-{i}.mp4")));
            svc.wait_state(&id, "done");
            id
        })
        .collect();
    let (_, page) = svc.get("/downloads");
    assert_eq!(ids(&page), all[2..], "{page}");
    let (status, body) = svc.get(&format!("/downloads/{}", all[0]));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains(&all[0]));
    let (_, m) = scrape(&svc, &format!("Bearer {READ}"));
    assert_eq!(m["ytdlp_host_finished_kept"], 2.0);
    assert_eq!(m["ytdlp_host_downloads_total{outcome=\"done\"}"], 4.0);
    // And by age.
    std::thread::sleep(Duration::from_millis(3200));
    let (_, page) = svc.get("/downloads");
    assert_eq!(ids(&page), Vec::<String>::new(), "{page}");
    assert_eq!(svc.get(&format!("/downloads/{}", all[3])).0, 404);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_lists_in_pages_and_names_a_bad_query() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        &format!("proxies = [\"{}\"]\n", proxy.url("http")),
        &tokens(&env),
        &[],
        Some(WRITE),
    );
    let all: Vec<String> = (0..5)
        .map(|i| svc.submit(&media.url(&format!("/v/page-{i}.mp4"))))
        .collect();
    for id in &all {
        svc.wait_state(id, "done");
    }
    let mut seen = Vec::new();
    let mut path = "/downloads?limit=2".to_string();
    loop {
        let (status, page) = svc.get(&path);
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/downloads?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, all);
    let (_, page) = svc.get("/downloads?state=done&limit=1000");
    assert_eq!(ids(&page), all);
    let (_, page) = svc.get("/downloads?state=queued");
    assert_eq!(ids(&page), Vec::<String>::new());
    for (query, needle) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("after=nope", "after"),
        ("state=sleeping", "state"),
        ("bogus=1", "bogus"),
    ] {
        let a = svc.call("GET", &format!("/downloads?{query}"), &[], None);
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert!(a.error().contains(needle), "{query}: {}", a.body);
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_takes_or_refuses_a_burst_of_10000_submissions_cleanly() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        &format!("proxies = [\"{}\"]\n", proxy.url("http")),
        &tokens(&env),
        &["--max-concurrent", "2", "--queue-limit", "20"],
        Some(WRITE),
    );
    const THREADS: usize = 8;
    const EACH: usize = 1250;
    let base = svc.base.clone();
    let results: Vec<(Vec<String>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (base, media) = (base.clone(), &media);
                s.spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let (mut accepted, mut refused) = (Vec::new(), 0);
                    for i in 0..EACH {
                        let body = json!({ "url": media.url(&format!("/v/burst-{t}-{i}.mp4")) });
                        let mut r = agent
                            .post(format!("{base}/downloads"))
                            .header("authorization", format!("Bearer {WRITE}"))
                            .header("content-type", "application/json")
                            .send(body.to_string())
                            .unwrap();
                        let status = r.status().as_u16();
                        let retry = r
                            .headers()
                            .get("retry-after")
                            .map(|v| v.to_str().unwrap().to_string());
                        let answer: Value = r.body_mut().read_json().unwrap();
                        match status {
                            201 => accepted.push(answer["id"].as_str().unwrap().to_string()),
                            503 => {
                                assert_eq!(retry.as_deref(), Some("5"), "{answer}");
                                assert!(
                                    answer["error"].as_str().unwrap().contains("queue is full"),
                                    "{answer}"
                                );
                                refused += 1;
                            }
                            s => panic!("an answer neither 201 nor 503: {s} {answer}"),
                        }
                    }
                    (accepted, refused)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let accepted: Vec<String> = results.iter().flat_map(|(a, _)| a.clone()).collect();
    let refused: usize = results.iter().map(|(_, r)| r).sum();
    assert_eq!(accepted.len() + refused, THREADS * EACH);
    assert!(accepted.len() >= 20, "the queue took {}", accepted.len());
    assert!(refused > 0, "the queue never filled");
    // Every accepted download ends, done.
    let until = Instant::now() + Duration::from_secs(300);
    for id in &accepted {
        loop {
            let (status, s) = svc.get(&format!("/downloads/{id}"));
            assert_eq!(status, 200, "{id}: {s}");
            if s["state"] == "done" {
                break;
            }
            assert!(s["state"] != "failed", "{s}");
            assert!(Instant::now() < until, "{id} never finished: {s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let (status, health) = svc.get("/healthz");
    assert_eq!((status, &health["status"]), (200, &json!("ok")));
    let (_, m) = scrape(&svc, &format!("Bearer {READ}"));
    assert_eq!(
        m["ytdlp_host_downloads_total{outcome=\"done\"}"],
        accepted.len() as f64
    );
    assert_eq!(
        m["ytdlp_host_http_requests_total{method=\"POST\",route=\"/downloads\",status=\"503\"}"],
        refused as f64
    );
    assert_eq!(m["ytdlp_host_queue_depth"], 0.0);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_metrics_are_scraped_with_a_read_token_and_name_no_secret() {
    let media = MediaServer::start();
    let good = tinyproxy(None);
    // Nothing listens there: the pre-flight check finds it dead.
    let dead = format!("http://user:s3cret@127.0.0.1:{}", free_port());
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        &format!("proxies = [\"{dead}\", \"{}\"]\n", good.url("http")),
        &tokens(&env),
        &[],
        Some(WRITE),
    );
    for i in 0..2 {
        let id = svc.submit(&media.url(&format!("/v/metrics-{i}.mp4")));
        svc.wait_state(&id, "done");
    }
    let a = svc.call("GET", "/metrics", &[("authorization", "")], None);
    assert_eq!(a.status, 401, "metrics need a token");
    let (text, m) = scrape(&svc, &format!("Bearer {READ}"));
    let id = |u: &str| {
        ytdlp_contract::proxy_url::validate(u)
            .unwrap()
            .identity_id()
    };
    let (dead_id, good_id) = (id(&dead), id(&good.url("http")));
    assert_eq!(
        m["ytdlp_host_downloads_total{outcome=\"done\"}"], 2.0,
        "{text}"
    );
    assert_eq!(
        m["ytdlp_host_download_duration_seconds_count"], 2.0,
        "{text}"
    );
    assert_eq!(m["ytdlp_host_attempts_total{kind=\"ok\"}"], 2.0, "{text}");
    let failures = m
        [&format!("ytdlp_host_proxy_failures_total{{proxy=\"{dead_id}\",kind=\"proxy-connect\"}}")];
    assert!(failures >= 1.0, "{text}");
    assert_eq!(
        m["ytdlp_host_attempts_total{kind=\"proxy-connect\"}"], failures,
        "{text}"
    );
    assert_eq!(
        m[&format!("ytdlp_host_proxy_state{{proxy=\"{good_id}\",state=\"active\"}}")],
        1.0,
        "{text}"
    );
    assert!(m.contains_key(&format!(
        "ytdlp_host_proxy_state{{proxy=\"{dead_id}\",state=\"disabled\"}}"
    )));
    assert!(
        m["ytdlp_host_plugin_call_duration_seconds_count{plugin=\"memory\",call=\"get_proxy\"}"]
            >= 3.0,
        "{text}"
    );
    assert!(
        m.contains_key(
            "ytdlp_host_plugin_call_duration_seconds_count{plugin=\"memory\",call=\"report_failure\"}"
        ),
        "{text}"
    );
    assert_eq!(m["ytdlp_host_queue_depth"], 0.0);
    assert_eq!(m["ytdlp_host_workers_busy"], 0.0);
    for secret in ["s3cret", "user", "127.0.0.1", "metrics-0", ".mp4"] {
        assert!(!text.contains(secret), "`{secret}` in the metrics:\n{text}");
    }
    // The stats rows carry the same ids.
    let (_, stats) = svc.get("/proxies/stats");
    let row_ids: Vec<&str> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        row_ids.contains(&dead_id.as_str()) && row_ids.contains(&good_id.as_str()),
        "{stats}"
    );
    assert!(!stats.to_string().contains("s3cret"), "{stats}");
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_logs_json_one_object_per_line() {
    let env = Env::new();
    let mut svc = Service::start(&env, "", &["--log-format", "json"]);
    svc.signal(libc::SIGTERM);
    assert_eq!(svc.exit(Duration::from_secs(15)), Some(0), "{}", svc.log());
    let log = svc.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("no token")),
        "{log}"
    );
}
