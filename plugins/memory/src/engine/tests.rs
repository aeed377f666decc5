//! Every rule of the engine, with a controlled clock and seeded randomness.

use super::*;
use ytdlp_plugin_sdk::{Site, Wanted};

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An engine over `lines` (proxy-list syntax) with extra options (seed
/// fixed).
fn engine_with(lines: &[&str], extra: &[(&str, &str)]) -> Engine {
    let mut pairs: Vec<(&str, &str)> = lines.iter().map(|u| ("proxy", *u)).collect();
    pairs.push(("seed", "7"));
    // The figures these tests were written with (the defaults are shorter:
    // `site_ban_ms_still_loads_as_the_cap` checks them).
    pairs.push(("site_ban_base_ms", "30000"));
    pairs.push(("learn_window_ms", "60000"));
    pairs.extend_from_slice(extra);
    Engine::from_options(&opts(&pairs)).unwrap()
}

fn engine(lines: &[&str]) -> Engine {
    engine_with(lines, &[])
}

fn entry(line: &str) -> ProxyEntry {
    parse_entry(line).unwrap()
}

fn id(url: &str) -> String {
    entry(url).url.identity_id()
}

fn row(e: &Engine, url: &str, now: u64) -> Stat {
    e.stats(now)
        .into_iter()
        .find(|s| s.proxy.url == url)
        .unwrap_or_else(|| panic!("no row for {url}"))
}

fn state(e: &Engine, url: &str, now: u64) -> ProxyState {
    row(e, url, now).state
}

/// A request for a URL of `domain`.
fn site(domain: &str) -> Request {
    Request {
        url: format!("https://www.{domain}/watch"),
        site: Site {
            host: format!("www.{domain}"),
            domain: domain.to_string(),
        },
        attempt: 1,
        download_id: "d1".into(),
        ..Request::default()
    }
}

fn wanting(want: Wanted) -> Request {
    Request {
        want,
        ..site("video.example")
    }
}

fn regions(r: &[&str]) -> Wanted {
    Wanted {
        regions: r.iter().map(|s| s.to_string()).collect(),
        ..Wanted::default()
    }
}

/// A `blocked` report of `url` through `proxy` at `site`.
fn refuse(e: &mut Engine, proxy: &str, site: &str, url: &str, now: u64) {
    let info = FailureInfo {
        url,
        ..FailureInfo::default()
    };
    e.failure_with(proxy, Kind::Blocked, site, &info, now);
}

/// The evidence a ban needs without a Retry-After: two URLs refused.
fn ban(e: &mut Engine, proxy: &str, site: &str, now: u64) {
    refuse(e, proxy, site, "https://x.example/1", now);
    refuse(e, proxy, site, "https://x.example/2", now);
}

/// A 429 of `url` through `proxy` at `site`.
fn too_many(e: &mut Engine, proxy: &str, site: &str, url: &str, now: u64) {
    let info = FailureInfo {
        url,
        http_status: Some(429),
        ..FailureInfo::default()
    };
    e.failure_with(proxy, Kind::Blocked, site, &info, now);
}

const A: &str = "http://a:1";
const B: &str = "http://b:1";
const C: &str = "http://c:1";

#[test]
fn round_robin_cycles_in_order() {
    let mut e = engine(&[A, B, C]);
    let got: Vec<String> = (0..4).map(|t| e.next(t).unwrap().url).collect();
    assert_eq!(got, [A, B, C, A]);
}

#[test]
fn a_proxy_is_handed_out_with_its_identity_and_metadata() {
    let mut e = engine(&["http://u:s3cret@10.0.0.1:3128;region=de;tags=residential;tier=1"]);
    let p = e.next(0).unwrap();
    assert_eq!(p.id, id("http://u:other@10.0.0.1:3128"));
    assert_eq!(p.url, "http://u:s3cret@10.0.0.1:3128");
    assert_eq!(p.meta.region.as_deref(), Some("DE"));
    assert_eq!(
        (p.meta.tags.as_slice(), p.meta.tier),
        (&["residential".to_string()][..], 1)
    );
    assert!(p.check().is_ok());
    // The stats row is the same proxy.
    assert_eq!(e.stats(0)[0].proxy, p);
}

#[test]
fn threshold_counts_consecutive_proxy_faults_only() {
    let mut e = engine(&[A, B]);
    let a = id(A);
    e.failure(&a, Kind::ProxyConnect, "s", 0);
    e.failure(&a, Kind::ProxyTimeout, "s", 0);
    assert_eq!(state(&e, A, 0), ProxyState::Active);
    e.failure(&a, Kind::ProxyAuth, "s", 0);
    assert!(matches!(state(&e, A, 0), ProxyState::CoolingDown(_)));
    for t in 0..4 {
        assert_eq!(e.next(t).unwrap().url, B);
    }
}

#[test]
fn reports_name_the_id_or_the_url() {
    let mut e = engine(&[A]);
    e.success(&id(A), 0);
    e.success(A, 0);
    e.success("p00000000", 0);
    assert_eq!(e.stats(0)[0].successes, 2);
}

#[test]
fn a_success_resets_the_count() {
    let mut e = engine(&[A]);
    e.failure(A, Kind::ProxyConnect, "", 0);
    e.failure(A, Kind::ProxyConnect, "", 0);
    e.success(A, 0);
    e.failure(A, Kind::ProxyConnect, "", 0);
    let s = &e.stats(0)[0];
    assert_eq!(s.state, ProxyState::Active);
    assert_eq!((s.successes, s.failures, s.consecutive_failures), (1, 3, 1));
}

#[test]
fn content_host_and_unknown_never_count() {
    let mut e = engine_with(&[A], &[("failure_threshold", "1")]);
    for _ in 0..10 {
        e.failure(A, Kind::Content, "s", 0);
        e.failure(A, Kind::Host, "s", 0);
        e.failure(A, Kind::Unknown, "s", 0);
    }
    let s = &e.stats(0)[0];
    assert_eq!(s.state, ProxyState::Active);
    assert_eq!(s.consecutive_failures, 0);
    assert!(s.extra.contains(&("failures.content".into(), "10".into())));
    assert_eq!(e.next(1).unwrap().url, A);
}

#[test]
fn geo_restricted_is_counted_by_kind_and_nothing_else() {
    let mut e = engine_with(&[A, B], &[("failure_threshold", "1")]);
    for t in 0..5 {
        e.failure(&id(A), Kind::GeoRestricted, "video.example", t);
    }
    let s = row(&e, A, 5);
    assert_eq!((s.state, s.consecutive_failures), (ProxyState::Active, 0));
    assert_eq!(s.failures, 5);
    assert!(
        s.extra
            .contains(&("failures.geo-restricted".into(), "5".into()))
    );
    // No ban: the site's other URLs may be fine from there.
    assert!(!s.extra.iter().any(|(k, _)| k.starts_with("banned.")));
    let got: Vec<String> = (0..2)
        .map(|t| e.next_for(10 + t, &site("video.example")).unwrap().url)
        .collect();
    assert!(got.contains(&A.to_string()), "{got:?}");
}

#[test]
fn blocked_benches_the_proxy_for_that_domain_only() {
    // The deprecated site_ban_ms is the cap: below the base, bans are flat.
    let mut e = engine_with(&[A, B], &[("site_ban_ms", "1000")]);
    ban(&mut e, &id(A), "video.example", 10);
    // Not counted toward disabling.
    assert_eq!(state(&e, A, 10), ProxyState::Active);
    // Any host of that domain is that site.
    let mut other_host = site("video.example");
    other_host.site.host = "m.video.example".into();
    for t in 11..15 {
        assert_eq!(e.next_for(t, &site("video.example")).unwrap().url, B);
        assert_eq!(e.next_for(t, &other_host).unwrap().url, B);
    }
    // Other sites still get A.
    let other: Vec<String> = (0..2)
        .map(|t| e.next_for(20 + t, &site("other.example")).unwrap().url)
        .collect();
    assert!(other.contains(&A.to_string()), "{other:?}");
    // The ban shows in stats and ends after site_ban_ms.
    assert!(
        row(&e, A, 20)
            .extra
            .contains(&("banned.video.example".into(), "1010".into()))
    );
    let after: Vec<String> = (0..2)
        .map(|t| e.next_for(1011 + t, &site("video.example")).unwrap().url)
        .collect();
    assert!(after.contains(&A.to_string()), "{after:?}");
}

#[test]
fn a_longer_retry_after_lengthens_the_ban() {
    let mut e = engine_with(&[A], &[("site_ban_ms", "1000")]);
    e.failure_after(&id(A), Kind::Blocked, "s.example", Some(5000), 0);
    assert!(e.next_for(4999, &site("s.example")).is_err());
    assert!(e.next_for(5000, &site("s.example")).is_ok());
    // A shorter one does not shorten it.
    e.failure_after(&id(A), Kind::Blocked, "s.example", Some(10), 6000);
    assert!(e.next_for(6999, &site("s.example")).is_err());
}

#[test]
fn every_proxy_banned_for_a_site_says_when_the_first_comes_back() {
    let mut e = engine_with(&[A, B], &[("site_ban_ms", "1000")]);
    ban(&mut e, A, "s", 0);
    ban(&mut e, B, "s", 500);
    let err = e.next_for(600, &site("s")).unwrap_err();
    assert_eq!(err.retry_at_ms, Some(1000));
    assert!(err.message.contains("banned for s"), "{}", err.message);
    assert!(e.next_for(600, &site("t")).is_ok());
}

/// The end of `url`'s ban for `domain`, from its stats row.
fn banned_until(e: &Engine, url: &str, domain: &str, now: u64) -> Option<u64> {
    let key = format!("banned.{domain}");
    row(e, url, now)
        .extra
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.parse().unwrap())
}

