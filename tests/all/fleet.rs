//! A fleet of `serve` hosts on one Redis (`[store] url`): they share the
//! queue (a Redis stream with one consumer group), so a download posted to
//! any host runs on one of them, once, and is visible from all. Each host
//! is a separate process with its own home, state and download directory
//! (as separate machines would be); one real redis-server, real yt-dlp,
//! real tinyproxy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Env, harness};
use crate::service::Service;
use harness::{MediaServer, free_port, redis, redis_durable, tinyproxy};

/// One host of the fleet, in an env of its own.
struct Member {
    env: Env,
    svc: Service,
}

fn member(proxy: &str, redis_port: u16, lease_secs: u64, concurrent: &str) -> Member {
    let env = Env::new();
    let config =
        format!("proxies = [\"{proxy}\"]\n[store]\nurl = \"redis://127.0.0.1:{redis_port}\"\n");
    let svc = Service::start_with(
        &env,
        &config,
        &format!("lease_secs = {lease_secs}\n"),
        &["--max-concurrent", concurrent],
        None,
    );
    Member { env, svc }
}

/// The downloads in `state` as `svc` lists them (every host's).
fn listed(svc: &Service, state: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = svc.get(&format!("/downloads?state={state}&limit=1000{after}"));
        assert_eq!(status, 200, "{page}");
        out.extend(page["downloads"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = format!("&after={n}"),
            None => return out,
        }
    }
}

