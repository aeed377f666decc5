//! Every rule of the engine, with a controlled clock and seeded randomness.

use super::*;

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An engine over `urls` with extra options (seed fixed).
fn engine_with(urls: &[&str], extra: &[(&str, &str)]) -> Engine {
    let mut pairs: Vec<(&str, &str)> = urls.iter().map(|u| ("proxy", *u)).collect();
    pairs.push(("seed", "7"));
    pairs.extend_from_slice(extra);
    Engine::from_options(&opts(&pairs)).unwrap()
}

fn engine(urls: &[&str]) -> Engine {
    engine_with(urls, &[])
}

fn state(e: &Engine, url: &str, now: u64) -> ProxyState {
    e.stats(now)
        .into_iter()
        .find(|s| s.url == url)
        .unwrap()
        .state
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
fn threshold_counts_consecutive_proxy_faults_only() {
    let mut e = engine(&[A, B]);
    e.failure(A, Kind::ProxyConnect, "s", 0);
    e.failure(A, Kind::ProxyTimeout, "s", 0);
    assert_eq!(state(&e, A, 0), ProxyState::Active);
    e.failure(A, Kind::ProxyAuth, "s", 0);
    assert!(matches!(state(&e, A, 0), ProxyState::CoolingDown(_)));
    for t in 0..4 {
        assert_eq!(e.next(t).unwrap().url, B);
    }
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
fn blocked_benches_the_proxy_for_that_site_only() {
    let mut e = engine_with(&[A, B], &[("site_ban_ms", "1000")]);
    e.failure(A, Kind::Blocked, "video.example", 10);
    // Not counted toward disabling.
    assert_eq!(state(&e, A, 10), ProxyState::Active);
    for t in 11..15 {
        assert_eq!(e.next_for(t, "video.example", None).unwrap().url, B);
    }
    // Other sites still get A.
    let other: Vec<String> = (0..2)
        .map(|t| e.next_for(20 + t, "other.example", None).unwrap().url)
        .collect();
    assert!(other.contains(&A.to_string()), "{other:?}");
    // The ban shows in stats and ends after site_ban_ms.
    assert!(
        e.stats(20)[0]
            .extra
            .contains(&("banned.video.example".into(), "1010".into()))
    );
    let after: Vec<String> = (0..2)
        .map(|t| e.next_for(1011 + t, "video.example", None).unwrap().url)
        .collect();
    assert!(after.contains(&A.to_string()), "{after:?}");
}

#[test]
fn every_proxy_banned_for_a_site_says_when_the_first_comes_back() {
    let mut e = engine_with(&[A, B], &[("site_ban_ms", "1000")]);
    e.failure(A, Kind::Blocked, "s", 0);
    e.failure(B, Kind::Blocked, "s", 500);
    let err = e.next_for(600, "s", None).unwrap_err();
    assert_eq!(err.retry_at_ms, Some(1000));
    assert!(err.message.contains("banned for s"), "{}", err.message);
    assert!(e.next_for(600, "t", None).is_ok());
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
    let s = e.stats(23900).into_iter().find(|s| s.url == A).unwrap();
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
    let first = e.next_for(0, "s", Some("playlist-1")).unwrap().url;
    for t in 1..5 {
        assert_eq!(e.next_for(t, "s", Some("playlist-1")).unwrap().url, first);
    }
    // Other keys rotate as usual.
    let other = e.next_for(5, "s", Some("playlist-2")).unwrap().url;
    assert_ne!(other, first);
    // When the sticky proxy fails, the key moves to another one and stays.
    e.failure(&first, Kind::ProxyConnect, "s", 6);
    let moved = e.next_for(7, "s", Some("playlist-1")).unwrap().url;
    assert_ne!(moved, first);
    assert_eq!(e.next_for(8, "s", Some("playlist-1")).unwrap().url, moved);
    // A site ban also moves it, for that site.
    e.failure(&moved, Kind::Blocked, "s", 9);
    assert_ne!(e.next_for(10, "s", Some("playlist-1")).unwrap().url, moved);
}

#[test]
fn credentials_are_part_of_identity() {
    let mut e = engine(&["http://a:x@h:1", "http://b:y@h:1", "http://a:x@h:1"]);
    assert_eq!(e.len(), 2);
    e.failure("http://a:x@h:1", Kind::ProxyConnect, "", 0);
    assert_eq!(e.stats(0)[1].failures, 0);
    assert_eq!(e.stats(0)[0].failures, 1);
}

#[test]
fn the_list_changes_without_losing_health() {
    let mut e = engine(&[A, B]);
    e.success(A, 0);
    e.failure(B, Kind::ProxyConnect, "", 0);
    // A reload with B gone and C new; A keeps its counts.
    let list = vec![(A.to_string(), 1), (C.to_string(), 1)];
    e.retain_configured(&list);
    for (u, w) in &list {
        e.add(u, *w, false);
    }
    let stats = e.stats(0);
    let urls: Vec<&str> = stats.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(urls, [A, C]);
    assert_eq!(stats[0].successes, 1);
    // Added through admin, B comes back with its old health.
    assert!(e.add(B, 1, true));
    assert_eq!(e.stats(0).iter().find(|s| s.url == B).unwrap().failures, 1);
    // Removal takes it out of rotation.
    assert!(e.remove(A));
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
    e.add("http://d:1", 1, true);
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
    e.add(C, 1, true);
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
    // Weight 0: never.
    let mut e = engine_with(
        &[A, B],
        &[("strategy", "weighted"), ("weight", "http://a:1=0")],
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
        e.failure(B, Kind::Blocked, "s", 0);
        for t in 1..30 {
            assert_eq!(e.next_for(t, "s", None).unwrap().url, C, "{strategy}");
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
    ] {
        let err = Engine::from_options(&opts(&[(k, v)])).unwrap_err();
        assert!(err.contains(k) || err.contains(v), "{k}={v}: {err}");
    }
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
        let p = e.next_for(t, "", None).unwrap();
        e.failure(&p.url, Kind::Blocked, "s", t);
        e.success(&p.url, t);
    }
    assert!(e.take_dirty().is_empty());
    assert!(e.take_new_bans().is_empty());
    e.track_changes(true);
    e.success(A, 0);
    assert_eq!(e.take_dirty().len(), 1);
}
