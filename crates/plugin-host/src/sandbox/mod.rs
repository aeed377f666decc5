//! The sandbox every plugin runs in: the WASI linker with denying defaults,
//! the per-plugin grants ([`policy`]: directories, TCP, HTTP, environment)
//! and the per-plugin limits ([`limits`]: memory, call deadlines).
//!
//! Default deny: no preopened directories, no sockets, no name lookup, no
//! outbound HTTP, no environment variables, no arguments, stdin closed.
//! Clocks and randomness are allowed. Every WASI interface the common guest
//! toolchains import is still linked, so plugins instantiate and get a
//! clean "denied" error inside instead of a link failure.

pub mod http;
pub mod keyvalue;
pub mod limits;
pub mod log;
pub mod lookup;
pub mod policy;
pub mod tcp;

use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::Engine;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use ytdlp_host_config::LimitsConfig;

pub use limits::{EPOCH_TICK, deadline_ticks};
pub use log::GuestLog;
pub use policy::Policy;

use crate::bindings;

/// The linker for plugins that may block in a host call: WASI 0.2
/// (filesystem, sockets, clocks, random, cli, io) and wasi:http, async, all
/// gated by the store's grants. Calls through it run under a wall-clock
/// timer as well as epoch deadlines.
pub fn linker(engine: &Engine) -> Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link WASI into the plugin linker")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link wasi:http into the plugin linker")?;
    // Name lookups only of the names a plugin's TCP grants name: WASI's
    // own, wrapped (see `lookup.rs`).
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<
        PluginState,
        lookup::FilteredLookup,
    >(&mut linker, PluginState::lookup_view)
    .map_err(anyhow::Error::from)
    .context("cannot link the filtered name lookup into the plugin linker")?;
    linker.allow_shadowing(false);
    add_contract_types(&mut linker)?;
    keyvalue::add_to_linker(&mut linker).context("cannot link the key-value store")?;
    Ok(linker)
}

/// The linker for plugins that cannot block (they import no sockets, no
/// HTTP, nothing to wait on: see `loading::may_block`): WASI 0.2 with sync
/// host functions, so calls are plain function calls bounded by epoch
/// deadlines alone. This is the fast path (BENCHMARKS.md, "call path").
pub fn sync_linker(engine: &Engine) -> Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(anyhow::Error::from)
        .context("cannot link WASI into the sync plugin linker")?;
    add_contract_types(&mut linker)?;
    keyvalue::add_to_linker(&mut linker).context("cannot link the key-value store")?;
    Ok(linker)
}

/// The contract's types interfaces hold only types, but some toolchains
/// import them as instances all the same.
fn add_contract_types(linker: &mut Linker<PluginState>) -> Result<()> {
    use wasmtime::component::HasSelf;
    bindings::v01::ytdlp::proxy::types::add_to_linker::<PluginState, HasSelf<PluginState>>(
        linker,
        |s| s,
    )
    .map_err(anyhow::Error::from)
    .context("cannot link ytdlp:proxy/types@0.1.0 into the plugin linker")?;
    bindings::v02::ytdlp::proxy::types::add_to_linker::<PluginState, HasSelf<PluginState>>(
        linker,
        |s| s,
    )
    .map_err(anyhow::Error::from)
    .context("cannot link ytdlp:proxy/types@0.2.0 into the plugin linker")?;
    Ok(())
}

/// The data of one plugin's Store.
pub struct PluginState {
    pub(crate) wasi: WasiCtx,
    http: WasiHttpCtx,
    http_hooks: http::HttpPolicy,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: limits::PluginLimiter,
    pub(crate) stderr: GuestLog,
    /// Host names the plugin may look up (those its TCP grants name).
    lookup_names: Vec<String>,
    /// The key-value buckets granted (`None`: none).
    kv: Option<keyvalue::KvGrant>,
}

impl bindings::v01::ytdlp::proxy::types::Host for PluginState {}
impl bindings::v02::ytdlp::proxy::types::Host for PluginState {}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl PluginState {
    /// A fresh state granting exactly `policy`, limited by `limits`.
    pub fn new(plugin: &str, policy: &Policy, limits: &LimitsConfig) -> Result<PluginState> {
        let stderr = GuestLog::new(plugin);
        let mut b = WasiCtxBuilder::new();
        b.stderr(stderr.clone());
        for name in &policy.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        for dir in &policy.dirs {
            let perms = if dir.rw {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            b.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open granted directory {}", dir.host.display()))?;
        }
        if !policy.tcp.is_empty() {
            b.allow_tcp(true);
            b.allow_ip_name_lookup(policy.tcp.needs_name_lookup);
            let tcp = Arc::new(policy.tcp.clone());
            b.socket_addr_check(move |addr, usage| {
                let ok = tcp.allows(addr, usage);
                Box::pin(async move { ok })
            });
        } else {
            b.allow_tcp(false);
        }
        b.allow_udp(false);
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits::MAX_WASI_RESOURCES);
        Ok(PluginState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            http_hooks: policy.http.clone(),
            table,
            limiter: limits::PluginLimiter::new(limits),
            stderr,
            lookup_names: policy.tcp.names.clone(),
            kv: policy.keyvalue.clone(),
        })
    }
}
