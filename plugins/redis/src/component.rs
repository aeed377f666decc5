//! The contract glue, through the SDK: settings from `init`, a lazily
//! (re)connected store, and per-call options applied over the init
//! settings.

use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, Options, PluginError, PluginInfo, Proxy, ProxyEntry,
    ProxyStats, Request, Success,
};

use crate::settings::{self, Settings};
use crate::store::{FailureInfo, Store};

struct RedisBackend {
    settings: Settings,
    store: Store,
}

impl RedisBackend {
    /// Runs `f` with the settings in force for this call and the store; a
    /// bad per-call option or a Redis that cannot be used is `unavailable`.
    fn with_call<R>(
        &mut self,
        options: &Options,
        f: impl FnOnce(&Settings, &mut Store) -> Result<R, String>,
    ) -> Result<R, PluginError> {
        let settings = Settings::parse(&self.settings, options)?;
        f(&settings, &mut self.store).map_err(PluginError::unavailable)
    }
}

impl Backend for RedisBackend {
    /// Checks the options only: Redis may be down now and come back later,
    /// so the first connection is made by the first call.
    fn init(options: &Options) -> Result<Self, PluginError> {
        Ok(RedisBackend {
            settings: Settings::parse(&Settings::default(), options)?,
            store: Store::new(),
        })
    }

    fn get_proxy(&mut self, request: &Request, options: &Options) -> Result<Proxy, GetProxyError> {
        let settings = Settings::parse(&self.settings, options)
            .map_err(|e| GetProxyError::Unavailable(e.to_string()))?;
        match self.store.get_proxy(&settings, request) {
            Ok(Ok(proxy)) => Ok(proxy),
            Ok(Err(np)) => Err(np.into()),
            Err(message) => Err(GetProxyError::Unavailable(message)),
        }
    }

    // Reports cannot fail in the contract: a report lost while Redis is
    // down is lost (the host logs nothing for it either).
    fn report_success(
        &mut self,
        proxy_id: &str,
        request: &Request,
        _: &Success,
        options: &Options,
    ) {
        let domain = request.site.domain.as_str();
        let _ = self.with_call(options, |s, store| {
            store.report_success_for(s, proxy_id, domain)
        });
    }

    fn report_failure(
        &mut self,
        proxy_id: &str,
        request: &Request,
        f: &Failure,
        options: &Options,
    ) {
        let domain = request.site.domain.as_str();
        // The URL tells one refused video from a site refusing the proxy;
        // the Retry-After bans at once, for at least that long; a 429
        // halves the pair's budget there.
        let info = FailureInfo {
            url: &request.url,
            retry_after_ms: f.detail.retry_after_ms,
            http_status: f.detail.http_status,
        };
        let _ = self.with_call(options, |s, store| {
            store.report_failure_with(s, proxy_id, f.kind, domain, &info)
        });
    }

    fn stats(&mut self, options: &Options) -> Result<Vec<ProxyStats>, PluginError> {
        self.with_call(options, |s, store| store.stats(s))
    }

    fn add_proxies(
        &mut self,
        proxies: Vec<ProxyEntry>,
        options: &Options,
    ) -> Result<u32, PluginError> {
        self.with_call(options, |s, store| store.add(s, &proxies))
    }

    fn remove_proxies(&mut self, ids: Vec<String>, options: &Options) -> Result<u32, PluginError> {
        self.with_call(options, |s, store| store.remove(s, &ids))
    }

    fn describe() -> PluginInfo {
        settings::describe()
    }
}

ytdlp_plugin_sdk::export_backend!(RedisBackend);
