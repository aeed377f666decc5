//! Calls into a backend plugin: instantiation and `init`, `get-proxy`,
//! `report-*`, `get-stats`, each under its deadline and limits, with every
//! misbehaviour turned into a typed one-line error that names the plugin.
//!
//! Both contract versions go through here: a 0.1 plugin hears the request
//! as `host.*` options, names proxies by URL and hears `geo-restricted` as
//! `blocked`; a 0.2 plugin gets the typed request and names proxies by id.
//!
//! A plugin that can wait in a host call (sockets, HTTP, pollables) is
//! called async: epoch interruption stops one that computes past its
//! deadline, and a timer around the call stops one that waits past it (a
//! sleep, a socket read), which epochs alone cannot. A plugin that cannot
//! wait is called sync under epoch deadlines alone: the fast path.
//!
//! A trap or a timeout leaves the instance and its Store unusable, so the
//! next call instantiates anew from the pre-instantiated component, after a
//! backoff that grows while the plugin keeps dying.

use std::fmt;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};
use ytdlp_contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_contract::options::{HOST_ATTEMPT, HOST_DOWNLOAD_ID, HOST_SITE, HOST_URL};
use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::text::one_line;
use ytdlp_contract::{
    Failure, Options, PluginError, ProxyMeta, ProxyStats, ProxyUrl, Request, Success, now_ms,
    parse_region, parse_tag, proxy_url,
};
use ytdlp_host_config::PluginConfig;
use ytdlp_host_text::{clean, clean_capped};

use crate::bindings::{v01, v02};
use crate::loading::{Exports, Plugin};
use crate::sandbox::limits::{
    Exceeded, MAX_TABLE_ELEMENTS, MAX_WASI_RESOURCES, deadline_ticks, wall_deadline,
};
use crate::sandbox::{PluginState, Policy};

/// Which contract call, for messages and per-call deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Init,
    GetProxy,
    ReportSuccess,
    ReportFailure,
    GetStats,
    AddProxies,
    RemoveProxies,
    Describe,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Call::Init => "init",
            Call::GetProxy => "get-proxy",
            Call::ReportSuccess => "report-success",
            Call::ReportFailure => "report-failure",
            Call::GetStats => "get-stats",
            Call::AddProxies => "add-proxies",
            Call::RemoveProxies => "remove-proxies",
            Call::Describe => "describe",
        })
    }
}

/// Everything that can go wrong in a call, one line each, naming the plugin.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("plugin `{plugin}`: no proxy available: {message}{}", retry_suffix(*retry_at_ms))]
    NoProxy {
        plugin: String,
        message: String,
        retry_at_ms: Option<u64>,
    },
    #[error("plugin `{plugin}`: backend unavailable: {message}")]
    Unavailable { plugin: String, message: String },
    #[error("plugin `{plugin}`: init refused the options: {message}")]
    InitRefused { plugin: String, message: String },
    #[error("plugin `{plugin}`: {call} is not supported: {message}")]
    Unsupported {
        plugin: String,
        call: Call,
        message: String,
    },
    #[error("plugin `{plugin}`: {call} timed out after {ms} ms")]
    Timeout { plugin: String, call: Call, ms: u64 },
    #[error("plugin `{plugin}`: {call} ran out of memory (limit {limit_mib} MiB)")]
    OutOfMemory {
        plugin: String,
        call: Call,
        limit_mib: u64,
    },
    #[error("plugin `{plugin}`: {call} went past its limit of {what}")]
    ResourceLimit {
        plugin: String,
        call: Call,
        what: String,
    },
    #[error("plugin `{plugin}`: {call} trapped: {message}")]
    Trap {
        plugin: String,
        call: Call,
        message: String,
    },
    #[error("plugin `{plugin}`: {call} broke the contract: {reason}")]
    ContractViolation {
        plugin: String,
        call: Call,
        reason: String,
    },
    #[error(
        "plugin `{plugin}`: not restarted yet after repeated crashes (next try in {wait_ms} ms)"
    )]
    CoolingOff { plugin: String, wait_ms: u64 },
}

fn retry_suffix(retry_at_ms: Option<u64>) -> String {
    match retry_at_ms {
        Some(at) => {
            let now = now_ms();
            let secs = at.saturating_sub(now).div_ceil(1000);
            format!(" (next proxy back in {secs} s)")
        }
        None => String::new(),
    }
}

impl BackendError {
    /// The plugin misbehaved (as opposed to answering "no proxy" or "my
    /// store is down").
    pub fn is_fault(&self) -> bool {
        !matches!(
            self,
            BackendError::NoProxy { .. }
                | BackendError::Unavailable { .. }
                | BackendError::Unsupported { .. }
        )
    }
}

/// A proxy handed out by a backend, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyChoice {
    /// The plugin's id for it (0.2), or the id of its URL (0.1 plugins
    /// name proxies by URL). Safe to show.
    pub id: String,
    pub url: ProxyUrl,
    pub timeout_ms: u32,
    pub meta: ProxyMeta,
    /// The plugin that handed it out, so a report finds its way back
    /// (several backends at once); empty for one the host made up.
    pub backend: String,
}

impl ProxyChoice {
    /// A proxy named by its URL (as a 0.1 plugin names it), for reports
    /// about a proxy that was not handed out (`proxies report`, tests).
    pub fn for_url(url: ProxyUrl) -> Arc<ProxyChoice> {
        Arc::new(ProxyChoice {
            id: url.id(),
            url,
            timeout_ms: 1000,
            meta: ProxyMeta::default(),
            backend: String::new(),
        })
    }
}

