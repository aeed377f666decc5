//! The wit-bindgen glue: an adapter from the WIT exports (contract 0.2,
//! world `proxy-backend-full`) to a [`Backend`] kept in a per-instance cell.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::{Backend, Failure, GetProxyError, OptionScope, PluginError, Proxy, ProxyStats};
use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::{FailureDetail, Phase, ProxyMeta, ProxyState, Request, Site, Success, Wanted};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/proxy-0.2.wit",
        world: "proxy-backend-full",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "ytdlp_plugin_sdk::glue::bindings",
    });
}

pub use bindings::__export_world;

use bindings::exports::ytdlp::proxy::{admin, backend, describe, stats};
use bindings::ytdlp::proxy::types as wit;

ytdlp_contract::failure_kind_conversions!(bindings::ytdlp::proxy::types::FailureKind);
ytdlp_contract::plugin_error_conversions!(
    error: bindings::ytdlp::proxy::types::PluginError,
    invalid: bindings::ytdlp::proxy::types::InvalidValue
);

/// The plugin crate's name and version, given by [`crate::export_backend!`].
pub trait CrateInfo {
    const NAME: &'static str;
    const VERSION: &'static str;
}

thread_local! {
    static INSTANCE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
}

fn with<T: Backend, R>(f: impl FnOnce(&mut T) -> R) -> Option<R> {
    INSTANCE.with(|i| {
        let mut i = i.borrow_mut();
        i.as_mut().and_then(|b| b.downcast_mut::<T>()).map(f)
    })
}

/// Implements the WIT exports for any [`Backend`].
pub struct Adapter<T, C>(PhantomData<(T, C)>);

const NOT_INIT: &str = "backend not initialised";

fn request(r: wit::Request) -> Request {
    Request {
        url: r.url,
        site: Site {
            host: r.site.host,
            domain: r.site.domain,
        },
        attempt: r.attempt,
        download_id: r.download_id,
        sticky_key: r.sticky_key,
        avoid: r.avoid,
        want: Wanted {
            regions: r.want.regions,
            avoid_regions: r.want.avoid_regions,
            tags: r.want.tags,
            min_tier: r.want.min_tier,
            max_tier: r.want.max_tier,
        },
    }
}

fn failure(f: wit::Failure) -> Failure {
    Failure {
        kind: f.kind.into(),
        message: f.message,
        detail: FailureDetail {
            http_status: f.detail.http_status,
            retry_after_ms: f.detail.retry_after_ms,
            phase: f.detail.phase.map(|p| match p {
                wit::Phase::Preflight => Phase::Preflight,
                wit::Phase::Connect => Phase::Connect,
                wit::Phase::Request => Phase::Request,
                wit::Phase::Transfer => Phase::Transfer,
            }),
            from_proxy: f.detail.from_proxy,
            countries: f.detail.countries,
        },
        elapsed_ms: f.elapsed_ms,
    }
}

/// The contract's record of a proxy, after [`Proxy::check`].
fn proxy(p: Proxy) -> Result<wit::Proxy, String> {
    let url = p.check()?;
    let scheme = match url.scheme() {
        "http" => wit::Scheme::Http,
        "https" => wit::Scheme::Https,
        "socks4" => wit::Scheme::Socks4,
        "socks4a" => wit::Scheme::Socks4a,
        "socks5" => wit::Scheme::Socks5,
        "socks5h" => wit::Scheme::Socks5h,
        other => return Err(format!("invalid proxy URL: scheme `{other}`")),
    };
    let (host, port) = url.host_and_port();
    let credentials = url
        .credentials()
        .map(|(username, password)| wit::Credentials {
            username,
            password: password.unwrap_or_default(),
        });
    Ok(wit::Proxy {
        id: p.id_or_identity(&url),
        scheme,
        host,
        port,
        credentials,
        timeout_ms: p.timeout_ms,
        meta: meta(p.meta),
    })
}

fn meta(m: ProxyMeta) -> wit::ProxyMeta {
    wit::ProxyMeta {
        region: m.region,
        tags: m.tags,
        tier: m.tier,
    }
}

fn state(s: ProxyState) -> wit::ProxyState {
    match s {
        ProxyState::Active => wit::ProxyState::Active,
        ProxyState::CoolingDown(t) => wit::ProxyState::CoolingDown(t),
        ProxyState::Disabled => wit::ProxyState::Disabled,
    }
}