#[test]
fn bans_start_short_double_and_reset_after_a_success() {
    let mut e = engine_with(&[A, B], &[("site_ban_jitter", "0")]);
    ban(&mut e, A, "s", 0);
    assert_eq!(banned_until(&e, A, "s", 0), Some(30_000));
    assert!(e.next_for(29_999, &site("s")).unwrap().url == B);
    // The ban over, the strike (the last URL) is still remembered: one
    // more distinct URL bans again, for twice as long.
    refuse(&mut e, A, "s", "https://x.example/3", 40_000);
    assert_eq!(banned_until(&e, A, "s", 40_000), Some(100_000));
    refuse(&mut e, A, "s", "https://x.example/4", 100_000);
    assert_eq!(banned_until(&e, A, "s", 100_000), Some(220_000));
    // A success through the pair resets the doubling (and the strike).
    e.success_for(A, "s", 220_000);
    refuse(&mut e, A, "s", "https://x.example/5", 230_000);
    assert_eq!(banned_until(&e, A, "s", 230_000), None, "a strike only");
    refuse(&mut e, A, "s", "https://x.example/6", 230_000);
    assert_eq!(banned_until(&e, A, "s", 230_000), Some(260_000));
    // A success for another site resets nothing here.
    e.success_for(A, "t", 260_000);
    refuse(&mut e, A, "s", "https://x.example/7", 260_000);
    assert_eq!(banned_until(&e, A, "s", 260_000), Some(320_000));
}

#[test]
fn bans_are_capped_and_jittered_upwards() {
    let mut e = engine_with(
        &[A],
        &[("site_ban_jitter", "0"), ("site_ban_cap_ms", "100000")],
    );
    let mut t = 0;
    let mut lengths = Vec::new();
    for n in 0..4 {
        refuse(&mut e, A, "s", &format!("https://x.example/{n}a"), t);
        refuse(&mut e, A, "s", &format!("https://x.example/{n}b"), t);
        let until = banned_until(&e, A, "s", t).unwrap();
        lengths.push(until - t);
        t = until;
    }
    assert_eq!(lengths, [30_000, 60_000, 100_000, 100_000]);
    // Jitter lengthens a ban by a factor in [1, 1.5), never past the cap.
    let mut seen = BTreeSet::new();
    for seed in 0..50 {
        let mut e = Engine::from_options(&opts(&[
            ("proxy", A),
            ("seed", &seed.to_string()),
            ("site_ban_jitter", "0.5"),
            ("site_ban_base_ms", "30000"),
            ("site_ban_cap_ms", "40000"),
        ]))
        .unwrap();
        ban(&mut e, A, "s", 0);
        let first = banned_until(&e, A, "s", 0).unwrap();
        assert!((30_000..=40_000).contains(&first), "{first}");
        seen.insert(first);
    }
    assert!(seen.len() > 10, "{seen:?}");
}

