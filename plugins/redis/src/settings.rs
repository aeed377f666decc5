//! Options of the Redis backend: parsed at `init`, and again (over the init
//! values) at every call, since the host merges per-download options into
//! each call's options.

use std::time::Duration;

/// Failure kinds: the contract's (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
use ytdlp_plugin_sdk::contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_plugin_sdk::contract::proxy_url;
use ytdlp_plugin_sdk::{parse_num, unknown};

/// How `get-proxy` chooses among the usable proxies of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every host takes the next proxy of one shared ring, in order.
    RoundRobin,
    /// The best success ratio over proxy faults (Laplace-smoothed), the
    /// least recently used one among equals.
    Healthiest,
}

impl Strategy {
    pub fn parse(s: &str) -> Result<Strategy, String> {
        match s {
            "round_robin" | "round-robin" => Ok(Strategy::RoundRobin),
            "healthiest" => Ok(Strategy::Healthiest),
            other => Err(format!(
                "option `strategy`: unknown strategy `{other}` (supported: round_robin, healthiest)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Healthiest => "healthiest",
        }
    }
}

/// Every option, with its value in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `redis://[[user]:password@]host[:port][/db]`.
    pub url: String,
    /// Key namespace: several pools can share one Redis.
    pub pool: String,
    /// Consecutive proxy faults that take a proxy out.
    pub failure_threshold: u32,
    /// How long a proxy stays out; 0: until it is removed and added again.
    pub cooldown_ms: u64,
    pub strategy: Strategy,
    /// Handed to the host with each proxy (yt-dlp's `--socket-timeout`).
    pub timeout_ms: u32,
    /// Bound on connecting to Redis and on each read or write, so that a
    /// dead or hung Redis gives a typed error inside the host's call
    /// deadline (500 ms by default).
    pub redis_timeout_ms: u64,
}

pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: DEFAULT_URL.to_string(),
            pool: "default".to_string(),
            failure_threshold: 3,
            cooldown_ms: 300_000,
            strategy: Strategy::RoundRobin,
            timeout_ms: 30_000,
            redis_timeout_ms: 200,
        }
    }
}

const KNOWN: &[&str] = &[
    "url",
    "pool",
    "failure_threshold",
    "cooldown_ms",
    "strategy",
    "timeout_ms",
    "redis_timeout_ms",
];

impl Settings {
    /// `base` with `options` applied over it. Keys under `host.` are the
    /// host's context and are skipped; any other unknown key is refused so
    /// that a typo does not silently do nothing. A key given several times
    /// takes its last value.
    pub fn parse(base: &Settings, options: &[(String, String)]) -> Result<Settings, String> {
        let mut s = base.clone();
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "url" => s.url = check_redis_url(v)?,
                "pool" => s.pool = check_pool(v)?,
                "failure_threshold" => {
                    s.failure_threshold = parse_num(key, v, 1, 1_000_000)?;
                }
                "cooldown_ms" => s.cooldown_ms = parse_num(key, v, 0, 365 * 24 * 3_600_000)?,
                "strategy" => s.strategy = Strategy::parse(v)?,
                "timeout_ms" => s.timeout_ms = parse_num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "redis_timeout_ms" => s.redis_timeout_ms = parse_num(key, v, 1, 60_000)?,
                other => {
                    if let Some(refusal) = unknown(other, KNOWN) {
                        return Err(refusal);
                    }
                }
            }
        }
        Ok(s)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// The pool's proxy list (a Redis LIST, in rotation order). The pool
    /// name is a hash tag, so every key of a pool is in one cluster slot.
    pub fn list_key(&self) -> String {
        format!("ytdlp:{{{}}}:proxies", self.pool)
    }

    /// Prefix of the per-proxy HASH keys (`<prefix><proxy url>`).
    pub fn proxy_key_prefix(&self) -> String {
        format!("ytdlp:{{{}}}:proxy:", self.pool)
    }

    pub fn proxy_key(&self, url: &str) -> String {
        format!("{}{url}", self.proxy_key_prefix())
    }

    /// The Redis address without credentials, for messages.
    pub fn redis_display(&self) -> String {
        display_redis_url(&self.url)
    }

    /// `host:port` of the Redis URL (port 6379 when none is given): what a
    /// tcp grant must name.
    pub fn redis_hostport(&self) -> String {
        let rest = self.url.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or("");
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let has_port = match hostport.rfind(']') {
            Some(i) => hostport[i..].contains(':'),
            None => hostport.contains(':'),
        };
        if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        }
    }
}

