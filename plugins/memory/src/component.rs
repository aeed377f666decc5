//! The WIT glue: one engine per instance, configured by `init`, saved to
//! the host-granted state directory after every change.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{Engine, Init, Kind, NoProxy, ProxyState};
use crate::state::{self, Store};

wit_bindgen::generate!({
    path: "../../wit",
    world: "proxy-backend-full",
});

use exports::ytdlp::proxy::admin::Guest as Admin;
use exports::ytdlp::proxy::backend::Guest as Backend;
use exports::ytdlp::proxy::stats::Guest as Stats;
use ytdlp::proxy::types::{
    Failure, FailureKind, GetProxyError, NoProxy as WitNoProxy, Options, Proxy,
    ProxyState as WitState, ProxyStats,
};

struct Plugin {
    engine: Engine,
    store: Option<Store>,
    /// Warn about a failing state directory once, not on every call.
    store_warned: bool,
}

thread_local! {
    static PLUGIN: RefCell<Option<Plugin>> = const { RefCell::new(None) };
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn opt<'a>(options: &'a Options, key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Runs `f` on the engine, then saves what changed.
fn with_plugin<R>(f: impl FnOnce(&mut Engine, u64) -> R) -> Option<R> {
    PLUGIN.with(|p| {
        let mut guard = p.borrow_mut();
        let plugin = guard.as_mut()?;
        let now = now_ms();
        let r = f(&mut plugin.engine, now);
        if let Some(store) = &mut plugin.store {
            if let Err(e) = store.save_changes(&mut plugin.engine, now) {
                if !plugin.store_warned {
                    eprintln!("cannot save proxy health: {e}");
                    plugin.store_warned = true;
                }
            }
        }
        Some(r)
    })
}

struct Memory;

impl Backend for Memory {
    fn init(options: Options) -> Result<(), String> {
        let init = Init::parse(&options)?;
        let now = now_ms();
        let mut engine = Engine::new(init.settings, init.seed);
        let store = match &init.state_dir {
            Some(dir) => {
                let mut store = Store::new(dir);
                let (saved, warnings) = store.load();
                for w in warnings {
                    eprintln!("{w}");
                }
                state::apply(&mut engine, saved, &init.proxies, now);
                if let Err(e) = store.snapshot(&mut engine, now) {
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
        PLUGIN.with(|p| {
            *p.borrow_mut() = Some(Plugin {
                engine,
                store,
                store_warned: false,
            })
        });
        Ok(())
    }

    fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
        let site = opt(&options, "host.site").unwrap_or("").to_string();
        let sticky = opt(&options, "sticky_key").map(str::to_string);
        match with_plugin(|e, now| e.next_for(now, &site, sticky.as_deref())) {
            Some(Ok(pick)) => Ok(Proxy {
                url: pick.url,
                timeout_ms: pick.timeout_ms,
            }),
            Some(Err(NoProxy {
                message,
                retry_at_ms,
            })) => Err(GetProxyError::NoProxyAvailable(WitNoProxy {
                message,
                retry_at_ms,
            })),
            None => Err(GetProxyError::BackendUnavailable(
                "not initialised".to_string(),
            )),
        }
    }

    fn report_success(proxy_url: String, _options: Options) {
        with_plugin(|e, now| e.success(&proxy_url, now));
    }

    fn report_failure(proxy_url: String, failure: Failure, options: Options) {
        let kind = match failure.kind {
            FailureKind::ProxyConnect => Kind::ProxyConnect,
            FailureKind::ProxyTimeout => Kind::ProxyTimeout,
            FailureKind::ProxyAuth => Kind::ProxyAuth,
            FailureKind::Blocked => Kind::Blocked,
            FailureKind::Content => Kind::Content,
            FailureKind::Host => Kind::Host,
            FailureKind::Unknown => Kind::Unknown,
        };
        let site = opt(&options, "host.site").unwrap_or("").to_string();
        with_plugin(|e, now| e.failure(&proxy_url, kind, &site, now));
    }
}

impl Stats for Memory {
    fn get_stats(_options: Options) -> Result<Vec<ProxyStats>, String> {
        let stats = with_plugin(|e, now| e.stats(now)).ok_or("not initialised")?;
        Ok(stats
            .into_iter()
            .map(|s| ProxyStats {
                url: s.url,
                successes: s.successes,
                failures: s.failures,
                consecutive_failures: s.consecutive_failures,
                state: match s.state {
                    ProxyState::Active => WitState::Active,
                    ProxyState::CoolingDown(t) => WitState::CoolingDown(t),
                    ProxyState::Disabled => WitState::Disabled,
                },
                last_used_ms: s.last_used_ms,
                extra: s.extra,
            })
            .collect())
    }
}

impl Admin for Memory {
    fn add_proxies(urls: Vec<String>, _options: Options) -> Result<u32, String> {
        with_plugin(|e, _| urls.iter().filter(|u| e.add(u, 1, true)).count() as u32)
            .ok_or_else(|| "not initialised".to_string())
    }

    fn remove_proxies(urls: Vec<String>, _options: Options) -> Result<u32, String> {
        with_plugin(|e, _| urls.iter().filter(|u| e.remove(u)).count() as u32)
            .ok_or_else(|| "not initialised".to_string())
    }
}

export!(Memory);