fn stats_row(n: usize, s: ProxyStats) -> Result<wit::ProxyStats, PluginError> {
    let proxy = proxy(s.proxy)
        .map_err(|why| PluginError::unavailable(format!("stats row {}: {why}", n + 1)))?;
    Ok(wit::ProxyStats {
        proxy,
        successes: s.successes,
        failures: s.failures,
        consecutive_failures: s.consecutive_failures,
        state: state(s.state),
        last_used_ms: s.last_used_ms,
        extra: s.extra,
    })
}

impl<T: Backend, C: CrateInfo> backend::Guest for Adapter<T, C> {
    fn init(options: wit::Options) -> Result<(), wit::PluginError> {
        let b = T::init(&options)?;
        INSTANCE.with(|i| *i.borrow_mut() = Some(Box::new(b)));
        Ok(())
    }

    fn get_proxy(
        req: wit::Request,
        options: wit::Options,
    ) -> Result<wit::Proxy, wit::GetProxyError> {
        let req = request(req);
        match with::<T, _>(|b| b.get_proxy(&req, &options)) {
            Some(Ok(p)) => proxy(p).map_err(|why| {
                wit::GetProxyError::BackendUnavailable(format!(
                    "the backend handed out a proxy the contract refuses: {why}"
                ))
            }),
            Some(Err(GetProxyError::NoProxy {
                message,
                retry_at_ms,
            })) => Err(wit::GetProxyError::NoProxyAvailable(wit::NoProxy {
                message,
                retry_at_ms,
            })),
            Some(Err(GetProxyError::Unavailable(m))) => {
                Err(wit::GetProxyError::BackendUnavailable(m))
            }
            None => Err(wit::GetProxyError::BackendUnavailable(NOT_INIT.into())),
        }
    }

    fn report_success(
        proxy_id: String,
        req: wit::Request,
        outcome: wit::Success,
        options: wit::Options,
    ) {
        let req = request(req);
        let outcome = Success {
            elapsed_ms: outcome.elapsed_ms,
            bytes: outcome.bytes,
        };
        with::<T, _>(|b| b.report_success(&proxy_id, &req, &outcome, &options));
    }

    fn report_failure(proxy_id: String, req: wit::Request, f: wit::Failure, options: wit::Options) {
        let req = request(req);
        let f = failure(f);
        with::<T, _>(|b| b.report_failure(&proxy_id, &req, &f, &options));
    }
}

impl<T: Backend, C: CrateInfo> stats::Guest for Adapter<T, C> {
    fn get_stats(options: wit::Options) -> Result<Vec<wit::ProxyStats>, wit::PluginError> {
        let rows = with::<T, _>(|b| b.stats(&options))
            .ok_or_else(|| PluginError::unavailable(NOT_INIT))??;
        let rows: Result<Vec<_>, PluginError> = rows
            .into_iter()
            .enumerate()
            .map(|(n, s)| stats_row(n, s))
            .collect();
        Ok(rows?)
    }
}

impl<T: Backend, C: CrateInfo> admin::Guest for Adapter<T, C> {
    fn add_proxies(
        proxies: Vec<wit::ProxySpec>,
        options: wit::Options,
    ) -> Result<u32, wit::PluginError> {
        let mut entries = Vec::with_capacity(proxies.len());
        for (n, s) in proxies.iter().enumerate() {
            let e = ProxyEntry::from_spec(&s.url, s.region.as_deref(), &s.tags, s.tier)
                .map_err(|e| PluginError::invalid("proxy", format!("proxy {}: {e}", n + 1)))?;
            entries.push(e);
        }
        let r = with::<T, _>(|b| b.add_proxies(entries, &options))
            .ok_or_else(|| PluginError::unavailable(NOT_INIT))?;
        Ok(r?)
    }

    fn remove_proxies(ids: Vec<String>, options: wit::Options) -> Result<u32, wit::PluginError> {
        let r = with::<T, _>(|b| b.remove_proxies(ids, &options))
            .ok_or_else(|| PluginError::unavailable(NOT_INIT))?;
        Ok(r?)
    }
}

impl<T: Backend, C: CrateInfo> describe::Guest for Adapter<T, C> {
    fn describe() -> describe::PluginInfo {
        let info = T::describe().or_named(C::NAME, C::VERSION);
        describe::PluginInfo {
            name: info.name,
            version: info.version,
            summary: info.summary,
            options: info
                .options
                .into_iter()
                .map(|o| describe::OptionInfo {
                    key: o.key,
                    help: o.help,
                    scope: match o.scope {
                        OptionScope::Init => describe::OptionScope::Init,
                        OptionScope::PerCall => describe::OptionScope::PerCall,
                    },
                    secret: o.secret,
                    repeated: o.repeated,
                })
                .collect(),
        }
    }
}
