//! The contract glue, through the SDK: one engine per instance, configured
//! by `init`, saved to the host-granted state directory after every change.

use ytdlp_plugin_sdk::contract::now_ms;
use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, Options, PluginError, PluginInfo, Proxy, ProxyEntry,
    ProxyStats, Request, Success,
};

use crate::engine::{Engine, FailureInfo, Init};
use crate::state::{self, Store};

struct Memory {
    engine: Engine,
    store: Option<Store>,
    /// Warn about a failing state directory once, not on every call.
    store_warned: bool,
}

impl Memory {
    /// Runs `f` on the engine, then saves what changed.
    fn with<R>(&mut self, f: impl FnOnce(&mut Engine, u64) -> R) -> R {
        let now = now_ms();
        let r = f(&mut self.engine, now);
        if let Some(store) = &mut self.store
            && let Err(e) = store.save_changes(&mut self.engine, now)
            && !self.store_warned
        {
            eprintln!("cannot save proxy health: {e}");
            self.store_warned = true;
        }
        r
    }
}

impl Backend for Memory {
    fn init(options: &Options) -> Result<Self, PluginError> {
        let init = Init::parse(options)?;
        let now = now_ms();
        let mut engine = Engine::new(init.settings, init.seed);
        let store = match &init.state_dir {
            Some(dir) => {
                engine.track_changes(true);
                let mut store = Store::new(dir);
                let (saved, warnings) = store.load();
                for w in warnings {
                    eprintln!("{w}");
                }
                let fresh = saved.entries.is_empty();
                let migrated = saved.migrated;
                state::apply(&mut engine, saved, &init.proxies, now);
                if init.read_only {
                    // A query: what it hands out or reads changes nothing.
                    engine.track_changes(false);
                    return Ok(Memory {
                        engine,
                        store: None,
                        store_warned: false,
                    });
                }
                // Compact at start only when the journal has grown or the
                // state was a 0.1 one; a new state (or a changed list) is
                // written by the first save.
                let result = if fresh || migrated || store.journal_lines() > 1024 {
                    store.snapshot(&mut engine, now)
                } else {
                    store.save_changes(&mut engine, now)
                };
                if let Err(e) = result {
                    eprintln!("cannot save proxy health in {dir}: {e}");
                }
                Some(store)
            }
            None => {
                for (entry, w) in &init.proxies {
                    engine.add(entry, *w, false);
                }
                None
            }
        };
        Ok(Memory {
            engine,
            store,
            store_warned: false,
        })
    }

    fn get_proxy(&mut self, request: &Request, _options: &Options) -> Result<Proxy, GetProxyError> {
        self.with(|e, now| e.next_for(now, request))
            .map_err(Into::into)
    }

    fn report_success(&mut self, proxy_id: &str, request: &Request, _: &Success, _: &Options) {
        let site = request.site.domain.as_str();
        self.with(|e, now| e.success_for(proxy_id, site, now));
    }

    fn report_failure(&mut self, proxy_id: &str, request: &Request, f: &Failure, _: &Options) {
        let site = request.site.domain.as_str();
        // The URL tells one refused video from a site refusing the proxy;
        // the status and Retry-After say how hard to back off.
        let info = FailureInfo {
            url: &request.url,
            http_status: f.detail.http_status,
            retry_after_ms: f.detail.retry_after_ms,
            certain: f.detail.phase == Some(ytdlp_plugin_sdk::Phase::Preflight),
        };
        self.with(|e, now| e.failure_with(proxy_id, f.kind, site, &info, now));
    }

    fn stats(&mut self, _options: &Options) -> Result<Vec<ProxyStats>, PluginError> {
        Ok(self.with(|e, now| e.stats(now)))
    }

    fn add_proxies(&mut self, proxies: Vec<ProxyEntry>, _: &Options) -> Result<u32, PluginError> {
        Ok(self.with(|e, _| proxies.iter().filter(|p| e.add(p, 1, true)).count() as u32))
    }

    fn remove_proxies(&mut self, ids: Vec<String>, _: &Options) -> Result<u32, PluginError> {
        Ok(self.with(|e, _| ids.iter().filter(|id| e.remove(id)).count() as u32))
    }

    fn describe() -> PluginInfo {
        crate::describe()
    }
}

ytdlp_plugin_sdk::export_backend!(Memory);
