//! The scripts against a real redis-server (started here on a free loopback
//! port), natively: `cargo test --release -p ytdlp-plugin-redis`.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::settings::Strategy;
use ytdlp_plugin_sdk::Site;

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        RedisServer::on(port)
    }

    fn on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (.ci/run installs it)");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < until, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        RedisServer { child, port }
    }

    fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let mut opts = vec![(
            "url".to_string(),
            format!("redis://127.0.0.1:{}", self.port),
        )];
        opts.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::parse(&Settings::default(), &opts).unwrap()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Proxy-list lines as `add-proxies` gets them.
fn urls(list: &[&str]) -> Vec<ProxyEntry> {
    list.iter().map(|s| parse_entry(s).unwrap()).collect()
}

fn id(url: &str) -> String {
    parse_entry(url).unwrap().url.identity_id()
}

fn pick(store: &mut Store, s: &Settings) -> String {
    pick_for(store, s, &Request::default())
}

fn pick_for(store: &mut Store, s: &Settings, r: &Request) -> String {
    store.get_proxy(s, r).unwrap().unwrap().url
}

fn fail(store: &mut Store, s: &Settings, url: &str, kind: Kind) -> Result<Reported, String> {
    store.report_failure(s, &id(url), kind, "", None)
}

fn stat(store: &mut Store, s: &Settings, url: &str) -> Stat {
    store
        .stats(s)
        .unwrap()
        .into_iter()
        .find(|r| r.proxy.url == url)
        .unwrap_or_else(|| panic!("no stats for {url}"))
}

