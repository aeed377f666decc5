//! The contract (0.2) through the SDK: settings from `init`, a lazily
//! (re)connected store, per-call options applied over the init settings.
//! Plain Rust on every target (the SDK adds the WIT glue on wasm only), so
//! the tests drive it natively too.

use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, Options, PluginError, PluginInfo, Proxy, ProxyEntry,
    ProxyStats, Request, Success,
};

use crate::settings::{self, Settings};
use crate::store::Store;

pub struct PostgresBackend {
    settings: Settings,
    store: Store,
}

impl PostgresBackend {
    /// The settings in force for this call: the init ones with the call's
    /// options over them.
    fn call(&self, options: &Options) -> Result<Settings, PluginError> {
        Settings::parse(&self.settings, options)
    }
}

/// The site of a request for bans and pacing: its registrable domain.
fn site(request: &Request) -> Option<&str> {
    Some(request.site.domain.as_str()).filter(|d| !d.is_empty())
}

impl Backend for PostgresBackend {
    /// Checks the options only: PostgreSQL may be down now and come back
    /// later, so the first connection (and the schema check) is made by
    /// the first call.
    fn init(options: &Options) -> Result<Self, PluginError> {
        Ok(PostgresBackend {
            settings: Settings::parse(&Settings::default(), options)?,
            store: Store::new(),
        })
    }

    fn get_proxy(&mut self, request: &Request, options: &Options) -> Result<Proxy, GetProxyError> {
        let s = self
            .call(options)
            .map_err(|e| GetProxyError::Unavailable(e.to_string()))?;
        match self.store.get_proxy(&s, request) {
            Ok(Ok(proxy)) => Ok(proxy),
            Ok(Err(np)) => Err(np.into()),
            Err(e) => Err(GetProxyError::Unavailable(e.to_string())),
        }
    }

    // Reports cannot fail in the contract: one made while PostgreSQL is
    // down is lost.
    fn report_success(&mut self, proxy_id: &str, _: &Request, _: &Success, options: &Options) {
        if let Ok(s) = self.call(options) {
            let _ = self.store.report_success(&s, proxy_id);
        }
    }

    fn report_failure(
        &mut self,
        proxy_id: &str,
        request: &Request,
        failure: &Failure,
        options: &Options,
    ) {
        if let Ok(s) = self.call(options) {
            let _ = self.store.report_failure(
                &s,
                proxy_id,
                failure.kind,
                site(request),
                &failure.detail,
            );
        }
    }

    fn stats(&mut self, options: &Options) -> Result<Vec<ProxyStats>, PluginError> {
        let s = self.call(options)?;
        self.store
            .stats(&s)
            .map_err(|e| PluginError::unavailable(e.to_string()))
    }

    fn add_proxies(
        &mut self,
        proxies: Vec<ProxyEntry>,
        options: &Options,
    ) -> Result<u32, PluginError> {
        let s = self.call(options)?;
        self.store
            .add(&s, &proxies)
            .map_err(|e| PluginError::unavailable(e.to_string()))
    }

    fn remove_proxies(&mut self, ids: Vec<String>, options: &Options) -> Result<u32, PluginError> {
        let s = self.call(options)?;
        self.store
            .remove(&s, &ids)
            .map_err(|e| PluginError::unavailable(e.to_string()))
    }

    fn describe() -> PluginInfo {
        settings::describe()
    }
}

ytdlp_plugin_sdk::export_backend!(PostgresBackend);
