//! Where the downloader gets its proxies: the [`ProxySource`] interface, and
//! its implementation over a plugin ([`PluginSource`]). Tests drive the
//! downloader with scripted sources instead.

use std::sync::Arc;

use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::{Failure, Options, Request, Success};
use ytdlp_host_plugin_host::{
    Backend, BackendError, BackendHandle, Contract, PluginInfo, ProxyChoice, StatsRow,
};
use ytdlp_host_ytdlp::BoxFuture;

/// Hands out proxies and takes reports on them (the contract's calls, as
/// the downloader needs them). Shared by concurrent downloads.
pub trait ProxySource: Send + Sync {
    /// The plugin's name, for messages.
    fn name(&self) -> &str;

    fn get_proxy<'a>(
        &'a self,
        req: &'a Request,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<ProxyChoice>, BackendError>>;

    fn report_success<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        outcome: &'a Success,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    fn report_failure<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        failure: &'a Failure,
        elapsed_ms: u32,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// `Ok(None)` when the source keeps no statistics.
    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>>;

    /// Adds proxies (a reloaded proxies file); `Ok(None)`: the source's
    /// list cannot change.
    fn add_proxies<'a>(
        &'a self,
        _entries: &'a [ProxyEntry],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(async { Ok(None) })
    }

    /// Removes proxies by id or URL; `Ok(None)` as for `add_proxies`.
    fn remove_proxies<'a>(
        &'a self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A plugin instance as a proxy source: its calls go to the instance's own
/// task ([`BackendHandle`]), so a cancelled download never cuts a guest
/// call short.
pub struct PluginSource {
    backend: BackendHandle,
}

impl PluginSource {
    /// Moves `backend` into its task. Must be called in a tokio runtime.
    pub fn new(backend: Backend) -> PluginSource {
        PluginSource {
            backend: BackendHandle::spawn(backend),
        }
    }

    /// The contract version the plugin was built for.
    pub fn contract(&self) -> Contract {
        self.backend.contract()
    }

    pub async fn describe(&self) -> Result<Option<PluginInfo>, BackendError> {
        self.backend.describe().await
    }

    pub fn handle(&self) -> &BackendHandle {
        &self.backend
    }
}

impl ProxySource for PluginSource {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn get_proxy<'a>(
        &'a self,
        req: &'a Request,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<ProxyChoice>, BackendError>> {
        Box::pin(self.backend.get_proxy(req, options))
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        outcome: &'a Success,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.backend.report_success(proxy, req, outcome, options))
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        failure: &'a Failure,
        elapsed_ms: u32,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(
            self.backend
                .report_failure(proxy, req, failure, elapsed_ms, options),
        )
    }

    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>> {
        Box::pin(self.backend.get_stats(options))
    }

    fn add_proxies<'a>(
        &'a self,
        entries: &'a [ProxyEntry],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(self.backend.add_proxies(entries, &[]))
    }

    fn remove_proxies<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        Box::pin(self.backend.remove_proxies(ids, &[]))
    }
}
