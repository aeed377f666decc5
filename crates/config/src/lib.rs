//! The TOML configuration: typed, unknown keys refused, validated as a whole
//! before anything uses it (a bad config never half-applies).
//!
//! Validation here is syntactic: it reads no other file and resolves no
//! name. What needs the world (a granted directory exists, a granted host
//! name resolves) is checked when the plugin that needs it starts.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use ytdlp_contract::options::is_host_key;
use ytdlp_contract::proxy_list::{self, ProxyEntry};
use ytdlp_contract::{ProxyMeta, parse_region, parse_tag, proxy_url};

mod grants;
mod serve;

pub use grants::{DirGrant, Grants, HttpOrigin, TcpGrant, valid_bucket};
pub use serve::{DEFAULT_LEASE_SECS, KeepFinished, OptionArity, ServeConfig};

/// Name of the bundled plugin.
pub const BUNDLED_BACKEND: &str = "memory";

/// Bounds of the config's numbers.
pub const MAX_ATTEMPTS: u64 = 100;
/// A week.
pub const MAX_RUN_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
pub const MAX_PREFLIGHT_MS: u64 = 60_000;
/// Longest `max_wait_secs`: a day.
pub const MAX_WAIT_SECS: u64 = 24 * 3600;
pub const MAX_WORKER_RSS_MIB: u64 = 1 << 20;
pub const MAX_PLUGIN_MEMORY_MIB: u64 = 4096;
/// Ten minutes.
pub const MAX_CALL_TIMEOUT_MS: u64 = 600_000;
pub const MAX_RETURN_BYTES: u64 = 64 << 20;
/// How long `serve` may wait for running downloads on shutdown: a day.
pub const MAX_GRACE_SECS: u64 = 24 * 3600;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory scanned for `*.wasm` plugins.
    pub plugin_dir: Option<PathBuf>,
    /// The backend plugin to use (file stem in `plugin_dir`, or `memory`),
    /// or several, asked in order (`["postgres", "memory"]`).
    pub backend: Option<OneOrMany>,
    /// yt-dlp executable.
    pub yt_dlp: Option<PathBuf>,
    /// Proxies for the bundled `memory` backend, each `URL` or
    /// `URL;region=DE;tags=a,b;tier=1` (any format of a proxy list line).
    #[serde(default)]
    pub proxies: Vec<String>,
    /// Proxies with their metadata as tables (`[[proxy]]`), after
    /// `proxies`.
    #[serde(default)]
    pub proxy: Vec<ProxyTable>,
    /// A proxy list file (one proxy per line, the same formats), re-read
    /// when it changes.
    pub proxies_file: Option<PathBuf>,
    /// Only proxies in this region (or one of these), for every download.
    pub region: Option<OneOrMany>,
    /// Only proxies with all of these tags, for every download.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only proxies of this tier or a cheaper one.
    pub max_tier: Option<u8>,
    /// Attempts per URL, each through another proxy (default 3).
    pub max_attempts: Option<u32>,
    /// What to do when the backend gives no proxy (default `wait` when any
    /// proxy or plugin is configured, `direct` when none is).
    pub on_no_proxy: Option<NoProxyPolicy>,
    /// Under `wait`: the longest a URL waits, in all, for its site's next
    /// free proxy (default 600).
    pub max_wait_secs: Option<u64>,
    /// yt-dlp output template (`-o`).
    pub output: Option<String>,
    /// Deadline for one yt-dlp run, in seconds (default 3600).
    pub run_timeout_secs: Option<u64>,
    /// Pre-flight check of a proxy before a run, ms (default 1000; 0: off).
    pub preflight_timeout_ms: Option<u64>,
    /// Keep the bundled plugin's proxy health across runs (default true).
    pub persist_health: Option<bool>,
    /// How yt-dlp runs: `worker` (warm workers) or `process` (default:
    /// `worker` when yt-dlp's Python module imports).
    pub runner: Option<RunnerKind>,
    /// The worker runner's settings (`[worker]`).
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Per-plugin settings, by plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// `ytdlp-host serve`'s settings (`[serve]`).
    #[serde(default)]
    pub serve: ServeConfig,
    /// Where durable state lives (`[store]`): plugins' key-value buckets.
    #[serde(default)]
    pub store: StoreConfig,
}