/// Accepts `redis://[[user]:password@]host[:port][/db]` (the only scheme:
/// this build has no TLS).
pub fn check_redis_url(url: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "option `url`: `{}` {why} (want redis://[[user]:password@]host[:port][/db])",
            display_redis_url(url)
        ))
    };
    let Some(rest) = url.strip_prefix("redis://") else {
        return bad("is not a redis:// URL");
    };
    let authority = rest.split('/').next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    if hostport.is_empty() {
        return bad("has no host");
    }
    if let Some(db) = rest.split_once('/').map(|(_, d)| d)
        && !db.is_empty()
        && db.parse::<u16>().is_err()
    {
        return bad("has a database that is not a number");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace");
    }
    Ok(url.to_string())
}

/// `redis://host:port/db` with any user and password removed.
pub fn display_redis_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

fn check_pool(pool: &str) -> Result<String, String> {
    let ok = !pool.is_empty()
        && pool.len() <= 64
        && pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(pool.to_string())
    } else {
        Err(format!(
            "option `pool`: `{pool}` must be 1-64 characters of letters, digits, `-`, `_`, `.`, `:`"
        ))
    }
}

/// A proxy URL given to `add-proxies` is checked as the host will check
/// it, so the pool does not fill with what the host would refuse at every
/// `get-proxy`.
pub fn check_proxy_url(url: &str) -> Result<(), String> {
    proxy_url::validate(url)
        .map(|_| ())
        .map_err(|e| format!("`{}`: {e}", proxy_url::mask(url)))
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

    #[test]
    fn defaults_are_documented_ones() {
        let s = Settings::parse(&Settings::default(), &[]).unwrap();
        assert_eq!(s.url, "redis://127.0.0.1:6379");
        assert_eq!(s.pool, "default");
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.cooldown_ms, 300_000);
        assert_eq!(s.strategy, Strategy::RoundRobin);
        assert_eq!(s.timeout_ms, 30_000);
    }

    #[test]
    fn options_apply_over_a_base_and_host_keys_are_skipped() {
        let base = Settings::parse(
            &Settings::default(),
            &opts(&[
                ("url", "redis://127.0.0.1:7000/2"),
                ("pool", "eu"),
                ("strategy", "healthiest"),
            ]),
        )
        .unwrap();
        let call = Settings::parse(
            &base,
            &opts(&[
                ("pool", "us"),
                ("host.url", "http://x/"),
                ("cooldown_ms", "0"),
                ("pool", "asia"),
            ]),
        )
        .unwrap();
        assert_eq!(call.url, "redis://127.0.0.1:7000/2");
        assert_eq!(call.pool, "asia");
        assert_eq!(call.strategy, Strategy::Healthiest);
        assert_eq!(call.cooldown_ms, 0);
    }

    #[test]
    fn bad_options_name_the_key() {
        let d = Settings::default();
        for (k, v, want) in [
            ("failure_threshold", "0", "failure_threshold"),
            ("timeout_ms", "700000", "timeout_ms"),
            ("strategy", "fastest", "fastest"),
            ("url", "http://127.0.0.1:6379", "not a redis:// URL"),
            ("url", "redis://", "no host"),
            ("url", "redis://h:1/x", "database"),
            ("pool", "a{b}", "pool"),
            ("pool", "", "pool"),
            ("treshold", "3", "unknown option `treshold`"),
        ] {
            let err = Settings::parse(&d, &opts(&[(k, v)])).unwrap_err();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn keys_carry_the_pool_as_a_hash_tag() {
        let s = Settings::parse(&Settings::default(), &opts(&[("pool", "eu-1")])).unwrap();
        assert_eq!(s.list_key(), "ytdlp:{eu-1}:proxies");
        assert_eq!(
            s.proxy_key("http://h:1"),
            "ytdlp:{eu-1}:proxy:http://h:1".to_string()
        );
    }

    #[test]
    fn the_address_to_grant_is_host_and_port() {
        let at = |url: &str| {
            Settings::parse(&Settings::default(), &opts(&[("url", url)]))
                .unwrap()
                .redis_hostport()
        };
        assert_eq!(at("redis://:pw@10.0.0.1:7000/2"), "10.0.0.1:7000");
        assert_eq!(at("redis://redis.internal"), "redis.internal:6379");
        assert_eq!(at("redis://[::1]/1"), "[::1]:6379");
    }

    #[test]
    fn redis_passwords_never_show() {
        assert_eq!(
            display_redis_url("redis://user:s3cret@10.0.0.1:6379/3"),
            "redis://10.0.0.1:6379/3"
        );
        let err = check_redis_url("redis://:s3cret@").unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn proxy_urls_are_checked_and_masked() {
        assert!(check_proxy_url("http://127.0.0.1:3128").is_ok());
        assert!(check_proxy_url("socks5h://u:p@h:1080").is_ok());
        let err = check_proxy_url("ftp://u:pw@h:21").unwrap_err();
        assert!(err.contains("ftp") && !err.contains("pw@"), "{err}");
        assert!(check_proxy_url("127.0.0.1:3128").is_err());
        assert!(check_proxy_url("http://").is_err());
        assert!(check_proxy_url("http://h:1/path").is_err());
    }
}