#[test]
fn a_retry_after_bans_at_once_and_floors_the_ban() {
    let mut e = engine_with(&[A], &[("site_ban_jitter", "0")]);
    e.failure_after(A, Kind::Blocked, "s", Some(90_000), 0);
    assert_eq!(banned_until(&e, A, "s", 0), Some(90_000));
    assert!(e.next_for(89_999, &site("s")).is_err());
    assert!(e.next_for(90_000, &site("s")).is_ok());
    // A short one: the doubled ban (60 s) wins.
    e.failure_after(A, Kind::Blocked, "s", Some(10), 100_000);
    assert_eq!(banned_until(&e, A, "s", 100_000), Some(160_000));
    // Past the cap too: the site said so.
    let mut e = engine_with(&[A], &[("site_ban_cap_ms", "1000")]);
    e.failure_after(A, Kind::Blocked, "s", Some(5_000), 0);
    assert_eq!(banned_until(&e, A, "s", 0), Some(5_000));
}

#[test]
fn a_refusal_while_banned_is_not_a_further_ban() {
    // Four runs handed out before the ban, refused one after another.
    let mut e = engine_with(&[A], &[("site_ban_jitter", "0")]);
    for n in 0..4 {
        refuse(&mut e, A, "s", &format!("https://x.example/{n}"), 10);
    }
    assert_eq!(banned_until(&e, A, "s", 10), Some(30_010));
    // Its Retry-After still lengthens it.
    e.failure_after(A, Kind::Blocked, "s", Some(50_000), 20);
    assert_eq!(banned_until(&e, A, "s", 20), Some(50_020));
    // And the next ban is the second: 60 s.
    refuse(&mut e, A, "s", "https://x.example/9", 60_000);
    assert_eq!(banned_until(&e, A, "s", 60_000), Some(120_000));
}

#[test]
fn one_refused_url_is_a_strike_and_a_second_distinct_url_bans() {
    let mut e = engine(&[A]);
    let watch = "https://www.s.example/watch?v=1";
    refuse(&mut e, A, "s.example", watch, 0);
    assert!(
        e.next_for(1, &site("s.example")).is_ok(),
        "one URL: a strike"
    );
    // The same URL again is still that URL's problem, not the proxy's.
    refuse(&mut e, A, "s.example", watch, 2);
    assert!(e.next_for(3, &site("s.example")).is_ok());
    refuse(&mut e, A, "s.example", "https://www.s.example/watch?v=2", 4);
    let err = e.next_for(5, &site("s.example")).unwrap_err();
    assert!(
        err.message.contains("banned for s.example"),
        "{}",
        err.message
    );
    // An unknown URL counts as a new one each time: two refusals ban.
    let mut e = engine(&[A]);
    e.failure(A, Kind::Blocked, "s", 0);
    assert!(e.next_for(1, &site("s")).is_ok());
    e.failure(A, Kind::Blocked, "s", 2);
    assert!(e.next_for(3, &site("s")).is_err());
    // A strike is remembered for site_ban_cap_ms, and a success clears it.
    let mut e = engine_with(&[A], &[("site_ban_cap_ms", "60000")]);
    refuse(&mut e, A, "s", "https://x.example/1", 0);
    refuse(&mut e, A, "s", "https://x.example/2", 60_000);
    assert!(
        e.next_for(60_001, &site("s")).is_ok(),
        "the first strike expired"
    );
    e.success_for(A, "s", 60_002);
    refuse(&mut e, A, "s", "https://x.example/3", 60_003);
    assert!(
        e.next_for(60_004, &site("s")).is_ok(),
        "the success cleared it"
    );
}

#[test]
fn site_rate_keeps_a_pair_to_n_per_window_and_frees_it_exactly() {
    let mut e = engine_with(&[A], &[("site_rate", "127.0.0.1=3/10s")]);
    let r = site("127.0.0.1");
    for t in [0, 1_000, 2_000] {
        assert_eq!(e.next_for(t, &r).unwrap().url, A);
    }
    let err = e.next_for(3_000, &r).unwrap_err();
    assert_eq!(
        err.retry_at_ms,
        Some(10_000),
        "the oldest leaves the window"
    );
    assert_eq!(
        err.message,
        "all 1 usable proxies are at their rate budget for 127.0.0.1 (3 per 10 s)"
    );
    assert!(e.next_for(9_999, &r).is_err());
    assert!(e.next_for(10_000, &r).is_ok());
    // Sliding: the next is free when the handout at 1 s leaves.
    assert_eq!(
        e.next_for(10_001, &r).unwrap_err().retry_at_ms,
        Some(11_000)
    );
    assert!(e.next_for(11_000, &r).is_ok());
    // Other sites are not paced.
    for t in 0..20 {
        assert!(e.next_for(11_000 + t, &site("other.example")).is_ok());
    }
}

#[test]
fn every_proxy_at_budget_banned_or_cooling_says_when_the_first_is_free() {
    let mut e = engine_with(
        &[A, B, C],
        &[
            ("site_rate", "s=2/1m"),
            ("failure_threshold", "1"),
            ("jitter", "none"),
            ("backoff_base_ms", "50000"),
        ],
    );
    let r = site("s");
    // Round robin: A, B, C, A, B, C; each at its budget of 2.
    for t in 0..6 {
        e.next_for(t, &r).unwrap();
    }
    // A banned until 120010 (free of its budget at 60000), B free at
    // 60001, C cooling until 50010 (then free at 60002).
    e.failure_after(A, Kind::Blocked, "s", Some(120_000), 10);
    e.failure(C, Kind::ProxyConnect, "", 10);
    let err = e.next_for(20, &r).unwrap_err();
    assert_eq!(err.retry_at_ms, Some(60_001));
    assert_eq!(
        err.message,
        "all 2 usable proxies are banned for s (1) or at their rate budget there (1; 2 per 1 min)"
    );
    assert_eq!(e.next_for(60_001, &r).unwrap().url, B);
    // C is back from its cooldown but still at budget; B is again.
    let err = e.next_for(60_001, &r).unwrap_err();
    assert_eq!(err.retry_at_ms, Some(60_002));
    assert_eq!(e.next_for(60_002, &r).unwrap().url, C);
}