/// The durable store's engine: a SQLite file (the default,
/// `$XDG_STATE_HOME/ytdlp-host/store.sqlite3`) or Redis (`url`), never
/// both.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file.
    pub path: Option<PathBuf>,
    /// `redis://[user:password@]host:port[/db]`: share state between
    /// machines.
    pub url: Option<String>,
}

impl StoreConfig {
    pub fn validate(&self) -> Result<()> {
        match (&self.path, &self.url) {
            (Some(_), Some(_)) => {
                bail!("store: give `path` (SQLite) or `url` (Redis), not both")
            }
            (Some(p), None) if p.as_os_str().is_empty() => bail!("store.path is empty"),
            (None, Some(u)) if !(u.starts_with("redis://") || u.starts_with("rediss://")) => {
                bail!("store.url must start with redis:// or rediss://")
            }
            _ => Ok(()),
        }
    }

    /// The SQLite file used when neither is given.
    pub fn default_path() -> PathBuf {
        state_dir().join("store.sqlite3")
    }
}

/// Like Envoy's fail-open / fail-closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoProxyPolicy {
    /// Warn and download without a proxy.
    Direct,
    /// Fail the URL with the backend's reason.
    Fail,
    /// Wait until the backend says a proxy is free again (bounded by
    /// `max_wait_secs`), then go on; fail when it cannot say.
    Wait,
}

impl NoProxyPolicy {
    /// The names, as in the config and on the command line.
    pub const NAMES: [&'static str; 3] = ["direct", "fail", "wait"];

    pub fn name(self) -> &'static str {
        match self {
            NoProxyPolicy::Direct => "direct",
            NoProxyPolicy::Fail => "fail",
            NoProxyPolicy::Wait => "wait",
        }
    }
}

/// How yt-dlp runs (config `runner`, `download --runner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    /// Warm Python workers driving yt-dlp's embedding API.
    Worker,
    /// One yt-dlp process per attempt.
    Process,
}

impl RunnerKind {
    pub const NAMES: [&'static str; 2] = ["worker", "process"];

    pub fn name(self) -> &'static str {
        match self {
            RunnerKind::Worker => "worker",
            RunnerKind::Process => "process",
        }
    }
}

/// `FromStr` over a fixed list of names, for the command line.
macro_rules! named_enum_from_str {
    ($t:ty, $($name:literal => $v:expr),+) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($v),)+
                    _ => Err(format!("`{s}` is not one of {}", <$t>::NAMES.join(", "))),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
named_enum_from_str!(NoProxyPolicy, "direct" => NoProxyPolicy::Direct, "fail" => NoProxyPolicy::Fail, "wait" => NoProxyPolicy::Wait);
named_enum_from_str!(RunnerKind, "worker" => RunnerKind::Worker, "process" => RunnerKind::Process);

/// `[worker]` in the config: the worker runner's settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The Python that runs the workers (default: yt-dlp's own, from its
    /// shebang; else python3 on PATH).
    pub python: Option<PathBuf>,
    /// Jobs a worker runs before it is replaced (default 100).
    pub max_jobs: Option<NonZeroU32>,
    /// A worker whose resident memory exceeds this is replaced, MiB
    /// (default 1024).
    pub max_rss_mib: Option<NonZeroU64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Options passed to `init` and merged into every call.
    #[serde(default)]
    pub options: BTreeMap<String, OptionValue>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub grants: Grants,
    /// What the host adds and protects, never read from a file.
    #[serde(skip)]
    pub host: HostGrants,
}