/// Waits until `n` downloads are final as `svc` lists them.
fn wait_all_final(svc: &Service, n: usize, within: Duration) -> Vec<Value> {
    let until = Instant::now() + within;
    loop {
        let all = listed(svc, "done")
            .into_iter()
            .chain(listed(svc, "failed"))
            .chain(listed(svc, "cancelled"))
            .collect::<Vec<_>>();
        if all.len() >= n {
            return all;
        }
        assert!(
            Instant::now() < until,
            "{} of {n} downloads ended\n{}",
            all.len(),
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// How many times the media server was asked for each path.
fn requests_per_path(media: &MediaServer) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for p in media.paths() {
        *n.entry(p).or_default() += 1;
    }
    n
}

fn mp4_files(members: &[&Member]) -> usize {
    members
        .iter()
        .map(|m| {
            std::fs::read_dir(m.env.out_dir())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "mp4"))
                        .count()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// 300 short downloads posted round-robin to three hosts: every one ends
/// done, each URL fetched as often as one download fetches it (none ran
/// twice), and a download posted to one host is visible from the others.
#[test]
#[ignore = "needs yt-dlp, tinyproxy and redis-server (bash .ci/run installs them)"]
fn three_hosts_share_300_downloads_each_done_once() {
    let redis = redis();
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let hosts: Vec<Member> = (0..3)
        .map(|_| member(&proxy.url("http"), redis.port, 30, "3"))
        .collect();
    // How often one download asks for its URL (yt-dlp's generic extractor
    // may look before it fetches).
    let probe = hosts[0].svc.submit(&media.url("/v/probe.mp4"));
    let s = hosts[1].svc.wait_state(&probe, "done");
    assert_eq!(s["id"], probe.as_str(), "{s}");
    let per_download = requests_per_path(&media)["/v/probe.mp4"];
    assert!((1..=2).contains(&per_download), "{per_download}");
    eprintln!("one download asks for its URL {per_download} time(s)");

    let started = Instant::now();
    let ids: Vec<String> = (0..300)
        .map(|i| hosts[i % 3].svc.submit(&media.url(&format!("/v/f{i}.mp4"))))
        .collect();
    // Posted on A, seen on B and C.
    for h in &hosts[1..] {
        let (status, s) = h.svc.get(&format!("/downloads/{}", ids[0]));
        assert_eq!(status, 200, "{s}");
        assert_eq!(s["url"], media.url("/v/f0.mp4"));
    }
    let ids_set: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(ids_set.len(), 300, "ids are unique across hosts");

    let ended = wait_all_final(&hosts[2].svc, 301, Duration::from_secs(600));
    let took = started.elapsed();
    let done: Vec<&Value> = ended.iter().filter(|s| s["state"] == "done").collect();
    assert_eq!(done.len(), 301, "{ended:?}");
    for id in &ids {
        assert!(done.iter().any(|s| s["id"] == id.as_str()), "{id} not done");
    }
    let counts = requests_per_path(&media);
    for i in 0..300 {
        let path = format!("/v/f{i}.mp4");
        assert_eq!(counts.get(&path), Some(&per_download), "{path}");
    }
    assert_eq!(mp4_files(&hosts.iter().collect::<Vec<_>>()), 301);
    // Each host ran some: the queue is shared, not per host.
    for h in &hosts {
        let files = std::fs::read_dir(h.env.out_dir()).unwrap().count();
        assert!(files > 0, "a host ran nothing\n{}", h.svc.log());
    }
    eprintln!("300 downloads over 3 hosts in {took:?}");
}

/// A host killed (SIGKILL) while it runs a download: after the lease
/// another host takes it over and it ends done there, once.
#[test]
#[ignore = "needs yt-dlp, tinyproxy and redis-server (bash .ci/run installs them)"]
fn a_download_of_a_killed_host_finishes_on_another_once() {
    let redis = redis();
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    // A alone takes the slow one; B joins while it runs.
    let mut a = member(&proxy.url("http"), redis.port, 2, "2");
    let id = a.svc.submit(&media.url("/slow/8000/k.mp4"));
    a.svc.wait_state(&id, "running");
    let b = member(&proxy.url("http"), redis.port, 2, "2");
    // B sees it running (on A).
    let (_, s) = b.svc.get(&format!("/downloads/{id}"));
    assert_eq!(s["state"], "running", "{s}");
    a.svc.signal(libc::SIGKILL);
    assert_eq!(a.svc.exit(Duration::from_secs(10)), None, "killed");

    let until = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let (_, s) = b.svc.get(&format!("/downloads/{id}"));
        if s["state"] == "done" || s["state"] == "failed" {
            break s;
        }
        assert!(Instant::now() < until, "never ended: {s}\n{}", b.svc.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(s["state"], "done", "{s}\n{}", b.svc.log());
    let file = s["result"]["file"].as_str().unwrap();
    assert!(
        std::path::Path::new(file).starts_with(b.env.out_dir()),
        "{file}"
    );
    assert!(
        b.svc.log().contains("took over download"),
        "{}",
        b.svc.log()
    );
    // Once on B, and not again after: A's cut-short run and B's, each
    // at most the 2 requests one download makes (a look, then the fetch).
    std::thread::sleep(Duration::from_secs(5));
    let counts = requests_per_path(&media);
    assert!(
        counts["/slow/8000/k.mp4"] <= 4,
        "fetched {} times",
        counts["/slow/8000/k.mp4"]
    );
    assert_eq!(mp4_files(&[&b]), 1);
    assert_eq!(mp4_files(&[&a]), 0, "A was killed before it finished");
    let (_, s) = b.svc.get(&format!("/downloads/{id}"));
    assert_eq!(s["state"], "done");
}

/// Redis stopped for 10 s mid-run: hosts say the store is unavailable,
/// refuse new downloads (503), keep running theirs, and when it is back
/// every acknowledged download ends done, once.
#[test]
#[ignore = "needs yt-dlp, tinyproxy and redis-server (bash .ci/run installs them)"]
fn a_redis_outage_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut redis = redis_durable(port, data.path());
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let hosts: Vec<Member> = (0..2)
        .map(|_| member(&proxy.url("http"), port, 30, "2"))
        .collect();
    let probe = hosts[0].svc.submit(&media.url("/v/probe.mp4"));
    hosts[1].svc.wait_state(&probe, "done");
    let per_download = requests_per_path(&media)["/v/probe.mp4"];
    let ids: Vec<String> = (0..30)
        .map(|i| {
            let path = if i % 3 == 0 {
                format!("/slow/3000/o{i}.mp4")
            } else {
                format!("/v/o{i}.mp4")
            };
            hosts[i % 2].svc.submit(&media.url(&path))
        })
        .collect();
    // Some are running when Redis goes.
    hosts[0].svc.wait_state(&ids[0], "running");
    redis.stop();
    for h in &hosts {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, health) = h.svc.get("/healthz");
            if health["store"] == "unavailable" {
                break;
            }
            // A POST is what notices first if nothing else did.
            let (status, body) = h
                .svc
                .post("/downloads", r#"{"url":"http://127.0.0.1:1/v/x.mp4"}"#);
            assert_eq!(status, 503, "{body}");
            assert!(Instant::now() < until, "{health}\n{}", h.svc.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        let (status, body) = h
            .svc
            .post("/downloads", r#"{"url":"http://127.0.0.1:1/v/x.mp4"}"#);
        assert_eq!(status, 503, "{body}");
        assert!(
            body["error"].as_str().unwrap_or("").contains("not queued"),
            "{body}"
        );
    }
    std::thread::sleep(Duration::from_secs(10));
    let _redis = redis_durable(port, data.path());
    let ended = wait_all_final(&hosts[1].svc, 31, Duration::from_secs(300));
    for id in &ids {
        let s = ended
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(s["state"], "done", "{s}");
    }
    for h in &hosts {
        let (_, health) = h.svc.get("/healthz");
        assert_eq!(health["store"], "ok", "{health}");
    }
    assert_eq!(mp4_files(&hosts.iter().collect::<Vec<_>>()), 31);
    // Each once: the lease (30 s) outlasts the outage, so nothing running
    // was taken over.
    let counts = requests_per_path(&media);
    for (path, n) in &counts {
        assert_eq!(*n, per_download, "{path}: {counts:?}");
    }
    assert_eq!(counts.len(), 31);
}

#[cfg(feature = "bench")]
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// BENCHMARKS.md "Fleet on Redis": `n` short downloads over 1, 2 and 3
/// hosts (3 at once each), median of 3 runs; and the POST latency of one
/// host on SQLite and on Redis.
#[cfg(feature = "bench")]
#[test]
#[ignore = "a benchmark (BENCHMARKS.md); needs yt-dlp, tinyproxy and redis-server"]
fn bench_fleet_throughput_and_submit_latency() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let n = 120;
    for hosts_n in 1..=3 {
        let mut runs = Vec::new();
        for run in 0..3 {
            let redis = redis();
            let hosts: Vec<Member> = (0..hosts_n)
                .map(|_| member(&proxy.url("http"), redis.port, 30, "3"))
                .collect();
            let started = Instant::now();
            for i in 0..n {
                hosts[i % hosts_n]
                    .svc
                    .submit(&media.url(&format!("/v/b{hosts_n}-{run}-{i}.mp4")));
            }
            let ended = wait_all_final(&hosts[0].svc, n, Duration::from_secs(600));
            runs.push(started.elapsed());
            assert!(ended.iter().all(|s| s["state"] == "done"));
        }
        let m = median(runs.clone());
        eprintln!(
            "BENCH fleet hosts={hosts_n} n={n}: median {:.1} s ({:.1} downloads/s); runs {runs:?}",
            m.as_secs_f64(),
            n as f64 / m.as_secs_f64()
        );
    }
    // POST latency: one host, one slot, the queue filling behind a slow
    // download (so POSTs are measured, not downloads).
    let redis = redis();
    for (what, store) in [
        ("sqlite", String::new()),
        (
            "redis",
            format!("[store]\nurl = \"redis://127.0.0.1:{}\"\n", redis.port),
        ),
    ] {
        let env = Env::new();
        let svc = Service::start(
            &env,
            &format!("proxies = [\"{}\"]\n{store}", proxy.url("http")),
            &["--max-concurrent", "1"],
        );
        let mut took = Vec::new();
        for i in 0..200 {
            let t = Instant::now();
            svc.submit(&media.url(&format!("/slow/60000/l{what}{i}.mp4")));
            took.push(t.elapsed());
        }
        eprintln!(
            "BENCH submit {what}: median {:?}, p90 {:?}",
            median(took.clone()),
            {
                took.sort();
                took[took.len() * 9 / 10]
            }
        );
    }
}