/// The pair's learned budget as stats show it.
fn learned(e: &Engine, url: &str, domain: &str, now: u64) -> Option<String> {
    let key = format!("learned_rate.{domain}");
    row(e, url, now)
        .extra
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[test]
fn a_429_halves_the_pairs_budget_and_successes_grow_it_back() {
    let mut e = engine_with(&[A], &[("site_rate", "s=8/10s")]);
    let r = site("s");
    for t in 0..6 {
        e.next_for(t, &r).unwrap();
    }
    // 6 handouts in the window drew the 429: 3 per window from now on.
    too_many(&mut e, A, "s", "https://x.example/1", 6);
    assert_eq!(learned(&e, A, "s", 6).as_deref(), Some("3 per 10 s"));
    let err = e.next_for(7, &r).unwrap_err();
    // At budget until the third most recent (at 3) leaves the window.
    assert_eq!(err.retry_at_ms, Some(10_003));
    assert!(
        err.message
            .ends_with("(8 per 10 s, or less as learned from 429s)"),
        "{}",
        err.message
    );
    assert!(e.next_for(10_003, &r).is_ok());
    // Additive increase, one per success, up to the configured 8: then the
    // learned budget is gone.
    for n in 4..8 {
        e.success_for(A, "s", 10_004);
        assert_eq!(learned(&e, A, "s", 10_004), Some(format!("{n} per 10 s")));
    }
    e.success_for(A, "s", 10_004);
    assert_eq!(learned(&e, A, "s", 10_004), None);
    // A 429 that is not a ban (one URL: a strike) still paces.
    assert_eq!(banned_until(&e, A, "s", 10_004), None);
}

#[test]
fn a_429_at_an_unpaced_site_learns_a_rate_in_the_learn_window() {
    let mut e = engine_with(&[A, B], &[("learn_window_ms", "30000")]);
    let r = site("s");
    for t in 0..4 {
        e.next_for(t, &r).unwrap();
    }
    // Uncounted so far: the 429 is the one handout known, at its time.
    too_many(&mut e, A, "s", "https://x.example/1", 100);
    assert_eq!(learned(&e, A, "s", 100).as_deref(), Some("1 per 30 s"));
    for t in 101..110 {
        assert_eq!(e.next_for(t, &r).unwrap().url, B);
    }
    // While the site learns, its handouts are counted: B's 9 since the
    // 429 halve to 4.
    too_many(&mut e, B, "s", "https://x.example/2", 110);
    assert_eq!(learned(&e, B, "s", 110).as_deref(), Some("4 per 30 s"));
    let err = e.next_for(111, &r).unwrap_err();
    // A is free when the 429 leaves the window (B when its 4th most recent
    // handout, at 106, does).
    assert_eq!(err.retry_at_ms, Some(30_100));
    assert_eq!(
        err.message,
        "all 2 usable proxies are at their rate budget for s (learned from 429s, per 30 s)"
    );
    assert_eq!(e.next_for(30_100, &r).unwrap().url, A);
    assert_eq!(e.next_for(30_106, &r).unwrap().url, B);
    // Without a configured rate, the learned one is dropped once past
    // twice what drew the 429 (1 handout for A): two successes.
    e.success_for(A, "s", 30_200);
    assert_eq!(learned(&e, A, "s", 30_200).as_deref(), Some("2 per 30 s"));
    e.success_for(A, "s", 30_200);
    assert_eq!(learned(&e, A, "s", 30_200), None);
}

#[test]
fn an_unpaced_site_stores_nothing_per_handout() {
    let mut e = engine(&[A, B, C]);
    for t in 0..1000 {
        let p = e.next_for(t, &site("s")).unwrap();
        e.success_for(&p.id, "s", t);
    }
    assert!(e.sites.is_empty());
    // Paced, the pairs hold at most N handouts each, and are swept out
    // once their window has passed.
    let mut e = engine_with(&[A, B, C], &[("site_rate", "s=5/1s")]);
    for t in 0..1000 {
        let _ = e.next_for(t * 100, &site("s"));
    }
    let pairs = &e.sites["s"].pairs;
    assert_eq!(pairs.len(), 3);
    assert!(pairs.values().all(|p| p.handouts.len() <= 5));
    let _ = e.next_for(1_000_000, &site("other"));
    assert!(e.sites.is_empty(), "{:?}", e.sites);
}

#[test]
fn pairs_are_forgotten_a_cap_after_their_last_refusal() {
    let mut e = engine_with(
        &[A],
        &[("site_ban_jitter", "0"), ("site_ban_cap_ms", "100000")],
    );
    ban(&mut e, A, "s", 0);
    too_many(&mut e, A, "s", "https://x.example/3", 0);
    assert!(learned(&e, A, "s", 0).is_some());
    e.prune_bans(129_999);
    assert_eq!(e.sites["s"].pairs[&0].level, 1, "the doubling is kept");
    // A cap (100 s) after the ban ended: strike, doubling and learned
    // budget are forgotten, and the pair with them.
    e.prune_bans(130_000);
    assert!(e.sites.is_empty());
    ban(&mut e, A, "s", 130_000);
    assert_eq!(banned_until(&e, A, "s", 130_000), Some(160_000));
}

#[test]
fn recovery_on_probation_after_backoff() {
    let mut e = engine_with(
        &[A, B],
        &[
            ("failure_threshold", "1"),
            ("backoff_base_ms", "1000"),
            ("backoff_cap_ms", "8000"),
            ("jitter", "none"),
        ],
    );
    e.failure(A, Kind::ProxyConnect, "", 0);
    assert_eq!(state(&e, A, 0), ProxyState::CoolingDown(1000));
    assert_eq!(e.next(999).unwrap().url, B);
    assert_eq!(e.next(999).unwrap().url, B);
    // Back at 1000, on probation: handed out again.
    let picks: Vec<String> = (0..2).map(|i| e.next(1000 + i).unwrap().url).collect();
    assert!(picks.contains(&A.to_string()), "{picks:?}");
    // A failure on probation sends it back with the window doubled.
    e.failure(A, Kind::ProxyConnect, "", 1500);
    assert_eq!(state(&e, A, 1500), ProxyState::CoolingDown(3500));
    // Next time 4000 (doubled again), then capped at 8000.
    let _ = e.next(3500);
    e.failure(A, Kind::ProxyConnect, "", 3600);
    assert_eq!(state(&e, A, 3600), ProxyState::CoolingDown(7600));
    let _ = e.next(7600);
    e.failure(A, Kind::ProxyConnect, "", 7700);
    assert_eq!(state(&e, A, 7700), ProxyState::CoolingDown(15700));
    let _ = e.next(15700);
    e.failure(A, Kind::ProxyConnect, "", 15800);
    assert_eq!(state(&e, A, 15800), ProxyState::CoolingDown(23800));
    // One success on probation restores it fully: the next fault needs
    // the threshold again and the window starts from the base.
    let _ = e.next(23800);
    e.success(A, 23900);
    let s = row(&e, A, 23900);
    assert!(!s.extra.iter().any(|(k, _)| k == "probation"), "{s:?}");
    e.failure(A, Kind::ProxyConnect, "", 24000);
    assert_eq!(state(&e, A, 24000), ProxyState::CoolingDown(25000));
}

#[test]
fn full_jitter_stays_within_the_window() {
    let base = 1000;
    for seed in 0..50u64 {
        let seed = seed.to_string();
        let mut e = engine_with(
            &[A],
            &[
                ("failure_threshold", "1"),
                ("backoff_base_ms", "1000"),
                ("backoff_cap_ms", "3600000"),
                ("seed", seed.as_str()),
            ],
        );
        e.failure(A, Kind::ProxyConnect, "", 0);
        match state(&e, A, 0) {
            ProxyState::CoolingDown(t) => assert!(t >= 1 && t <= base, "{t}"),
            s => panic!("{s:?}"),
        }
    }
}

#[test]
fn jitter_spreads_comebacks() {
    let mut times = std::collections::BTreeSet::new();
    for seed in 0..20u64 {
        let seed = seed.to_string();
        let mut e = engine_with(&[A], &[("failure_threshold", "1"), ("seed", seed.as_str())]);
        e.failure(A, Kind::ProxyConnect, "", 0);
        if let ProxyState::CoolingDown(t) = state(&e, A, 0) {
            times.insert(t);
        }
    }
    assert!(times.len() > 10, "{times:?}");
}

#[test]
fn without_recovery_a_disabled_proxy_stays_out() {
    let mut e = engine_with(&[A], &[("failure_threshold", "1"), ("recovery", "false")]);
    e.failure(A, Kind::ProxyConnect, "", 0);
    assert_eq!(state(&e, A, 0), ProxyState::Disabled);
    let err = e.next(u64::MAX / 2).unwrap_err();
    assert!(err.message.contains("disabled"), "{}", err.message);
    assert_eq!(err.retry_at_ms, None);
}

#[test]
fn all_cooling_says_when_the_next_is_back() {
    let mut e = engine_with(
        &[A, B],
        &[
            ("failure_threshold", "1"),
            ("jitter", "none"),
            ("backoff_base_ms", "5000"),
        ],
    );
    e.failure(A, Kind::ProxyConnect, "", 0);
    e.failure(B, Kind::ProxyConnect, "", 100);
    let err = e.next(200).unwrap_err();
    assert_eq!(err.retry_at_ms, Some(5000));
    assert!(err.message.contains("cooling down"), "{}", err.message);
}

#[test]
fn no_proxies_is_an_error_not_a_panic() {
    let mut e = engine(&[]);
    assert_eq!(e.next(0).unwrap_err().message, "no proxies configured");
}

#[test]
fn sticky_keys_keep_a_proxy_while_it_works() {
    let mut e = engine_with(&[A, B, C], &[("failure_threshold", "1")]);
    let keyed = |key: &str| Request {
        sticky_key: Some(key.to_string()),
        ..site("s")
    };
    let first = e.next_for(0, &keyed("playlist-1")).unwrap();
    for t in 1..5 {
        assert_eq!(e.next_for(t, &keyed("playlist-1")).unwrap(), first);
    }
    // Other keys rotate as usual.
    let other = e.next_for(5, &keyed("playlist-2")).unwrap();
    assert_ne!(other, first);
    // When the sticky proxy fails, the key moves to another one and stays.
    e.failure(&first.id, Kind::ProxyConnect, "s", 6);
    let moved = e.next_for(7, &keyed("playlist-1")).unwrap();
    assert_ne!(moved, first);
    assert_eq!(e.next_for(8, &keyed("playlist-1")).unwrap(), moved);
    // A site ban also moves it, for that site.
    ban(&mut e, &moved.id, "s", 9);
    assert_ne!(e.next_for(10, &keyed("playlist-1")).unwrap(), moved);
}

#[test]
fn a_sticky_proxy_the_request_avoids_or_does_not_admit_is_left() {
    let mut e = engine(&[
        "http://de1:1;region=DE",
        "http://de2:1;region=DE",
        "http://fr:1;region=FR",
    ]);
    let mut r = Request {
        sticky_key: Some("login".into()),
        ..site("s")
    };
    let first = e.next_for(0, &r).unwrap();
    assert_eq!(first.url, "http://de1:1");
    assert_eq!(e.next_for(1, &r).unwrap(), first);
    // It failed this URL: the next attempt avoids it, and the key moves.
    r.avoid = vec![first.id.clone()];
    let second = e.next_for(2, &r).unwrap();
    assert_ne!(second, first);
    r.avoid.clear();
    assert_eq!(e.next_for(3, &r).unwrap(), second);
    // A wish it does not meet moves it too.
    r.want = regions(&["FR"]);
    assert_eq!(e.next_for(4, &r).unwrap().url, "http://fr:1");
}

#[test]
fn only_proxies_the_request_admits_are_handed_out() {
    let mut e = engine(&[
        "http://fr:1;region=FR",
        "http://us:1;region=US-CA;tags=residential",
        "http://us2:1;region=US;tags=datacenter",
        "http://none:1",
    ]);
    for t in 0..6 {
        assert_eq!(
            e.next_for(t, &wanting(regions(&["FR"]))).unwrap().url,
            "http://fr:1"
        );
    }
    // A sub-region is inside its country.
    let us: BTreeSet<String> = (0..6)
        .map(|t| e.next_for(t, &wanting(regions(&["US"]))).unwrap().url)
        .collect();
    assert_eq!(
        us.into_iter().collect::<Vec<_>>(),
        ["http://us2:1", "http://us:1"]
    );
    let tagged = Wanted {
        tags: vec!["residential".into()],
        ..Wanted::default()
    };
    assert_eq!(e.next_for(9, &wanting(tagged)).unwrap().url, "http://us:1");
    let away = Wanted {
        avoid_regions: vec!["US".into(), "FR".into()],
        ..Wanted::default()
    };
    assert_eq!(e.next_for(9, &wanting(away)).unwrap().url, "http://none:1");
    // Nothing in DE: the answer says what there is.
    let err = e.next_for(10, &wanting(regions(&["DE"]))).unwrap_err();
    assert_eq!(
        err.message,
        "no proxy in region DE (4 proxies, regions: FR, US, US-CA)"
    );
    assert_eq!(err.retry_at_ms, None);
}

#[test]
fn a_wish_whose_proxies_are_all_out_says_so_for_them() {
    let mut e = engine_with(
        &["http://de:1;region=DE", "http://fr:1;region=FR"],
        &[("failure_threshold", "1"), ("jitter", "none")],
    );
    e.failure("http://de:1", Kind::ProxyConnect, "", 0);
    let err = e.next_for(1, &wanting(regions(&["DE"]))).unwrap_err();
    assert_eq!(
        err.message,
        "all 1 proxies in region DE are cooling down after failures"
    );
    assert_eq!(err.retry_at_ms, Some(300_000));
    assert_eq!(e.next(2).unwrap().url, "http://fr:1");
}

#[test]
fn avoided_proxies_only_when_nothing_else_is_admitted() {
    let mut e = engine(&[A, B, C]);
    let mut r = site("s");
    r.avoid = vec![id(A), id(B)];
    for t in 0..4 {
        assert_eq!(e.next_for(t, &r).unwrap().url, C);
    }
    // With C banned for the site, an avoided one is better than none.
    ban(&mut e, &id(C), "s", 5);
    let got = e.next_for(6, &r).unwrap().url;
    assert!(got == A || got == B, "{got}");
    // Unknown ids in `avoid` are ignored.
    r.avoid = vec!["nope".into()];
    assert!(e.next_for(7, &r).is_ok());
}

#[test]
fn the_cheapest_admitted_tier_comes_first_then_the_strategy() {
    for strategy in [
        "round_robin",
        "random",
        "least_used",
        "healthiest",
        "weighted",
    ] {
        let mut e = engine_with(
            &[
                "http://dear:1;tier=2",
                "http://cheap-de:1;region=DE",
                "http://mid:1;tier=1",
                "http://cheap-fr:1;region=FR",
            ],
            &[("strategy", strategy), ("failure_threshold", "1")],
        );
        let got: BTreeSet<String> = (0..40).map(|t| e.next(t).unwrap().url).collect();
        // Both tier-0 proxies (two classes) share the load; dearer ones wait.
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            ["http://cheap-de:1", "http://cheap-fr:1"],
            "{strategy}"
        );
        e.failure("http://cheap-de:1", Kind::ProxyConnect, "", 50);
        ban(&mut e, "http://cheap-fr:1", "s", 50);
        assert_eq!(
            e.next_for(51, &site("s")).unwrap().url,
            "http://mid:1",
            "{strategy}"
        );
        // A floor from the host (a site refusing cheap tiers) skips them.
        let floor = Wanted {
            min_tier: 2,
            ..Wanted::default()
        };
        assert_eq!(
            e.next_for(52, &wanting(floor)).unwrap().url,
            "http://dear:1"
        );
        // A cap the pool cannot meet now.
        let cap = Wanted {
            max_tier: Some(0),
            ..Wanted::default()
        };
        let err = e
            .next_for(
                53,
                &Request {
                    want: cap,
                    ..site("s")
                },
            )
            .unwrap_err();
        assert_eq!(
            err.message,
            "all 1 usable proxies of tier 0 are banned for s"
        );
    }
}

