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
    let s = redis.settings(&[("site_ban_ms", "600000")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://a:1", "http://b:1"])).unwrap();
    let r = a
        .report_failure(&s, &id("http://a:1"), Kind::Blocked, "video.example", None)
        .unwrap();
    assert_eq!(r, Reported::Counted);
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
    st.report_failure(&s, &id("http://c:1"), Kind::Blocked, "s.example", None)
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
