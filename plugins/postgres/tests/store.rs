//! The backend's SQL against a real PostgreSQL 15 (see `support`), natively:
//! `cargo test --release -p ytdlp-plugin-postgres --test store`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{PASSWORD, PgServer, SUPERUSER};
use ytdlp_plugin_postgres::component::PostgresBackend;
use ytdlp_plugin_postgres::settings::{Kind, Settings};
use ytdlp_plugin_postgres::store::{Reported, Store, StoreError};
use ytdlp_plugin_sdk::contract::proxy_url;
use ytdlp_plugin_sdk::{
    Backend, Failure, FailureDetail, FailureKind, GetProxyError, NoProxy, PluginError, Proxy,
    ProxyEntry, ProxyState, ProxyStats, Request, Site, Success, Wanted, parse_entry,
};

fn settings(url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut opts = vec![
        ("url".to_string(), url.to_string()),
        // Generous: the tests share two cores with other builds.
        ("pg_timeout_ms".to_string(), "5000".to_string()),
    ];
    opts.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::parse(&Settings::default(), &opts).unwrap()
}

/// Proxy-list lines as entries (`URL;region=DE;tier=1`).
fn urls(list: &[&str]) -> Vec<ProxyEntry> {
    list.iter().map(|l| parse_entry(l).unwrap()).collect()
}

fn entries(list: &[String]) -> Vec<ProxyEntry> {
    list.iter().map(|l| parse_entry(l).unwrap()).collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The contract's id of a proxy URL: its identity, without the password.
fn id(url: &str) -> String {
    proxy_url::validate(url).unwrap().identity_id()
}

/// A request for a URL of `site` (host and registrable domain alike).
fn req(site: Option<&str>) -> Request {
    let site = site.unwrap_or("");
    Request {
        url: format!("https://{site}/watch?v=1"),
        site: Site {
            host: site.to_string(),
            domain: site.to_string(),
        },
        attempt: 1,
        ..Request::default()
    }
}

fn wanting(want: Wanted, avoid: &[&str]) -> Request {
    Request {
        want,
        avoid: avoid.iter().map(|u| id(u)).collect(),
        ..req(None)
    }
}

fn get(
    st: &mut Store,
    s: &Settings,
    site: Option<&str>,
) -> Result<Result<Proxy, NoProxy>, StoreError> {
    st.get_proxy(s, &req(site))
}

fn fail(
    st: &mut Store,
    s: &Settings,
    url: &str,
    kind: Kind,
    site: Option<&str>,
) -> Result<Reported, StoreError> {
    st.report_failure(s, &id(url), kind, site, &FailureDetail::default())
}

fn succeed(st: &mut Store, s: &Settings, url: &str) -> Result<Reported, StoreError> {
    st.report_success(s, &id(url))
}

fn pick(st: &mut Store, s: &Settings, site: Option<&str>) -> String {
    get(st, s, site)
        .unwrap()
        .unwrap_or_else(|np| panic!("no proxy: {np:?}"))
        .url
}

fn pick_for(st: &mut Store, s: &Settings, r: &Request) -> String {
    st.get_proxy(s, r)
        .unwrap()
        .unwrap_or_else(|np| panic!("no proxy: {np:?}"))
        .url
}

fn stat(st: &mut Store, s: &Settings, url: &str) -> ProxyStats {
    st.stats(s)
        .unwrap()
        .into_iter()
        .find(|r| r.proxy.url == url)
        .unwrap_or_else(|| panic!("no stats for {url}"))
}

fn extra<'a>(row: &'a ProxyStats, key: &str) -> Option<&'a str> {
    row.extra
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn tables_are_created_on_first_use_once_and_versioned() {
    let pg = PgServer::require();
    let url = pg.create_db("fresh");
    // Four hosts starting at once on an empty database, in a new schema.
    let s = settings(&url, &[("schema", "ytdlp_eu")]);
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || get(&mut Store::new(), &s, None).map(|r| r.unwrap_err()))
        })
        .collect();
    for t in threads {
        let np = t.join().unwrap().unwrap();
        assert!(np.message.contains("has no proxies"), "{np:?}");
    }
    eprintln!(
        "first use by 4 hosts (schema created): {:?}",
        started.elapsed()
    );
    let mut admin =
        ytdlp_plugin_postgres::pg::Client::connect(&admin_config(&pg, "fresh")).unwrap();
    admin.batch_execute("SET search_path = ytdlp_eu").unwrap();
    let v = admin
        .query_one("SELECT version FROM ytdlp_schema", &[])
        .unwrap();
    assert_eq!(v.get::<i32>(0).unwrap(), 2);
    let tables = admin
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
            &[&"ytdlp_eu"],
        )
        .unwrap();
    let names: Vec<&str> = tables.iter().map(|r| r.text(0).unwrap()).collect();
    assert_eq!(names, ["proxies", "proxy_site", "ytdlp_schema"]);

    // A database migrated by a newer plugin is refused, not misused.
    admin
        .execute("UPDATE ytdlp_schema SET version = 99", &[])
        .unwrap();
    let e = get(&mut Store::new(), &s, None).unwrap_err().to_string();
    assert!(
        e.contains("schema version 99, newer than this plugin's 2"),
        "{e}"
    );
}