#[test]
fn round_robin_over_several_classes_keeps_one_order() {
    let mut e = engine(&[
        "http://a:1;region=DE",
        "http://b:1;region=FR",
        "http://c:1;region=DE",
        "http://d:1;region=FR",
    ]);
    let got: Vec<String> = (0..5).map(|t| e.next(t).unwrap().url).collect();
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
    let de: Vec<String> = (0..3)
        .map(|t| e.next_for(t, &wanting(regions(&["DE"]))).unwrap().url)
        .collect();
    assert_eq!(de, ["http://c:1", "http://a:1", "http://c:1"]);
}

#[test]
fn the_id_survives_a_password_change_and_collisions_get_a_suffix() {
    // Two passwords of one identity at once: told apart in list order.
    let mut e = engine(&["http://u:one@h:1", "http://u:two@h:1", "http://v:x@h:1"]);
    let base = id("http://u:one@h:1");
    let ids: Vec<String> = e.stats(0).into_iter().map(|s| s.proxy.id).collect();
    assert_eq!(
        ids,
        [base.clone(), format!("{base}-2"), id("http://v:x@h:1")]
    );
    // Deterministic: the same list gives the same ids.
    let again: Vec<String> = engine(&["http://u:one@h:1", "http://u:two@h:1", "http://v:x@h:1"])
        .stats(0)
        .into_iter()
        .map(|s| s.proxy.id)
        .collect();
    assert_eq!(again, ids);
    // The same URL twice is one proxy.
    assert_eq!(engine(&[A, A, B]).len(), 2);
    // Remove then add with a new password: the same id, its health kept.
    e.failure(&base, Kind::ProxyConnect, "", 0);
    assert!(e.remove(&base));
    assert!(e.add(&entry("http://u:three@h:1"), 1, true));
    let s = e.stats(0).into_iter().find(|s| s.proxy.id == base).unwrap();
    assert_eq!(
        (s.proxy.url.as_str(), s.failures),
        ("http://u:three@h:1", 1)
    );
    assert_eq!(e.len(), 3);
}

