//! Options of the Redis backend: parsed at `init`, and again (over the init
//! values) at every call, since the host merges per-download options into
//! each call's options.

use std::time::Duration;

/// Failure kinds: the contract's (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
use ytdlp_plugin_sdk::contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_plugin_sdk::{OptionInfo, PluginError, PluginInfo, is_host_key, num};

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
    pub fn parse(s: &str) -> Result<Strategy, PluginError> {
        match s {
            "round_robin" | "round-robin" => Ok(Strategy::RoundRobin),
            "healthiest" => Ok(Strategy::Healthiest),
            other => Err(PluginError::invalid(
                "strategy",
                format!("unknown strategy `{other}` (supported: round_robin, healthiest)"),
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
    /// How long `blocked` keeps a proxy from that site (its registrable
    /// domain), for every host; 0: never.
    pub site_ban_ms: u64,
    /// How long a sticky key keeps its proxy after its last use.
    pub sticky_ttl_ms: u64,
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
            site_ban_ms: 1_800_000,
            sticky_ttl_ms: 3_600_000,
        }
    }
}

/// Longest ban or sticky time an option may set: 30 days.
const MAX_WINDOW_MS: u64 = 30 * 24 * 3_600_000;

/// What `describe` answers: every option, all of which may also be given
/// per download (they are parsed again over the init values at each call).
pub fn describe() -> PluginInfo {
    let o = OptionInfo::per_call;
    ytdlp_plugin_sdk::plugin_info!()
        .summary("one proxy pool in Redis, shared by many hosts")
        .option(
            o(
                "url",
                "the Redis: redis://[[user]:password@]host[:port][/db] (default redis://127.0.0.1:6379)",
            )
            // It may hold the Redis password.
            .secret(),
        )
        .option(o("pool", "key namespace; several pools can share one Redis (default `default`)"))
        .option(o(
            "failure_threshold",
            "consecutive proxy faults that take a proxy out (default 3)",
        ))
        .option(o(
            "cooldown_ms",
            "how long a proxy stays out; 0: until removed and added again (default 300000)",
        ))
        .option(o("strategy", "round_robin (default) or healthiest"))
        .option(o("timeout_ms", "the proxy timeout handed to the host (default 30000)"))
        .option(o(
            "redis_timeout_ms",
            "bound on connecting to Redis and each read or write (default 200)",
        ))
        .option(o(
            "site_ban_ms",
            "how long `blocked` keeps a proxy from that site, for every host (default 1800000)",
        ))
        .option(o(
            "sticky_ttl_ms",
            "how long a sticky key keeps its proxy after its last use (default 3600000)",
        ))
}

impl Settings {
    /// `base` with `options` applied over it. Keys under `host.` are
    /// skipped (0.1 hosts sent their context so); any other unknown key is
    /// refused so that a typo does not silently do nothing. A key given
    /// several times takes its last value.
    pub fn parse(base: &Settings, options: &[(String, String)]) -> Result<Settings, PluginError> {
        let mut s = base.clone();
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "url" => s.url = check_redis_url(v)?,
                "pool" => s.pool = check_pool(v)?,
                "failure_threshold" => s.failure_threshold = num(key, v, 1, 1_000_000)?,
                "cooldown_ms" => s.cooldown_ms = num(key, v, 0, 365 * 24 * 3_600_000)?,
                "strategy" => s.strategy = Strategy::parse(v)?,
                "timeout_ms" => s.timeout_ms = num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "redis_timeout_ms" => s.redis_timeout_ms = num(key, v, 1, 60_000)?,
                "site_ban_ms" => s.site_ban_ms = num(key, v, 0, MAX_WINDOW_MS)?,
                "sticky_ttl_ms" => s.sticky_ttl_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                other if is_host_key(other) => {}
                other => return Err(PluginError::unknown_option(other)),
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

    /// Prefix of the per-proxy HASH keys (`<prefix><proxy id>`).
    pub fn proxy_key_prefix(&self) -> String {
        format!("ytdlp:{{{}}}:proxy:", self.pool)
    }

    pub fn proxy_key(&self, id: &str) -> String {
        format!("{}{id}", self.proxy_key_prefix())
    }

    /// Prefix of the per-site HASH keys of bans (`<prefix><domain>`: proxy
    /// id -> banned until, ms).
    pub fn site_key_prefix(&self) -> String {
        format!("ytdlp:{{{}}}:site:", self.pool)
    }

    pub fn site_key(&self, domain: &str) -> String {
        format!("{}{domain}", self.site_key_prefix())
    }

    /// The ZSET of sites with bans, scored by when the last one ends (for
    /// stats, which cannot scan keys cheaply).
    pub fn sites_key(&self) -> String {
        format!("ytdlp:{{{}}}:sites", self.pool)
    }

    /// The STRING holding a sticky key's proxy id.
    pub fn sticky_key(&self, key: &str) -> String {
        format!("ytdlp:{{{}}}:sticky:{key}", self.pool)
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
pub fn check_redis_url(url: &str) -> Result<String, PluginError> {
    let bad = |why: &str| {
        Err(PluginError::invalid(
            "url",
            format!(
                "`{}` {why} (want redis://[[user]:password@]host[:port][/db])",
                display_redis_url(url)
            ),
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

fn check_pool(pool: &str) -> Result<String, PluginError> {
    let ok = !pool.is_empty()
        && pool.len() <= 64
        && pool
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(pool.to_string())
    } else {
        Err(PluginError::invalid(
            "pool",
            format!("`{pool}` must be 1-64 characters of letters, digits, `-`, `_`, `.`, `:`"),
        ))
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
            let err = Settings::parse(&d, &opts(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn keys_carry_the_pool_as_a_hash_tag() {
        let s = Settings::parse(&Settings::default(), &opts(&[("pool", "eu-1")])).unwrap();
        assert_eq!(s.list_key(), "ytdlp:{eu-1}:proxies");
        assert_eq!(s.proxy_key("p1234abcd"), "ytdlp:{eu-1}:proxy:p1234abcd");
        assert_eq!(s.site_key("youtube.com"), "ytdlp:{eu-1}:site:youtube.com");
        assert_eq!(s.sites_key(), "ytdlp:{eu-1}:sites");
        assert_eq!(s.sticky_key("k"), "ytdlp:{eu-1}:sticky:k");
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
        let err = check_redis_url("redis://:s3cret@").unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn describe_lists_every_option_parse_reads() {
        let info = describe();
        assert!(info.get("url").is_some_and(|o| o.secret));
        for o in &info.options {
            let v = match o.key.as_str() {
                "url" => "redis://127.0.0.1:1",
                "pool" => "p",
                "strategy" => "healthiest",
                _ => "5",
            };
            assert!(
                Settings::parse(&Settings::default(), &opts(&[(&o.key, v)])).is_ok(),
                "{}",
                o.key
            );
        }
        let s = Settings::parse(&Settings::default(), &[]).unwrap();
        assert_eq!((s.site_ban_ms, s.sticky_ttl_ms), (1_800_000, 3_600_000));
    }
}
