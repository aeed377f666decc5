//! Proxy selection and health, independent of WebAssembly so it can be
//! tested natively. Time is passed in (milliseconds since the Unix epoch) so
//! tests control the clock.

use std::collections::HashMap;

/// Failure kinds, mirroring the contract's `failure-kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ProxyConnect,
    ProxyTimeout,
    ProxyAuth,
    Blocked,
    Content,
    Host,
    Unknown,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::ProxyConnect,
        Kind::ProxyTimeout,
        Kind::ProxyAuth,
        Kind::Blocked,
        Kind::Content,
        Kind::Host,
        Kind::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ProxyConnect => "proxy-connect",
            Kind::ProxyTimeout => "proxy-timeout",
            Kind::ProxyAuth => "proxy-auth",
            Kind::Blocked => "blocked",
            Kind::Content => "content",
            Kind::Host => "host",
            Kind::Unknown => "unknown",
        }
    }

    /// Only the proxy's own faults count toward disabling it.
    pub fn is_proxy_fault(self) -> bool {
        matches!(
            self,
            Kind::ProxyConnect | Kind::ProxyTimeout | Kind::ProxyAuth
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyState {
    Active,
    CoolingDown(u64),
    Disabled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
}

impl Strategy {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "round_robin" | "round-robin" => Ok(Strategy::RoundRobin),
            other => Err(format!(
                "unknown strategy `{other}` (supported: round_robin)"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub strategy: Strategy,
    /// Consecutive proxy faults that disable a proxy.
    pub failure_threshold: u32,
    pub timeout_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strategy: Strategy::RoundRobin,
            failure_threshold: 3,
            timeout_ms: 30_000,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Entry {
    url: String,
    successes: u64,
    failures_by_kind: [u64; 7],
    consecutive_failures: u32,
    disabled: bool,
    last_used_ms: Option<u64>,
}

/// A proxy chosen by [`Engine::next`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub url: String,
    pub timeout_ms: u32,
}

/// Why [`Engine::next`] found nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoProxy {
    pub message: String,
    pub retry_at_ms: Option<u64>,
}

/// Statistics of one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub url: String,
    pub successes: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub state: ProxyState,
    pub last_used_ms: Option<u64>,
    pub extra: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct Engine {
    settings: Settings,
    entries: Vec<Entry>,
    by_url: HashMap<String, usize>,
    cursor: usize,
}

fn parse_num<T>(key: &str, value: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match value.trim().parse::<T>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!(
            "option `{key}`: `{value}` is not a whole number >= {min}"
        )),
    }
}

impl Engine {
    /// Builds an engine from the init options: `proxy` (repeatable),
    /// `strategy`, `failure_threshold`, `timeout_ms`. Unknown keys are
    /// refused so a typo does not silently do nothing.
    pub fn from_options(options: &[(String, String)]) -> Result<Engine, String> {
        let mut settings = Settings::default();
        let mut urls = Vec::new();
        for (key, value) in options {
            match key.as_str() {
                "proxy" => urls.push(value.trim().to_string()),
                "strategy" => settings.strategy = Strategy::parse(value.trim())?,
                "failure_threshold" => settings.failure_threshold = parse_num(key, value, 1)?,
                "timeout_ms" => settings.timeout_ms = parse_num(key, value, 1)?,
                k if k.starts_with("host.") => {}
                other => {
                    return Err(format!(
                        "unknown option `{other}` (known: proxy, strategy, failure_threshold, timeout_ms)"
                    ));
                }
            }
        }
        let mut engine = Engine {
            settings,
            ..Engine::default()
        };
        for url in urls {
            engine.add(url);
        }
        Ok(engine)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Adds a proxy; a URL already known keeps its health. Identity is the
    /// whole URL, credentials included.
    pub fn add(&mut self, url: String) {
        if url.is_empty() || self.by_url.contains_key(&url) {
            return;
        }
        self.by_url.insert(url.clone(), self.entries.len());
        self.entries.push(Entry {
            url,
            ..Entry::default()
        });
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next enabled proxy in round-robin order.
    pub fn next(&mut self, now_ms: u64) -> Result<Pick, NoProxy> {
        let n = self.entries.len();
        if n == 0 {
            return Err(NoProxy {
                message: "no proxies configured".to_string(),
                retry_at_ms: None,
            });
        }
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if !self.entries[i].disabled {
                self.cursor = (i + 1) % n;
                let entry = &mut self.entries[i];
                entry.last_used_ms = Some(now_ms);
                return Ok(Pick {
                    url: entry.url.clone(),
                    timeout_ms: self.settings.timeout_ms,
                });
            }
        }
        Err(NoProxy {
            message: format!(
                "all {n} proxies are disabled after {} consecutive failures",
                self.settings.failure_threshold
            ),
            retry_at_ms: None,
        })
    }

    pub fn success(&mut self, url: &str, _now_ms: u64) {
        if let Some(&i) = self.by_url.get(url) {
            let e = &mut self.entries[i];
            e.successes += 1;
            e.consecutive_failures = 0;
        }
    }

    pub fn failure(&mut self, url: &str, kind: Kind, _now_ms: u64) {
        let Some(&i) = self.by_url.get(url) else {
            return;
        };
        let threshold = self.settings.failure_threshold;
        let e = &mut self.entries[i];
        e.failures_by_kind[kind as usize] += 1;
        if kind.is_proxy_fault() {
            e.consecutive_failures += 1;
            if e.consecutive_failures >= threshold {
                e.disabled = true;
            }
        }
    }

    pub fn stats(&self) -> Vec<Stat> {
        self.entries
            .iter()
            .map(|e| Stat {
                url: e.url.clone(),
                successes: e.successes,
                failures: e.failures_by_kind.iter().sum(),
                consecutive_failures: e.consecutive_failures,
                state: if e.disabled {
                    ProxyState::Disabled
                } else {
                    ProxyState::Active
                },
                last_used_ms: e.last_used_ms,
                extra: Kind::ALL
                    .iter()
                    .filter(|k| e.failures_by_kind[**k as usize] > 0)
                    .map(|k| {
                        (
                            format!("failures.{}", k.name()),
                            e.failures_by_kind[*k as usize].to_string(),
                        )
                    })
                    .collect(),
            })
            .collect()
    }
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

    fn engine(urls: &[&str]) -> Engine {
        let pairs: Vec<(&str, &str)> = urls.iter().map(|u| ("proxy", *u)).collect();
        Engine::from_options(&opts(&pairs)).unwrap()
    }

    #[test]
    fn round_robin_cycles_in_order() {
        let mut e = engine(&["http://a:1", "http://b:1", "http://c:1"]);
        let got: Vec<String> = (0..4).map(|t| e.next(t).unwrap().url).collect();
        assert_eq!(
            got,
            ["http://a:1", "http://b:1", "http://c:1", "http://a:1"]
        );
    }

    #[test]
    fn threshold_disables_after_consecutive_proxy_faults() {
        let mut e = engine(&["http://a:1", "http://b:1"]);
        for _ in 0..2 {
            e.failure("http://a:1", Kind::ProxyConnect, 0);
        }
        assert_eq!(e.stats()[0].state, ProxyState::Active);
        e.failure("http://a:1", Kind::ProxyTimeout, 0);
        assert_eq!(e.stats()[0].state, ProxyState::Disabled);
        for t in 0..4 {
            assert_eq!(e.next(t).unwrap().url, "http://b:1");
        }
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let mut e = engine(&["http://a:1"]);
        e.failure("http://a:1", Kind::ProxyConnect, 0);
        e.failure("http://a:1", Kind::ProxyConnect, 0);
        e.success("http://a:1", 0);
        e.failure("http://a:1", Kind::ProxyConnect, 0);
        let s = &e.stats()[0];
        assert_eq!(s.state, ProxyState::Active);
        assert_eq!((s.successes, s.failures, s.consecutive_failures), (1, 3, 1));
    }

    #[test]
    fn content_and_blocked_never_disable() {
        let mut e = engine(&["http://a:1"]);
        for _ in 0..10 {
            e.failure("http://a:1", Kind::Content, 0);
            e.failure("http://a:1", Kind::Blocked, 0);
        }
        let s = &e.stats()[0];
        assert_eq!(s.state, ProxyState::Active);
        assert_eq!(s.consecutive_failures, 0);
        assert!(s.extra.contains(&("failures.content".into(), "10".into())));
    }

    #[test]
    fn all_disabled_says_so() {
        let mut e = Engine::from_options(&opts(&[
            ("proxy", "http://a:1"),
            ("failure_threshold", "1"),
        ]))
        .unwrap();
        e.failure("http://a:1", Kind::ProxyAuth, 0);
        let err = e.next(0).unwrap_err();
        assert!(err.message.contains("disabled"), "{}", err.message);
    }

    #[test]
    fn no_proxies_is_an_error_not_a_panic() {
        let mut e = engine(&[]);
        assert_eq!(e.next(0).unwrap_err().message, "no proxies configured");
    }

    #[test]
    fn credentials_are_part_of_identity() {
        let mut e = engine(&["http://a:x@h:1", "http://b:y@h:1", "http://a:x@h:1"]);
        assert_eq!(e.len(), 2);
        e.failure("http://a:x@h:1", Kind::ProxyConnect, 0);
        assert_eq!(e.stats()[1].failures, 0);
    }

    #[test]
    fn bad_options_are_refused_with_the_key() {
        let err = Engine::from_options(&opts(&[("failure_threshold", "zero")])).unwrap_err();
        assert!(err.contains("failure_threshold"), "{err}");
        let err = Engine::from_options(&opts(&[("strategy", "fastest")])).unwrap_err();
        assert!(err.contains("fastest"), "{err}");
        let err = Engine::from_options(&opts(&[("treshold", "3")])).unwrap_err();
        assert!(err.contains("treshold"), "{err}");
    }

    #[test]
    fn last_used_and_timeout_are_reported() {
        let mut e = Engine::from_options(&opts(&[("proxy", "http://a:1"), ("timeout_ms", "2500")]))
            .unwrap();
        assert_eq!(e.next(42).unwrap().timeout_ms, 2500);
        assert_eq!(e.stats()[0].last_used_ms, Some(42));
    }
}
