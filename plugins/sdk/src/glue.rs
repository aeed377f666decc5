//! The wit-bindgen glue: an adapter from the WIT exports to a [`Backend`]
//! kept in a per-instance cell.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::{Backend, Failure, GetProxyError};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/proxy-0.1.wit",
        world: "proxy-backend-full",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "ytdlp_plugin_sdk::glue::bindings",
    });
}

pub use bindings::__export_world;

ytdlp_contract::failure_kind_conversions!(v0_1: bindings::ytdlp::proxy::types::FailureKind);
ytdlp_contract::stats_conversions!(
    state: bindings::ytdlp::proxy::types::ProxyState,
    stats: bindings::ytdlp::proxy::types::ProxyStats
);
use bindings::exports::ytdlp::proxy::{admin, backend, stats};
use bindings::ytdlp::proxy::types as wit;

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
pub struct Adapter<T>(PhantomData<T>);

const NOT_INIT: &str = "backend not initialised";

impl<T: Backend> backend::Guest for Adapter<T> {
    fn init(options: wit::Options) -> Result<(), String> {
        let b = T::init(&options)?;
        INSTANCE.with(|i| *i.borrow_mut() = Some(Box::new(b)));
        Ok(())
    }

    fn get_proxy(options: wit::Options) -> Result<wit::Proxy, wit::GetProxyError> {
        match with::<T, _>(|b| b.get_proxy(&options)) {
            Some(Ok(p)) => Ok(wit::Proxy {
                url: p.url,
                timeout_ms: p.timeout_ms,
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

    fn report_success(proxy_url: String, options: wit::Options) {
        with::<T, _>(|b| b.report_success(&proxy_url, &options));
    }

    fn report_failure(proxy_url: String, failure: wit::Failure, options: wit::Options) {
        let f = Failure {
            kind: failure.kind.into(),
            message: failure.message,
        };
        with::<T, _>(|b| b.report_failure(&proxy_url, &f, &options));
    }
}

impl<T: Backend> stats::Guest for Adapter<T> {
    fn get_stats(options: wit::Options) -> Result<Vec<wit::ProxyStats>, String> {
        let rows = with::<T, _>(|b| b.stats(&options)).ok_or_else(|| NOT_INIT.to_string())??;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

impl<T: Backend> admin::Guest for Adapter<T> {
    fn add_proxies(urls: Vec<String>, options: wit::Options) -> Result<u32, String> {
        with::<T, _>(|b| b.add_proxies(urls, &options)).ok_or_else(|| NOT_INIT.to_string())?
    }

    fn remove_proxies(urls: Vec<String>, options: wit::Options) -> Result<u32, String> {
        with::<T, _>(|b| b.remove_proxies(urls, &options)).ok_or_else(|| NOT_INIT.to_string())?
    }
}
