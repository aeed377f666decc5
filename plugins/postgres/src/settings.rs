//! Options of the PostgreSQL backend: parsed at `init`, and again (over the
//! init values) at every call, since the host merges per-download options
//! into each call's options. Refusals are typed ([`PluginError`]): an
//! unknown key is `unknown-option`, a bad value `invalid-value` naming the
//! key (never echoing a value, which may be a secret pasted in the wrong
//! place).

use std::time::Duration;

/// Failure kinds: the contract's (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
use ytdlp_plugin_sdk::contract::limits::{MAX_PROXY_TIMEOUT_MS, MIN_PROXY_TIMEOUT_MS};
use ytdlp_plugin_sdk::{OptionInfo, PluginError, PluginInfo, flag, is_host_key, num};

use crate::pg::{self, Config};

/// How `get-proxy` orders the usable proxies (within the cheapest tier
/// that has one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The least recently handed out (never used first), by any host.
    RoundRobin,
    /// The best success ratio over proxy faults, with a prior:
    /// `(successes + 2) / (successes + faults + 2.25)`; the least recently
    /// used among equals.
    Healthiest,
    /// The fewest times handed out; the least recently used among equals.
    LeastUsed,
}

impl Strategy {
    pub fn parse(s: &str) -> Result<Strategy, PluginError> {
        match s {
            "round_robin" | "round-robin" => Ok(Strategy::RoundRobin),
            "healthiest" => Ok(Strategy::Healthiest),
            "least_used" | "least-used" => Ok(Strategy::LeastUsed),
            other => Err(PluginError::invalid(
                "strategy",
                format!(
                    "unknown strategy `{other}` (supported: round_robin, healthiest, least_used)"
                ),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::Healthiest => "healthiest",
            Strategy::LeastUsed => "least_used",
        }
    }
}

/// Every option, with its value in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `postgres://user:password@host:port/dbname`.
    pub url: String,
    /// The PostgreSQL schema holding the tables (several pools can share a
    /// database, one schema each). Created if missing (needs the CREATE
    /// privilege on the database).
    pub schema: String,
    pub strategy: Strategy,
    /// Consecutive proxy faults that take a proxy out.
    pub failure_threshold: u32,
    /// How long a proxy stays out; 0: disabled until re-enabled.
    pub cooldown_ms: u64,
    /// How long a `blocked` report bans the proxy from that site; 0: never.
    pub ban_ms: u64,
    /// Least time between two uses of one proxy on one site; 0: no pacing.
    pub site_interval_ms: u64,
    /// Proxy timeout handed to the host when the row has none.
    pub timeout_ms: u32,
    /// Bound on connecting (TCP + authentication) and on each request to
    /// PostgreSQL; the server's `statement_timeout` is set a little under
    /// it.
    pub pg_timeout_ms: u64,
    /// `false` (default): the session runs with `synchronous_commit = off`,
    /// so a pick or report does not wait for its WAL flush (~0.3 ms instead
    /// of a disk flush, ~4 ms here). Visibility to other sessions is the
    /// same; only a server crash can lose the last fraction of a second of
    /// picks and counts, never corrupt them. `true`: the server's setting.
    pub durable: bool,
}

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            url: DEFAULT_URL.to_string(),
            schema: "public".to_string(),
            strategy: Strategy::RoundRobin,
            failure_threshold: 3,
            cooldown_ms: 300_000,
            ban_ms: 600_000,
            site_interval_ms: 0,
            timeout_ms: 30_000,
            pg_timeout_ms: 200,
            durable: false,
        }
    }
}

/// Every key [`Settings::parse`] reads.
pub const KNOWN: [&str; 10] = [
    "url",
    "schema",
    "strategy",
    "failure_threshold",
    "cooldown_ms",
    "ban_ms",
    "site_interval_ms",
    "timeout_ms",
    "pg_timeout_ms",
    "durable",
];

const YEAR_MS: u64 = 365 * 24 * 3_600_000;