fn site(domain: &str) -> Request {
    Request {
        site: Site {
            host: format!("www.{domain}"),
            domain: domain.to_string(),
        },
        ..Request::default()
    }
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn round_robin_is_one_ring_shared_by_every_host() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let (mut a, mut b) = (Store::new(), Store::new());
    assert_eq!(
        a.add(&s, &urls(&["http://a:1", "http://b:1", "http://c:1"]))
            .unwrap(),
        3
    );
    assert_eq!(a.add(&s, &urls(&["http://a:1", "http://d:1"])).unwrap(), 1);
    let got: Vec<String> = (0..5)
        .map(|i| {
            if i % 2 == 0 {
                pick(&mut a, &s)
            } else {
                pick(&mut b, &s)
            }
        })
        .collect();
    assert_eq!(
        got,
        [
            "http://a:1",
            "http://b:1",
            "http://c:1",
            "http://d:1",
            "http://a:1"
        ]
    );
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn proxy_faults_take_a_proxy_out_for_the_cooldown_and_others_see_it() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("cooldown_ms", "600000")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://bad:1", "http://good:1"]))
        .unwrap();
    assert_eq!(
        fail(&mut a, &s, "http://bad:1", Kind::ProxyConnect),
        Ok(Reported::Counted)
    );
    fail(&mut a, &s, "http://bad:1", Kind::ProxyTimeout).unwrap();
    assert_eq!(
        fail(&mut b, &s, "http://bad:1", Kind::ProxyAuth),
        Ok(Reported::TookOut)
    );
    for _ in 0..4 {
        assert_eq!(pick(&mut a, &s), "http://good:1");
        assert_eq!(pick(&mut b, &s), "http://good:1");
    }
    let st = stat(&mut b, &s, "http://bad:1");
    assert!(matches!(st.state, ProxyState::CoolingDown(_)), "{st:?}");
    assert_eq!((st.failures, st.consecutive_failures), (3, 3));
    assert!(
        st.extra
            .contains(&("times-taken-out".to_string(), "1".to_string()))
    );
    // With the good one gone too, the answer says when the first is back.
    for _ in 0..3 {
        fail(&mut a, &s, "http://good:1", Kind::ProxyConnect).unwrap();
    }
    let np = a.get_proxy(&s, &Request::default()).unwrap().unwrap_err();
    assert!(np.message.contains("cooling down"), "{np:?}");
    assert!(np.retry_at_ms.is_some(), "{np:?}");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn only_consecutive_proxy_faults_count() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    for _ in 0..10 {
        for kind in [Kind::Content, Kind::Blocked, Kind::Host, Kind::Unknown] {
            fail(&mut st, &s, "http://a:1", kind).unwrap();
        }
    }
    fail(&mut st, &s, "http://a:1", Kind::ProxyConnect).unwrap();
    fail(&mut st, &s, "http://a:1", Kind::ProxyConnect).unwrap();
    st.report_success(&s, &id("http://a:1")).unwrap();
    fail(&mut st, &s, "http://a:1", Kind::ProxyConnect).unwrap();
    let row = stat(&mut st, &s, "http://a:1");
    assert_eq!(row.state, ProxyState::Active);
    assert_eq!(
        (row.successes, row.failures, row.consecutive_failures),
        (1, 43, 1)
    );
    assert!(
        row.extra
            .contains(&("failures.content".to_string(), "10".to_string()))
    );
    assert_eq!(pick(&mut st, &s), "http://a:1");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn after_the_cooldown_a_proxy_is_back_on_probation() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("cooldown_ms", "150"), ("failure_threshold", "2")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    for _ in 0..2 {
        fail(&mut st, &s, "http://a:1", Kind::ProxyConnect).unwrap();
    }
    assert!(st.get_proxy(&s, &Request::default()).unwrap().is_err());
    let until = Instant::now() + Duration::from_secs(5);
    while st.get_proxy(&s, &Request::default()).unwrap().is_err() {
        assert!(Instant::now() < until, "never came back");
        std::thread::sleep(Duration::from_millis(20));
    }
    let row = stat(&mut st, &s, "http://a:1");
    assert_eq!(row.state, ProxyState::Active);
    assert!(
        row.extra
            .contains(&("probation".to_string(), "yes".to_string()))
    );
    // One more fault on probation: out again at once.
    assert_eq!(
        fail(&mut st, &s, "http://a:1", Kind::ProxyTimeout),
        Ok(Reported::TookOut)
    );
    assert!(st.get_proxy(&s, &Request::default()).unwrap().is_err());
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn cooldown_zero_disables_until_removed_and_added_again() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("cooldown_ms", "0"), ("failure_threshold", "1")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    fail(&mut st, &s, "http://a:1", Kind::ProxyAuth).unwrap();
    assert_eq!(stat(&mut st, &s, "http://a:1").state, ProxyState::Disabled);
    let np = st.get_proxy(&s, &Request::default()).unwrap().unwrap_err();
    assert!(np.message.contains("disabled"), "{np:?}");
    assert_eq!(np.retry_at_ms, None);
    assert_eq!(
        st.remove(&s, &[id("http://a:1"), "http://x:1".to_string()]),
        Ok(1)
    );
    assert_eq!(st.add(&s, &urls(&["http://a:1"])), Ok(1));
    let row = stat(&mut st, &s, "http://a:1");
    assert_eq!((row.state, row.failures), (ProxyState::Active, 0));
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn healthiest_prefers_the_best_ratio_then_the_least_recently_used() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("strategy", "healthiest")]);
    assert_eq!(s.strategy, Strategy::Healthiest);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1", "http://b:1", "http://c:1"]))
        .unwrap();
    // Equal health: least recently used first, so each once.
    let mut first: Vec<String> = (0..3).map(|_| pick(&mut st, &s)).collect();
    first.sort();
    assert_eq!(first, ["http://a:1", "http://b:1", "http://c:1"]);
    st.report_success(&s, &id("http://b:1")).unwrap();
    fail(&mut st, &s, "http://c:1", Kind::ProxyConnect).unwrap();
    // Non-fault failures do not lower the score.
    fail(&mut st, &s, "http://b:1", Kind::Content).unwrap();
    for _ in 0..3 {
        assert_eq!(pick(&mut st, &s), "http://b:1");
    }
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn reports_for_removed_proxies_are_ignored() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let mut st = Store::new();
    assert_eq!(
        st.report_success(&s, &id("http://gone:1")),
        Ok(Reported::Unknown)
    );
    assert!(st.stats(&s).unwrap().is_empty());
    let np = st.get_proxy(&s, &Request::default()).unwrap().unwrap_err();
    assert!(np.message.contains("no proxies"), "{np:?}");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn pools_are_separate_namespaces() {
    let redis = RedisServer::start();
    let eu = redis.settings(&[("pool", "eu")]);
    let us = redis.settings(&[("pool", "us")]);
    let mut st = Store::new();
    st.add(&eu, &urls(&["http://eu:1"])).unwrap();
    st.add(&us, &urls(&["http://us:1"])).unwrap();
    assert_eq!(pick(&mut st, &eu), "http://eu:1");
    assert_eq!(pick(&mut st, &us), "http://us:1");
    assert_eq!(st.stats(&eu).unwrap().len(), 1);
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn concurrent_reports_are_all_counted() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    Store::new().add(&s, &urls(&["http://a:1"])).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut st = Store::new();
                for _ in 0..500 {
                    if i % 2 == 0 {
                        st.report_success(&s, &id("http://a:1")).unwrap();
                    } else {
                        st.report_failure(
                            &s,
                            &id("http://a:1"),
                            Kind::Blocked,
                            "site.example",
                            None,
                        )
                        .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let row = stat(&mut Store::new(), &s, "http://a:1");
    assert_eq!((row.successes, row.failures), (1000, 1000));
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn redis_down_is_an_error_and_redis_back_works_without_a_new_store() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let s = redis.settings(&[]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    assert!(st.is_connected());
    redis.stop();
    let err = st.get_proxy(&s, &Request::default()).unwrap_err();
    assert!(
        err.contains(&format!("Redis at redis://127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!st.is_connected());
    let err = st.report_success(&s, &id("http://a:1")).unwrap_err();
    assert!(err.ends_with("is unreachable: connection refused"), "{err}");
    // Back on the same port (empty: no persistence): usable at once.
    let _redis = RedisServer::on(port);
    st.add(&s, &urls(&["http://b:1"])).unwrap();
    assert_eq!(pick(&mut st, &s), "http://b:1");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_restart_behind_an_open_connection_is_invisible() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let s = redis.settings(&[]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    redis.stop();
    let _redis = RedisServer::on(port);
    // The old connection is dead; the call reconnects and succeeds.
    assert_eq!(st.add(&s, &urls(&["http://a:1"])), Ok(1));
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_hung_redis_times_out_quickly() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("redis_timeout_ms", "100")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    let pid = redis.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let err = st.get_proxy(&s, &Request::default()).unwrap_err();
    let took = started.elapsed();
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(err.contains("no answer within 100 ms"), "{err}");
    assert!(took < Duration::from_millis(400), "{took:?}");
    // A new connection to a hung Redis: bounded the same way.
    let mut fresh = Store::new();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    let err = fresh.get_proxy(&s, &Request::default()).unwrap_err();
    let took = started.elapsed();
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(err.contains("no answer within 100 ms"), "{err}");
    assert!(took < Duration::from_millis(400), "{took:?}");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_proxy_is_kept_by_id_with_its_metadata() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("timeout_ms", "7000")]);
    let mut st = Store::new();
    let line = "socks5h://u:s3cret@10.0.0.1:1080;region=de;tags=residential,vendor-a;tier=2";
    assert_eq!(st.add(&s, &urls(&[line])), Ok(1));
    let p = st.get_proxy(&s, &Request::default()).unwrap().unwrap();
    assert_eq!(p.id, id("socks5h://u:other@10.0.0.1:1080"));
    assert_eq!(p.url, "socks5h://u:s3cret@10.0.0.1:1080");
    assert_eq!(p.meta.region.as_deref(), Some("DE"));
    assert_eq!(p.meta.tags, ["residential", "vendor-a"]);
    assert_eq!((p.meta.tier, p.timeout_ms), (2, 7000));
    assert!(p.check().is_ok());
    let row = &st.stats(&s).unwrap()[0];
    assert_eq!(row.proxy, p);
    // A new password for the same proxy: not new, the same place and
    // health, the new URL and metadata.
    st.report_success(&s, &p.id).unwrap();
    assert_eq!(
        st.add(&s, &urls(&["socks5h://u:n3w@10.0.0.1:1080;tier=1"])),
        Ok(0)
    );
    let row = &st.stats(&s).unwrap()[0];
    assert_eq!(row.proxy.url, "socks5h://u:n3w@10.0.0.1:1080");
    assert_eq!(
        (row.proxy.meta.region.clone(), row.proxy.meta.tier),
        (None, 1)
    );
    assert_eq!(row.successes, 1);
    // Removal by URL names the same proxy.
    assert_eq!(
        st.remove(&s, &["socks5h://u:n3w@10.0.0.1:1080".to_string()]),
        Ok(1)
    );
    assert!(st.stats(&s).unwrap().is_empty());
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn only_what_the_request_admits_is_handed_out_cheapest_tier_first() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let mut st = Store::new();
    st.add(
        &s,
        &urls(&[
            "http://dear-de:1;region=DE;tier=2",
            "http://fr:1;region=FR",
            "http://cheap-de:1;region=DE-BY;tags=residential",
            "http://us:1;region=US;tier=1",
        ]),
    )
    .unwrap();
    let wanting = |want: Wanted| Request {
        want,
        ..site("video.example")
    };
    let de = Wanted {
        regions: vec!["DE".into()],
        ..Wanted::default()
    };
    for _ in 0..4 {
        assert_eq!(
            pick_for(&mut st, &s, &wanting(de.clone())),
            "http://cheap-de:1"
        );
    }
    let floor = Wanted {
        min_tier: 1,
        ..de.clone()
    };
    assert_eq!(pick_for(&mut st, &s, &wanting(floor)), "http://dear-de:1");
    let tagged = Wanted {
        tags: vec!["residential".into()],
        ..Wanted::default()
    };
    assert_eq!(pick_for(&mut st, &s, &wanting(tagged)), "http://cheap-de:1");
    let away = Wanted {
        avoid_regions: vec!["DE".into(), "FR".into()],
        ..Wanted::default()
    };
    assert_eq!(pick_for(&mut st, &s, &wanting(away)), "http://us:1");
    // Without a wish: tier 0 only (FR and the cheap DE), in rotation.
    let mut any: Vec<String> = (0..4).map(|_| pick(&mut st, &s)).collect();
    any.sort();
    any.dedup();
    assert_eq!(any, ["http://cheap-de:1", "http://fr:1"]);
    let np = st
        .get_proxy(
            &s,
            &wanting(Wanted {
                regions: vec!["JP".into()],
                ..Wanted::default()
            }),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(
        np.message,
        "pool `default`: no proxy in region JP (4 proxies, regions: DE, DE-BY, FR, US)"
    );
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn blocked_bans_a_proxy_for_that_domain_for_every_host() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_ban_base_ms", "600000")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://a:1", "http://b:1"])).unwrap();
    // Two refusals, the URLs unknown (each counts as a distinct one): the
    // second is the evidence that bans.
    for _ in 0..2 {
        let r = a
            .report_failure(&s, &id("http://a:1"), Kind::Blocked, "video.example", None)
            .unwrap();
        assert_eq!(r, Reported::Counted);
    }
    for _ in 0..4 {
        assert_eq!(pick_for(&mut b, &s, &site("video.example")), "http://b:1");
    }
    // Other sites still get it; it is not taken out.
    let mut other: Vec<String> = (0..2)
        .map(|_| pick_for(&mut b, &s, &site("other.example")))
        .collect();
    other.sort();
    assert_eq!(other, ["http://a:1", "http://b:1"]);
    let row = stat(&mut b, &s, "http://a:1");
    assert_eq!(row.state, ProxyState::Active);
    assert!(
        row.extra.iter().any(|(k, _)| k == "banned.video.example"),
        "{row:?}"
    );
    // With both banned there, the answer says so and when the first is back.
    b.report_failure(
        &s,
        &id("http://b:1"),
        Kind::Blocked,
        "video.example",
        Some(900_000),
    )
    .unwrap();
    let np = b
        .get_proxy(&s, &site("video.example"))
        .unwrap()
        .unwrap_err();
    assert!(np.message.contains("banned for video.example"), "{np:?}");
    assert!(np.retry_at_ms.is_some());
    // geo-restricted is counted by kind, and neither bans nor takes out.
    for _ in 0..5 {
        a.report_failure(
            &s,
            &id("http://a:1"),
            Kind::GeoRestricted,
            "geo.example",
            None,
        )
        .unwrap();
    }
    let row = stat(&mut a, &s, "http://a:1");
    assert_eq!(
        (row.state, row.consecutive_failures),
        (ProxyState::Active, 0)
    );
    assert!(
        row.extra
            .contains(&("failures.geo-restricted".into(), "5".into()))
    );
    assert_eq!(pick_for(&mut a, &s, &site("geo.example")), "http://a:1");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn avoided_ids_only_when_nothing_else_is_left_and_sticky_keys_stay() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1", "http://b:1", "http://c:1"]))
        .unwrap();
    let mut r = site("s.example");
    r.avoid = vec![id("http://a:1"), id("http://b:1")];
    for _ in 0..3 {
        assert_eq!(pick_for(&mut st, &s, &r), "http://c:1");
    }
    st.report_failure(
        &s,
        &id("http://c:1"),
        Kind::Blocked,
        "s.example",
        Some(60_000),
    )
    .unwrap();
    let got = pick_for(&mut st, &s, &r);
    assert!(got == "http://a:1" || got == "http://b:1", "{got}");
    // A sticky key keeps its proxy across hosts while it qualifies.
    let sticky = Request {
        sticky_key: Some("session-1".into()),
        ..site("t.example")
    };
    let first = pick_for(&mut st, &s, &sticky);
    let mut other = Store::new();
    for _ in 0..4 {
        assert_eq!(pick_for(&mut other, &s, &sticky), first);
    }
    let avoiding = Request {
        avoid: vec![id(&first)],
        ..sticky.clone()
    };
    let moved = pick_for(&mut st, &s, &avoiding);
    assert_ne!(moved, first);
    assert_eq!(pick_for(&mut other, &s, &sticky), moved);
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_pool_in_the_01_layout_moves_to_ids_with_its_health() {
    let redis = RedisServer::start();
    let s = redis.settings(&[]);
    let mut con = redis::Client::open(s.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    // As a 0.1 plugin left it: URLs in the list, hashes keyed by URL.
    let list = s.list_key();
    for url in [
        "http://u:one@a:1",
        "http://b:1",
        "http://u:two@a:1",
        "ftp://h:21",
    ] {
        let _: () = redis::cmd("RPUSH")
            .arg(&list)
            .arg(url)
            .query(&mut con)
            .unwrap();
    }
    let _: () = redis::cmd("HSET")
        .arg(s.proxy_key("http://u:one@a:1"))
        .arg("successes")
        .arg(5)
        .arg("f:blocked")
        .arg(2)
        .query(&mut con)
        .unwrap();
    let mut st = Store::new();
    let rows = st.stats(&s).unwrap();
    let got: Vec<(String, String, u64)> = rows
        .iter()
        .map(|r| (r.proxy.id.clone(), r.proxy.url.clone(), r.successes))
        .collect();
    let mut want = vec![
        (id("http://u:one@a:1"), "http://u:one@a:1".to_string(), 5),
        (id("http://b:1"), "http://b:1".to_string(), 0),
    ];
    want.sort();
    assert_eq!(got, want);
    let members: Vec<String> = redis::cmd("LRANGE")
        .arg(&list)
        .arg(0)
        .arg(-1)
        .query(&mut con)
        .unwrap();
    assert_eq!(members, [id("http://u:one@a:1"), id("http://b:1")]);
    let old: bool = redis::cmd("EXISTS")
        .arg(s.proxy_key("http://u:one@a:1"))
        .query(&mut con)
        .unwrap();
    assert!(!old);
    assert_eq!(pick(&mut st, &s), "http://u:one@a:1");
}

/// A plain connection to the test's Redis, for looking at its keys.
fn con(s: &Settings) -> redis::Connection {
    redis::Client::open(s.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Redis's clock, ms (the scripts' clock).
fn redis_now(c: &mut redis::Connection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(c).unwrap();
    secs * 1000 + micros / 1000
}

/// Waits until Redis's clock reaches `at` (ms).
fn wait_until(c: &mut redis::Connection, at: u64) {
    let give_up = Instant::now() + Duration::from_secs(10);
    while redis_now(c) < at {
        assert!(Instant::now() < give_up, "Redis's clock never reached {at}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A blocked report through `url`'s proxy at `domain`, refusing `page`.
fn refuse(
    st: &mut Store,
    s: &Settings,
    url: &str,
    domain: &str,
    page: &str,
    retry_after_ms: Option<u64>,
) {
    let info = FailureInfo {
        url: page,
        retry_after_ms,
        ..FailureInfo::default()
    };
    let r = st
        .report_failure_with(s, &id(url), Kind::Blocked, domain, &info)
        .unwrap();
    assert_eq!(r, Reported::Counted);
}

/// The pair's ban as stored: (banned until, ms, or 0; how long the last
/// ban is, measured from the refusal that set it, or 0).
fn ban_of(c: &mut redis::Connection, s: &Settings, url: &str, domain: &str) -> (u64, u64) {
    let until: Option<u64> = redis::cmd("HGET")
        .arg(s.site_key(domain))
        .arg(id(url))
        .query(c)
        .unwrap();
    let strike: Option<String> = redis::cmd("HGET")
        .arg(s.strike_key(domain))
        .arg(id(url))
        .query(c)
        .unwrap();
    let at: u64 = strike
        .as_deref()
        .and_then(|v| v.split(':').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let until = until.unwrap_or(0);
    (until, until.saturating_sub(at))
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn pacing_keeps_a_pair_to_n_per_window_across_hosts_and_says_when_it_frees() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_rate", "Paced.example=2/s")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://a:1"])).unwrap();
    let paced = site("paced.example");
    // Two hosts share the budget: two handouts (300 ms apart), then none.
    let mut c = con(&s);
    let first = redis_now(&mut c);
    assert_eq!(pick_for(&mut a, &s, &paced), "http://a:1");
    wait_until(&mut c, first + 300);
    assert_eq!(pick_for(&mut b, &s, &paced), "http://a:1");
    let np = a.get_proxy(&s, &paced).unwrap().unwrap_err();
    assert_eq!(
        np.message,
        "all 1 usable proxies of pool `default` are at their rate budget for paced.example (2 per 1 s)"
    );
    // Free again exactly when its oldest counted handout leaves the window.
    let times: Vec<(String, u64)> = redis::cmd("ZRANGE")
        .arg(format!(
            "{}{}",
            s.pace_key_prefix("paced.example"),
            id("http://a:1")
        ))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut c)
        .unwrap();
    assert_eq!(times.len(), 2, "{times:?}");
    assert_eq!(np.retry_at_ms, Some(times[0].1 + 1_000));
    // Other sites are not paced, and handing out there costs nothing.
    for _ in 0..5 {
        assert_eq!(pick_for(&mut b, &s, &site("other.example")), "http://a:1");
    }
    assert!(b.get_proxy(&s, &paced).unwrap().is_err());
    wait_until(&mut c, times[0].1 + 1_000);
    assert_eq!(pick_for(&mut b, &s, &paced), "http://a:1");
    let np = a.get_proxy(&s, &paced).unwrap().unwrap_err();
    assert_eq!(np.retry_at_ms, Some(times[1].1 + 1_000));
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn concurrent_hosts_never_exceed_a_budget() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_rate", "paced.example=5/h")]);
    Store::new()
        .add(&s, &urls(&["http://a:1", "http://b:1", "http://c:1"]))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut st = Store::new();
                let mut got = Vec::new();
                for _ in 0..20 {
                    if let Ok(p) = st.get_proxy(&s, &site("paced.example")).unwrap() {
                        got.push(p.url);
                    }
                }
                got
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    let count = |u: &str| all.iter().filter(|g| *g == u).count();
    assert_eq!(
        (
            count("http://a:1"),
            count("http://b:1"),
            count("http://c:1")
        ),
        (5, 5, 5)
    );
    let np = Store::new()
        .get_proxy(&s, &site("paced.example"))
        .unwrap()
        .unwrap_err();
    assert!(np.message.contains("rate budget"), "{np:?}");
    assert!(np.retry_at_ms.is_some(), "{np:?}");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_retry_after_bans_at_once_for_at_least_that_long() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_ban_jitter", "0")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1", "http://b:1"])).unwrap();
    let mut c = con(&s);
    refuse(
        &mut st,
        &s,
        "http://a:1",
        "v.example",
        "https://v.example/1",
        Some(120_000),
    );
    // The floor (120 s) over the first ban (5 s).
    let (until, len) = ban_of(&mut c, &s, "http://a:1", "v.example");
    assert_eq!(len, 120_000);
    for _ in 0..3 {
        assert_eq!(pick_for(&mut st, &s, &site("v.example")), "http://b:1");
    }
    // A Retry-After shorter than the ban: the ban (5 s) wins.
    refuse(
        &mut st,
        &s,
        "http://b:1",
        "v.example",
        "https://v.example/1",
        Some(10),
    );
    assert_eq!(ban_of(&mut c, &s, "http://b:1", "v.example").1, 5_000);
    // A refusal while banned (a run handed out before the ban) only
    // lengthens it to its Retry-After; it is not a further ban.
    refuse(
        &mut st,
        &s,
        "http://a:1",
        "v.example",
        "https://v.example/2",
        None,
    );
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "v.example").0, until);
    refuse(
        &mut st,
        &s,
        "http://a:1",
        "v.example",
        "https://v.example/3",
        Some(600_000),
    );
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "v.example").1, 600_000);
    let level: String = redis::cmd("HGET")
        .arg(s.level_key("v.example"))
        .arg(id("http://a:1"))
        .query(&mut c)
        .unwrap();
    assert!(level.starts_with("1:"), "{level}");
    let np = st.get_proxy(&s, &site("v.example")).unwrap().unwrap_err();
    assert_eq!(
        np.message,
        "all 2 usable proxies of pool `default` are banned for v.example"
    );
    let (b_until, _) = ban_of(&mut c, &s, "http://b:1", "v.example");
    assert_eq!(np.retry_at_ms, Some(b_until));
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn one_url_refused_is_a_strike_and_a_second_distinct_url_bans() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_ban_jitter", "0")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://a:1"])).unwrap();
    let mut c = con(&s);
    // The same URL, however often and from whichever host: a strike only.
    for n in 0..3 {
        let st = if n == 1 { &mut b } else { &mut a };
        refuse(
            st,
            &s,
            "http://a:1",
            "v.example",
            "https://v.example/w?v=1",
            None,
        );
        assert_eq!(pick_for(st, &s, &site("v.example")), "http://a:1");
    }
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "v.example").0, 0);
    // Another site's refusal is no evidence here.
    refuse(
        &mut a,
        &s,
        "http://a:1",
        "w.example",
        "https://w.example/2",
        None,
    );
    assert_eq!(pick_for(&mut b, &s, &site("v.example")), "http://a:1");
    // A second distinct URL, through another host: banned, for the base.
    refuse(
        &mut b,
        &s,
        "http://a:1",
        "v.example",
        "https://v.example/w?v=2",
        None,
    );
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "v.example").1, 5_000);
    let np = a.get_proxy(&s, &site("v.example")).unwrap().unwrap_err();
    assert!(np.message.contains("banned for v.example"), "{np:?}");
    // A success through the pair clears the strike: one URL again is not
    // evidence (after the ban, a new strike).
    assert_eq!(pick_for(&mut a, &s, &site("w.example")), "http://a:1");
    a.report_success_for(&s, &id("http://a:1"), "w.example")
        .unwrap();
    refuse(
        &mut a,
        &s,
        "http://a:1",
        "w.example",
        "https://w.example/3",
        None,
    );
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "w.example").0, 0);
    assert_eq!(pick_for(&mut a, &s, &site("w.example")), "http://a:1");
}

