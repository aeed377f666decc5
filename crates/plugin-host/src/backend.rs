//! Calls into a backend plugin: instantiation and `init`, `get-proxy`,
//! `report-*`, `get-stats`, each under its deadline and limits, with every
//! misbehaviour turned into a typed one-line error that names the plugin.
//!
//! Calls are async: epoch interruption stops a plugin that computes past
//! its deadline, and a timer around the call stops one that waits past it in
//! a host call (a sleep, a socket read), which epochs alone cannot.
//!
//! A trap or a timeout leaves the instance and its Store unusable, so the
//! next call instantiates anew from the pre-instantiated component, after a
//! backoff that grows while the plugin keeps dying.

use std::fmt;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};
use ytdlp_contract::ProxyUrl;
use ytdlp_contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_contract::text::one_line;
use ytdlp_contract::{FailureKind, Options, ProxyStats, now_ms, proxy_url};
use ytdlp_host_config::PluginConfig;
use ytdlp_host_text::{clean, clean_capped};

use crate::bindings::exports::ytdlp::proxy::{admin, backend, stats};
use crate::bindings::ytdlp::proxy::types as wit;
use crate::loading::Plugin;
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
            BackendError::NoProxy { .. } | BackendError::Unavailable { .. }
        )
    }
}

/// A proxy handed out by a backend, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyChoice {
    pub url: ProxyUrl,
    pub timeout_ms: u32,
}

/// One row of `get-stats` as the host shows it: the plugin's statistics
/// (credentials hidden, text cleaned) and, when the row names a valid
/// proxy URL, that proxy's id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StatsRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub stats: ProxyStats,
}

/// A failure as reported to a backend.
#[derive(Debug, Clone)]
pub struct FailureReport {
    pub kind: FailureKind,
    pub message: String,
}

struct Live {
    store: Store<PluginState>,
    backend: backend::Guest,
    stats: Option<stats::Guest>,
    admin: Option<admin::Guest>,
}

/// One running plugin instance. Not shared between threads: wrap it in a
/// mutex (calls into one instance are never concurrent).
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
}

/// Longest wait before re-instantiating a plugin that keeps crashing.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);