/// What `describe` answers: every option, all of which may also be given
/// per download (they are parsed again over the init values at each call).
pub fn describe() -> PluginInfo {
    let o = OptionInfo::per_call;
    ytdlp_plugin_sdk::plugin_info!()
        .summary("one proxy pool in PostgreSQL, shared by many hosts")
        .option(
            o(
                "url",
                "the database: postgres://user:password@host:port/dbname (default postgres://postgres@127.0.0.1:5432/postgres; no TLS)",
            )
            // It holds the database password.
            .secret(),
        )
        .option(o(
            "schema",
            "the PostgreSQL schema of the tables, created if missing; one pool per schema (default public)",
        ))
        .option(o(
            "strategy",
            "round_robin (default), healthiest or least_used, within the cheapest tier that has a usable proxy",
        ))
        .option(o(
            "failure_threshold",
            "consecutive proxy faults that take a proxy out (default 3)",
        ))
        .option(o(
            "cooldown_ms",
            "how long a proxy stays out; 0: disabled until re-enabled in SQL (default 300000)",
        ))
        .option(o(
            "ban_ms",
            "how long `blocked` bans a proxy from the site (registrable domain), at least the site's Retry-After; 0: no bans (default 600000)",
        ))
        .option(o(
            "site_interval_ms",
            "least time between two uses of one proxy on one site; 0: no pacing (default 0)",
        ))
        .option(o(
            "timeout_ms",
            "the proxy timeout handed to the host when the row has none (default 30000)",
        ))
        .option(o(
            "pg_timeout_ms",
            "bound on each call's PostgreSQL work: connecting, logging in, its statements (default 200)",
        ))
        .option(o(
            "durable",
            "true: wait for each commit's WAL flush; false (default): synchronous_commit = off",
        ))
}

impl Settings {
    /// `base` with `options` applied over it. Keys under `host.` are the
    /// host's context and are skipped; any other unknown key is refused.
    pub fn parse(base: &Settings, options: &[(String, String)]) -> Result<Settings, PluginError> {
        let mut s = base.clone();
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "url" => {
                    Config::parse(v).map_err(|e| PluginError::invalid("url", e.to_string()))?;
                    s.url = v.to_string();
                }
                "schema" => s.schema = check_schema(v)?,
                "strategy" => s.strategy = Strategy::parse(v)?,
                "failure_threshold" => s.failure_threshold = num(key, v, 1, 1_000_000)?,
                "cooldown_ms" => s.cooldown_ms = num(key, v, 0, YEAR_MS)?,
                "ban_ms" => s.ban_ms = num(key, v, 0, YEAR_MS)?,
                "site_interval_ms" => s.site_interval_ms = num(key, v, 0, YEAR_MS)?,
                "timeout_ms" => {
                    s.timeout_ms = num(key, v, MIN_PROXY_TIMEOUT_MS, MAX_PROXY_TIMEOUT_MS)?
                }
                "pg_timeout_ms" => s.pg_timeout_ms = num(key, v, 1, 600_000)?,
                "durable" => s.durable = flag(key, v)?,
                k if is_host_key(k) => {}
                other => return Err(PluginError::unknown_option(other)),
            }
        }
        Ok(s)
    }

    pub fn pg_timeout(&self) -> Duration {
        Duration::from_millis(self.pg_timeout_ms)
    }

    /// The client configuration: the URL, the bounds, and the session
    /// settings the server enforces itself.
    pub fn pg_config(&self) -> Result<Config, pg::Error> {
        let mut c = Config::parse(&self.url)?;
        c.connect_timeout = self.pg_timeout();
        c.io_timeout = self.pg_timeout();
        // The server cancels a statement (a lock wait, a slow plan) a bit
        // before the client gives up on it, so the usual slow case ends in
        // a clean SQLSTATE 57014 on a connection that stays usable.
        let statement_ms = (self.pg_timeout_ms * 3 / 4).max(1);
        c.params.extend([
            ("application_name".to_string(), "ytdlp-host".to_string()),
            ("search_path".to_string(), self.schema.clone()),
            ("statement_timeout".to_string(), format!("{statement_ms}ms")),
            ("lock_timeout".to_string(), format!("{statement_ms}ms")),
            // A plugin killed mid-transaction (the host's deadline) on a
            // host that stays up must not hold row locks for long.
            (
                "idle_in_transaction_session_timeout".to_string(),
                "5s".to_string(),
            ),
        ]);
        if !self.durable {
            c.params
                .push(("synchronous_commit".to_string(), "off".to_string()));
        }
        Ok(c)
    }

    /// The database, without the password, for messages.
    pub fn pg_display(&self) -> String {
        Config::parse(&self.url)
            .map(|c| c.display())
            .unwrap_or_else(|_| pg::redact_url(&self.url))
    }

    /// `host:port`: what the tcp grant must name.
    pub fn pg_hostport(&self) -> String {
        Config::parse(&self.url)
            .map(|c| c.hostport())
            .unwrap_or_default()
    }
}