/// Waits out any ban of `url`'s pair at `domain`, then refuses distinct
/// URLs until the pair is banned (the first may already be the second of
/// a strike); returns the ban's length.
fn ban_once(
    st: &mut Store,
    c: &mut redis::Connection,
    s: &Settings,
    url: &str,
    page: &mut u32,
) -> u64 {
    let (until, _) = ban_of(c, s, url, "d.example");
    wait_until(c, until);
    for _ in 0..2 {
        *page += 1;
        let page = format!("https://d.example/{page}");
        refuse(st, s, url, "d.example", &page, None);
        if ban_of(c, s, url, "d.example").0 > redis_now(c) {
            break;
        }
    }
    ban_of(c, s, url, "d.example").1
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn bans_double_up_to_the_cap_and_a_success_resets_them() {
    let redis = RedisServer::start();
    let s = redis.settings(&[
        ("site_ban_base_ms", "100"),
        ("site_ban_cap_ms", "300000"),
        ("site_ban_jitter", "0"),
    ]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    let mut c = con(&s);
    let mut page = 0;
    let lens: Vec<u64> = (0..4)
        .map(|_| ban_once(&mut st, &mut c, &s, "http://a:1", &mut page))
        .collect();
    assert_eq!(lens, [100, 200, 400, 800]);
    // A success through the pair resets the doubling.
    let (until, _) = ban_of(&mut c, &s, "http://a:1", "d.example");
    wait_until(&mut c, until);
    st.report_success_for(&s, &id("http://a:1"), "d.example")
        .unwrap();
    assert_eq!(ban_once(&mut st, &mut c, &s, "http://a:1", &mut page), 100);
    // The cap bounds them (here set by the deprecated option).
    let capped = redis.settings(&[
        ("site_ban_base_ms", "100"),
        ("site_ban_ms", "250"),
        ("site_ban_jitter", "0"),
    ]);
    assert_eq!(capped.site_ban_cap_ms, 250);
    st.add(&capped, &urls(&["http://z:1"])).unwrap();
    let lens: Vec<u64> = (0..3)
        .map(|_| ban_once(&mut st, &mut c, &capped, "http://z:1", &mut page))
        .collect();
    assert_eq!(lens, [100, 200, 250]);
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_ban_is_jittered_within_its_fraction() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_ban_jitter", "0.5")]);
    let mut st = Store::new();
    let proxies: Vec<String> = (0..20).map(|i| format!("http://p{i}:1")).collect();
    let list: Vec<&str> = proxies.iter().map(String::as_str).collect();
    st.add(&s, &urls(&list)).unwrap();
    let mut c = con(&s);
    let mut lens = Vec::new();
    for p in &proxies {
        refuse(&mut st, &s, p, "j.example", "https://j.example/1", Some(1));
        lens.push(ban_of(&mut c, &s, p, "j.example").1);
    }
    assert!(
        lens.iter().all(|&l| (5_000..7_500).contains(&l)),
        "{lens:?}"
    );
    lens.dedup();
    assert!(lens.len() > 1, "no jitter: {lens:?}");
}

/// A 429 refusing `page` through `url`'s proxy at `domain`.
fn too_many(st: &mut Store, s: &Settings, url: &str, domain: &str, page: &str) {
    let info = FailureInfo {
        url: page,
        http_status: Some(429),
        ..FailureInfo::default()
    };
    st.report_failure_with(s, &id(url), Kind::Blocked, domain, &info)
        .unwrap();
}

/// The pair's learned budget as stored (`LIMIT:RELEASE`), if any.
fn learned(c: &mut redis::Connection, s: &Settings, url: &str, domain: &str) -> Option<String> {
    let v: Option<String> = redis::cmd("HGET")
        .arg(s.learn_key(domain))
        .arg(id(url))
        .query(c)
        .unwrap();
    v.map(|v| v.rsplit_once(':').unwrap().0.to_string())
}

/// The pair's handout times, oldest first.
fn handouts(c: &mut redis::Connection, s: &Settings, url: &str, domain: &str) -> Vec<u64> {
    let v: Vec<(String, u64)> = redis::cmd("ZRANGE")
        .arg(format!("{}{}", s.pace_key_prefix(domain), id(url)))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(c)
        .unwrap();
    v.into_iter().map(|(_, t)| t).collect()
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_429_halves_the_pairs_budget_and_successes_grow_it_back() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("site_rate", "s.example=8/10s")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    let mut c = con(&s);
    let r = site("s.example");
    for _ in 0..6 {
        pick_for(&mut st, &s, &r);
    }
    // 6 handouts in the window drew the 429: 3 per window from now on.
    too_many(
        &mut st,
        &s,
        "http://a:1",
        "s.example",
        "https://s.example/1",
    );
    assert_eq!(
        learned(&mut c, &s, "http://a:1", "s.example").as_deref(),
        Some("3:12")
    );
    let np = Store::new().get_proxy(&s, &r).unwrap().unwrap_err();
    // At budget until the third most recent leaves the window.
    let times = handouts(&mut c, &s, "http://a:1", "s.example");
    assert_eq!(times.len(), 6);
    assert_eq!(np.retry_at_ms, Some(times[3] + 10_000));
    assert_eq!(
        np.message,
        "all 1 usable proxies of pool `default` are at their rate budget for s.example (8 per 10 s, or less as learned from 429s)"
    );
    // Additive increase, one per success, up to the configured 8: then the
    // learned budget is gone.
    for n in 4..8 {
        st.report_success_for(&s, &id("http://a:1"), "s.example")
            .unwrap();
        assert_eq!(
            learned(&mut c, &s, "http://a:1", "s.example"),
            Some(format!("{n}:12"))
        );
    }
    st.report_success_for(&s, &id("http://a:1"), "s.example")
        .unwrap();
    assert_eq!(learned(&mut c, &s, "http://a:1", "s.example"), None);
    assert_eq!(pick_for(&mut st, &s, &r), "http://a:1");
    // A 429 that is not a ban (one URL: a strike) still paces.
    assert_eq!(ban_of(&mut c, &s, "http://a:1", "s.example").0, 0);
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_429_at_an_unpaced_site_learns_a_rate_in_the_learn_window() {
    let redis = RedisServer::start();
    let s = redis.settings(&[("learn_window_ms", "30000")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1", "http://b:1"])).unwrap();
    let mut c = con(&s);
    let r = site("s.example");
    for _ in 0..4 {
        pick_for(&mut st, &s, &r);
    }
    // An unpaced site stores nothing per handout.
    assert!(handouts(&mut c, &s, "http://a:1", "s.example").is_empty());
    // Uncounted so far: the 429 is the one handout known, at its time.
    too_many(
        &mut st,
        &s,
        "http://a:1",
        "s.example",
        "https://s.example/1",
    );
    assert_eq!(
        learned(&mut c, &s, "http://a:1", "s.example").as_deref(),
        Some("1:2")
    );
    let a_429 = handouts(&mut c, &s, "http://a:1", "s.example");
    assert_eq!(a_429.len(), 1);
    for _ in 0..9 {
        assert_eq!(pick_for(&mut st, &s, &r), "http://b:1");
    }
    // While the site learns, its handouts are counted: B's 9 halve to 4.
    too_many(
        &mut st,
        &s,
        "http://b:1",
        "s.example",
        "https://s.example/2",
    );
    assert_eq!(
        learned(&mut c, &s, "http://b:1", "s.example").as_deref(),
        Some("4:18")
    );
    let np = st.get_proxy(&s, &r).unwrap().unwrap_err();
    // A is free when its 429 leaves the window (B later: its 4th most
    // recent handout).
    assert_eq!(np.retry_at_ms, Some(a_429[0] + 30_000));
    assert_eq!(
        np.message,
        "all 2 usable proxies of pool `default` are at their rate budget for s.example (learned from 429s, per 30 s)"
    );
    // Other sites are not affected.
    assert!(st.get_proxy(&s, &site("t.example")).unwrap().is_ok());
    // Without a configured rate, the learned one is dropped once past
    // twice what drew the 429 (1 handout for A): two successes.
    st.report_success_for(&s, &id("http://a:1"), "s.example")
        .unwrap();
    assert_eq!(
        learned(&mut c, &s, "http://a:1", "s.example").as_deref(),
        Some("2:2")
    );
    st.report_success_for(&s, &id("http://a:1"), "s.example")
        .unwrap();
    assert_eq!(learned(&mut c, &s, "http://a:1", "s.example"), None);
    assert_eq!(pick_for(&mut st, &s, &r), "http://a:1");
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn a_learned_budget_is_forgotten_a_horizon_after_the_last_refusal() {
    let redis = RedisServer::start();
    let s = redis.settings(&[
        ("learn_window_ms", "1000"),
        ("site_ban_cap_ms", "300"),
        ("site_ban_jitter", "0"),
    ]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    let mut c = con(&s);
    let r = site("s.example");
    too_many(
        &mut st,
        &s,
        "http://a:1",
        "s.example",
        "https://s.example/1",
    );
    let at = handouts(&mut c, &s, "http://a:1", "s.example")[0];
    assert!(st.get_proxy(&s, &r).unwrap().is_err());
    // Free when the 429 leaves the window (1 s), and the learned budget is
    // forgotten a horizon (the window, longer than the cap) after it.
    wait_until(&mut c, at + 1_000);
    assert_eq!(pick_for(&mut st, &s, &r), "http://a:1");
    assert_eq!(learned(&mut c, &s, "http://a:1", "s.example"), None);
    let kept: bool = redis::cmd("EXISTS")
        .arg(s.learn_key("s.example"))
        .query(&mut c)
        .unwrap();
    assert!(!kept);
}
