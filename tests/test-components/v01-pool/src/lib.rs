//! Test fixture: a small but real backend that stays on contract 0.1
//! (wit-bindgen straight from `wit/proxy-0.1.wit`, world
//! `proxy-backend-with-stats`), so the host is tested with both contract
//! versions side by side: the conformance kit and real downloads.
//!
//! A round-robin pool over its `proxy` init options (URLs, repeatable):
//! - `failure_threshold` (default 3) consecutive proxy faults take a proxy
//!   out for `cooldown_ms` (default 60000); a success resets the count;
//! - `blocked` keeps that proxy from the site of the attempt (the host's
//!   `host.site` option, 0.1's context) for `site_ban_ms` (default 600000);
//! - a retry (`host.attempt` > 1) of one download (`host.download-id`)
//!   gets another proxy than the one that failed it, if there is one;
//! - `timeout_ms` (default 30000) is handed out with each proxy;
//! - unknown options are refused (the host's `host.*` ones skipped).
//!
//! The pool logic is plain Rust ([`Pool`]), tested natively; the WIT glue
//! is at the bottom, for wasm only.

use std::collections::HashMap;

use ytdlp_contract::options::{HOST_ATTEMPT, HOST_DOWNLOAD_ID, HOST_SITE, opt, parse_num, unknown};
use ytdlp_contract::{FailureKind, ProxyState, ProxyStats, proxy_url};

/// Options read at init.
const KNOWN: &[&str] = &[
    "proxy",
    "timeout_ms",
    "failure_threshold",
    "cooldown_ms",
    "site_ban_ms",
];

/// Downloads remembered for their last failed proxy.
const MAX_DOWNLOADS: usize = 1024;

#[derive(Debug, Default)]
struct Health {
    successes: u64,
    failures: HashMap<FailureKind, u64>,
    consecutive: u32,
    out_until: u64,
    last_used: u64,
    /// site -> banned until
    bans: HashMap<String, u64>,
}

/// The pool: proxies in order, their health, a cursor.
#[derive(Debug)]
pub struct Pool {
    urls: Vec<String>,
    health: Vec<Health>,
    cursor: usize,
    timeout_ms: u32,
    threshold: u32,
    cooldown_ms: u64,
    site_ban_ms: u64,
    /// download id -> the proxy that failed its last attempt
    failed: HashMap<String, usize>,
}

/// A proxy handed out, or why none.
pub type Pick = Result<(String, u32), (String, Option<u64>)>;

