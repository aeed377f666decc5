//! The WIT glue: settings from `init`, a lazily (re)connected store, and
//! per-call options applied over the init settings.

use std::cell::RefCell;

use crate::settings::{Kind, Settings, check_proxy_url};
use crate::store::{self, Store};

wit_bindgen::generate!({
    path: "../../wit",
    world: "proxy-backend-full",
});

use exports::ytdlp::proxy::admin::Guest as Admin;
use exports::ytdlp::proxy::backend::Guest as Backend;
use exports::ytdlp::proxy::stats::Guest as Stats;
use ytdlp::proxy::types::{
    Failure, FailureKind, GetProxyError, NoProxy, Options, Proxy, ProxyState, ProxyStats,
};

struct State {
    settings: Settings,
    store: Store,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs `f` with the settings in force for this call and the store.
fn with_call<R>(
    options: &Options,
    f: impl FnOnce(&Settings, &mut Store) -> Result<R, String>,
) -> Result<R, String> {
    STATE.with(|cell| {
        let mut guard = cell.borrow_mut();
        let state = guard.as_mut().ok_or("not initialised")?;
        let settings = Settings::parse(&state.settings, options)?;
        f(&settings, &mut state.store)
    })
}

fn kind(k: FailureKind) -> Kind {
    match k {
        FailureKind::ProxyConnect => Kind::ProxyConnect,
        FailureKind::ProxyTimeout => Kind::ProxyTimeout,
        FailureKind::ProxyAuth => Kind::ProxyAuth,
        FailureKind::Blocked => Kind::Blocked,
        FailureKind::Content => Kind::Content,
        FailureKind::Host => Kind::Host,
        FailureKind::Unknown => Kind::Unknown,
    }
}

struct RedisBackend;

impl Backend for RedisBackend {
    /// Checks the options only: Redis may be down now and come back later,
    /// so the first connection is made by the first call.
    fn init(options: Options) -> Result<(), String> {
        let settings = Settings::parse(&Settings::default(), &options)?;
        STATE.with(|cell| {
            *cell.borrow_mut() = Some(State {
                settings,
                store: Store::new(),
            })
        });
        Ok(())
    }

    fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
        let mut timeout_ms = 0;
        let answer = with_call(&options, |s, store| {
            timeout_ms = s.timeout_ms;
            store.get_proxy(s)
        });
        match answer {
            Ok(Ok(pick)) => Ok(Proxy {
                url: pick.url,
                timeout_ms,
            }),
            Ok(Err(np)) => Err(GetProxyError::NoProxyAvailable(NoProxy {
                message: np.message,
                retry_at_ms: np.retry_at_ms,
            })),
            Err(message) => Err(GetProxyError::BackendUnavailable(message)),
        }
    }

    // Reports cannot fail in the contract: a report lost while Redis is
    // down is lost (the host logs nothing for it either).
    fn report_success(proxy_url: String, options: Options) {
        let _ = with_call(&options, |s, store| store.report_success(s, &proxy_url));
    }

    fn report_failure(proxy_url: String, failure: Failure, options: Options) {
        let k = kind(failure.kind);
        let _ = with_call(&options, |s, store| store.report_failure(s, &proxy_url, k));
    }
}

impl Stats for RedisBackend {
    fn get_stats(options: Options) -> Result<Vec<ProxyStats>, String> {
        let rows = with_call(&options, |s, store| store.stats(s))?;
        Ok(rows
            .into_iter()
            .map(|r| ProxyStats {
                url: r.url,
                successes: r.successes,
                failures: r.failures,
                consecutive_failures: r.consecutive_failures,
                state: match r.state {
                    store::ProxyState::Active => ProxyState::Active,
                    store::ProxyState::CoolingDown(t) => ProxyState::CoolingDown(t),
                    store::ProxyState::Disabled => ProxyState::Disabled,
                },
                last_used_ms: r.last_used_ms,
                extra: r.extra,
            })
            .collect())
    }
}

impl Admin for RedisBackend {
    fn add_proxies(urls: Vec<String>, options: Options) -> Result<u32, String> {
        for url in &urls {
            check_proxy_url(url)?;
        }
        with_call(&options, |s, store| store.add(s, &urls))
    }

    fn remove_proxies(urls: Vec<String>, options: Options) -> Result<u32, String> {
        with_call(&options, |s, store| store.remove(s, &urls))
    }
}

export!(RedisBackend);