#[test]
fn a_known_url_added_again_takes_the_new_metadata() {
    let mut e = engine(&["http://a:1;region=DE"]);
    e.success(A, 0);
    assert!(!e.add(&entry("http://a:1;region=FR;tier=1"), 1, true));
    let p = e.next(1).unwrap();
    assert_eq!((p.meta.region.as_deref(), p.meta.tier), (Some("FR"), 1));
    assert!(e.next_for(2, &wanting(regions(&["DE"]))).is_err());
    assert_eq!(e.stats(2)[0].successes, 1);
}

#[test]
fn the_list_changes_without_losing_health() {
    let mut e = engine(&[A, B]);
    e.success(A, 0);
    e.failure(B, Kind::ProxyConnect, "", 0);
    // A reload with B gone and C new; A keeps its counts.
    let list = vec![(entry(A), 1), (entry(C), 1)];
    e.retain_configured(&list);
    for (en, w) in &list {
        e.add(en, *w, false);
    }
    let stats = e.stats(0);
    let urls: Vec<&str> = stats.iter().map(|s| s.proxy.url.as_str()).collect();
    assert_eq!(urls, [A, C]);
    assert_eq!(stats[0].successes, 1);
    // Added through admin, B comes back with its old health.
    assert!(e.add(&entry(B), 1, true));
    assert_eq!(row(&e, B, 0).failures, 1);
    // Removal (by id or URL) takes it out of rotation.
    assert!(e.remove(&id(A)));
    assert!(!e.remove(A));
    for t in 0..4 {
        assert_ne!(e.next(t).unwrap().url, A);
    }
}