impl Pool {
    pub fn new(options: &[(String, String)]) -> Result<Pool, String> {
        let mut pool = Pool {
            urls: Vec::new(),
            health: Vec::new(),
            cursor: 0,
            timeout_ms: 30_000,
            threshold: 3,
            cooldown_ms: 60_000,
            site_ban_ms: 600_000,
            failed: HashMap::new(),
        };
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "proxy" => {
                    let url = proxy_url::validate(v)
                        .map_err(|e| format!("option `proxy` #{}: {e}", pool.urls.len() + 1))?;
                    if !pool.urls.iter().any(|u| u == url.expose()) {
                        pool.urls.push(url.expose().to_string());
                        pool.health.push(Health::default());
                    }
                }
                "timeout_ms" => pool.timeout_ms = parse_num(key, v, 1, 600_000)?,
                "failure_threshold" => pool.threshold = parse_num(key, v, 1, 1_000_000)?,
                "cooldown_ms" => pool.cooldown_ms = parse_num(key, v, 1, 86_400_000)?,
                "site_ban_ms" => pool.site_ban_ms = parse_num(key, v, 0, 86_400_000)?,
                other => {
                    if let Some(refusal) = unknown(other, KNOWN) {
                        return Err(refusal);
                    }
                }
            }
        }
        Ok(pool)
    }

    fn find(&self, url: &str) -> Option<usize> {
        self.urls.iter().position(|u| u == url)
    }

    /// The next usable proxy for a call with `options` (0.1's `host.*`
    /// context), at `now`.
    pub fn get(&mut self, options: &[(String, String)], now: u64) -> Pick {
        if self.urls.is_empty() {
            return Err(("no proxies configured".to_string(), None));
        }
        let site = opt(options, HOST_SITE).unwrap_or("");
        let retry = opt(options, HOST_ATTEMPT).and_then(|a| a.parse::<u32>().ok()) > Some(1);
        let failed = opt(options, HOST_DOWNLOAD_ID)
            .filter(|_| retry)
            .and_then(|d| self.failed.get(d).copied());
        let usable = |i: usize, h: &Health| {
            h.out_until <= now && h.bans.get(site).is_none_or(|&t| t <= now) && Some(i) != failed
        };
        let n = self.urls.len();
        let mut found = (0..n)
            .map(|k| (self.cursor + k) % n)
            .find(|&i| usable(i, &self.health[i]));
        if found.is_none() && failed.is_some() {
            // The one that failed this download is better than none.
            found = failed.filter(|&i| {
                let h = &self.health[i];
                h.out_until <= now && h.bans.get(site).is_none_or(|&t| t <= now)
            });
        }
        let Some(i) = found else {
            let next = self
                .health
                .iter()
                .map(|h| h.out_until.max(h.bans.get(site).copied().unwrap_or(0)))
                .filter(|&t| t > now)
                .min();
            return Err((
                format!("all {n} proxies are out or banned for `{site}`"),
                next,
            ));
        };
        self.cursor = (i + 1) % n;
        self.health[i].last_used = now;
        Ok((self.urls[i].clone(), self.timeout_ms))
    }

    pub fn success(&mut self, url: &str) {
        if let Some(i) = self.find(url) {
            let h = &mut self.health[i];
            h.successes += 1;
            h.consecutive = 0;
        }
    }

    pub fn failure(
        &mut self,
        url: &str,
        kind: FailureKind,
        options: &[(String, String)],
        now: u64,
    ) {
        let Some(i) = self.find(url) else {
            return;
        };
        if let Some(d) = opt(options, HOST_DOWNLOAD_ID) {
            if self.failed.len() >= MAX_DOWNLOADS {
                self.failed.clear();
            }
            self.failed.insert(d.to_string(), i);
        }
        let h = &mut self.health[i];
        *h.failures.entry(kind).or_default() += 1;
        if kind.is_proxy_fault() {
            h.consecutive += 1;
            if h.consecutive >= self.threshold {
                h.out_until = now + self.cooldown_ms;
            }
        }
        let site = opt(options, HOST_SITE).unwrap_or("");
        if kind == FailureKind::Blocked && !site.is_empty() && self.site_ban_ms > 0 {
            h.bans.insert(site.to_string(), now + self.site_ban_ms);
        }
    }

    pub fn stats(&self, now: u64) -> Vec<ProxyStats> {
        self.urls
            .iter()
            .zip(&self.health)
            .map(|(url, h)| {
                let mut extra: Vec<(String, String)> = FailureKind::ALL
                    .iter()
                    .filter_map(|k| {
                        h.failures
                            .get(k)
                            .map(|n| (format!("failures.{k}"), n.to_string()))
                    })
                    .collect();
                let mut bans: Vec<_> = h.bans.iter().filter(|(_, t)| **t > now).collect();
                bans.sort();
                for (site, until) in bans {
                    extra.push((format!("banned.{site}"), until.to_string()));
                }
                ProxyStats {
                    url: url.clone(),
                    meta: Default::default(),
                    successes: h.successes,
                    failures: h.failures.values().sum(),
                    consecutive_failures: h.consecutive,
                    state: if h.out_until > now {
                        ProxyState::CoolingDown(h.out_until)
                    } else {
                        ProxyState::Active
                    },
                    last_used_ms: (h.last_used > 0).then_some(h.last_used),
                    extra,
                }
            })
            .collect()
    }
}

#[cfg(target_family = "wasm")]
mod component {
    use std::cell::RefCell;

    use super::Pool;

    wit_bindgen::generate!({
        path: "../../../wit/proxy-0.1.wit",
        world: "proxy-backend-with-stats",
    });

    use exports::ytdlp::proxy::backend::Guest;
    use exports::ytdlp::proxy::stats::Guest as Stats;
    use ytdlp::proxy::types::{Failure, GetProxyError, NoProxy, Options, Proxy, ProxyStats};

    ytdlp_contract::failure_kind_conversions!(v0_1: ytdlp::proxy::types::FailureKind);
    ytdlp_contract::stats_conversions!(
        state: ytdlp::proxy::types::ProxyState,
        stats: ytdlp::proxy::types::ProxyStats
    );

    thread_local! {
        static POOL: RefCell<Option<Pool>> = const { RefCell::new(None) };
    }

    fn with<R>(f: impl FnOnce(&mut Pool) -> R) -> Option<R> {
        POOL.with(|p| p.borrow_mut().as_mut().map(f))
    }

    struct V01Pool;

    impl Guest for V01Pool {
        fn init(options: Options) -> Result<(), String> {
            let pool = Pool::new(&options)?;
            POOL.with(|p| *p.borrow_mut() = Some(pool));
            Ok(())
        }

        fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
            match with(|p| p.get(&options, ytdlp_contract::now_ms())) {
                Some(Ok((url, timeout_ms))) => Ok(Proxy { url, timeout_ms }),
                Some(Err((message, retry_at_ms))) => {
                    Err(GetProxyError::NoProxyAvailable(NoProxy {
                        message,
                        retry_at_ms,
                    }))
                }
                None => Err(GetProxyError::BackendUnavailable("not initialised".into())),
            }
        }

        fn report_success(proxy_url: String, _options: Options) {
            with(|p| p.success(&proxy_url));
        }

        fn report_failure(proxy_url: String, failure: Failure, options: Options) {
            let kind = failure.kind.into();
            with(|p| p.failure(&proxy_url, kind, &options, ytdlp_contract::now_ms()));
        }
    }

    impl Stats for V01Pool {
        fn get_stats(_options: Options) -> Result<Vec<ProxyStats>, String> {
            with(|p| {
                p.stats(ytdlp_contract::now_ms())
                    .into_iter()
                    .map(Into::into)
                    .collect()
            })
            .ok_or_else(|| "not initialised".to_string())
        }
    }

    export!(V01Pool);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pool(extra: &[(&str, &str)]) -> Pool {
        let mut o = opts(&[("proxy", "http://a:1"), ("proxy", "socks5://u:p@b:2")]);
        o.extend(opts(extra));
        Pool::new(&o).unwrap()
    }

    fn url(p: Pick) -> String {
        p.unwrap().0
    }

    #[test]
    fn round_robin_with_the_timeout() {
        let mut p = pool(&[("timeout_ms", "5000")]);
        assert_eq!(p.get(&[], 0), Ok(("http://a:1".to_string(), 5000)));
        assert_eq!(url(p.get(&[], 1)), "socks5://u:p@b:2");
        assert_eq!(url(p.get(&[], 2)), "http://a:1");
    }

    #[test]
    fn bad_options_are_refused_and_host_keys_skipped() {
        assert!(Pool::new(&opts(&[("host.site", "x"), ("proxy", "http://a:1")])).is_ok());
        let e = Pool::new(&opts(&[("proxy", "ftp://u:s3cret@h:1")])).unwrap_err();
        assert!(
            e.contains("option `proxy` #1") && !e.contains("s3cret"),
            "{e}"
        );
        assert!(
            Pool::new(&opts(&[("treshold", "3")]))
                .unwrap_err()
                .contains("treshold")
        );
        let mut empty = Pool::new(&[]).unwrap();
        assert_eq!(empty.get(&[], 0).unwrap_err().0, "no proxies configured");
    }

    #[test]
    fn faults_take_a_proxy_out_and_blocked_bans_it_for_the_site() {
        let mut p = pool(&[("failure_threshold", "2"), ("cooldown_ms", "100")]);
        p.failure("http://a:1", FailureKind::ProxyConnect, &[], 0);
        p.failure("http://a:1", FailureKind::ProxyTimeout, &[], 0);
        for t in 1..4 {
            assert_eq!(url(p.get(&[], t)), "socks5://u:p@b:2");
        }
        assert!(matches!(p.stats(5)[0].state, ProxyState::CoolingDown(100)));
        assert_eq!(url(p.get(&[], 100)), "http://a:1");
        let site = opts(&[("host.site", "www.video.example")]);
        p.failure("socks5://u:p@b:2", FailureKind::Blocked, &site, 200);
        for t in 201..204 {
            assert_eq!(url(p.get(&site, t)), "http://a:1");
        }
        let row = &p.stats(205)[1];
        assert_eq!(row.state, ProxyState::Active);
        assert!(
            row.extra
                .iter()
                .any(|(k, _)| k == "banned.www.video.example")
        );
        assert!(row.extra.contains(&("failures.blocked".into(), "1".into())));
        // Content failures never count.
        for _ in 0..10 {
            p.failure("http://a:1", FailureKind::Content, &[], 300);
        }
        assert_eq!(p.stats(300)[0].state, ProxyState::Active);
    }

    #[test]
    fn a_retry_gets_another_proxy_than_the_one_that_failed_it() {
        let mut p = pool(&[]);
        let first = opts(&[("host.download-id", "d1"), ("host.attempt", "1")]);
        let got = url(p.get(&first, 0));
        p.failure(&got, FailureKind::Unknown, &first, 1);
        let retry = opts(&[("host.download-id", "d1"), ("host.attempt", "2")]);
        for t in 2..5 {
            assert_ne!(url(p.get(&retry, t)), got);
        }
    }
}
