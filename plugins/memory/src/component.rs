//! The contract glue, through the SDK: one engine per instance, configured
//! by `init`, saved to the host-granted state directory after every change.

use ytdlp_plugin_sdk::contract::now_ms;
use ytdlp_plugin_sdk::contract::options::HOST_SITE;
use ytdlp_plugin_sdk::{Backend, Failure, GetProxyError, Options, Proxy, ProxyStats, opt};

use crate::engine::{Engine, Init};
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
    fn init(options: &Options) -> Result<Self, String> {
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
                let had_state = !saved.entries.is_empty();
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
                // Compact at start only when the journal has grown; a new
                // state (or a changed list) is written by the first save.
                let result = if !had_state || store.journal_lines() > 1024 {
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
                for (url, w) in &init.proxies {
                    engine.add(url, *w, false);
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

    fn get_proxy(&mut self, options: &Options) -> Result<Proxy, GetProxyError> {
        let site = opt(options, HOST_SITE).unwrap_or("");
        let sticky = opt(options, "sticky_key");
        match self.with(|e, now| e.next_for(now, site, sticky)) {
            Ok(pick) => Ok(Proxy {
                url: pick.url,
                timeout_ms: pick.timeout_ms,
            }),
            Err(np) => Err(np.into()),
        }
    }

    fn report_success(&mut self, proxy_url: &str, _options: &Options) {
        self.with(|e, now| e.success(proxy_url, now));
    }

    fn report_failure(&mut self, proxy_url: &str, failure: &Failure, options: &Options) {
        let kind = failure.kind;
        let site = opt(options, HOST_SITE).unwrap_or("");
        self.with(|e, now| e.failure(proxy_url, kind, site, now));
    }

    fn stats(&mut self, _options: &Options) -> Result<Vec<ProxyStats>, String> {
        Ok(self.with(|e, now| e.stats(now)))
    }

    fn add_proxies(&mut self, urls: Vec<String>, _options: &Options) -> Result<u32, String> {
        Ok(self.with(|e, _| urls.iter().filter(|u| e.add(u, 1, true)).count() as u32))
    }

    fn remove_proxies(&mut self, urls: Vec<String>, _options: &Options) -> Result<u32, String> {
        Ok(self.with(|e, _| urls.iter().filter(|u| e.remove(u)).count() as u32))
    }
}

ytdlp_plugin_sdk::export_backend!(Memory);
