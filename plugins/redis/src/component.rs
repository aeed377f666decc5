//! The contract glue, through the SDK: settings from `init`, a lazily
//! (re)connected store, and per-call options applied over the init
//! settings.

use ytdlp_plugin_sdk::{Backend, Failure, GetProxyError, Options, Proxy, ProxyStats};

use crate::settings::{Settings, check_proxy_url};
use crate::store::Store;

struct RedisBackend {
    settings: Settings,
    store: Store,
}

impl RedisBackend {
    /// Runs `f` with the settings in force for this call and the store.
    fn with_call<R>(
        &mut self,
        options: &Options,
        f: impl FnOnce(&Settings, &mut Store) -> Result<R, String>,
    ) -> Result<R, String> {
        let settings = Settings::parse(&self.settings, options)?;
        f(&settings, &mut self.store)
    }
}

impl Backend for RedisBackend {
    /// Checks the options only: Redis may be down now and come back later,
    /// so the first connection is made by the first call.
    fn init(options: &Options) -> Result<Self, String> {
        Ok(RedisBackend {
            settings: Settings::parse(&Settings::default(), options)?,
            store: Store::new(),
        })
    }

    fn get_proxy(&mut self, options: &Options) -> Result<Proxy, GetProxyError> {
        let mut timeout_ms = 0;
        let answer = self.with_call(options, |s, store| {
            timeout_ms = s.timeout_ms;
            store.get_proxy(s)
        });
        match answer {
            Ok(Ok(pick)) => Ok(Proxy {
                url: pick.url,
                timeout_ms,
            }),
            Ok(Err(np)) => Err(np.into()),
            Err(message) => Err(GetProxyError::Unavailable(message)),
        }
    }

    // Reports cannot fail in the contract: a report lost while Redis is
    // down is lost (the host logs nothing for it either).
    fn report_success(&mut self, proxy_url: &str, options: &Options) {
        let _ = self.with_call(options, |s, store| store.report_success(s, proxy_url));
    }

    fn report_failure(&mut self, proxy_url: &str, failure: &Failure, options: &Options) {
        let _ = self.with_call(options, |s, store| {
            store.report_failure(s, proxy_url, failure.kind)
        });
    }

    fn stats(&mut self, options: &Options) -> Result<Vec<ProxyStats>, String> {
        self.with_call(options, |s, store| store.stats(s))
    }

    fn add_proxies(&mut self, urls: Vec<String>, options: &Options) -> Result<u32, String> {
        for url in &urls {
            check_proxy_url(url)?;
        }
        self.with_call(options, |s, store| store.add(s, &urls))
    }

    fn remove_proxies(&mut self, urls: Vec<String>, options: &Options) -> Result<u32, String> {
        self.with_call(options, |s, store| store.remove(s, &urls))
    }
}

ytdlp_plugin_sdk::export_backend!(RedisBackend);