/// One row of `get-stats` as the host shows it: the plugin's statistics
/// (credentials hidden, text cleaned) and the proxy's id when known.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsRow {
    /// The backend that keeps this row, when several are chained (set by
    /// the chain; one backend alone leaves it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub stats: ProxyStats,
}

/// What a 0.2 plugin says of itself (`describe`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub summary: String,
    pub options: Vec<OptionInfo>,
}

/// One option a plugin takes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OptionInfo {
    pub key: String,
    pub help: String,
    /// May be given per download (not only at init).
    pub per_call: bool,
    pub secret: bool,
    pub repeated: bool,
}

/// The longest proxy id the contract allows.
pub const MAX_PROXY_ID: usize = 128;

/// A live instance: its Store and where its exports are.
struct Live {
    store: Store<PluginState>,
    api: Api,
}

enum Api {
    V01 {
        backend: v01::exports::ytdlp::proxy::backend::Guest,
        stats: Option<v01::exports::ytdlp::proxy::stats::Guest>,
        admin: Option<v01::exports::ytdlp::proxy::admin::Guest>,
    },
    V02 {
        backend: v02::exports::ytdlp::proxy::backend::Guest,
        stats: Option<v02::exports::ytdlp::proxy::stats::Guest>,
        admin: Option<v02::exports::ytdlp::proxy::admin::Guest>,
        describe: Option<v02::exports::ytdlp::proxy::describe::Guest>,
    },
    V02Sync {
        backend: v02::sync::exports::ytdlp::proxy::backend::Guest,
        stats: Option<v02::sync::exports::ytdlp::proxy::stats::Guest>,
        admin: Option<v02::sync::exports::ytdlp::proxy::admin::Guest>,
        describe: Option<v02::sync::exports::ytdlp::proxy::describe::Guest>,
    },
}

use v02::ytdlp::proxy::types as w2;

/// One running plugin instance. Not shared between threads: put it behind
/// a [`crate::BackendHandle`] (calls into one instance are never
/// concurrent).
pub struct Backend {
    plugin: Plugin,
    config: PluginConfig,
    /// The grants, resolved once at start.
    policy: Policy,
    init_options: Options,
    live: Option<Live>,
    crashes: u32,
    /// Crashes since the last call that went well (drives the backoff).
    crashes_in_a_row: u32,
    retry_at: Option<Instant>,
    /// Proxies a 0.2 plugin handed out, validated: the same record again
    /// is not parsed and checked again (the fast path's budget is ~1 µs).
    seen: HashMap<String, (w2::Proxy, Arc<ProxyChoice>)>,
}

/// Longest wait before re-instantiating a plugin that keeps crashing.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);

/// Validated proxies remembered per instance at most.
const MAX_SEEN: usize = 100_000;

impl Backend {
    /// Instantiates the plugin and runs `init` with `init_options`.
    pub async fn start(
        plugin: Plugin,
        config: PluginConfig,
        init_options: Options,
    ) -> Result<Backend, BackendError> {
        let policy = resolve_policy(&plugin.name, &config).await?;
        let mut b = Backend::new(plugin, config, policy, init_options);
        b.ensure_live().await?;
        Ok(b)
    }

