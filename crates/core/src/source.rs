//! Where the downloader gets its proxies: the [`ProxySource`] interface, and
//! its implementation over a plugin ([`PluginSource`]). Tests drive the
//! downloader with scripted sources instead.

use ytdlp_contract::{Options, ProxyUrl};
use ytdlp_host_plugin_host::{
    Backend, BackendError, BackendHandle, FailureReport, ProxyChoice, StatsRow,
};
use ytdlp_host_ytdlp::BoxFuture;

/// Hands out proxies and takes reports on them (the contract's calls, as
/// the downloader needs them). Shared by concurrent downloads.
pub trait ProxySource: Send + Sync {
    /// The plugin's name, for messages.
    fn name(&self) -> &str;

    fn get_proxy<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<ProxyChoice, BackendError>>;

    fn report_success<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    fn report_failure<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        failure: &'a FailureReport,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// `Ok(None)` when the source keeps no statistics.
    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>>;
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
}

impl ProxySource for PluginSource {
    fn name(&self) -> &str {
        self.backend.name()
    }

    fn get_proxy<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<ProxyChoice, BackendError>> {
        Box::pin(self.backend.get_proxy(options))
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.backend.report_success(proxy, options))
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        failure: &'a FailureReport,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(self.backend.report_failure(proxy, failure, options))
    }

    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>> {
        Box::pin(self.backend.get_stats(options))
    }
}