/// What the host itself grants a plugin (the bundled plugin's state
/// directory), and the directories no grant of the user may contain or sit
/// in (the compile cache, the config, the plugins, the state: a plugin that
/// can write there can plant native code, grant itself more, or replace
/// another plugin).
#[derive(Debug, Clone, Default)]
pub struct HostGrants {
    pub dirs: Vec<DirGrant>,
    pub protected: Vec<PathBuf>,
    /// Key-value buckets the host grants (the bundled plugin's `health`).
    pub keyvalue: Vec<String>,
    /// The store those and the user's `keyvalue` grants open.
    pub store: StoreConfig,
}

/// An option value: TOML scalars become strings, arrays repeat the key.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn to_option_string(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Key/value options as the contract passes them.
pub use ytdlp_contract::Options;

/// Flattens a TOML options table into contract options.
pub fn options_from_table(table: &BTreeMap<String, OptionValue>) -> Options {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            OptionValue::One(s) => out.push((k.clone(), s.to_option_string())),
            OptionValue::Many(list) => {
                out.extend(list.iter().map(|s| (k.clone(), s.to_option_string())))
            }
        }
    }
    out
}

/// Merges per-download options over base options: a key the download sets
/// replaces every value of that key in the base.
pub fn merge_options(base: &Options, overrides: &Options) -> Options {
    let mut out: Options = base
        .iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .cloned()
        .collect();
    out.extend(overrides.iter().cloned());
    out
}

/// Limits on one plugin (the sandbox applies them).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Linear memory of the plugin, MiB.
    pub memory_mib: u64,
    /// Deadline for `get-proxy`, `report-*` and `get-stats`, ms.
    pub call_timeout_ms: u64,
    /// Deadline for instantiation plus `init`, ms.
    pub init_timeout_ms: u64,
    /// Largest total size of the strings a plugin may return from one
    /// call, bytes.
    pub max_return_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            memory_mib: 64,
            call_timeout_ms: 500,
            init_timeout_ms: 5_000,
            max_return_bytes: 1 << 20,
        }
    }
}

/// One `[[proxy]]` table.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProxyTable {
    pub url: String,
    pub region: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tier: u8,
}

/// A value or a list of them (`region = "DE"` or `region = ["DE", "AT"]`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

impl Config {
    /// The configured proxies (`proxies`, then `[[proxy]]`), parsed; the
    /// proxies file is read by whoever uses it (this crate reads no file
    /// but the config).
    pub fn proxy_entries(&self) -> Result<Vec<ProxyEntry>> {
        let mut out = Vec::with_capacity(self.proxies.len() + self.proxy.len());
        for (i, p) in self.proxies.iter().enumerate() {
            out.push(
                proxy_list::parse_entry(p).map_err(|e| {
                    anyhow::anyhow!("proxies[{i}] ({}): {e}", proxy_url::mask_url(p))
                })?,
            );
        }
        for (i, t) in self.proxy.iter().enumerate() {
            let at = || format!("proxy[{i}] ({})", proxy_url::mask_url(&t.url));
            let mut e =
                proxy_list::parse_entry(&t.url).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            let region = match &t.region {
                Some(r) => Some(parse_region(r).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?),
                None => None,
            };
            let mut tags = Vec::new();
            for tag in &t.tags {
                tags.push(parse_tag(tag).map_err(|e| anyhow::anyhow!("{}: {e}", at()))?);
            }
            // The table's fields win over a suffix in its url.
            e.meta = ProxyMeta {
                region: region.or(e.meta.region),
                tags: if tags.is_empty() { e.meta.tags } else { tags },
                tier: if t.tier != 0 { t.tier } else { e.meta.tier },
            };
            out.push(e);
        }
        Ok(out)
    }

    /// The regions asked for every download (`region`), canonical.
    pub fn regions(&self) -> Result<Vec<String>> {
        self.region
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_default()
            .iter()
            .map(|r| parse_region(r).map_err(|e| anyhow::anyhow!("region: {e}")))
            .collect()
    }

