//! Where the downloader gets its proxies: the [`ProxySource`] interface, and
//! its implementation over a plugin ([`PluginSource`]). Tests drive the
//! downloader with scripted sources instead.

use ytdlp_contract::{Options, ProxyStats, ProxyUrl};
use ytdlp_host_plugin_host::{Backend, BackendError, FailureReport, ProxyChoice};
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
    ) -> BoxFuture<'a, Result<Option<Vec<ProxyStats>>, BackendError>>;
}

/// A plugin instance as a proxy source. Calls into one instance are never
/// concurrent (the contract says so), so they are serialised here.
pub struct PluginSource {
    name: String,
    backend: tokio::sync::Mutex<Backend>,
}

impl PluginSource {
    pub fn new(backend: Backend) -> PluginSource {
        PluginSource {
            name: backend.name().to_string(),
            backend: tokio::sync::Mutex::new(backend),
        }
    }
}

impl ProxySource for PluginSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn get_proxy<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<ProxyChoice, BackendError>> {
        Box::pin(async move { self.backend.lock().await.get_proxy(options).await })
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.backend
                .lock()
                .await
                .report_success(proxy, options)
                .await
        })
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        failure: &'a FailureReport,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.backend
                .lock()
                .await
                .report_failure(proxy, failure, options)
                .await
        })
    }

    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<ProxyStats>>, BackendError>> {
        Box::pin(async move { self.backend.lock().await.get_stats(options).await })
    }
}