    fn new(plugin: Plugin, config: PluginConfig, policy: Policy, init_options: Options) -> Backend {
        Backend {
            plugin,
            config,
            policy,
            init_options,
            live: None,
            crashes: 0,
            crashes_in_a_row: 0,
            retry_at: None,
            seen: HashMap::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.plugin.name
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub fn has_stats(&self) -> bool {
        self.plugin.has_stats
    }

    /// How many times the instance was replaced after a trap.
    pub fn restarts(&self) -> u32 {
        self.crashes
    }

    fn err_contract(&self, call: Call, reason: impl Into<String>) -> BackendError {
        BackendError::ContractViolation {
            plugin: self.plugin.name.clone(),
            call,
            reason: reason.into(),
        }
    }

    async fn ensure_live(&mut self) -> Result<&mut Live, BackendError> {
        if self.live.is_none() {
            if let Some(at) = self.retry_at {
                let now = Instant::now();
                if at > now {
                    return Err(BackendError::CoolingOff {
                        plugin: self.plugin.name.clone(),
                        wait_ms: (at - now).as_millis() as u64,
                    });
                }
            }
            match self.instantiate(true).await {
                Ok(live) => self.live = Some(live),
                Err(e) => {
                    if e.is_fault() {
                        self.note_crash();
                    }
                    return Err(e);
                }
            }
        }
        Ok(self.live.as_mut().expect("just set"))
    }

    fn note_crash(&mut self) {
        self.live = None;
        self.crashes += 1;
        self.crashes_in_a_row += 1;
        // 0 ms for the first crash (a one-off), then 100 ms doubling.
        let backoff = if self.crashes_in_a_row <= 1 {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
                .saturating_mul(1 << (self.crashes_in_a_row - 2).min(16))
                .min(MAX_RESTART_BACKOFF)
        };
        self.retry_at = Some(Instant::now() + backoff);
    }

    /// Instantiates once without `init`, to check that the exports have
    /// the contract's types (`plugins check`).
    pub async fn probe(plugin: &Plugin, config: &PluginConfig) -> Result<(), BackendError> {
        let policy = resolve_policy(&plugin.name, config).await?;
        let mut b = Backend::new(plugin.clone(), config.clone(), policy, Options::new());
        b.instantiate(false).await.map(|_| ())
    }

    async fn instantiate(&mut self, run_init: bool) -> Result<Live, BackendError> {
        let limits = self.config.limits;
        let state = PluginState::new(&self.plugin.name, &self.policy, &limits).map_err(|e| {
            BackendError::Unavailable {
                plugin: self.plugin.name.clone(),
                message: one_line(&e),
            }
        })?;
        let mut store = Store::new(self.plugin.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        // The deadline must be set before instantiating: the default traps
        // at once.
        store.set_epoch_deadline(deadline_ticks(limits.init_timeout_ms));
        store.epoch_deadline_trap();
        let started = Instant::now();
        let deadline = wall_deadline(limits.init_timeout_ms);
        let instance = if self.plugin.may_block {
            match tokio::time::timeout(deadline, self.plugin.pre.instantiate_async(&mut store))
                .await
            {
                Ok(r) => r.map_err(|e| self.map_trap(&store, Call::Init, e))?,
                Err(_) => return Err(self.timeout(Call::Init)),
            }
        } else {
            let pre = &self.plugin.pre;
            let store_ref = &mut store;
            crate::exec::run_sync(move || pre.instantiate(store_ref))
                .map_err(|e| self.map_trap(&store, Call::Init, e))?
        };
        let load = |e: wasmtime::Error| self.err_contract(Call::Init, one_line(&e));
        macro_rules! opt_load {
            ($idx:expr) => {
                match $idx {
                    Some(i) => Some(i.load(&mut store, &instance).map_err(load)?),
                    None => None,
                }
            };
        }
        let api = match &self.plugin.exports {
            Exports::V01 {
                backend,
                stats,
                admin,
            } => Api::V01 {
                backend: backend.load(&mut store, &instance).map_err(load)?,
                stats: opt_load!(stats),
                admin: opt_load!(admin),
            },
            Exports::V02 {
                backend,
                stats,
                admin,
                describe,
            } => Api::V02 {
                backend: backend.load(&mut store, &instance).map_err(load)?,
                stats: opt_load!(stats),
                admin: opt_load!(admin),
                describe: opt_load!(describe),
            },
            Exports::V02Sync {
                backend,
                stats,
                admin,
                describe,
            } => Api::V02Sync {
                backend: backend.load(&mut store, &instance).map_err(load)?,
                stats: opt_load!(stats),
                admin: opt_load!(admin),
                describe: opt_load!(describe),
            },
        };
        let mut live = Live { store, api };
        if run_init {
            let remaining = deadline.saturating_sub(started.elapsed());
            let opts = &self.init_options;
            let refused: Option<String> = if self.plugin.may_block {
                let call = async {
                    match &live.api {
                        Api::V01 { backend, .. } => backend
                            .call_init(&mut live.store, opts)
                            .await
                            .map(|r| r.err()),
                        Api::V02 { backend, .. } => backend
                            .call_init(&mut live.store, opts)
                            .await
                            .map(|r| r.err().map(|e| PluginError::from(e).to_string())),
                        Api::V02Sync { .. } => unreachable!("a sync plugin is called sync"),
                    }
                };
                match tokio::time::timeout(remaining, call).await {
                    Ok(r) => r.map_err(|e| self.map_trap(&live.store, Call::Init, e))?,
                    Err(_) => return Err(self.timeout(Call::Init)),
                }
            } else {
                let Api::V02Sync { backend, .. } = &live.api else {
                    unreachable!("only 0.2 plugins are called sync")
                };
                let store = &mut live.store;
                crate::exec::run_sync(move || backend.call_init(store, opts))
                    .map(|r| r.err().map(|e| PluginError::from(e).to_string()))
                    .map_err(|e| self.map_trap(&live.store, Call::Init, e))?
            };
            if let Some(message) = refused {
                return Err(BackendError::InitRefused {
                    plugin: self.plugin.name.clone(),
                    message: clean_capped(&message, 500),
                });
            }
        }
        tracing::debug!(plugin = %self.plugin.name, elapsed = ?started.elapsed(), mode = self.plugin.call_mode(), "plugin instantiated");
        Ok(live)
    }

    fn timeout(&self, call: Call) -> BackendError {
        let limits = &self.config.limits;
        BackendError::Timeout {
            plugin: self.plugin.name.clone(),
            call,
            ms: if call == Call::Init {
                limits.init_timeout_ms
            } else {
                limits.call_timeout_ms
            },
        }
    }

    /// Turns a wasmtime error from a call into the typed error.
    fn map_trap(&self, store: &Store<PluginState>, call: Call, e: wasmtime::Error) -> BackendError {
        let plugin = self.plugin.name.clone();
        let limits = self.config.limits;
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return self.timeout(call);
        }
        // The limiter says which budget it refused; nobody's wording does.
        match store.data().limiter.exceeded() {
            Some(Exceeded::Memory) => {
                return BackendError::OutOfMemory {
                    plugin,
                    call,
                    limit_mib: limits.memory_mib,
                };
            }
            Some(Exceeded::TableElements) => {
                return BackendError::ResourceLimit {
                    plugin,
                    call,
                    what: format!("{MAX_TABLE_ELEMENTS} table elements"),
                };
            }
            None => {}
        }
        if e.chain().any(|c| {
            matches!(
                c.downcast_ref::<ResourceTableError>(),
                Some(ResourceTableError::Full)
            )
        }) {
            return BackendError::ResourceLimit {
                plugin,
                call,
                what: format!("{MAX_WASI_RESOURCES} open WASI resources"),
            };
        }
        let stderr = store.data().stderr.tail();
        let message = match panic_message(&stderr) {
            Some(panic) => panic,
            None => match e.downcast_ref::<Trap>() {
                Some(trap) => trap.to_string(),
                None => one_line(&e),
            },
        };
        BackendError::Trap {
            plugin,
            call,
            message,
        }
    }

    /// Runs one call with its deadline; a trap or a timeout kills the
    /// instance. A plugin that may block runs under a wall-clock timer too;
    /// one that cannot is polled once (its calls are sync) with no timer.
    async fn call<R: Send>(
        &mut self,
        call: Call,
        f: impl AsyncFnOnce(&mut Live) -> wasmtime::Result<R>,
    ) -> Result<R, BackendError> {
        let ms = self.config.limits.call_timeout_ms;
        let may_block = self.plugin.may_block;
        let live = self.ensure_live().await?;
        live.store.set_epoch_deadline(deadline_ticks(ms));
        let outcome = if may_block {
            tokio::time::timeout(wall_deadline(ms), f(live)).await
        } else {
            // A sync plugin's call is done in one poll; it runs where WASI's
            // sync host calls may block (see `exec`).
            let fut = AssertSend(f(live));
            Ok(crate::exec::run_sync(move || {
                crate::exec::block_on(fut.into_inner())
            }))
        };
        let err = match outcome {
            Ok(Ok(r)) => {
                self.crashes_in_a_row = 0;
                return Ok(r);
            }
            Ok(Err(e)) => {
                let live = self.live.take().expect("live during call");
                self.map_trap(&live.store, call, e)
            }
            Err(_) => {
                self.live = None;
                self.timeout(call)
            }
        };
        self.note_crash();
        tracing::warn!("{err}; the instance will be replaced");
        Err(err)
    }

    fn too_long(&self, call: Call, len: usize) -> Option<BackendError> {
        let max = self.config.limits.max_return_bytes as usize;
        (len > max).then(|| self.err_contract(call, format!("returned {len} bytes (limit {max})")))
    }

    /// Asks for a proxy for `req`. The answer is validated: anything that
    /// is not a proxy (a bad URL or id, a timeout out of bounds, metadata
    /// that is not the contract's) is a contract violation and never
    /// reaches yt-dlp.
    pub async fn get_proxy(
        &mut self,
        req: &Request,
        options: &Options,
    ) -> Result<Arc<ProxyChoice>, BackendError> {
        let contract = self.plugin.contract;
        let answer: Result<Answer, w2::GetProxyError> = match contract {
            crate::loading::Contract::V0_1 => {
                let opts = with_host_keys(options, req);
                self.call(Call::GetProxy, async |l| match &l.api {
                    Api::V01 { backend, .. } => backend
                        .call_get_proxy(&mut l.store, &opts)
                        .await
                        .map(|r| r.map(Answer::V01).map_err(v01_error)),
                    _ => unreachable!("a 0.1 plugin has 0.1 exports"),
                })
                .await?
            }
            crate::loading::Contract::V0_2 => {
                let wreq = wit_request(req);
                self.call(Call::GetProxy, async |l| match &l.api {
                    Api::V02 { backend, .. } => backend
                        .call_get_proxy(&mut l.store, &wreq, options)
                        .await
                        .map(|r| r.map(Answer::V02)),
                    Api::V02Sync { backend, .. } => backend
                        .call_get_proxy(&mut l.store, &wreq, options)
                        .map(|r| r.map(Answer::V02)),
                    Api::V01 { .. } => unreachable!("a 0.2 plugin has 0.2 exports"),
                })
                .await?
            }
        };
        let plugin = self.plugin.name.clone();
        match answer {
            Ok(Answer::V01(proxy)) => self.validate_v01(proxy),
            Ok(Answer::V02(proxy)) => self.validate_v02(proxy),
            Err(w2::GetProxyError::NoProxyAvailable(np)) => {
                if let Some(e) = self.too_long(Call::GetProxy, np.message.len()) {
                    return Err(e);
                }
                Err(BackendError::NoProxy {
                    plugin,
                    message: clean_capped(&np.message, 300),
                    retry_at_ms: np.retry_at_ms,
                })
            }
            Err(w2::GetProxyError::BackendUnavailable(message)) => {
                if let Some(e) = self.too_long(Call::GetProxy, message.len()) {
                    return Err(e);
                }
                Err(BackendError::Unavailable {
                    plugin,
                    message: clean_capped(&message, 300),
                })
            }
        }
    }

    fn check_timeout(&self, timeout_ms: u32) -> Result<(), BackendError> {
        if timeout_ms == 0 || timeout_ms > MAX_PROXY_TIMEOUT_MS {
            return Err(self.err_contract(
                Call::GetProxy,
                format!("timeout-ms {timeout_ms} is outside 1..={MAX_PROXY_TIMEOUT_MS}"),
            ));
        }
        Ok(())
    }

    fn validate_v01(
        &self,
        proxy: v01::ytdlp::proxy::types::Proxy,
    ) -> Result<Arc<ProxyChoice>, BackendError> {
        if let Some(e) = self.too_long(Call::GetProxy, proxy.url.len()) {
            return Err(e);
        }
        let url = proxy_url::validate(&proxy.url).map_err(|e| {
            self.err_contract(
                Call::GetProxy,
                format!(
                    "invalid proxy URL `{}`: {e}",
                    clean_capped(&proxy_url::mask_url(&proxy.url), 80)
                ),
            )
        })?;
        // Its credentials are secrets from now on, in any output.
        ytdlp_host_text::secrets::register_proxy(&url);
        self.check_timeout(proxy.timeout_ms)?;
        Ok(Arc::new(ProxyChoice {
            id: url.id(),
            url,
            timeout_ms: proxy.timeout_ms,
            meta: ProxyMeta::default(),
            backend: self.plugin.name.clone(),
        }))
    }

    fn validate_v02(&mut self, proxy: w2::Proxy) -> Result<Arc<ProxyChoice>, BackendError> {
        if let Some((known, choice)) = self.seen.get(&proxy.id)
            && *known == proxy
        {
            return Ok(choice.clone());
        }
        let size = proxy.id.len()
            + proxy.host.len()
            + proxy
                .credentials
                .as_ref()
                .map_or(0, |c| c.username.len() + c.password.len())
            + proxy.meta.tags.iter().map(String::len).sum::<usize>();
        if let Some(e) = self.too_long(Call::GetProxy, size) {
            return Err(e);
        }
        if let Some(c) = &proxy.credentials {
            // Secrets from now on, whatever happens next.
            ytdlp_host_text::secrets::register(&c.username);
            ytdlp_host_text::secrets::register(&c.password);
        }
        let id_ok = !proxy.id.is_empty()
            && proxy.id.len() <= MAX_PROXY_ID
            && proxy.id.bytes().all(|b| b.is_ascii_graphic());
        if !id_ok {
            return Err(self.err_contract(
                Call::GetProxy,
                format!(
                    "proxy id `{}` is not 1-{MAX_PROXY_ID} printable ASCII characters",
                    clean_capped(&proxy.id, 80)
                ),
            ));
        }
        let url = ProxyUrl::from_parts(
            scheme_name(proxy.scheme),
            &proxy.host,
            proxy.port,
            proxy
                .credentials
                .as_ref()
                .map(|c| (c.username.as_str(), c.password.as_str())),
        )
        .map_err(|e| {
            self.err_contract(
                Call::GetProxy,
                format!(
                    "proxy `{}` ({}:{}) is not a proxy yt-dlp can use: {e}",
                    proxy.id,
                    clean_capped(&proxy.host, 80),
                    proxy.port
                ),
            )
        })?;
        ytdlp_host_text::secrets::register_proxy(&url);
        self.check_timeout(proxy.timeout_ms)?;
        let meta = self.validate_meta(&proxy.meta)?;
        let choice = Arc::new(ProxyChoice {
            id: proxy.id.clone(),
            url,
            timeout_ms: proxy.timeout_ms,
            meta,
            backend: self.plugin.name.clone(),
        });
        if self.seen.len() >= MAX_SEEN {
            self.seen.clear();
        }
        self.seen.insert(proxy.id.clone(), (proxy, choice.clone()));
        Ok(choice)
    }

    fn validate_meta(&self, m: &w2::ProxyMeta) -> Result<ProxyMeta, BackendError> {
        let bad = |what: String| self.err_contract(Call::GetProxy, what);
        let region = match &m.region {
            Some(r) => Some(parse_region(r).map_err(|e| bad(clean_capped(&e, 120)))?),
            None => None,
        };
        let mut tags = Vec::with_capacity(m.tags.len());
        for t in &m.tags {
            tags.push(parse_tag(t).map_err(|e| bad(clean_capped(&e, 120)))?);
        }
        Ok(ProxyMeta {
            region,
            tags,
            tier: m.tier,
        })
    }

    pub async fn report_success(
        &mut self,
        proxy: &ProxyChoice,
        req: &Request,
        outcome: &Success,
        options: &Options,
    ) -> Result<(), BackendError> {
        match self.plugin.contract {
            crate::loading::Contract::V0_1 => {
                let opts = with_host_keys(options, req);
                self.call(Call::ReportSuccess, async |l| match &l.api {
                    Api::V01 { backend, .. } => {
                        backend
                            .call_report_success(&mut l.store, proxy.url.expose(), &opts)
                            .await
                    }
                    _ => unreachable!("a 0.1 plugin has 0.1 exports"),
                })
                .await
            }
            crate::loading::Contract::V0_2 => {
                let wreq = wit_request(req);
                let s = w2::Success {
                    elapsed_ms: outcome.elapsed_ms,
                    bytes: outcome.bytes,
                };
                self.call(Call::ReportSuccess, async |l| match &l.api {
                    Api::V02 { backend, .. } => {
                        backend
                            .call_report_success(&mut l.store, &proxy.id, &wreq, s, options)
                            .await
                    }
                    Api::V02Sync { backend, .. } => {
                        backend.call_report_success(&mut l.store, &proxy.id, &wreq, s, options)
                    }
                    Api::V01 { .. } => unreachable!("a 0.2 plugin has 0.2 exports"),
                })
                .await
            }
        }
    }

    pub async fn report_failure(
        &mut self,
        proxy: &ProxyChoice,
        req: &Request,
        failure: &Failure,
        elapsed_ms: u32,
        options: &Options,
    ) -> Result<(), BackendError> {
        let message = clean_capped(&failure.message, 1000);
        match self.plugin.contract {
            crate::loading::Contract::V0_1 => {
                let opts = with_host_keys(options, req);
                let f = v01::ytdlp::proxy::types::Failure {
                    kind: failure.kind.into(),
                    message,
                };
                self.call(Call::ReportFailure, async |l| match &l.api {
                    Api::V01 { backend, .. } => {
                        backend
                            .call_report_failure(&mut l.store, proxy.url.expose(), &f, &opts)
                            .await
                    }
                    _ => unreachable!("a 0.1 plugin has 0.1 exports"),
                })
                .await
            }
            crate::loading::Contract::V0_2 => {
                let wreq = wit_request(req);
                let d = &failure.detail;
                let f = w2::Failure {
                    kind: failure.kind.into(),
                    message,
                    detail: w2::FailureDetail {
                        http_status: d.http_status,
                        retry_after_ms: d.retry_after_ms,
                        phase: d.phase.map(wit_phase),
                        from_proxy: d.from_proxy,
                        countries: d.countries.clone(),
                    },
                    elapsed_ms,
                };
                self.call(Call::ReportFailure, async |l| match &l.api {
                    Api::V02 { backend, .. } => {
                        backend
                            .call_report_failure(&mut l.store, &proxy.id, &wreq, &f, options)
                            .await
                    }
                    Api::V02Sync { backend, .. } => {
                        backend.call_report_failure(&mut l.store, &proxy.id, &wreq, &f, options)
                    }
                    Api::V01 { .. } => unreachable!("a 0.2 plugin has 0.2 exports"),
                })
                .await
            }
        }
    }

    /// `Ok(None)` when the plugin does not export `stats`, or (0.2) says it
    /// does not support them.
    pub async fn get_stats(
        &mut self,
        options: &Options,
    ) -> Result<Option<Vec<StatsRow>>, BackendError> {
        if !self.plugin.has_stats {
            return Ok(None);
        }
        let answer: Result<Vec<StatsRow>, PluginError> = self
            .call(Call::GetStats, async |l| match &l.api {
                Api::V01 { stats: Some(s), .. } => {
                    s.call_get_stats(&mut l.store, options).await.map(|r| {
                        r.map(|rows| rows.into_iter().map(row_v01).collect())
                            .map_err(PluginError::unavailable)
                    })
                }
                Api::V02 { stats: Some(s), .. } => {
                    s.call_get_stats(&mut l.store, options).await.map(|r| {
                        r.map(|rows| rows.into_iter().map(row_v02).collect())
                            .map_err(PluginError::from)
                    })
                }
                Api::V02Sync { stats: Some(s), .. } => {
                    s.call_get_stats(&mut l.store, options).map(|r| {
                        r.map(|rows| rows.into_iter().map(row_v02).collect())
                            .map_err(PluginError::from)
                    })
                }
                _ => Ok(Ok(Vec::new())),
            })
            .await?;
        let rows = match answer {
            Ok(rows) => rows,
            Err(PluginError::Unsupported { .. }) => return Ok(None),
            Err(e) => {
                return Err(BackendError::Unavailable {
                    plugin: self.plugin.name.clone(),
                    message: clean_capped(&e.to_string(), 300),
                });
            }
        };
        let size: usize = rows
            .iter()
            .map(|r| {
                64 + r.stats.url.len()
                    + r.stats
                        .extra
                        .iter()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        let max = self.config.limits.max_return_bytes as usize;
        if size > max.saturating_mul(16) {
            return Err(self.err_contract(
                Call::GetStats,
                format!("returned about {size} bytes (limit {})", max * 16),
            ));
        }
        Ok(Some(rows.into_iter().map(clean_row).collect()))
    }

    /// `Ok(None)` when the plugin does not export `describe` (or is 0.1).
    pub async fn describe(&mut self) -> Result<Option<PluginInfo>, BackendError> {
        if !self.plugin.has_describe {
            return Ok(None);
        }
        // The async and the sync bindings each have their own describe
        // types (an exported interface's types are generated per world).
        macro_rules! info {
            ($i:expr, $scope:path) => {{
                let i = $i;
                PluginInfo {
                    name: clean_capped(&i.name, 100),
                    version: clean_capped(&i.version, 100),
                    summary: clean_capped(&i.summary, 300),
                    options: i
                        .options
                        .into_iter()
                        .take(256)
                        .map(|o| OptionInfo {
                            key: clean_capped(&o.key, 100),
                            help: clean_capped(&o.help, 300),
                            per_call: matches!(o.scope, $scope),
                            secret: o.secret,
                            repeated: o.repeated,
                        })
                        .collect(),
                }
            }};
        }
        self.call(Call::Describe, async |l| match &l.api {
            Api::V02 {
                describe: Some(d), ..
            } => d.call_describe(&mut l.store).await.map(|i| {
                Some(info!(
                    i,
                    v02::exports::ytdlp::proxy::describe::OptionScope::PerCall
                ))
            }),
            Api::V02Sync {
                describe: Some(d), ..
            } => d.call_describe(&mut l.store).map(|i| {
                Some(info!(
                    i,
                    v02::sync::exports::ytdlp::proxy::describe::OptionScope::PerCall
                ))
            }),
            _ => Ok(None),
        })
        .await
    }
}

/// A guest call's future, to be run on another thread by `run_sync`.
struct AssertSend<T>(T);

// SAFETY: used only in `Backend::call`, for the future of one guest call.
// That future holds `&mut Live` (a `Store<PluginState>`, which is `Send`)
// and shared references to the call's arguments (options, a request, a
// proxy, a failure: all `Send + Sync`); the compiler cannot see through
// `AsyncFnOnce` to prove it. `run_sync` joins the thread it may use before
// returning, so nothing the future borrows outlives the call.
unsafe impl<T> Send for AssertSend<T> {}

impl<T> AssertSend<T> {
    // A method, so that a closure captures the whole wrapper (a field
    // access would capture only the field, which is not `Send`).
    fn into_inner(self) -> T {
        self.0
    }
}

/// What `get-proxy` answered, per contract version.
enum Answer {
    V01(v01::ytdlp::proxy::types::Proxy),
    V02(w2::Proxy),
}

fn v01_error(e: v01::ytdlp::proxy::types::GetProxyError) -> w2::GetProxyError {
    use v01::ytdlp::proxy::types::GetProxyError as E;
    match e {
        E::NoProxyAvailable(np) => w2::GetProxyError::NoProxyAvailable(w2::NoProxy {
            message: np.message,
            retry_at_ms: np.retry_at_ms,
        }),
        E::BackendUnavailable(m) => w2::GetProxyError::BackendUnavailable(m),
    }
}

/// A 0.1 plugin's view of a request: the user's options plus the `host.*`
/// keys (`host.site` is the URL's host name, as 0.1 defines it).
fn with_host_keys(options: &Options, req: &Request) -> Options {
    let mut o = options.clone();
    o.push((HOST_URL.to_string(), req.url.clone()));
    o.push((HOST_SITE.to_string(), req.site.host.clone()));
    o.push((HOST_ATTEMPT.to_string(), req.attempt.to_string()));
    o.push((HOST_DOWNLOAD_ID.to_string(), req.download_id.clone()));
    o
}

fn wit_request(r: &Request) -> w2::Request {
    w2::Request {
        url: r.url.clone(),
        site: w2::Site {
            host: r.site.host.clone(),
            domain: r.site.domain.clone(),
        },
        attempt: r.attempt,
        download_id: r.download_id.clone(),
        sticky_key: r.sticky_key.clone(),
        avoid: r.avoid.clone(),
        want: w2::Wanted {
            regions: r.want.regions.clone(),
            avoid_regions: r.want.avoid_regions.clone(),
            tags: r.want.tags.clone(),
            min_tier: r.want.min_tier,
            max_tier: r.want.max_tier,
        },
    }
}

fn wit_phase(p: ytdlp_contract::Phase) -> w2::Phase {
    use ytdlp_contract::Phase as P;
    match p {
        P::Preflight => w2::Phase::Preflight,
        P::Connect => w2::Phase::Connect,
        P::Request => w2::Phase::Request,
        P::Transfer => w2::Phase::Transfer,
    }
}

fn scheme_name(s: w2::Scheme) -> &'static str {
    match s {
        w2::Scheme::Http => "http",
        w2::Scheme::Https => "https",
        w2::Scheme::Socks4 => "socks4",
        w2::Scheme::Socks4a => "socks4a",
        w2::Scheme::Socks5 => "socks5",
        w2::Scheme::Socks5h => "socks5h",
    }
}

fn row_v01(r: v01::ytdlp::proxy::types::ProxyStats) -> StatsRow {
    StatsRow {
        backend: None,
        id: None,
        stats: ProxyStats::from(r),
    }
}

fn row_v02(r: w2::ProxyStats) -> StatsRow {
    let p = &r.proxy;
    let creds = p
        .credentials
        .as_ref()
        .map(|c| (c.username.as_str(), c.password.as_str()));
    let url = match ProxyUrl::from_parts(scheme_name(p.scheme), &p.host, p.port, creds) {
        Ok(u) => u.to_string(),
        Err(_) => format!("{}://{}:{}", scheme_name(p.scheme), p.host, p.port),
    };
    let state = match r.state {
        w2::ProxyState::Active => ytdlp_contract::ProxyState::Active,
        w2::ProxyState::CoolingDown(t) => ytdlp_contract::ProxyState::CoolingDown(t),
        w2::ProxyState::Disabled => ytdlp_contract::ProxyState::Disabled,
    };
    StatsRow {
        backend: None,
        id: Some(r.proxy.id.clone()),
        stats: ProxyStats {
            url,
            meta: ProxyMeta {
                region: r.proxy.meta.region.clone(),
                tags: r.proxy.meta.tags.clone(),
                tier: r.proxy.meta.tier,
            },
            successes: r.successes,
            failures: r.failures,
            consecutive_failures: r.consecutive_failures,
            state,
            last_used_ms: r.last_used_ms,
            extra: r.extra,
        },
    }
}

/// A row fit to show: the URL masked and cleaned, the id that of the URL
/// when the plugin gave none, every string cleaned.
fn clean_row(mut row: StatsRow) -> StatsRow {
    let s = &mut row.stats;
    let derived = match proxy_url::validate(&s.url) {
        Ok(u) => {
            s.url = u.to_string();
            Some(u.id())
        }
        Err(_) => {
            s.url = clean(&proxy_url::mask_url(&s.url));
            None
        }
    };
    row.id = match row.id {
        Some(id) => Some(clean_capped(&id, MAX_PROXY_ID)),
        None => derived,
    };
    if let Some(r) = &mut s.meta.region {
        *r = clean_capped(r, 16);
    }
    for t in &mut s.meta.tags {
        *t = clean_capped(t, 64);
    }
    for (k, v) in &mut s.extra {
        *k = clean(k);
        *v = clean(v);
    }
    row
}

impl Backend {
    /// `Ok(None)` when the plugin does not export `admin` (or says it
    /// cannot change its list).
    pub async fn add_proxies(
        &mut self,
        entries: &[ProxyEntry],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        let answer = match &self.plugin.exports {
            Exports::V01 { admin: None, .. }
            | Exports::V02 { admin: None, .. }
            | Exports::V02Sync { admin: None, .. } => return Ok(None),
            Exports::V01 { .. } => {
                // 0.1 plugins take URLs only: the metadata cannot travel.
                let urls: Vec<String> =
                    entries.iter().map(|e| e.url.expose().to_string()).collect();
                self.call(Call::AddProxies, async |l| match &l.api {
                    Api::V01 { admin: Some(a), .. } => a
                        .call_add_proxies(&mut l.store, &urls, options)
                        .await
                        .map(|r| r.map_err(PluginError::unavailable)),
                    _ => unreachable!("checked above"),
                })
                .await?
            }
            _ => {
                let specs: Vec<w2::ProxySpec> = entries
                    .iter()
                    .map(|e| w2::ProxySpec {
                        url: e.url.expose().to_string(),
                        region: e.meta.region.clone(),
                        tags: e.meta.tags.clone(),
                        tier: e.meta.tier,
                    })
                    .collect();
                self.call(Call::AddProxies, async |l| match &l.api {
                    Api::V02 { admin: Some(a), .. } => a
                        .call_add_proxies(&mut l.store, &specs, options)
                        .await
                        .map(|r| r.map_err(PluginError::from)),
                    Api::V02Sync { admin: Some(a), .. } => a
                        .call_add_proxies(&mut l.store, &specs, options)
                        .map(|r| r.map_err(PluginError::from)),
                    _ => unreachable!("checked above"),
                })
                .await?
            }
        };
        self.admin_answer(Call::AddProxies, answer)
    }

    /// Removes proxies by id or URL. `Ok(None)` as for [`Self::add_proxies`].
    pub async fn remove_proxies(
        &mut self,
        ids: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        let ids = ids.to_vec();
        let answer = match &self.plugin.exports {
            Exports::V01 { admin: None, .. }
            | Exports::V02 { admin: None, .. }
            | Exports::V02Sync { admin: None, .. } => return Ok(None),
            _ => {
                self.call(Call::RemoveProxies, async |l| match &l.api {
                    Api::V01 { admin: Some(a), .. } => a
                        .call_remove_proxies(&mut l.store, &ids, options)
                        .await
                        .map(|r| r.map_err(PluginError::unavailable)),
                    Api::V02 { admin: Some(a), .. } => a
                        .call_remove_proxies(&mut l.store, &ids, options)
                        .await
                        .map(|r| r.map_err(PluginError::from)),
                    Api::V02Sync { admin: Some(a), .. } => a
                        .call_remove_proxies(&mut l.store, &ids, options)
                        .map(|r| r.map_err(PluginError::from)),
                    _ => unreachable!("checked above"),
                })
                .await?
            }
        };
        self.admin_answer(Call::RemoveProxies, answer)
    }

    fn admin_answer(
        &self,
        call: Call,
        answer: Result<u32, PluginError>,
    ) -> Result<Option<u32>, BackendError> {
        match answer {
            Ok(n) => Ok(Some(n)),
            Err(PluginError::Unsupported { message }) => Err(BackendError::Unsupported {
                plugin: self.plugin.name.clone(),
                call,
                message: clean_capped(&message, 300),
            }),
            Err(e) => Err(BackendError::Unavailable {
                plugin: self.plugin.name.clone(),
                message: clean_capped(&e.to_string(), 300),
            }),
        }
    }
}

/// The message of a Rust guest's panic, from its stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let detail = lines.next().unwrap_or("").trim();
            let msg = if detail.is_empty() {
                line.trim().to_string()
            } else {
                format!("panicked: {detail} ({})", line.trim().trim_end_matches(':'))
            };
            return Some(clean_capped(&msg, 300));
        }
    }
    None
}

/// The plugin's grants checked and resolved (directories exist, host
/// names looked up) on a blocking thread: a grant that cannot work makes
/// the backend unavailable, naming it.
async fn resolve_policy(plugin: &str, config: &PluginConfig) -> Result<Policy, BackendError> {
    let (grants, host) = (config.grants.clone(), config.host.clone());
    let name = plugin.to_string();
    let resolved =
        tokio::task::spawn_blocking(move || Policy::resolve(&name, &grants, &host)).await;
    let unavailable = |message: String| BackendError::Unavailable {
        plugin: plugin.to_string(),
        message,
    };
    match resolved {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(unavailable(format!("grants: {}", one_line(&e)))),
        Err(e) => Err(unavailable(format!("grants: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_panics_are_summarised() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:12:9:\nboom in get-proxy\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).unwrap(),
            "panicked: boom in get-proxy (thread '<unnamed>' panicked at src/lib.rs:12:9)"
        );
        assert_eq!(panic_message("nothing here"), None);
    }
}