fn admin_config(pg: &PgServer, db: &str) -> ytdlp_plugin_postgres::pg::Config {
    let mut c =
        ytdlp_plugin_postgres::pg::Config::parse(&pg.url_for(SUPERUSER, PASSWORD, db)).unwrap();
    c.io_timeout = Duration::from_secs(60);
    c
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn strategies_round_robin_healthiest_least_used_and_filters() {
    let pg = PgServer::require();
    let url = pg.create_db("strategies");
    let s = settings(&url, &[]);
    let (mut a, mut b) = (Store::new(), Store::new());
    let list = ["http://a:1", "http://b:1", "http://c:1", "http://d:1"];
    assert_eq!(a.add(&s, &urls(&list)).unwrap(), 4);
    assert_eq!(a.add(&s, &urls(&["http://a:1", "http://e:1"])).unwrap(), 1);
    // Round robin: one rotation shared by both hosts.
    let got: Vec<String> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                pick(&mut a, &s, None)
            } else {
                pick(&mut b, &s, None)
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
            "http://e:1",
            "http://a:1"
        ]
    );

    // Healthiest: success ratio with a prior; faults lower it, and other
    // failures (content) do not count.
    let h = settings(
        &url,
        &[("strategy", "healthiest"), ("failure_threshold", "100")],
    );
    for _ in 0..5 {
        succeed(&mut a, &h, "http://c:1").unwrap();
    }
    succeed(&mut a, &h, "http://d:1").unwrap();
    for _ in 0..10 {
        fail(&mut a, &h, "http://c:1", Kind::Content, None).unwrap();
    }
    fail(&mut a, &h, "http://a:1", Kind::ProxyTimeout, None).unwrap();
    let picks: Vec<String> = (0..3).map(|_| pick(&mut b, &h, None)).collect();
    assert_eq!(picks, ["http://c:1", "http://c:1", "http://c:1"]);
    fail(&mut a, &h, "http://c:1", Kind::ProxyConnect, None).unwrap();
    fail(&mut a, &h, "http://c:1", Kind::ProxyConnect, None).unwrap();
    // c: (5+2)/(5+2+2.25) = 0.757 < d: (1+2)/(1+0+2.25) = 0.923
    assert_eq!(pick(&mut b, &h, None), "http://d:1");

    // Least used: the fewest picks so far (e handed out once, b once, ...).
    let l = settings(&url, &[("strategy", "least_used")]);
    let counts: Vec<(String, String)> = a
        .stats(&s)
        .unwrap()
        .iter()
        .map(|r| (r.proxy.url.clone(), extra(r, "picks").unwrap().to_string()))
        .collect();
    eprintln!("picks so far: {counts:?}");
    assert_eq!(pick(&mut a, &l, None), "http://b:1");
    assert_eq!(pick(&mut a, &l, None), "http://e:1");

    // What the request wants, filtered in SQL. The metadata is set by an
    // operator in SQL here (by the admin call's `URL;region=..` below).
    let mut admin =
        ytdlp_plugin_postgres::pg::Client::connect(&admin_config(&pg, "strategies")).unwrap();
    admin
        .batch_execute(
            "UPDATE proxies SET region = 'DE', tags = '{residential}', tier = 2 WHERE url = 'http://b:1';
             UPDATE proxies SET region = 'DE', tier = 1 WHERE url = 'http://d:1';
             UPDATE proxies SET region = 'US-CA', tags = '{residential,fast}' WHERE url = 'http://e:1';",
        )
        .unwrap();
    let want = |regions: &[&str], tags: &[&str], min_tier: u8, max_tier: Option<u8>| {
        wanting(
            Wanted {
                regions: regions.iter().map(|r| r.to_string()).collect(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                min_tier,
                max_tier,
                ..Wanted::default()
            },
            &[],
        )
    };
    // The cheapest tier first: d (tier 1) while it is usable, never b (2).
    let de = want(&["DE"], &[], 0, None);
    for _ in 0..3 {
        assert_eq!(pick_for(&mut a, &s, &de), "http://d:1");
    }
    assert_eq!(
        pick_for(&mut a, &s, &want(&["DE"], &[], 2, None)),
        "http://b:1"
    );
    assert_eq!(
        pick_for(&mut a, &s, &want(&[], &["residential"], 0, Some(0))),
        "http://e:1"
    );
    // A country admits its sub-regions.
    assert_eq!(
        pick_for(&mut a, &s, &want(&["US"], &[], 0, None)),
        "http://e:1"
    );
    assert!(
        a.get_proxy(&s, &want(&["US-NY"], &[], 0, None))
            .unwrap()
            .is_err()
    );
    let np = a
        .get_proxy(&s, &want(&["JP"], &[], 0, None))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        np.message,
        "no proxy in region JP (5 proxies, regions: DE, US-CA)"
    );
    // A per-row timeout wins over the option; the proxy carries its id
    // and metadata.
    admin
        .execute(
            "UPDATE proxies SET timeout_ms = 1234 WHERE url = $1",
            &[&"http://d:1"],
        )
        .unwrap();
    let p = a
        .get_proxy(&s, &want(&["DE"], &[], 0, Some(1)))
        .unwrap()
        .unwrap();
    assert_eq!((p.url.as_str(), p.timeout_ms), ("http://d:1", 1234));
    assert_eq!(p.id, id("http://d:1"));
    assert_eq!((p.meta.region.as_deref(), p.meta.tier), (Some("DE"), 1));
    p.check().unwrap();
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn avoided_ids_avoided_regions_tiers_and_metadata_from_the_admin_call() {
    let pg = PgServer::require();
    let url = pg.create_db("want");
    let s = settings(&url, &[]);
    let mut st = Store::new();
    let list = [
        "http://u:one@de1:1;region=DE;tags=res;tier=1",
        "http://de2:1;region=DE;tier=1",
        "http://fr:1;region=FR;tier=1",
        "http://cheap:1",
        "http://dear:1;region=US;tier=5",
    ];
    assert_eq!(st.add(&s, &urls(&list)).unwrap(), 5);
    // Added again with a rotated password: the same proxy (same id), the
    // new URL, its counts kept.
    succeed(&mut st, &s, "http://u:one@de1:1").unwrap();
    assert_eq!(
        st.add(
            &s,
            &urls(&["http://u:two@de1:1;region=DE;tags=res,x;tier=1"])
        )
        .unwrap(),
        0
    );
    let row = stat(&mut st, &s, "http://u:two@de1:1");
    assert_eq!(row.proxy.id, id("http://u:one@de1:1"));
    assert_eq!(row.successes, 1);
    assert_eq!(row.proxy.meta.tags, ["res", "x"]);
    // Added again without metadata: the metadata stays.
    st.add(&s, &urls(&["http://de2:1"])).unwrap();
    let row = stat(&mut st, &s, "http://de2:1");
    assert_eq!(row.proxy.meta.region.as_deref(), Some("DE"));

    let de = Wanted {
        regions: vec!["DE".into()],
        ..Wanted::default()
    };
    // Avoided ids are skipped while another proxy is usable...
    let r = wanting(de.clone(), &["http://u:two@de1:1"]);
    for _ in 0..3 {
        assert_eq!(pick_for(&mut st, &s, &r), "http://de2:1");
    }
    // ...and used when nothing else is left.
    let r = wanting(de.clone(), &["http://u:two@de1:1", "http://de2:1"]);
    let got = pick_for(&mut st, &s, &r);
    assert!(
        got == "http://u:two@de1:1" || got == "http://de2:1",
        "{got}"
    );
    // The cheapest tier first, whatever the round robin says.
    for _ in 0..3 {
        assert_eq!(pick_for(&mut st, &s, &req(None)), "http://cheap:1");
    }
    assert_eq!(
        pick_for(
            &mut st,
            &s,
            &wanting(Wanted::default(), &["http://cheap:1"])
        ),
        "http://fr:1"
    );
    // Avoided regions; a proxy without a region is never avoided.
    let away = Wanted {
        avoid_regions: vec!["DE".into(), "FR".into()],
        min_tier: 1,
        ..Wanted::default()
    };
    assert_eq!(pick_for(&mut st, &s, &wanting(away, &[])), "http://dear:1");
    let away = Wanted {
        avoid_regions: vec!["DE".into(), "FR".into(), "US".into()],
        ..Wanted::default()
    };
    assert_eq!(pick_for(&mut st, &s, &wanting(away, &[])), "http://cheap:1");
    // All tags wanted; the wish is named when nothing satisfies it.
    let tags = Wanted {
        tags: vec!["res".into(), "x".into()],
        ..Wanted::default()
    };
    assert_eq!(
        pick_for(&mut st, &s, &wanting(tags, &[])),
        "http://u:two@de1:1"
    );
    let np = st
        .get_proxy(
            &s,
            &wanting(
                Wanted {
                    tags: vec!["mobile".into()],
                    ..Wanted::default()
                },
                &[],
            ),
        )
        .unwrap()
        .unwrap_err();
    assert_eq!(
        np.message,
        "no proxy with tags mobile (5 proxies, tags: res, x)"
    );
    // All out for the wish: the reason names it.
    for _ in 0..3 {
        fail(&mut st, &s, "http://fr:1", Kind::ProxyConnect, None).unwrap();
    }
    let fr = Wanted {
        regions: vec!["FR".into()],
        ..Wanted::default()
    };
    let np = st.get_proxy(&s, &wanting(fr, &[])).unwrap().unwrap_err();
    assert_eq!(
        np.message,
        "all 1 proxies in region FR are out: 1 cooling down after 3 consecutive failures"
    );
    // Removed by id or by URL.
    assert_eq!(
        st.remove(&s, &[id("http://fr:1"), "http://cheap:1".to_string()])
            .unwrap(),
        2
    );
    assert_eq!(st.stats(&s).unwrap().len(), 3);
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn a_version_1_database_is_migrated_to_version_2() {
    let pg = PgServer::require();
    let url = pg.create_db("old");
    let s = settings(&url, &[("schema", "pool_v1")]);
    // The 0.1 prototype's tables and rows, as it left them.
    let mut c = ytdlp_plugin_postgres::pg::Client::connect(&s.pg_config().unwrap()).unwrap();
    ytdlp_plugin_postgres::schema::migrate_to(&mut c, "pool_v1", 1).unwrap();
    c.batch_execute(
        "INSERT INTO proxies (url, region, tier, success_count, failure_count, failures_by_kind)
         VALUES ('http://u:a@h:1', 'de', 0, 4, 3, '{1,0,0,0,2,0,0}'),
                ('http://u:b@h:1', NULL, 300, 0, 0, '{0,0,0,0,0,0,0}'),
                ('not a url', NULL, 0, 0, 0, '{0,0,0,0,0,0,0}');
         INSERT INTO proxy_site (proxy_id, site, banned_until)
         SELECT id, 'yt.com', now() + interval '1 hour' FROM proxies WHERE url = 'http://u:a@h:1';",
    )
    .unwrap();
    let v = c
        .query_one("SELECT version FROM ytdlp_schema", &[])
        .unwrap();
    assert_eq!(v.get::<i32>(0).unwrap(), 1);
    drop(c);

    let mut st = Store::new();
    let rows = st.stats(&s).unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let a = rows
        .iter()
        .find(|r| r.proxy.url == "http://u:a@h:1")
        .unwrap();
    assert_eq!(a.proxy.id, id("http://u:a@h:1"));
    assert_eq!(a.proxy.meta.region.as_deref(), Some("DE"));
    assert_eq!((a.successes, a.failures), (4, 3));
    // v1's 5th counter was `content`: still content, geo-restricted new.
    assert_eq!(extra(a, "failures.content"), Some("2"));
    assert_eq!(extra(a, "failures.proxy-connect"), Some("1"));
    assert_eq!(extra(a, "failures.geo-restricted"), None);
    assert_eq!(extra(a, "banned-on"), Some("yt.com"));
    // One identity under two passwords: both kept, the second suffixed.
    let b = rows
        .iter()
        .find(|r| r.proxy.url == "http://u:b@h:1")
        .unwrap();
    assert!(
        b.proxy
            .id
            .starts_with(&format!("{}-", id("http://u:a@h:1"))),
        "{b:?}"
    );
    assert_eq!(b.proxy.meta.tier, 255);
    let bad = rows.iter().find(|r| r.proxy.url == "not a url").unwrap();
    assert!(bad.proxy.id.starts_with("invalid-"), "{bad:?}");
    // The migrated pool works under 0.2: reports by id, bans by site.
    assert_eq!(
        fail(
            &mut st,
            &s,
            "http://u:a@h:1",
            Kind::GeoRestricted,
            Some("x.com")
        )
        .unwrap(),
        Reported::Counted
    );
    let a = stat(&mut st, &s, "http://u:a@h:1");
    assert_eq!(extra(&a, "failures.geo-restricted"), Some("1"));
    assert_eq!(a.consecutive_failures, 0);
    let mut c = ytdlp_plugin_postgres::pg::Client::connect(&s.pg_config().unwrap()).unwrap();
    let v = c
        .query_one("SELECT version FROM ytdlp_schema", &[])
        .unwrap();
    assert_eq!(v.get::<i32>(0).unwrap(), 2);
    // A row written in SQL without an id is refused by the schema.
    let e = c
        .execute("INSERT INTO proxies (url) VALUES ('http://z:1')", &[])
        .unwrap_err();
    assert_eq!(e.code(), Some("23502"), "{e}");
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn proxy_faults_take_a_proxy_out_for_everyone_and_probation_follows() {
    let pg = PgServer::require();
    let url = pg.create_db("faults");
    let s = settings(&url, &[("cooldown_ms", "600000")]);
    let (mut a, mut b) = (Store::new(), Store::new());
    a.add(&s, &urls(&["http://bad:1", "http://good:1"]))
        .unwrap();
    assert_eq!(
        fail(&mut a, &s, "http://bad:1", Kind::ProxyConnect, None).unwrap(),
        Reported::Counted
    );
    fail(&mut a, &s, "http://bad:1", Kind::ProxyTimeout, None).unwrap();
    assert_eq!(
        fail(&mut b, &s, "http://bad:1", Kind::ProxyAuth, None).unwrap(),
        Reported::TookOut
    );
    assert_eq!(
        fail(&mut b, &s, "http://bad:1", Kind::ProxyAuth, None).unwrap(),
        Reported::Counted,
        "already out: counted, not taken out again"
    );
    for _ in 0..4 {
        assert_eq!(pick(&mut a, &s, None), "http://good:1");
        assert_eq!(pick(&mut b, &s, None), "http://good:1");
    }
    let st = stat(&mut b, &s, "http://bad:1");
    assert!(matches!(st.state, ProxyState::CoolingDown(_)), "{st:?}");
    assert_eq!((st.failures, st.consecutive_failures), (4, 4));
    assert_eq!(extra(&st, "times-taken-out"), Some("1"));
    assert_eq!(extra(&st, "failures.proxy-auth"), Some("2"));
    for _ in 0..3 {
        fail(&mut a, &s, "http://good:1", Kind::ProxyConnect, None).unwrap();
    }
    let np = get(&mut a, &s, None).unwrap().unwrap_err();
    assert_eq!(
        np.message,
        "all 2 proxies are out: 2 cooling down after 3 consecutive failures"
    );
    let retry = np.retry_at_ms.expect("retry time");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        retry > now_ms + 590_000 && retry < now_ms + 610_000,
        "{retry} vs {now_ms}"
    );

    // Probation: back after a short cooldown, out again after one fault.
    let quick = settings(&url, &[("cooldown_ms", "200"), ("failure_threshold", "2")]);
    a.add(&quick, &urls(&["http://flaky:1"])).unwrap();
    for _ in 0..2 {
        fail(&mut a, &quick, "http://flaky:1", Kind::ProxyConnect, None).unwrap();
    }
    assert!(get(&mut a, &quick, None).unwrap().is_err());
    support::eventually(5, "flaky back", || {
        get(&mut a, &quick, None).unwrap().is_ok()
    });
    let row = stat(&mut a, &quick, "http://flaky:1");
    assert_eq!(row.state, ProxyState::Active);
    assert_eq!(extra(&row, "probation"), Some("yes"));
    assert_eq!(
        fail(&mut a, &quick, "http://flaky:1", Kind::ProxyConnect, None).unwrap(),
        Reported::TookOut
    );
    support::eventually(5, "flaky back again", || {
        get(&mut a, &quick, None).unwrap().is_ok()
    });
    succeed(&mut a, &quick, "http://flaky:1").unwrap();
    assert_eq!(
        fail(&mut a, &quick, "http://flaky:1", Kind::ProxyConnect, None).unwrap(),
        Reported::Counted,
        "a success cleared the probation"
    );

    // cooldown_ms = 0: disabled until an operator enables it.
    let hard = settings(&url, &[("cooldown_ms", "0"), ("failure_threshold", "1")]);
    a.add(&hard, &urls(&["http://dead:1"])).unwrap();
    assert_eq!(
        fail(&mut a, &hard, "http://dead:1", Kind::ProxyConnect, None).unwrap(),
        Reported::TookOut
    );
    assert_eq!(
        stat(&mut a, &hard, "http://dead:1").state,
        ProxyState::Disabled
    );
    // Reports about a URL not in the pool change nothing.
    assert_eq!(
        succeed(&mut a, &s, "http://nope:1").unwrap(),
        Reported::Unknown
    );
    assert_eq!(
        fail(&mut a, &s, "http://nope:1", Kind::ProxyConnect, None).unwrap(),
        Reported::Unknown
    );
    assert_eq!(
        fail(&mut a, &s, "http://nope:1", Kind::Blocked, Some("x.com")).unwrap(),
        Reported::Unknown
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn blocked_bans_per_site_others_never_count_and_sites_are_paced() {
    let pg = PgServer::require();
    let url = pg.create_db("sites");
    let s = settings(&url, &[("ban_ms", "600000")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1", "http://b:1"])).unwrap();
    for _ in 0..10 {
        for kind in [
            Kind::Content,
            Kind::Host,
            Kind::Unknown,
            Kind::GeoRestricted,
        ] {
            assert_eq!(
                fail(&mut st, &s, "http://a:1", kind, Some("yt.com")).unwrap(),
                Reported::Counted
            );
        }
    }
    let row = stat(&mut st, &s, "http://a:1");
    assert_eq!((row.failures, row.consecutive_failures), (40, 0));
    assert_eq!(row.state, ProxyState::Active);
    assert_eq!(extra(&row, "failures.content"), Some("10"));

    let r = fail(&mut st, &s, "http://a:1", Kind::Blocked, Some("yt.com")).unwrap();
    assert!(matches!(r, Reported::Banned(_)), "{r:?}");
    // Banned from yt.com only; still fine elsewhere and in general.
    for _ in 0..3 {
        assert_eq!(pick(&mut st, &s, Some("yt.com")), "http://b:1");
    }
    let other: Vec<String> = (0..2)
        .map(|_| pick(&mut st, &s, Some("vimeo.com")))
        .collect();
    assert!(other.contains(&"http://a:1".to_string()), "{other:?}");
    let row = stat(&mut st, &s, "http://a:1");
    assert_eq!(extra(&row, "banned-on"), Some("yt.com"));
    assert_eq!((row.failures, row.consecutive_failures), (41, 0));
    fail(&mut st, &s, "http://b:1", Kind::Blocked, Some("yt.com")).unwrap();
    let np = get(&mut st, &s, Some("yt.com")).unwrap().unwrap_err();
    assert_eq!(np.message, "all 2 proxies are out: 2 banned from yt.com");
    assert!(np.retry_at_ms.is_some());
    // Blocked without a site: counted only.
    assert_eq!(
        fail(&mut st, &s, "http://a:1", Kind::Blocked, None).unwrap(),
        Reported::Counted
    );

    // Pacing: one proxy used on a site at most once per interval.
    let paced = settings(&url, &[("site_interval_ms", "300")]);
    let first = pick(&mut st, &paced, Some("slow.site"));
    let second = pick(&mut st, &paced, Some("slow.site"));
    assert_ne!(first, second);
    let np = get(&mut st, &paced, Some("slow.site"))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        np.message,
        "all 2 proxies are out: 2 used on slow.site within the last 300 ms"
    );
    assert!(np.retry_at_ms.is_some());
    assert!(get(&mut st, &paced, Some("other.site")).unwrap().is_ok());
    support::eventually(5, "paced proxy back", || {
        get(&mut st, &paced, Some("slow.site")).unwrap().is_ok()
    });
    // A site's Retry-After longer than `ban_ms` bans for that long.
    let short = settings(&url, &[("ban_ms", "1000")]);
    let detail = FailureDetail {
        http_status: Some(429),
        retry_after_ms: Some(3_600_000),
        ..FailureDetail::default()
    };
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = st
        .report_failure(
            &short,
            &id("http://a:1"),
            Kind::Blocked,
            Some("tv.com"),
            &detail,
        )
        .unwrap();
    let Reported::Banned(until) = r else {
        panic!("{r:?}")
    };
    assert!(until > before + 3_500_000, "{until} vs {before}");
    assert_eq!(
        st.remove(&s, &strs(&["http://a:1", "http://zz:1"]))
            .unwrap(),
        1
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn concurrent_reports_are_all_counted_and_take_out_exactly_once() {
    let pg = PgServer::require();
    let url = pg.create_db("counts");
    let s = settings(
        &url,
        &[("cooldown_ms", "600000"), ("failure_threshold", "3")],
    );
    Store::new().add(&s, &urls(&["http://p:1"])).unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut st = Store::new();
                for i in 0..500 {
                    match i % 4 {
                        0 | 1 => succeed(&mut st, &s, "http://p:1").map(drop).unwrap(),
                        2 => fail(&mut st, &s, "http://p:1", Kind::Content, None)
                            .map(drop)
                            .unwrap(),
                        _ => fail(&mut st, &s, "http://p:1", Kind::Blocked, Some("s.com"))
                            .map(drop)
                            .unwrap(),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mixed = started.elapsed();
    let mut st = Store::new();
    let row = stat(&mut st, &s, "http://p:1");
    assert_eq!((row.successes, row.failures), (1000, 1000), "{row:?}");
    assert_eq!(extra(&row, "failures.content"), Some("500"));
    assert_eq!(extra(&row, "failures.blocked"), Some("500"));

    // 4 x 500 proxy faults: every one counted, exactly one takes it out.
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut st = Store::new();
                (0..500)
                    .filter(|_| {
                        fail(&mut st, &s, "http://p:1", Kind::ProxyConnect, None).unwrap()
                            == Reported::TookOut
                    })
                    .count()
            })
        })
        .collect();
    let took_out: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let faults = started.elapsed();
    assert_eq!(took_out, 1);
    let row = stat(&mut st, &s, "http://p:1");
    assert_eq!(row.failures, 3000);
    assert_eq!(row.consecutive_failures, 2000);
    assert_eq!(extra(&row, "failures.proxy-connect"), Some("2000"));
    assert_eq!(extra(&row, "times-taken-out"), Some("1"));
    eprintln!(
        "4 threads x 500 reports on one row: mixed {mixed:?} ({:.0}/s), faults {faults:?} ({:.0}/s)",
        2000.0 / mixed.as_secs_f64(),
        2000.0 / faults.as_secs_f64()
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn once_taken_out_no_host_hands_it_out_after_that_write() {
    let pg = PgServer::require();
    let url = pg.create_db("visibility");
    let s = settings(
        &url,
        &[("failure_threshold", "1"), ("cooldown_ms", "600000")],
    );
    let list: Vec<String> = (0..8).map(|i| format!("http://p{i}:1")).collect();
    Store::new().add(&s, &entries(&list)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let pickers: Vec<_> = (0..3)
        .map(|_| {
            let (s, done) = (s.clone(), done.clone());
            std::thread::spawn(move || {
                let mut st = Store::new();
                let mut after = 0;
                let mut counts = std::collections::HashMap::<String, u32>::new();
                let until = Instant::now() + Duration::from_secs(20);
                while after < 300 && Instant::now() < until {
                    let was_out = done.load(Ordering::SeqCst);
                    let got = pick(&mut st, &s, None);
                    if was_out {
                        assert_ne!(got, "http://p0:1", "handed out after it was taken out");
                        after += 1;
                    }
                    *counts.entry(got).or_default() += 1;
                }
                assert_eq!(after, 300, "too slow");
                counts
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut st = Store::new();
    assert_eq!(
        fail(&mut st, &s, "http://p0:1", Kind::ProxyConnect, None).unwrap(),
        Reported::TookOut
    );
    done.store(true, Ordering::SeqCst);
    let mut total = std::collections::HashMap::<String, u32>::new();
    for t in pickers {
        for (k, v) in t.join().unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    eprintln!("concurrent picks by proxy: {total:?}");
    // Round robin under concurrency stays fair among the usable ones.
    let usable: Vec<u32> = (1..8).map(|i| total[&format!("http://p{i}:1")]).collect();
    let (min, max) = (usable.iter().min().unwrap(), usable.iter().max().unwrap());
    assert!(max - min <= max / 4 + 3, "unfair: {usable:?}");
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn server_stopped_restarted_and_wrong_password() {
    let mut pg = PgServer::require();
    let url = pg.create_db("restart");
    let s = settings(&url, &[("pg_timeout_ms", "300")]);
    let mut st = Store::new();
    st.add(&s, &urls(&["http://a:1"])).unwrap();
    assert_eq!(pick(&mut st, &s, None), "http://a:1");

    // Stopped: a typed "unreachable", quickly; the store keeps no
    // connection.
    pg.stop();
    let started = Instant::now();
    let e = get(&mut st, &s, None).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        e.to_string(),
        format!(
            "PostgreSQL at postgres://ytdlp@127.0.0.1:{}/restart is unreachable: connection to 127.0.0.1:{} refused",
            pg.port, pg.port
        )
    );
    assert!(!st.is_connected());

    // Back: the next call reconnects by itself.
    pg.restart();
    assert_eq!(pick(&mut st, &s, None), "http://a:1");
    // Restarted under an open connection: the report is sent again on a
    // new connection and counted once.
    pg.restart();
    assert_eq!(
        succeed(&mut st, &s, "http://a:1").unwrap(),
        Reported::Counted
    );
    assert_eq!(stat(&mut st, &s, "http://a:1").successes, 1);

    // Hung: bounded by pg_timeout_ms, then a fresh connection next time.
    pg.freeze();
    let started = Instant::now();
    let e = succeed(&mut st, &s, "http://a:1").unwrap_err().to_string();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert_eq!(
        e,
        format!(
            "PostgreSQL at postgres://ytdlp@127.0.0.1:{}/restart: no answer within 300 ms",
            pg.port
        )
    );
    // Still hung, no connection: the TCP connect succeeds (the kernel
    // accepts), the startup gets no answer.
    let started = Instant::now();
    let e = get(&mut st, &s, None).unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(
        e,
        format!(
            "PostgreSQL at postgres://ytdlp@127.0.0.1:{}/restart is unreachable: no answer within 300 ms",
            pg.port
        )
    );
    pg.thaw();
    assert_eq!(pick(&mut st, &s, None), "http://a:1");

    // Wrong password: clear, typed, without the password.
    let bad = pg.url_for(SUPERUSER, "Wr0ng-Secret", "restart");
    let s_bad = settings(&bad, &[]);
    let e = get(&mut Store::new(), &s_bad, None).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("Wr0ng-Secret") && !text.contains(PASSWORD),
        "{text}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "PostgreSQL at postgres://ytdlp@127.0.0.1:{}/restart refused the login: authentication failed: password authentication failed for user \"ytdlp\"",
            pg.port
        )
    );
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn the_component_end_to_end() {
    let pg = PgServer::require();
    let url = pg.create_db("component");
    let opts = |extra: &[(&str, &str)]| {
        let mut o = vec![("url".to_string(), url.clone())];
        o.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        o
    };
    // Typed refusals naming the option.
    assert_eq!(
        PostgresBackend::init(&opts(&[("treshold", "3")])).err(),
        Some(PluginError::unknown_option("treshold"))
    );
    let e = PostgresBackend::init(&opts(&[("strategy", "fastest")])).err();
    assert!(
        matches!(&e, Some(PluginError::InvalidValue { key, .. }) if key == "strategy"),
        "{e:?}"
    );
    let mut b = PostgresBackend::init(&opts(&[("failure_threshold", "1")])).unwrap();
    let e = b.stats(&opts(&[("pg_timeout_ms", "0")])).unwrap_err();
    assert!(
        matches!(&e, PluginError::InvalidValue { key, .. } if key == "pg_timeout_ms"),
        "{e:?}"
    );
    let r = req(Some("youtube.com"));
    let e = b.get_proxy(&r, &opts(&[])).unwrap_err();
    assert!(matches!(e, GetProxyError::NoProxy { .. }), "{e:?}");
    let specs = urls(&["socks5://u:p@h:1080;region=DE", "http://h:3128"]);
    assert_eq!(b.add_proxies(specs, &opts(&[])).unwrap(), 2);
    let call = opts(&[("host.site", "www.youtube.com"), ("host.attempt", "1")]);
    let p = b.get_proxy(&r, &call).unwrap();
    assert_eq!(
        (p.url.as_str(), p.timeout_ms),
        ("socks5://u:p@h:1080", 30_000)
    );
    assert_eq!(p.id, id("socks5://u:p@h:1080"));
    assert_eq!(p.meta.region.as_deref(), Some("DE"));
    // Banned from youtube.com (the registrable domain) by `blocked`.
    b.report_failure(
        &p.id,
        &r,
        &Failure::new(FailureKind::Blocked, "HTTP Error 429"),
        &call,
    );
    let other = b.get_proxy(&r, &call).unwrap();
    assert_eq!(other.url, "http://h:3128");
    assert_eq!(b.get_proxy(&r, &call).unwrap().url, "http://h:3128");
    assert_eq!(
        b.get_proxy(&req(Some("vimeo.com")), &call).unwrap().url,
        "socks5://u:p@h:1080"
    );
    b.report_success(&other.id, &r, &Success::default(), &call);
    // Content failures never count against the proxy.
    for _ in 0..5 {
        b.report_failure(
            &other.id,
            &r,
            &Failure::new(FailureKind::Content, "HTTP Error 404"),
            &call,
        );
    }
    let stats = b.stats(&opts(&[])).unwrap();
    assert_eq!(stats.len(), 2);
    let plain = stats.iter().find(|s| s.proxy.id == other.id).unwrap();
    assert_eq!(
        (plain.successes, plain.failures, plain.consecutive_failures),
        (1, 5, 0)
    );
    assert_eq!(plain.state, ProxyState::Active);
    let banned = stats.iter().find(|s| s.proxy.id == p.id).unwrap();
    assert_eq!(banned.failures, 1);
    assert!(
        banned
            .extra
            .contains(&("banned-on".to_string(), "youtube.com".to_string()))
    );
    assert_eq!(
        b.remove_proxies(vec![other.id.clone()], &opts(&[]))
            .unwrap(),
        1
    );
    assert_eq!(b.stats(&opts(&[])).unwrap().len(), 1);
    let info = PostgresBackend::describe();
    assert_eq!(info.options.len(), 10);
}
