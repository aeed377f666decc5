//! The composition root: [`HostBuilder`] turns a config and what a command
//! line (or a library user) sets over it into a running [`Host`]: the plugin
//! runtime, the backend plugins (each started with its options and grants,
//! several chained in order), yt-dlp
//! (found or installed), the runner, the downloader and the queue. The CLI,
//! `serve` and library users all build through it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ytdlp_contract::options::is_host_key;
use ytdlp_contract::proxy_list::{ProxyEntry, parse_entry};
use ytdlp_contract::{Wanted, parse_region, parse_tag, proxy_url};
use ytdlp_host_config::{
    self as config, BUNDLED_BACKEND, Config, DirGrant, NoProxyPolicy, Options, PluginConfig,
    RunnerKind,
};
use ytdlp_host_plugin_host::{Backend, BackendError, CompileCache, PluginRuntime};
use ytdlp_host_ytdlp::locate;

use crate::chain::{ChainSource, Link, route_options};
use crate::downloader::{Downloader, Settings};
use crate::queue::{Host, Limits};
use crate::source::{PluginSource, ProxySource};

/// Where the bundled plugin sees its state directory.
const BUNDLED_STATE_GUEST: &str = "/state";

/// Why a host could not be built. Each names what is at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is not usable (a bad proxy URL, `--proxy` with another
    /// backend, ...).
    #[error("{0}")]
    Invalid(String),
    /// The plugin runtime could not start.
    #[error("{0:#}")]
    Runtime(anyhow::Error),
    /// The backend plugin could not be found or loaded.
    #[error("{0:#}")]
    Load(anyhow::Error),
    /// The backend plugin failed to start (it refused its options, trapped,
    /// timed out, ...).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// yt-dlp is missing and could not be installed.
    #[error("{0:#}")]
    YtDlp(anyhow::Error),
    /// The runner asked for cannot run here.
    #[error("{0:#}")]
    Runner(anyhow::Error),
}

/// Builds a [`Host`] (or its parts) from a [`Config`] and overrides.
///
/// ```no_run
/// # async fn demo() -> Result<(), ytdlp_host_core::BuildError> {
/// let host = ytdlp_host_core::HostBuilder::new()
///     .proxy("http://127.0.0.1:3128")
///     .concurrency(2)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct HostBuilder {
    config: Config,
    plugin_dir: Option<PathBuf>,
    /// Empty: the config's.
    backends: Vec<String>,
    backend_options: Options,
    proxies: Vec<String>,
    proxies_file: Option<PathBuf>,
    regions: Vec<String>,
    tags: Vec<String>,
    max_tier: Option<u8>,
    yt_dlp: Option<PathBuf>,
    no_proxy_manager: bool,
    max_attempts: Option<u32>,
    on_no_proxy: Option<NoProxyPolicy>,
    max_wait_secs: Option<u64>,
    output: Option<String>,
    ytdlp_args: Vec<String>,
    runner: Option<RunnerKind>,
    concurrency: usize,
    queue: usize,
    /// `None`: the XDG cache directory.
    compile_cache: Option<CompileCache>,
    /// A query (`proxies stats`, `proxies get`): the bundled plugin reads
    /// its saved state and writes none.
    read_only: bool,
    runtime: OnceLock<PluginRuntime>,
}

impl Default for HostBuilder {
    fn default() -> Self {
        HostBuilder::new()
    }
}

impl HostBuilder {
    /// The defaults: no config file, the bundled backend, one download at a
    /// time.
    pub fn new() -> HostBuilder {
        HostBuilder {
            config: Config::default(),
            plugin_dir: None,
            backends: Vec::new(),
            backend_options: Options::new(),
            proxies: Vec::new(),
            proxies_file: None,
            regions: Vec::new(),
            tags: Vec::new(),
            max_tier: None,
            yt_dlp: None,
            no_proxy_manager: false,
            max_attempts: None,
            on_no_proxy: None,
            max_wait_secs: None,
            output: None,
            ytdlp_args: Vec::new(),
            runner: None,
            concurrency: 1,
            queue: 1000,
            compile_cache: None,
            read_only: false,
            runtime: OnceLock::new(),
        }
    }

