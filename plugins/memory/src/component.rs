//! The WIT glue: one engine per instance, configured by `init`.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::engine::{Engine, Kind, NoProxy, ProxyState};

wit_bindgen::generate!({
    path: "../../wit",
    world: "proxy-backend-with-stats",
});

use exports::ytdlp::proxy::backend::Guest as Backend;
use exports::ytdlp::proxy::stats::Guest as Stats;
use ytdlp::proxy::types::{
    Failure, FailureKind, GetProxyError, NoProxy as WitNoProxy, Options, Proxy,
    ProxyState as WitState, ProxyStats,
};

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> Option<R> {
    ENGINE.with(|e| e.borrow_mut().as_mut().map(f))
}

struct Memory;

impl Backend for Memory {
    fn init(options: Options) -> Result<(), String> {
        let engine = Engine::from_options(&options)?;
        ENGINE.with(|e| *e.borrow_mut() = Some(engine));
        Ok(())
    }

    fn get_proxy(_options: Options) -> Result<Proxy, GetProxyError> {
        match with_engine(|e| e.next(now_ms())) {
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
        with_engine(|e| e.success(&proxy_url, now_ms()));
    }

    fn report_failure(proxy_url: String, failure: Failure, _options: Options) {
        let kind = match failure.kind {
            FailureKind::ProxyConnect => Kind::ProxyConnect,
            FailureKind::ProxyTimeout => Kind::ProxyTimeout,
            FailureKind::ProxyAuth => Kind::ProxyAuth,
            FailureKind::Blocked => Kind::Blocked,
            FailureKind::Content => Kind::Content,
            FailureKind::Host => Kind::Host,
            FailureKind::Unknown => Kind::Unknown,
        };
        with_engine(|e| e.failure(&proxy_url, kind, now_ms()));
    }
}

impl Stats for Memory {
    fn get_stats(_options: Options) -> Result<Vec<ProxyStats>, String> {
        let stats = with_engine(|e| e.stats()).ok_or("not initialised")?;
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

export!(Memory);