    /// Reads and validates a config file. Paths in it are relative to the
    /// file's directory (not to wherever the host runs).
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config =
            Config::from_toml(&text).with_context(|| format!("config file {}", path.display()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Makes the config's relative paths relative to `base`. A bare program
    /// name (`yt_dlp = "yt-dlp"`) stays a name to look up on PATH.
    pub fn resolve_paths(&mut self, base: &Path) {
        let path = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let program = |p: &mut PathBuf| {
            if p.is_relative() && p.components().count() > 1 {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.plugin_dir {
            path(p);
        }
        if let Some(p) = &mut self.proxies_file {
            path(p);
        }
        if let Some(p) = &mut self.yt_dlp {
            program(p);
        }
        if let Some(p) = &mut self.worker.python {
            program(p);
        }
        for plugin in self.plugins.values_mut() {
            for d in &mut plugin.grants.dirs {
                path(&mut d.host);
            }
        }
    }

    /// Parses and validates config text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message names the key and shows the line; keep it whole
            // but on one line per part.
            anyhow::anyhow!("{}", e.to_string().trim_end())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that the types do not, so that a config is either
    /// wholly usable or refused.
    pub fn validate(&self) -> Result<()> {
        self.proxy_entries()?;
        self.regions()?;
        for t in &self.tags {
            parse_tag(t).map_err(|e| anyhow::anyhow!("tags: {e}"))?;
        }
        // Every number has bounds: a duration too long for the clock would
        // panic where it is added to "now".
        let within = |key: &str, v: Option<u64>, min: u64, max: u64| -> Result<()> {
            match v {
                Some(v) if v < min || v > max => {
                    bail!("{key} must be from {min} to {max} (it is {v})")
                }
                _ => Ok(()),
            }
        };
        within(
            "max_attempts",
            self.max_attempts.map(u64::from),
            1,
            MAX_ATTEMPTS,
        )?;
        within(
            "run_timeout_secs",
            self.run_timeout_secs,
            1,
            MAX_RUN_TIMEOUT_SECS,
        )?;
        within(
            "preflight_timeout_ms",
            self.preflight_timeout_ms,
            0,
            MAX_PREFLIGHT_MS,
        )?;
        within("max_wait_secs", self.max_wait_secs, 0, MAX_WAIT_SECS)?;
        within(
            "worker.max_rss_mib",
            self.worker.max_rss_mib.map(|v| v.get()),
            1,
            MAX_WORKER_RSS_MIB,
        )?;
        if let Some(names) = &self.backend {
            validate_backends(&names.to_vec()).context("backend")?;
        }
        self.store.validate()?;
        for (name, plugin) in &self.plugins {
            validate_plugin_name(name).with_context(|| format!("plugins.{name}"))?;
            let l = &plugin.limits;
            for (key, v, max) in [
                ("memory_mib", l.memory_mib, MAX_PLUGIN_MEMORY_MIB),
                ("call_timeout_ms", l.call_timeout_ms, MAX_CALL_TIMEOUT_MS),
                ("init_timeout_ms", l.init_timeout_ms, MAX_CALL_TIMEOUT_MS),
                ("max_return_bytes", l.max_return_bytes, MAX_RETURN_BYTES),
            ] {
                if v == 0 || v > max {
                    bail!("plugins.{name}.limits.{key} must be from 1 to {max} (it is {v})");
                }
            }
            if plugin.options.keys().any(|k| is_host_key(k)) {
                bail!(
                    "plugins.{name}.options: keys starting with `host.` are reserved for the host"
                );
            }
            plugin
                .grants
                .validate()
                .with_context(|| format!("plugins.{name}.grants"))?;
        }
        self.serve.validate()?;
        Ok(())
    }

    /// The backends, in the order they are asked (default: `memory`).
    pub fn backends(&self) -> Vec<String> {
        self.backend
            .as_ref()
            .map(OneOrMany::to_vec)
            .unwrap_or_else(|| vec![BUNDLED_BACKEND.to_string()])
    }

    pub fn plugin(&self, name: &str) -> PluginConfig {
        self.plugins.get(name).cloned().unwrap_or_default()
    }
}

/// A plugin's name is a file stem: letters, digits, `-`, `_`, `.`.
pub fn validate_plugin_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bail!("`{name}` is not a plugin name (letters, digits, `-`, `_`, `.`)");
    }
    Ok(())
}

/// A list of backends: at least one, each a plugin name, none twice (the
/// second would be asked the same question again, and its reports could
/// not be told apart).
pub fn validate_backends(names: &[String]) -> Result<()> {
    if names.is_empty() {
        bail!("the list is empty (name one backend or more, e.g. [\"memory\"])");
    }
    for (i, name) in names.iter().enumerate() {
        validate_plugin_name(name)?;
        if names[..i].contains(name) {
            bail!("`{name}` is listed twice");
        }
    }
    Ok(())
}

/// XDG base directories, with the usual fallbacks under `$HOME`.
pub fn xdg_dir(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(fallback),
    }
    .join("ytdlp-host")
}

pub fn config_dir() -> PathBuf {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

pub fn cache_dir() -> PathBuf {
    xdg_dir("XDG_CACHE_HOME", ".cache")
}

pub fn data_dir() -> PathBuf {
    xdg_dir("XDG_DATA_HOME", ".local/share")
}

/// The host's state directory.
pub fn state_dir() -> PathBuf {
    xdg_dir("XDG_STATE_HOME", ".local/state")
}

/// The bundled plugin's private state directory (granted to it read-write
/// as `/state`, and to no other plugin).
pub fn bundled_state_dir() -> PathBuf {
    state_dir().join(BUNDLED_BACKEND)
}

/// The config file read when none is named.
pub fn default_config_file() -> PathBuf {
    config_dir().join("config.toml")
}

/// `--config`, else the XDG config file; none is fine (defaults), but a
/// named file that is missing is an error. Never a file from the current
/// directory: a config can name programs to run (`yt_dlp`,
/// `worker.python`), and a directory's author is not the user (the class of
/// git's CVE-2022-24765).
pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
    if let Some(path) = explicit {
        return Ok((Config::from_file(path)?, Some(path.to_path_buf())));
    }
    let candidate = default_config_file();
    if candidate.is_file() {
        return Ok((Config::from_file(&candidate)?, Some(candidate)));
    }
    Ok((Config::default(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let c = Config::from_toml(
            r#"
            backend = "memory"
            proxies = ["http://127.0.0.1:3128", "socks5://u:p@127.0.0.1:1080"]
            max_attempts = 4
            on_no_proxy = "fail"
            [plugins.memory.options]
            failure_threshold = 2
            region = ["eu", "us"]
            [plugins.memory.limits]
            call_timeout_ms = 200
            "#,
        )
        .unwrap();
        assert_eq!(c.on_no_proxy, Some(NoProxyPolicy::Fail));
        let m = c.plugin("memory");
        assert_eq!(m.limits.call_timeout_ms, 200);
        assert_eq!(m.limits.memory_mib, 64);
        assert_eq!(
            options_from_table(&m.options),
            vec![
                ("failure_threshold".to_string(), "2".to_string()),
                ("region".to_string(), "eu".to_string()),
                ("region".to_string(), "us".to_string()),
            ]
        );
    }

    #[test]
    fn backend_is_one_name_or_a_list_in_order() {
        assert_eq!(Config::default().backends(), ["memory"]);
        let one = Config::from_toml("backend = \"redis\"").unwrap();
        assert_eq!(one.backends(), ["redis"]);
        let c = Config::from_toml(
            "backend = [\"postgres\", \"memory\"]\n[plugins.postgres.options]\nurl = \"x\"\n",
        )
        .unwrap();
        assert_eq!(c.backends(), ["postgres", "memory"]);
    }

    #[test]
    fn proxies_come_as_strings_with_metadata_and_as_tables() {
        let c = Config::from_toml(
            r#"
            proxies = ["http://127.0.0.1:3128", "127.0.0.1:3129;region=de;tier=2"]
            region = "fr"
            tags = ["residential"]
            max_tier = 2
            [[proxy]]
            url = "socks5://user:pass@10.0.0.2:1080"
            region = "DE"
            tags = ["residential"]
            tier = 1
            "#,
        )
        .unwrap();
        let e = c.proxy_entries().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].url.expose(), "http://127.0.0.1:3129");
        assert!(e[1].assumed_http);
        assert_eq!(e[1].meta.region.as_deref(), Some("DE"));
        assert_eq!(e[1].meta.tier, 2);
        assert_eq!(e[2].meta.tags, ["residential"]);
        assert_eq!(e[2].meta.tier, 1);
        assert_eq!(c.regions().unwrap(), ["FR"]);
        assert_eq!(c.max_tier, Some(2));
        for (bad, named) in [
            (
                "[[proxy]]\nurl = \"http://h:1\"\nregion = \"Germany\"\n",
                "proxy[0]",
            ),
            ("[[proxy]]\nurl = \"http://h:1\"\ncolour = 1\n", "colour"),
            ("proxies = [\"http://h:1;speed=9\"]", "proxies[0]"),
            ("region = \"EUW\"", "region"),
            ("tags = [\"a b\"]", "tags"),
        ] {
            let err = format!("{:#}", Config::from_toml(bad).unwrap_err());
            assert!(err.contains(named), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let err = Config::from_toml("backend = \"memory\"\nmax_attempt = 3\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("max_attempt"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
        let err = Config::from_toml("[plugins.x.limits]\nmemory = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("memory"), "{err:#}");
    }

    #[test]
    fn bad_values_are_refused_whole() {
        for (text, needle) in [
            ("proxies = [\"ftp://h:1\"]", "proxies[0]"),
            ("proxies = [\"http://u:secret@h:1/x\"]", "***@h:1"),
            ("max_attempts = 0", "max_attempts"),
            ("on_no_proxy = \"maybe\"", "maybe"),
            ("[plugins.m.limits]\ncall_timeout_ms = 0", "call_timeout_ms"),
            (
                "run_timeout_secs = 9223372036854775807",
                "run_timeout_secs must be from 1",
            ),
            (
                "[plugins.m.limits]\nmemory_mib = 18446744073709551615",
                "memory_mib",
            ),
            ("max_attempts = 1000", "max_attempts must be from 1 to 100"),
            ("[plugins.m.options]\n\"host.url\" = \"x\"", "reserved"),
            ("backend = \"../evil\"", "plugin name"),
            ("backend = [\"memory\", \"../evil\"]", "backend: `../evil`"),
            (
                "backend = [\"memory\", \"memory\"]",
                "backend: `memory` is listed twice",
            ),
            ("backend = []", "backend: the list is empty"),
        ] {
            let err = format!("{:#}", Config::from_toml(text).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn paths_are_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("ytdlp-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            "plugin_dir = \"plugins\"\nyt_dlp = \"bin/yt-dlp\"\n[worker]\npython = \"python3\"\n[plugins.x.grants]\ndirs = [{ host = \"data\", guest = \"/data\" }]\n",
        )
        .unwrap();
        let c = Config::from_file(&file).unwrap();
        assert_eq!(c.plugin_dir.unwrap(), dir.join("plugins"));
        assert_eq!(c.yt_dlp.unwrap(), dir.join("bin/yt-dlp"));
        // A bare name is looked up on PATH, as on a command line.
        assert_eq!(c.worker.python.unwrap(), PathBuf::from("python3"));
        assert_eq!(c.plugins["x"].grants.dirs[0].host, dir.join("data"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn download_options_win_over_base() {
        let base = vec![
            ("a".to_string(), "1".to_string()),
            ("l".to_string(), "x".to_string()),
            ("l".to_string(), "y".to_string()),
        ];
        let over = vec![("l".to_string(), "z".to_string())];
        assert_eq!(
            merge_options(&base, &over),
            vec![
                ("a".to_string(), "1".to_string()),
                ("l".to_string(), "z".to_string())
            ]
        );
    }
}

#[cfg(test)]
mod fuzz_props;
