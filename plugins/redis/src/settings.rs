//! Options of the Redis backend: parsed at `init`, and again (over the init
//! values) at every call, since the host merges per-download options into
//! each call's options.

use std::collections::BTreeMap;
use std::time::Duration;

/// Failure kinds: the contract's (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
use ytdlp_plugin_sdk::contract::limits::{MAX_PROXY_TIMEOUT_MS, MAX_WINDOW_MS};
use ytdlp_plugin_sdk::{OptionInfo, PluginError, PluginInfo, fraction, is_host_key, num};

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

pub use ytdlp_plugin_sdk::Rate;

/// Every option, with its value in force.
#[derive(Clone, Debug, PartialEq)]
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
    /// A (proxy, site) pair's first ban; each further one doubles it.
    pub site_ban_base_ms: u64,
    /// The longest ban (a `Retry-After` may be longer); 0: no bans. Also
    /// how long a strike, and a pair's doubling, are remembered.
    pub site_ban_cap_ms: u64,
    /// A ban is multiplied by a factor in [1, 1 + this), so pairs banned
    /// together do not all come back together.
    pub site_ban_jitter: f64,
    /// Pacing budgets by site (`site_rate`, lower-case registrable domain).
    pub site_rates: BTreeMap<String, Rate>,
    /// The window of a budget learned from 429s at a site without a
    /// `site_rate`.
    pub learn_window_ms: u64,
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
            // Short: a ban is re-earned cheaply and doubles, and a site's
            // Retry-After (the floor) usually says more than a guess.
            site_ban_base_ms: 5_000,
            site_ban_cap_ms: 1_800_000,
            site_ban_jitter: 0.2,
            site_rates: BTreeMap::new(),
            // Sites' rate windows are seconds to a minute; halving the
            // runs of a long window would pace far below what they allow.
            learn_window_ms: 10_000,
            sticky_ttl_ms: 3_600_000,
        }
    }
}

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
            "site_ban_base_ms",
            "a proxy's first ban from a site after `blocked` (two URLs refused, or a Retry-After); each further ban doubles (default 5000)",
        ))
        .option(o(
            "site_ban_cap_ms",
            "the longest ban from a site, unless its Retry-After is longer; 0: no bans (default 1800000)",
        ))
        .option(o(
            "site_ban_jitter",
            "a ban is multiplied by a random factor in [1, 1 + this), a fraction from 0 to 1 (default 0.2)",
        ))
        .option(o(
            "site_ban_ms",
            "deprecated: sets site_ban_cap_ms (bans now start at site_ban_base_ms and double)",
        ))
        .option(
            o(
                "site_rate",
                "DOMAIN=N/WINDOW: each proxy at most N runs per sliding WINDOW for that site, across hosts (10s, 90s, 1m, h; e.g. youtube.com=300/h)",
            )
            .repeated(),
        )
        .option(o(
            "learn_window_ms",
            "the window of a rate learned from a site's 429 where no site_rate is set (default 10000)",
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
    /// several times takes its last value, except `site_rate`, one per
    /// domain; the deprecated `site_ban_ms` sets the cap unless
    /// `site_ban_cap_ms` is given too.
    pub fn parse(base: &Settings, options: &[(String, String)]) -> Result<Settings, PluginError> {
        let mut s = base.clone();
        let (mut cap, mut old_ban) = (None, None);
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
                "site_ban_base_ms" => s.site_ban_base_ms = num(key, v, 0, MAX_WINDOW_MS)?,
                "site_ban_cap_ms" => cap = Some(num(key, v, 0, MAX_WINDOW_MS)?),
                "site_ban_ms" => old_ban = Some(num(key, v, 0, MAX_WINDOW_MS)?),
                "site_ban_jitter" => s.site_ban_jitter = fraction(key, v)?,
                "site_rate" => {
                    let (domain, rate) = parse_site_rate(v)?;
                    s.site_rates.insert(domain, rate);
                }
                "learn_window_ms" => s.learn_window_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                "sticky_ttl_ms" => s.sticky_ttl_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                other if is_host_key(other) => {}
                other => return Err(PluginError::unknown_option(other)),
            }
        }
        if let Some(cap) = cap.or(old_ban) {
            s.site_ban_cap_ms = cap;
        }
        Ok(s)
    }

    /// The pacing budget of `domain`, if it has one.
    pub fn rate_for(&self, domain: &str) -> Option<Rate> {
        if domain.is_empty() {
            return None;
        }
        self.site_rates.get(domain).copied()
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

    /// The HASH of a site's ban levels (proxy id -> bans since the pair's
    /// last success: the next lasts base · 2^level).
    pub fn level_key(&self, domain: &str) -> String {
        format!("ytdlp:{{{}}}:level:{domain}", self.pool)
    }

    /// The HASH of a site's strikes (proxy id -> `when:sha1 of the URL`,
    /// the last refusal through that proxy; an empty hash: URL unknown).
    pub fn strike_key(&self, domain: &str) -> String {
        format!("ytdlp:{{{}}}:strike:{domain}", self.pool)
    }

    /// The pacing window at `domain`: its `site_rate`'s, else the
    /// learning window.
    pub fn window_for(&self, domain: &str) -> u64 {
        self.rate_for(domain)
            .map_or(self.learn_window_ms, |r| r.window_ms)
    }

    /// How long after a pair's last refusal or ban end its strike, ban
    /// doubling and learned budget are forgotten: the cap, or the window if
    /// longer.
    pub fn horizon_for(&self, domain: &str) -> u64 {
        self.site_ban_cap_ms.max(self.window_for(domain))
    }

    /// The HASH of a site's budgets learned from 429s (proxy id ->
    /// `LIMIT:RELEASE:LAST`: handouts per window, the limit past which it
    /// is dropped without a `site_rate`, the last refusal or ban end, ms).
    pub fn learn_key(&self, domain: &str) -> String {
        format!("ytdlp:{{{}}}:learn:{domain}", self.pool)
    }

    /// Prefix of a site's pacing ZSETs (`<prefix><proxy id>`: handout
    /// times, ms).
    pub fn pace_key_prefix(&self, domain: &str) -> String {
        format!("ytdlp:{{{}}}:pace:{domain}:", self.pool)
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

/// `DOMAIN=N/WINDOW`, the domain in lower case; no `{` or `}` (the domain
/// goes inside keys that carry the pool as a hash tag).
fn parse_site_rate(v: &str) -> Result<(String, Rate), PluginError> {
    ytdlp_plugin_sdk::parse_site_rate("site_rate", v, &['{', '}'])
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
                "site_ban_jitter" => "0.5",
                "site_rate" => "youtube.com=300/h",
                _ => "5",
            };
            assert!(
                Settings::parse(&Settings::default(), &opts(&[(&o.key, v)])).is_ok(),
                "{}",
                o.key
            );
        }
        assert!(info.get("site_rate").is_some_and(|o| o.repeated));
        let s = Settings::parse(&Settings::default(), &[]).unwrap();
        assert_eq!((s.site_ban_cap_ms, s.sticky_ttl_ms), (1_800_000, 3_600_000));
    }

    #[test]
    fn ban_and_pacing_defaults_and_the_deprecated_ban_option() {
        let d = Settings::default();
        let s = Settings::parse(&d, &[]).unwrap();
        assert_eq!((s.site_ban_base_ms, s.site_ban_cap_ms), (5_000, 1_800_000));
        assert_eq!(s.site_ban_jitter, 0.2);
        assert!(s.site_rates.is_empty());
        assert_eq!(s.learn_window_ms, 10_000);
        assert_eq!(s.window_for("a.com"), 10_000);
        assert_eq!(s.horizon_for("a.com"), 1_800_000);
        assert_eq!(s.rate_for("youtube.com"), None);
        // site_ban_ms (deprecated) is the cap, unless the cap is given.
        let old = Settings::parse(&d, &opts(&[("site_ban_ms", "60000")])).unwrap();
        assert_eq!((old.site_ban_base_ms, old.site_ban_cap_ms), (5_000, 60_000));
        let both = Settings::parse(
            &d,
            &opts(&[("site_ban_cap_ms", "90000"), ("site_ban_ms", "60000")]),
        )
        .unwrap();
        assert_eq!(both.site_ban_cap_ms, 90_000);
        let s = Settings::parse(
            &d,
            &opts(&[
                ("site_ban_base_ms", "1000"),
                ("site_ban_jitter", "0"),
                ("site_rate", "YouTube.com=300/h"),
                ("site_rate", " vimeo.com = 6/10s "),
                ("site_rate", "x.example=1/90s"),
                ("site_rate", "y.example=2/m"),
            ]),
        )
        .unwrap();
        assert_eq!((s.site_ban_base_ms, s.site_ban_jitter), (1_000, 0.0));
        let r = |n, window_ms| Some(Rate { n, window_ms });
        assert_eq!(s.rate_for("youtube.com"), r(300, 3_600_000));
        assert_eq!(s.rate_for("vimeo.com"), r(6, 10_000));
        assert_eq!(s.rate_for("x.example"), r(1, 90_000));
        assert_eq!(s.rate_for("y.example"), r(2, 60_000));
        assert_eq!(s.rate_for(""), None);
        // A per-call rate adds to (or replaces) the init ones.
        let call = Settings::parse(&s, &opts(&[("site_rate", "vimeo.com=1/s")])).unwrap();
        assert_eq!(call.rate_for("vimeo.com"), r(1, 1_000));
        assert_eq!(call.rate_for("youtube.com"), r(300, 3_600_000));
        assert_eq!(r(1, 90_000).unwrap().window_text(), "90 s");
        assert_eq!(r(1, 3_600_000).unwrap().window_text(), "1 h");
    }

    #[test]
    fn bad_ban_and_pacing_values_are_refused_naming_the_option_and_value() {
        let d = Settings::default();
        for (k, v) in [
            ("site_rate", "youtube.com"),
            ("site_rate", "=5/s"),
            ("site_rate", "youtube.com=0/s"),
            ("site_rate", "youtube.com=5"),
            ("site_rate", "youtube.com=5/"),
            ("site_rate", "youtube.com=5/10"),
            ("site_rate", "youtube.com=5/10d"),
            ("site_rate", "youtube.com=x/s"),
            ("site_rate", "youtube.com=2000000/s"),
            ("site_rate", "youtube.com=1/721h"),
            ("site_rate", "you tube.com=1/s"),
            ("site_rate", "a/b=1/s"),
            ("site_ban_jitter", "1.5"),
            ("site_ban_jitter", "-0.1"),
            ("site_ban_jitter", "lots"),
            ("site_ban_base_ms", "-1"),
            ("site_ban_cap_ms", "2592000001"),
            ("site_ban_ms", "x"),
            ("learn_window_ms", "0"),
        ] {
            let err = Settings::parse(&d, &opts(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(k), "{k}={v}: {err}");
            // Numbers are refused with their bounds (the SDK's `num`).
            if !k.ends_with("_ms") {
                assert!(err.contains(&format!("`{v}`")), "{k}={v}: {err}");
            }
        }
    }

    #[test]
    fn per_site_keys_carry_the_pool_as_a_hash_tag() {
        let s = Settings::parse(&Settings::default(), &opts(&[("pool", "eu")])).unwrap();
        assert_eq!(s.level_key("a.com"), "ytdlp:{eu}:level:a.com");
        assert_eq!(s.strike_key("a.com"), "ytdlp:{eu}:strike:a.com");
        assert_eq!(s.pace_key_prefix("a.com"), "ytdlp:{eu}:pace:a.com:");
        assert_eq!(s.learn_key("a.com"), "ytdlp:{eu}:learn:a.com");
    }
}