#[test]
fn random_reaches_every_proxy() {
    let mut e = engine_with(&[A, B, C], &[("strategy", "random")]);
    let mut seen = std::collections::BTreeSet::new();
    for t in 0..100 {
        seen.insert(e.next(t).unwrap().url);
    }
    assert_eq!(seen.len(), 3);
    e.failure(A, Kind::ProxyConnect, "", 0);
    e.failure(A, Kind::ProxyConnect, "", 0);
    e.failure(A, Kind::ProxyConnect, "", 0);
    for t in 0..50 {
        assert_ne!(e.next(t).unwrap().url, A);
    }
}

#[test]
fn least_used_evens_out_use() {
    let mut e = engine_with(&[A, B, C], &[("strategy", "least_used")]);
    let mut counts = HashMap::new();
    for t in 0..30 {
        *counts.entry(e.next(t).unwrap().url).or_insert(0) += 1;
    }
    assert!(counts.values().all(|&n| n == 10), "{counts:?}");
    // A proxy added later is used until it has caught up.
    e.add(&entry("http://d:1"), 1, true);
    for t in 30..35 {
        assert_eq!(e.next(t).unwrap().url, "http://d:1");
    }
}

#[test]
fn healthiest_prefers_health_but_tries_new_proxies() {
    let mut e = engine_with(&[A, B], &[("strategy", "healthiest")]);
    for _ in 0..5 {
        e.success(A, 0);
        e.failure(B, Kind::ProxyTimeout, "", 0);
        e.success(B, 0); // keep B active: 5 faults, 5 successes
    }
    e.failure(A, Kind::ProxyTimeout, "", 0);
    e.success(A, 0);
    // A: 6 of 7; B: 5 of 10.
    for t in 1..5 {
        assert_eq!(e.next(t).unwrap().url, A);
    }
    // A new proxy's prior (2 successes, 0.25 failures) puts it ahead of
    // both until its own record says otherwise.
    e.add(&entry(C), 1, true);
    assert_eq!(e.next(10).unwrap().url, C);
    e.failure(C, Kind::ProxyConnect, "", 11);
    assert_eq!(e.next(12).unwrap().url, A);
}

#[test]
fn weighted_follows_the_weights() {
    let mut e = engine_with(
        &[A, B],
        &[
            ("strategy", "weighted"),
            ("weight", "http://a:1=9"),
            ("weight", "http://b:1=1"),
        ],
    );
    let mut a = 0;
    for t in 0..2000 {
        if e.next(t).unwrap().url == A {
            a += 1;
        }
    }
    assert!((1700..1900).contains(&a), "{a}");
    // Weight 0 (given by id here): never.
    let by_id = format!("{}=0", id(A));
    let mut e = engine_with(
        &[A, B],
        &[("strategy", "weighted"), ("weight", by_id.as_str())],
    );
    for t in 0..100 {
        assert_eq!(e.next(t).unwrap().url, B);
    }
}

#[test]
fn every_strategy_skips_banned_and_cooling_proxies() {
    for strategy in [
        "round_robin",
        "random",
        "least_used",
        "healthiest",
        "weighted",
    ] {
        let mut e = engine_with(
            &[A, B, C],
            &[("strategy", strategy), ("failure_threshold", "1")],
        );
        e.failure(A, Kind::ProxyConnect, "", 0);
        ban(&mut e, B, "s", 0);
        for t in 1..30 {
            assert_eq!(e.next_for(t, &site("s")).unwrap().url, C, "{strategy}");
        }
    }
}

#[test]
fn every_strategy_honours_the_wish_and_the_avoid_list() {
    for strategy in [
        "round_robin",
        "random",
        "least_used",
        "healthiest",
        "weighted",
    ] {
        let mut e = engine_with(
            &[
                "http://de1:1;region=DE",
                "http://fr:1;region=FR",
                "http://de2:1;region=DE",
                "http://de3:1;region=DE",
            ],
            &[("strategy", strategy)],
        );
        let mut r = wanting(regions(&["DE"]));
        r.avoid = vec![id("http://de1:1"), id("http://de3:1")];
        for t in 0..20 {
            assert_eq!(e.next_for(t, &r).unwrap().url, "http://de2:1", "{strategy}");
        }
    }
}