impl Backend {
    /// Instantiates the plugin and runs `init` with `init_options`.
    pub async fn start(
        plugin: Plugin,
        config: PluginConfig,
        init_options: Options,
    ) -> Result<Backend, BackendError> {
        let policy = resolve_policy(&plugin.name, &config).await?;
        let mut b = Backend {
            plugin,
            config,
            policy,
            init_options,
            live: None,
            crashes: 0,
            crashes_in_a_row: 0,
            retry_at: None,
        };
        b.ensure_live().await?;
        Ok(b)
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
        let mut b = Backend {
            plugin: plugin.clone(),
            config: config.clone(),
            policy,
            init_options: Options::new(),
            live: None,
            crashes: 0,
            crashes_in_a_row: 0,
            retry_at: None,
        };
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
        let instance =
            match tokio::time::timeout(deadline, self.plugin.pre.instantiate_async(&mut store))
                .await
            {
                Ok(r) => r.map_err(|e| self.map_trap(&store, Call::Init, e))?,
                Err(_) => return Err(self.timeout(Call::Init)),
            };
        let backend = self
            .plugin
            .backend_indices
            .load(&mut store, &instance)
            .map_err(|e| self.err_contract(Call::Init, one_line(&e)))?;
        let stats = match &self.plugin.stats_indices {
            Some(idx) => Some(
                idx.load(&mut store, &instance)
                    .map_err(|e| self.err_contract(Call::Init, one_line(&e)))?,
            ),
            None => None,
        };
        let admin = match &self.plugin.admin_indices {
            Some(idx) => Some(
                idx.load(&mut store, &instance)
                    .map_err(|e| self.err_contract(Call::Init, one_line(&e)))?,
            ),
            None => None,
        };
        let result = if run_init {
            let remaining = deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, backend.call_init(&mut store, &self.init_options))
                .await
            {
                Ok(r) => r.map_err(|e| self.map_trap(&store, Call::Init, e))?,
                Err(_) => return Err(self.timeout(Call::Init)),
            }
        } else {
            Ok(())
        };
        tracing::debug!(plugin = %self.plugin.name, elapsed = ?started.elapsed(), "plugin instantiated");
        if let Err(message) = result {
            return Err(BackendError::InitRefused {
                plugin: self.plugin.name.clone(),
                message: clean_capped(&message, 500),
            });
        }
        Ok(Live {
            store,
            backend,
            stats,
            admin,
        })
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
    /// instance.
    async fn call<R>(
        &mut self,
        call: Call,
        f: impl AsyncFnOnce(&mut Live) -> wasmtime::Result<R>,
    ) -> Result<R, BackendError> {
        let ms = self.config.limits.call_timeout_ms;
        let live = self.ensure_live().await?;
        live.store.set_epoch_deadline(deadline_ticks(ms));
        let outcome = tokio::time::timeout(wall_deadline(ms), f(live)).await;
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

    /// Asks for a proxy. The returned URL is validated: anything that is not
    /// a proxy URL is a contract violation and never reaches yt-dlp.
    pub async fn get_proxy(&mut self, options: &Options) -> Result<ProxyChoice, BackendError> {
        let answer = self
            .call(Call::GetProxy, async |l| {
                l.backend.call_get_proxy(&mut l.store, options).await
            })
            .await?;
        let max = self.config.limits.max_return_bytes as usize;
        let plugin = self.plugin.name.clone();
        match answer {
            Ok(proxy) => {
                if proxy.url.len() > max {
                    return Err(self.err_contract(
                        Call::GetProxy,
                        format!("returned {} bytes (limit {max})", proxy.url.len()),
                    ));
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
                if proxy.timeout_ms == 0 || proxy.timeout_ms > MAX_PROXY_TIMEOUT_MS {
                    return Err(self.err_contract(
                        Call::GetProxy,
                        format!(
                            "timeout-ms {} is outside 1..={MAX_PROXY_TIMEOUT_MS}",
                            proxy.timeout_ms
                        ),
                    ));
                }
                Ok(ProxyChoice {
                    url,
                    timeout_ms: proxy.timeout_ms,
                })
            }
            Err(wit::GetProxyError::NoProxyAvailable(np)) => {
                if np.message.len() > max {
                    return Err(self.err_contract(
                        Call::GetProxy,
                        format!("returned {} bytes (limit {max})", np.message.len()),
                    ));
                }
                Err(BackendError::NoProxy {
                    plugin,
                    message: clean_capped(&np.message, 300),
                    retry_at_ms: np.retry_at_ms,
                })
            }
            Err(wit::GetProxyError::BackendUnavailable(message)) => {
                if message.len() > max {
                    return Err(self.err_contract(
                        Call::GetProxy,
                        format!("returned {} bytes (limit {max})", message.len()),
                    ));
                }
                Err(BackendError::Unavailable {
                    plugin,
                    message: clean_capped(&message, 300),
                })
            }
        }
    }

    pub async fn report_success(
        &mut self,
        proxy: &ProxyUrl,
        options: &Options,
    ) -> Result<(), BackendError> {
        self.call(Call::ReportSuccess, async |l| {
            l.backend
                .call_report_success(&mut l.store, proxy.expose(), options)
                .await
        })
        .await
    }

    pub async fn report_failure(
        &mut self,
        proxy: &ProxyUrl,
        failure: &FailureReport,
        options: &Options,
    ) -> Result<(), BackendError> {
        let f = wit::Failure {
            kind: failure.kind.into(),
            message: clean_capped(&failure.message, 1000),
        };
        self.call(Call::ReportFailure, async |l| {
            l.backend
                .call_report_failure(&mut l.store, proxy.expose(), &f, options)
                .await
        })
        .await
    }

    /// `Ok(None)` when the plugin does not export `stats`.
    pub async fn get_stats(
        &mut self,
        options: &Options,
    ) -> Result<Option<Vec<StatsRow>>, BackendError> {
        if !self.plugin.has_stats {
            return Ok(None);
        }
        let answer = self
            .call(Call::GetStats, async |l| match &l.stats {
                Some(s) => s.call_get_stats(&mut l.store, options).await,
                None => Ok(Ok(Vec::new())),
            })
            .await?;
        let rows = answer.map_err(|message| BackendError::Unavailable {
            plugin: self.plugin.name.clone(),
            message: clean_capped(&message, 300),
        })?;
        let size: usize = rows
            .iter()
            .map(|r| {
                64 + r.url.len()
                    + r.extra
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
        Ok(Some(
            rows.into_iter()
                .map(|r| {
                    let mut row = ProxyStats::from(r);
                    // A row's id is that of the URL it names, when it is one.
                    let id = match proxy_url::validate(&row.url) {
                        Ok(u) => {
                            row.url = u.to_string();
                            Some(u.id())
                        }
                        Err(_) => {
                            row.url = clean(&proxy_url::mask_url(&row.url));
                            None
                        }
                    };
                    for (k, v) in &mut row.extra {
                        *k = clean(k);
                        *v = clean(v);
                    }
                    StatsRow { id, stats: row }
                })
                .collect(),
        ))
    }
}

impl Backend {
    /// `Ok(None)` when the plugin does not export `admin`.
    pub async fn add_proxies(
        &mut self,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        self.admin_call(Call::AddProxies, urls, options).await
    }

    /// `Ok(None)` when the plugin does not export `admin`.
    pub async fn remove_proxies(
        &mut self,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        self.admin_call(Call::RemoveProxies, urls, options).await
    }

    async fn admin_call(
        &mut self,
        call: Call,
        urls: &[String],
        options: &Options,
    ) -> Result<Option<u32>, BackendError> {
        if self.plugin.admin_indices.is_none() {
            return Ok(None);
        }
        let urls = urls.to_vec();
        let answer = self
            .call(call, async |l| match &l.admin {
                Some(a) if call == Call::AddProxies => {
                    a.call_add_proxies(&mut l.store, &urls, options).await
                }
                Some(a) => a.call_remove_proxies(&mut l.store, &urls, options).await,
                None => Ok(Ok(0)),
            })
            .await?;
        answer
            .map(Some)
            .map_err(|message| BackendError::Unavailable {
                plugin: self.plugin.name.clone(),
                message: clean_capped(&message, 300),
            })
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
    let resolved = tokio::task::spawn_blocking(move || Policy::resolve(&grants, &host)).await;
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