/// A plain lower-case identifier, so that it can go into `search_path` and
/// `CREATE SCHEMA` as it is.
fn check_schema(v: &str) -> Result<String, PluginError> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !v.starts_with("pg_");
    if ok {
        Ok(v.to_string())
    } else {
        Err(PluginError::invalid(
            "schema",
            "must be 1-63 characters of a-z, 0-9, `_`, not starting with a digit or `pg_`",
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
    fn options_apply_over_a_base() {
        let base = Settings::parse(
            &Settings::default(),
            &opts(&[
                ("url", "postgres://u:pw@127.0.0.1:7000/db"),
                ("strategy", "healthiest"),
                ("ban_ms", "1000"),
            ]),
        )
        .unwrap();
        let call = Settings::parse(
            &base,
            &opts(&[("host.site", "x"), ("ban_ms", "5"), ("durable", "yes")]),
        )
        .unwrap();
        assert_eq!(call.ban_ms, 5);
        assert!(call.durable);
        assert_eq!(call.strategy, Strategy::Healthiest);
        assert_eq!(call.pg_display(), "postgres://u@127.0.0.1:7000/db");
        assert_eq!(call.pg_hostport(), "127.0.0.1:7000");
    }

    #[test]
    fn bad_options_are_typed_refusals_naming_the_key_never_the_password() {
        let d = Settings::default();
        for (k, v, want) in [
            ("failure_threshold", "0", "failure_threshold"),
            ("timeout_ms", "700000", "timeout_ms"),
            ("strategy", "fastest", "fastest"),
            ("schema", "Eu", "schema"),
            ("schema", "pg_x", "schema"),
            ("durable", "hunter2", "durable"),
            ("url", "redis://u:hunter2@h", "u:***@h"),
        ] {
            let err = Settings::parse(&d, &opts(&[(k, v)])).unwrap_err();
            assert!(
                matches!(&err, PluginError::InvalidValue { key, .. } if key == k),
                "{k}={v}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(want), "{k}={v}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let err = Settings::parse(&d, &opts(&[("treshold", "3")])).unwrap_err();
        assert_eq!(err, PluginError::unknown_option("treshold"));
        // The 0.1 prototype's filters are the request's `want` now.
        for old in ["region", "tag", "max_tier"] {
            let err = Settings::parse(&d, &opts(&[(old, "x")])).unwrap_err();
            assert_eq!(err, PluginError::unknown_option(old));
        }
    }

    #[test]
    fn describe_lists_every_option_parse_reads() {
        let info = describe();
        let keys: Vec<&str> = info.options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, KNOWN);
        assert!(info.options.iter().find(|o| o.key == "url").unwrap().secret);
        assert_eq!(info.name, "ytdlp-plugin-postgres");
        for k in KNOWN {
            // Every described key is accepted by parse (with some value).
            let err = Settings::parse(&Settings::default(), &opts(&[(k, "")]));
            assert!(
                !matches!(err, Err(PluginError::UnknownOption { .. })),
                "{k}"
            );
        }
    }

    #[test]
    fn session_settings_are_sent_at_startup() {
        let s = Settings::parse(
            &Settings::default(),
            &opts(&[("pg_timeout_ms", "400"), ("schema", "ytdlp_eu")]),
        )
        .unwrap();
        let c = s.pg_config().unwrap();
        assert_eq!(c.io_timeout, Duration::from_millis(400));
        assert!(
            c.params
                .contains(&("statement_timeout".into(), "300ms".into()))
        );
        assert!(
            c.params
                .contains(&("search_path".into(), "ytdlp_eu".into()))
        );
    }
}