#[test]
fn bad_options_are_refused_with_the_key() {
    for (k, v) in [
        ("failure_threshold", "zero"),
        ("strategy", "fastest"),
        ("treshold", "3"),
        ("jitter", "some"),
        ("weight", "http://a:1"),
        ("recovery", "maybe"),
        ("proxy", "ftp://u:s3cret@h:1"),
        ("proxy", "http://h:1;colour=red"),
        ("site_ban_jitter", "1.5"),
        ("site_ban_jitter", "NaN"),
        ("site_ban_cap_ms", "-1"),
        ("learn_window_ms", "0"),
    ] {
        let err = Engine::from_options(&opts(&[(k, v)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(k), "{k}={v}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

#[test]
fn bad_site_rates_are_refused_with_the_option_and_the_value() {
    for v in [
        "youtube.com",
        "youtube.com=",
        "=5/h",
        "youtube.com=0/h",
        "youtube.com=-1/h",
        "youtube.com=5",
        "youtube.com=5/",
        "youtube.com=5/10",
        "youtube.com=5/10x",
        "youtube.com=5/0s",
        "youtube.com=5/1d",
        "youtube.com=5/721h",
        "youtube.com=5/h/2",
        "you tube.com=5/h",
        "youtube.com=2000000/h",
    ] {
        let err = Engine::from_options(&opts(&[("site_rate", v)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("site_rate") && err.contains(v), "{v}: {err}");
    }
    let init = Init::parse(&opts(&[
        ("site_rate", "127.0.0.1=6/10s"),
        ("site_rate", " YouTube.com = 300/h "),
        ("site_rate", "a.example=1/90s"),
        ("site_rate", "b.example=2/m"),
        ("site_rate", "b.example=3/1m"),
    ]))
    .unwrap();
    let rates = &init.settings.site_rates;
    let rate = |d: &str| rates.get(d).map(|r| (r.n, r.window_ms));
    assert_eq!(rate("127.0.0.1"), Some((6, 10_000)));
    assert_eq!(rate("youtube.com"), Some((300, 3_600_000)));
    assert_eq!(rate("a.example"), Some((1, 90_000)));
    assert_eq!(rate("b.example"), Some((3, 60_000)), "the last one wins");
}

#[test]
fn site_ban_ms_still_loads_as_the_cap() {
    let s = |pairs: &[(&str, &str)]| Init::parse(&opts(pairs)).unwrap().settings;
    let d = Settings::default();
    assert_eq!(
        (d.site_ban_base_ms, d.site_ban_cap_ms, d.site_ban_jitter),
        (5_000, 1_800_000, 0.2)
    );
    assert_eq!(d.learn_window_ms, 10_000);
    assert_eq!(s(&[("site_ban_ms", "600000")]).site_ban_cap_ms, 600_000);
    // The new name wins, whatever the order.
    for pairs in [
        [("site_ban_ms", "600000"), ("site_ban_cap_ms", "900000")],
        [("site_ban_cap_ms", "900000"), ("site_ban_ms", "600000")],
    ] {
        assert_eq!(s(&pairs).site_ban_cap_ms, 900_000);
    }
    // 0 still turns bans off, Retry-After or not.
    let mut e = engine_with(&[A], &[("site_ban_ms", "0")]);
    e.failure_after(A, Kind::Blocked, "s", Some(60_000), 0);
    ban(&mut e, A, "s", 0);
    assert!(e.next_for(1, &site("s")).is_ok());
}

#[test]
fn last_used_and_timeout_are_reported() {
    let mut e = engine_with(&[A], &[("timeout_ms", "2500")]);
    assert_eq!(e.next(42).unwrap().timeout_ms, 2500);
    assert_eq!(e.stats(42)[0].last_used_ms, Some(42));
}

#[test]
fn fenwick_sampling_matches_prefix_sums() {
    let mut f = Fenwick::default();
    for (i, w) in [3u32, 0, 5, 2].iter().enumerate() {
        f.set(i, *w);
    }
    assert_eq!(f.total(), 10);
    let picks: Vec<usize> = (0..10).map(|t| f.find(t)).collect();
    assert_eq!(picks, [0, 0, 0, 2, 2, 2, 2, 2, 3, 3]);
    f.set(2, 0);
    assert_eq!(f.total(), 5);
    assert_eq!(f.find(3), 3);
    f.set(100, 4);
    assert_eq!(f.total(), 9);
    assert_eq!(f.find(8), 100);
}

#[test]
fn an_engine_that_saves_nothing_does_not_grow() {
    let mut e = engine(&[A, B]);
    for t in 0..1000 {
        let p = e.next(t).unwrap();
        e.failure(&p.id, Kind::Blocked, "s", t);
        e.success(&p.id, t);
    }
    assert!(e.take_dirty().is_empty());
    assert!(e.take_new_bans().is_empty());
    e.track_changes(true);
    e.success(A, 0);
    assert_eq!(e.take_dirty().len(), 1);
}

#[test]
fn ids_have_one_spelling() {
    for s in ["p0a1b2c3d", "p0a1b2c3d-2", "p0a1b2c3d-65535"] {
        assert_eq!(Id::parse(s).unwrap().to_string(), s);
    }
    for s in [
        "p0A1B2C3D",
        "p0a1b2c3d-1",
        "p0a1b2c3d-02",
        "p0a1b2c3",
        "q0a1b2c3d",
        "p0a1b2c3d-",
        "p0a1b2c3d-70000",
        "",
    ] {
        assert_eq!(Id::parse(s), None, "{s}");
    }
    assert_eq!(Id::parse(&id(A)).unwrap().to_string(), id(A));
}

#[test]
fn a_failed_preflight_cools_the_proxy_down_at_once() {
    let mut e = engine(&[A, B]);
    let a = id(A);
    // A run's proxy fault is noisy: one is not enough (threshold 3).
    e.failure(&a, Kind::ProxyConnect, "s", 0);
    assert_eq!(state(&e, A, 1), ProxyState::Active);
    // The host's pre-flight check is certain: at once.
    let certain = FailureInfo {
        certain: true,
        ..FailureInfo::default()
    };
    e.failure_with(&a, Kind::ProxyConnect, "s", &certain, 2);
    assert!(matches!(state(&e, A, 3), ProxyState::CoolingDown(_)));
    // A proxy known dead is not handed out while it cools down.
    for t in 3..10 {
        assert_eq!(e.next(t).unwrap().url, B);
    }
}