    /// A validated config (see [`config::load`]).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The directory of `*.wasm` plugins (over the config's).
    pub fn plugin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin_dir = Some(dir.into());
        self
    }

    /// The backend plugin by name (over the config's; default `memory`).
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.backends = vec![name.into()];
        self
    }

    /// Several backends, asked in this order (over the config's).
    pub fn backends(mut self, names: Vec<String>) -> Self {
        self.backends = names;
        self
    }

    /// A backend option, merged over the config's (repeatable). With
    /// several backends, `NAME.KEY` gives it to backend NAME only.
    pub fn backend_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.backend_options.push((key.into(), value.into()));
        self
    }

    /// A proxy for the bundled backend's list, after the config's: `URL`
    /// or `URL;region=DE;tags=a,b;tier=1`, in any format of a proxy list.
    pub fn proxy(mut self, url: impl Into<String>) -> Self {
        self.proxies.push(url.into());
        self
    }

    /// A proxies file for the bundled backend (instead of the config's
    /// `proxies_file`), re-read when it changes.
    pub fn proxies_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.proxies_file = Some(path.into());
        self
    }

    /// Only proxies in one of these regions, for every download (instead
    /// of the config's `region`).
    pub fn regions(mut self, regions: Vec<String>) -> Self {
        self.regions = regions;
        self
    }

    /// Only proxies with all of these tags (instead of the config's).
    pub fn tags(mut self, tags: Vec<String>) -> Self {
        self.tags = tags;
        self
    }

    /// Only proxies of this tier or a cheaper one.
    pub fn max_tier(mut self, tier: u8) -> Self {
        self.max_tier = Some(tier);
        self
    }

    /// The yt-dlp executable (over `YTDLP_HOST_YT_DLP` and the config's).
    pub fn yt_dlp(mut self, path: impl Into<PathBuf>) -> Self {
        self.yt_dlp = Some(path.into());
        self
    }

    /// Run yt-dlp without any proxy backend.
    pub fn no_proxy_manager(mut self, yes: bool) -> Self {
        self.no_proxy_manager = yes;
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Under `wait`: the longest a URL waits, in all (config
    /// `max_wait_secs`).
    pub fn max_wait_secs(mut self, secs: u64) -> Self {
        self.max_wait_secs = Some(secs);
        self
    }

    pub fn on_no_proxy(mut self, policy: NoProxyPolicy) -> Self {
        self.on_no_proxy = Some(policy);
        self
    }

    /// yt-dlp's output template (`-o`).
    pub fn output(mut self, template: impl Into<String>) -> Self {
        self.output = Some(template.into());
        self
    }

    /// yt-dlp arguments for every download.
    pub fn ytdlp_args(mut self, args: Vec<String>) -> Self {
        self.ytdlp_args = args;
        self
    }

    pub fn runner(mut self, kind: RunnerKind) -> Self {
        self.runner = Some(kind);
        self
    }

    /// Downloads at once (and the worker pool's size).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Downloads waiting or running at most; more are refused.
    pub fn queue_limit(mut self, n: usize) -> Self {
        self.queue = n.max(1);
        self
    }

    /// For queries only: the bundled backend's saved state is read, never
    /// written (its directory is granted read-only).
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Where compiled plugins are kept (default: the XDG cache directory).
    pub fn compile_cache(mut self, cache: CompileCache) -> Self {
        self.compile_cache = Some(cache);
        self
    }

    /// Checks the settings that can be checked before anything starts, and
    /// remembers every secret in them, so no output shows one.
    pub fn validate(&self) -> Result<(), BuildError> {
        self.register_secrets();
        for (i, p) in self.proxies.iter().enumerate() {
            parse_entry(p).map_err(|e| {
                BuildError::Invalid(format!(
                    "--proxy #{} ({}): {e}",
                    i + 1,
                    proxy_url::mask_url(p)
                ))
            })?;
        }
        for r in &self.regions {
            parse_region(r).map_err(|e| BuildError::Invalid(format!("--region: {e}")))?;
        }
        for t in &self.tags {
            parse_tag(t).map_err(|e| BuildError::Invalid(format!("--tag: {e}")))?;
        }
        if let Some((k, _)) = self.backend_options.iter().find(|(k, _)| is_host_key(k)) {
            return Err(BuildError::Invalid(format!(
                "`{k}`: keys starting with `host.` are reserved for the host"
            )));
        }
        if !self.backends.is_empty() {
            config::validate_backends(&self.backends)
                .map_err(|e| BuildError::Invalid(format!("--backend: {e}")))?;
        }
        let backend = self.backend_name();
        if !self.proxies.is_empty() && !self.uses_bundled() {
            return Err(BuildError::Invalid(format!(
                "--proxy feeds the bundled `{BUNDLED_BACKEND}` backend, but the backend is `{backend}`; give that plugin its proxies through its own options (or add `{BUNDLED_BACKEND}` to the backend list)"
            )));
        }
        if self.proxies_file.is_some() && !self.uses_bundled() {
            return Err(BuildError::Invalid(format!(
                "--proxy-file feeds the bundled `{BUNDLED_BACKEND}` backend, but the backend is `{backend}`"
            )));
        }
        Ok(())
    }

    /// The proxies file in use: the override, else the config's.
    pub fn proxies_file_path(&self) -> Option<&Path> {
        self.proxies_file
            .as_deref()
            .or(self.config.proxies_file.as_deref())
    }

    /// The bundled backend's proxies: the config's (`proxies`, `[[proxy]]`),
    /// then `--proxy`, then the proxies file's. A proxy given without a
    /// scheme is taken as `http://`, said once.
    pub fn proxy_entries(&self) -> Result<Vec<ProxyEntry>, BuildError> {
        let mut out = self
            .config
            .proxy_entries()
            .map_err(|e| BuildError::Invalid(format!("{e:#}")))?;
        for (i, p) in self.proxies.iter().enumerate() {
            out.push(parse_entry(p).map_err(|e| {
                BuildError::Invalid(format!(
                    "--proxy #{} ({}): {e}",
                    i + 1,
                    proxy_url::mask_url(p)
                ))
            })?);
        }
        if let Some(path) = self.proxies_file_path() {
            let from_file = crate::proxies_file::read(path).map_err(|e| {
                BuildError::Invalid(format!("proxies file {}: {e}", path.display()))
            })?;
            out.extend(from_file);
        }
        for e in &out {
            ytdlp_host_text::secrets::register_proxy(&e.url);
            if e.assumed_http {
                tracing::info!("{} has no scheme: taken as http://", e.url.host_port());
            }
        }
        Ok(out)
    }

    /// What every download wants of its proxy: the overrides, else the
    /// config's `region`, `tags`, `max_tier`.
    pub fn want(&self) -> Result<Wanted, BuildError> {
        let bad = |e: String| BuildError::Invalid(e);
        let regions = if self.regions.is_empty() {
            self.config.regions().map_err(|e| bad(format!("{e:#}")))?
        } else {
            self.regions
                .iter()
                .map(|r| parse_region(r).map_err(|e| bad(format!("--region: {e}"))))
                .collect::<Result<_, _>>()?
        };
        let tags = if self.tags.is_empty() {
            self.config.tags.clone()
        } else {
            self.tags.clone()
        };
        Ok(Wanted {
            regions,
            avoid_regions: Vec::new(),
            tags,
            min_tier: 0,
            max_tier: self.max_tier.or(self.config.max_tier),
        })
    }

    /// Proxy credentials, secret-looking plugin options (tokens, passwords,
    /// URLs with a password) and granted environment variables' values.
    fn register_secrets(&self) {
        use ytdlp_host_text::secrets;
        let tables = self.config.proxy.iter().map(|t| &t.url);
        for p in self
            .config
            .proxies
            .iter()
            .chain(tables)
            .chain(&self.proxies)
        {
            match parse_entry(p) {
                Ok(e) => secrets::register_proxy(&e.url),
                // An invalid one is refused below; its parts are secrets all
                // the same (its error message must not show them).
                Err(_) => register_userinfo(p, true),
            }
        }
        let options = self
            .config
            .plugins
            .values()
            .flat_map(|pc| config::options_from_table(&pc.options))
            .chain(self.backend_options.iter().cloned());
        for (k, v) in options {
            let key = k.to_ascii_lowercase();
            // `token_env` names a variable; `token` holds the secret.
            let names_something = ["_env", "_file", "_path", "_name"]
                .iter()
                .any(|s| key.ends_with(s));
            if !names_something
                && [
                    "token", "password", "passwd", "secret", "apikey", "api_key", "auth",
                ]
                .iter()
                .any(|s| key.contains(s))
            {
                secrets::register(&v);
            }
            register_userinfo(&v, false);
        }
        for pc in self.config.plugins.values() {
            for name in &pc.grants.env {
                if let Ok(v) = std::env::var(name) {
                    secrets::register(&v);
                }
            }
        }
    }

    pub fn config_ref(&self) -> &Config {
        &self.config
    }

    /// The backends, in the order they are asked: the override, the
    /// config's, else `memory`.
    pub fn backend_names(&self) -> Vec<String> {
        if self.backends.is_empty() {
            self.config.backends()
        } else {
            self.backends.clone()
        }
    }

    /// The backend's name, for messages: `postgres+memory` for a chain.
    pub fn backend_name(&self) -> String {
        self.backend_names().join("+")
    }

    /// The bundled backend is one of the backends (it takes `--proxy`,
    /// `proxies` and the proxies file).
    fn uses_bundled(&self) -> bool {
        self.backend_names().iter().any(|n| n == BUNDLED_BACKEND)
    }

    /// The plugin directory: the override, the config's, else the XDG one.
    pub fn plugin_dir_path(&self) -> PathBuf {
        self.plugin_dir
            .clone()
            .or_else(|| self.config.plugin_dir.clone())
            .unwrap_or_else(|| config::config_dir().join("plugins"))
    }

    /// The backend options given for this run (`--backend-opt`).
    pub fn backend_options(&self) -> &Options {
        &self.backend_options
    }

    /// The proxies given for this run (`--proxy`).
    pub fn extra_proxies(&self) -> &[String] {
        &self.proxies
    }

    /// The plugin runtime (created on first use, then shared).
    pub fn runtime(&self) -> Result<&PluginRuntime, BuildError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let cache = self
            .compile_cache
            .clone()
            .unwrap_or_else(|| CompileCache::new(config::cache_dir().join("compiled")));
        let rt = PluginRuntime::new(cache).map_err(BuildError::Runtime)?;
        Ok(self.runtime.get_or_init(|| rt))
    }

    /// The store `[store]` names (the SQLite file by default), shared
    /// with the plugins of this process.
    pub fn open_store(
        &self,
    ) -> Result<std::sync::Arc<dyn ytdlp_host_store::Store>, ytdlp_host_store::StoreError> {
        ytdlp_host_plugin_host::open_store(&self.config.store)
    }

    fn persist_health(&self) -> bool {
        self.config.persist_health.unwrap_or(true)
    }

    /// Options for `init`: the plugin's config options with this run's
    /// (`--backend-opt`) over them, as for every call (a plugin that reads
    /// an option only at init must see the one given on the command line),
    /// plus the proxy list for the bundled backend (one `proxy` option per
    /// proxy, in the list syntax, metadata included).
    pub fn init_options(&self, backend: &str) -> Result<Options, BuildError> {
        let mut opts = self.call_options_of(backend);
        if backend == BUNDLED_BACKEND {
            for e in self.proxy_entries()? {
                opts.push(("proxy".to_string(), e.to_line()));
            }
            if self.persist_health() {
                // Health in the store, shared by every process using it; the
                // directory only for moving an older build's files in.
                opts.push(("keyvalue".to_string(), BUNDLED_HEALTH_BUCKET.to_string()));
                opts.push(("state_dir".to_string(), BUNDLED_STATE_GUEST.to_string()));
                if self.read_only {
                    opts.push(("read_only".to_string(), "true".to_string()));
                }
            }
        }
        Ok(opts)
    }

    /// A backend plugin's config; the bundled plugin also gets its
    /// private state directory, and no plugin a grant into the host's own
    /// directories.
    pub fn plugin_config(&self, backend: &str) -> Result<PluginConfig, BuildError> {
        let mut pc = self.config.plugin(backend);
        pc.host.protected = vec![
            config::cache_dir(),
            config::config_dir(),
            self.plugin_dir_path(),
            config::state_dir(),
        ];
        pc.host.store = self.config.store.clone();
        if backend == BUNDLED_BACKEND && self.persist_health() {
            pc.host.keyvalue.push(BUNDLED_HEALTH_BUCKET.to_string());
            let dir = config::bundled_state_dir();
            std::fs::create_dir_all(&dir).map_err(|e| {
                BuildError::Load(anyhow::anyhow!(
                    "cannot create the state directory {}: {e}",
                    dir.display()
                ))
            })?;
            pc.host.dirs.push(DirGrant {
                host: dir,
                guest: BUNDLED_STATE_GUEST.to_string(),
                rw: !self.read_only,
            });
        }
        Ok(pc)
    }

    /// Options for every call of the (first) backend: config options with
    /// this run's over them.
    pub fn call_options(&self) -> Options {
        self.call_options_of(&self.backend_names()[0])
    }

    /// Options for every call of `backend`: its config options with this
    /// run's (those routed to it, see [`route_options`]) over them.
    pub fn call_options_of(&self, backend: &str) -> Options {
        let names = self.backend_names();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        config::merge_options(
            &config::options_from_table(&self.config.plugin(backend).options),
            &route_options(&self.backend_options, backend, &names),
        )
    }

    /// Loads and starts the (first) backend plugin: for the commands that
    /// address one store (`proxies add`, `proxies report`, ...).
    pub async fn start_backend(&self) -> Result<Backend, BuildError> {
        self.start_backend_named(&self.backend_names()[0]).await
    }

    /// Loads and starts one backend plugin (instantiated, `init` run). A
    /// compile (seconds for a Python plugin) runs on a blocking thread, so
    /// the async runtime (the HTTP API in `serve`) stays responsive.
    pub async fn start_backend_named(&self, backend: &str) -> Result<Backend, BuildError> {
        let runtime = self.runtime()?.clone();
        let (dir, name) = (self.plugin_dir_path(), backend.to_string());
        let plugin = tokio::task::spawn_blocking(move || runtime.find(&dir, &name))
            .await
            .map_err(|e| BuildError::Load(anyhow::anyhow!("loading the plugin: {e}")))?
            .map_err(BuildError::Load)?;
        let pc = self.plugin_config(backend)?;
        let init = self.init_options(backend)?;
        Ok(Backend::start(plugin, pc, init).await?)
    }

    /// The backends as one proxy source for downloads: each started, in
    /// its own task, several chained in order ([`ChainSource`]); the
    /// bundled one told when the proxies file changes. One that fails to
    /// start fails the build, naming it: a chain silently short of a
    /// backend would serve from the wrong pool.
    pub async fn start_source(&self) -> Result<Arc<dyn ProxySource>, BuildError> {
        let names = self.backend_names();
        let mut links = Vec::with_capacity(names.len());
        for name in &names {
            let backend = self.start_backend_named(name).await?;
            let source: Arc<dyn ProxySource> = Arc::new(PluginSource::new(backend));
            if name == BUNDLED_BACKEND
                && !self.read_only
                && let Some(path) = self.proxies_file_path()
            {
                let current = crate::proxies_file::read(path).unwrap_or_default();
                crate::proxies_file::watch(path.to_path_buf(), current, Arc::downgrade(&source));
            }
            links.push(Link {
                source,
                options: config::options_from_table(&self.config.plugin(name).options),
            });
        }
        if links.len() == 1 {
            return Ok(links.remove(0).source);
        }
        Ok(Arc::new(ChainSource::new(links)))
    }

    /// The options the downloader passes its source: one backend's own, or,
    /// for a chain (which adds each backend's own), this run's.
    pub fn source_options(&self) -> Options {
        match self.backend_names().len() {
            1 => self.call_options(),
            _ => self.backend_options.clone(),
        }
    }

    /// Any proxy configured (config, `--proxy`) or a backend of the user's
    /// own: then their address is meant to stay hidden.
    fn proxies_configured(&self) -> bool {
        !self.config.proxies.is_empty()
            || !self.config.proxy.is_empty()
            || !self.proxies.is_empty()
            || self.proxies_file_path().is_some()
            || self.backend_names().iter().any(|n| n != BUNDLED_BACKEND)
    }

    /// The no-proxy policy, and whether it was chosen explicitly. Unchosen:
    /// `wait` when any proxy or a non-bundled backend is configured (a URL
    /// waits for its site's next free proxy when the backend says when that
    /// is, and fails otherwise); `direct` only with no proxy configured at
    /// all (said on screen).
    pub fn no_proxy_policy(&self) -> (NoProxyPolicy, bool) {
        match self.on_no_proxy.or(self.config.on_no_proxy) {
            Some(p) => (p, true),
            None if self.proxies_configured() => (NoProxyPolicy::Wait, false),
            None => (NoProxyPolicy::Direct, false),
        }
    }

    /// The proxy source, yt-dlp, the runner and the settings, as one
    /// [`Downloader`].
    pub async fn downloader(&self) -> Result<Downloader, BuildError> {
        self.validate()?;
        let (policy, explicit) = self.no_proxy_policy();
        if policy == NoProxyPolicy::Direct && !explicit {
            tracing::warn!(
                "no proxy is configured: downloads go out from this machine's own address \
                 (give proxies with --proxy or `proxies = [...]`, or set on_no_proxy = \"fail\")"
            );
        }
        let source: Option<Arc<dyn ProxySource>> = if self.no_proxy_manager {
            None
        } else {
            match self.start_source().await {
                Ok(s) => Some(s),
                // A plugin that crashes or hangs at start goes direct only
                // under a `direct` chosen explicitly, and only when it is
                // the only backend; a missing plugin or refused options are
                // config errors.
                Err(BuildError::Backend(e))
                    if e.is_fault()
                        && self.backend_names().len() == 1
                        && !matches!(e, BackendError::InitRefused { .. })
                        && policy == NoProxyPolicy::Direct
                        && explicit =>
                {
                    tracing::warn!("{e}; downloading without a proxy (policy `direct`)");
                    None
                }
                Err(e) => return Err(e),
            }
        };
        let yt_dlp = self.locate_yt_dlp().await?;
        let runner = ytdlp_host_ytdlp::select(
            self.runner.or(self.config.runner),
            &yt_dlp,
            &self.config.worker,
            self.concurrency,
            &self.ytdlp_args,
        )
        .await
        .map_err(BuildError::Runner)?;
        let settings = Settings {
            yt_dlp,
            max_attempts: self
                .max_attempts
                .or(self.config.max_attempts)
                .unwrap_or(3)
                .max(1),
            on_no_proxy: policy,
            direct_after_proxy: policy == NoProxyPolicy::Direct && explicit,
            output: self.output.clone().or_else(|| self.config.output.clone()),
            extra_args: self.ytdlp_args.clone(),
            run_timeout: Duration::from_secs(self.config.run_timeout_secs.unwrap_or(3600)),
            direct_socket_timeout_secs: 30,
            max_wait: Duration::from_secs(
                self.max_wait_secs
                    .or(self.config.max_wait_secs)
                    .unwrap_or(600),
            ),
            preflight: match self.config.preflight_timeout_ms.unwrap_or(1000) {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            want: self.want()?,
        };
        Ok(Downloader::new(
            source,
            self.source_options(),
            settings,
            runner,
        ))
    }

    /// yt-dlp: found, or the private copy installed (a pip install, run on a
    /// blocking thread).
    async fn locate_yt_dlp(&self) -> Result<PathBuf, BuildError> {
        let flag = self.yt_dlp.clone();
        let from_config = self.config.yt_dlp.clone();
        let found = tokio::task::spawn_blocking(move || {
            locate::locate_or_install(flag.as_deref(), from_config.as_deref())
        })
        .await
        .map_err(|e| BuildError::YtDlp(anyhow::anyhow!("{e}")))?
        .map_err(BuildError::YtDlp)?;
        let (path, origin) = found;
        tracing::info!("yt-dlp: {} (from {origin})", path.display());
        Ok(path)
    }

    /// The whole host: a queue over the downloader.
    pub async fn build(self) -> Result<Host, BuildError> {
        let downloader = self.downloader().await?;
        Ok(Host::new(
            downloader,
            Limits {
                concurrency: self.concurrency,
                queue: self.queue,
            },
        ))
    }
}

/// The user name and password in a URL-like string (any scheme), as
/// secrets.
/// Registers the credentials in a URL's userinfo: all of it for a proxy
/// (vendors put API keys in the user name), the password alone for other
/// URLs (see below).
fn register_userinfo(value: &str, proxy: bool) {
    let Some((_, rest)) = value.split_once("://") else {
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return;
    };
    // A database's or Redis's `user:password`: the password is the
    // secret; the user name (often `ytdlp`, `postgres`) masked by value
    // would blank out every word that contains it. A lone user part is a
    // token (`redis://TOKEN@host`) and is masked.
    let parts: Vec<&str> = match userinfo.split_once(':') {
        _ if proxy => userinfo.split(':').collect(),
        Some((_, password)) if !password.is_empty() => vec![password],
        Some((user, _)) => vec![user],
        None => vec![userinfo],
    };
    for part in parts {
        ytdlp_host_text::secrets::register(part);
        if let Ok(decoded) = percent_encoding::percent_decode_str(part).decode_utf8() {
            ytdlp_host_text::secrets::register(&decoded);
        }
    }
}

/// The key-value bucket the bundled plugin keeps proxy health in.
const BUNDLED_HEALTH_BUCKET: &str = "health";

/// The plugin file a backend name refers to in `dir` (for hot reload).
pub fn plugin_file(dir: &Path, backend: &str) -> PathBuf {
    dir.join(format!("{backend}.wasm"))
}

#[cfg(test)]
mod tests {
    use super::register_userinfo;
    use ytdlp_host_text::secrets::redact;

    // The registry is process-wide: each test uses values of its own.

    #[test]
    fn a_database_urls_password_is_masked_and_its_user_name_is_not() {
        register_userinfo("postgres://ytdlpdb:pw-0123456789@127.0.0.1:5432/db", false);
        assert_eq!(redact("ytdlpdb-host pw-0123456789"), "ytdlpdb-host ***");
        // A lone user part is a token.
        register_userinfo("redis://tok-0123456789abcdef@127.0.0.1:6379", false);
        assert_eq!(redact("tok-0123456789abcdef"), "***");
    }

    #[test]
    fn a_proxys_user_name_is_masked_too() {
        register_userinfo("http://APIKEY-abcdef:x-pass-1@10.0.0.1:8080", true);
        assert_eq!(redact("APIKEY-abcdef x-pass-1"), "*** ***");
    }
}
