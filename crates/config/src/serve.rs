//! `[serve]` in the config: how `ytdlp-host serve` is exposed (tokens,
//! hosts, origins), where its downloads go, what API callers may ask for,
//! and how long finished downloads are remembered. Syntax only: the token
//! file is read, the directory created and the policy built when the
//! service starts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;

use ytdlp_contract::options::is_host_key;

/// Largest request body `max_body_bytes` may allow (the default is 64 KiB).
pub const MAX_BODY_BYTES_LIMIT: u64 = 16 << 20;
/// Finished downloads kept at most, whatever `keep_finished.count` says.
pub const KEEP_COUNT_LIMIT: u64 = 10_000_000;
/// Ten years: anything longer is a typo, and must not overflow a clock.
pub const KEEP_AGE_LIMIT_SECS: u64 = 10 * 365 * 86_400;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (default `127.0.0.1:8080`; `--listen` wins).
    pub listen: Option<String>,
    /// Bearer tokens, one per line (`sha256:HEX [read|write]`, or the token
    /// itself); default `$XDG_CONFIG_HOME/ytdlp-host/tokens` if it exists.
    pub tokens_file: Option<PathBuf>,
    /// Where every download is written (default
    /// `$XDG_DATA_HOME/ytdlp-host/downloads`); no output path leaves it.
    pub download_dir: Option<PathBuf>,
    /// Host header values accepted besides IP literals and `localhost`
    /// (`name` or `name:port`): the names a load balancer or clients use.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call the API (CORS); none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// `backend_options` keys an API caller may set; none by default.
    #[serde(default)]
    pub client_backend_options: Vec<String>,
    /// yt-dlp options API callers may use beyond the built-in allowlist,
    /// each with whether it takes a value: `{ "--embed-subs" = "flag" }`.
    #[serde(default)]
    pub allow_ytdlp_options: BTreeMap<String, OptionArity>,
    /// How long finished downloads stay visible.
    #[serde(default)]
    pub keep_finished: KeepFinished,
    /// Largest request body, bytes (default 65536).
    pub max_body_bytes: Option<u64>,
    /// With a Redis store (a fleet of hosts sharing the queue): how long a
    /// host may go without renewing its claim on a download before another
    /// host takes it over (default 30 s). Longer than a Redis outage you
    /// want to ride out without a download running twice.
    pub lease_secs: Option<u64>,
}

/// The default lease of a claimed download in a fleet.
pub const DEFAULT_LEASE_SECS: u64 = 30;

/// Whether an allowed yt-dlp option takes a value (it must be known: a
/// flag mistaken for an option with a value would let the next argument,
/// say `--exec`, through unchecked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptionArity {
    Flag,
    Value,
}

/// Finished downloads are evicted when more than `count` are kept, or when
/// older than `age_secs`, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeepFinished {
    pub count: u64,
    pub age_secs: u64,
}

impl Default for KeepFinished {
    fn default() -> Self {
        KeepFinished {
            count: 1000,
            age_secs: 86_400,
        }
    }
}

impl ServeConfig {
    pub fn validate(&self) -> Result<()> {
        if let Some(l) = &self.listen
            && (l.is_empty() || l.contains('/'))
        {
            bail!("serve.listen: `{l}` is not host:port");
        }
        for h in &self.allowed_hosts {
            validate_host_entry(h)?;
        }
        for o in &self.cors_origins {
            validate_origin(o)?;
        }
        for k in &self.client_backend_options {
            if k.is_empty() || k.chars().any(|c| c.is_control() || c.is_whitespace()) {
                bail!("serve.client_backend_options: `{k}` is not an option name");
            }
            if is_host_key(k) {
                bail!(
                    "serve.client_backend_options: `{k}`: keys starting with `host.` are reserved for the host"
                );
            }
        }
        for name in self.allow_ytdlp_options.keys() {
            // Long names only: the policy writes `--name=VALUE` back, so a
            // wrong arity makes yt-dlp refuse the run instead of reading the
            // value as options (a short option's cluster would be read).
            let ok = name.strip_prefix("--").is_some_and(|long| {
                !long.is_empty()
                    && long
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
            if !ok {
                bail!(
                    "serve.allow_ytdlp_options: `{name}` is not a long yt-dlp option name (`--long-name`; short aliases are not accepted)"
                );
            }
        }
        if self.keep_finished.count > KEEP_COUNT_LIMIT {
            bail!("serve.keep_finished.count must be at most {KEEP_COUNT_LIMIT}");
        }
        if self.keep_finished.age_secs == 0 || self.keep_finished.age_secs > KEEP_AGE_LIMIT_SECS {
            bail!("serve.keep_finished.age_secs must be between 1 and {KEEP_AGE_LIMIT_SECS}");
        }
        if let Some(n) = self.lease_secs
            && !(1..=86_400).contains(&n)
        {
            bail!("serve.lease_secs must be between 1 and 86400");
        }
        if let Some(n) = self.max_body_bytes
            && !(1024..=MAX_BODY_BYTES_LIMIT).contains(&n)
        {
            bail!("serve.max_body_bytes must be between 1024 and {MAX_BODY_BYTES_LIMIT}");
        }
        Ok(())
    }
}

/// `name` or `name:port`: no scheme, path or user.
fn validate_host_entry(h: &str) -> Result<()> {
    let (name, port) = match h.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (h, None), // bare IPv6
        Some((n, p)) => (n, Some(p)),
        None => (h, None),
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    if !name_ok || !port_ok {
        bail!(
            "serve.allowed_hosts: `{h}` is not a host name with an optional port (e.g. `downloads.example.com` or `downloads.example.com:8080`)"
        );
    }
    Ok(())
}

/// `scheme://host[:port]`, exactly as a browser sends it in `Origin`.
fn validate_origin(o: &str) -> Result<()> {
    let bad = || {
        anyhow::anyhow!(
            "serve.cors_origins: `{o}` is not an origin (`https://app.example.com`, no path, no `*`)"
        )
    };
    let u = url::Url::parse(o).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https")
        || u.host_str().is_none()
        || !u.username().is_empty()
        || u.password().is_some()
        || o.trim_end_matches('/') != u.origin().ascii_serialization()
    {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn a_full_serve_section_parses() {
        let c = Config::from_toml(
            r#"
            [serve]
            listen = "0.0.0.0:8080"
            tokens_file = "/etc/ytdlp-host/tokens"
            download_dir = "/srv/downloads"
            allowed_hosts = ["downloads.example.com", "dl.internal:8080"]
            cors_origins = ["https://app.example.com"]
            client_backend_options = ["sticky_key"]
            allow_ytdlp_options = { "--embed-subs" = "flag", "--extractor-args" = "value" }
            keep_finished = { count = 50, age_secs = 600 }
            max_body_bytes = 32768
            "#,
        )
        .unwrap();
        let s = &c.serve;
        assert_eq!(s.keep_finished.count, 50);
        assert_eq!(s.keep_finished.age_secs, 600);
        assert_eq!(s.allow_ytdlp_options["--embed-subs"], OptionArity::Flag);
        assert_eq!(
            s.allow_ytdlp_options["--extractor-args"],
            OptionArity::Value
        );
        assert_eq!(
            Config::from_toml("").unwrap().serve.keep_finished,
            KeepFinished::default()
        );
    }

    #[test]
    fn bad_serve_values_are_named() {
        for (text, needle) in [
            ("[serve]\nallowed_hosts = [\"http://x\"]", "allowed_hosts"),
            ("[serve]\nallowed_hosts = [\"x:99999\"]", "`x:99999`"),
            ("[serve]\ncors_origins = [\"*\"]", "cors_origins"),
            (
                "[serve]\ncors_origins = [\"https://a.example/path\"]",
                "no path",
            ),
            (
                "[serve]\nclient_backend_options = [\"host.url\"]",
                "reserved",
            ),
            (
                "[serve]\nallow_ytdlp_options = { \"exec\" = \"flag\" }",
                "`exec`",
            ),
            (
                "[serve]\nallow_ytdlp_options = { \"--embed-subs\" = \"maybe\" }",
                "maybe",
            ),
            ("[serve]\nkeep_finished = { age_secs = 0 }", "age_secs"),
            ("[serve]\nkeep_finished = { count = 99999999999 }", "count"),
            ("[serve]\nmax_body_bytes = 10", "max_body_bytes"),
            ("[serve]\ntoken = \"x\"", "token"),
        ] {
            let err = format!("{:#}", Config::from_toml(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
        assert!(
            Config::from_toml("[serve]\nallowed_hosts = [\"[::1]:8080\", \"::1\", \"a-b.c\"]")
                .is_ok()
        );
    }
}
