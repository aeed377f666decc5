//! The WIT glue: settings from `init` (the token read once from an option
//! or a granted environment variable), each call's options over them.

use std::cell::RefCell;

use crate::api::{self, Settings};
use crate::http;

wit_bindgen::generate!({
    path: "../../wit/proxy-0.1.wit",
    world: "proxy-backend",
});

use exports::ytdlp::proxy::backend::Guest as Backend;
use ytdlp::proxy::types::{Failure, GetProxyError, Options, Proxy};

thread_local! {
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The settings for this call: its options over the init ones.
fn call_settings(options: &Options) -> Result<Settings, String> {
    SETTINGS.with(|cell| {
        let init = cell.borrow();
        let init = init.as_ref().ok_or("not initialised")?;
        Settings::parse(Some(init), options, env)
    })
}

ytdlp_contract::failure_kind_conversions!(v0_1: ytdlp::proxy::types::FailureKind);

/// Reports cannot fail in the contract; one that the API does not take is
/// dropped (the vendor's own accounting is the vendor's).
fn report(proxy_url: &str, kind: Option<&str>, options: &Options) {
    let Ok(s) = call_settings(options) else {
        return;
    };
    let body = api::report_body(proxy_url, kind);
    let _ = http::send(
        &s.base,
        "report",
        &s.authorization(),
        Some(&body),
        s.request_timeout(),
    );
}

struct VendorApi;

impl Backend for VendorApi {
    fn init(options: Options) -> Result<(), String> {
        let settings = Settings::parse(None, &options, env)?;
        SETTINGS.with(|cell| *cell.borrow_mut() = Some(settings));
        Ok(())
    }

    fn get_proxy(options: Options) -> Result<Proxy, GetProxyError> {
        let s = call_settings(&options).map_err(GetProxyError::BackendUnavailable)?;
        let answer = http::send(
            &s.base,
            "proxy",
            &s.authorization(),
            None,
            s.request_timeout(),
        )
        .map_err(|e| GetProxyError::BackendUnavailable(api::transport_message(&s, &e)))?;
        let pick =
            api::parse_proxy_answer(&s, &answer).map_err(GetProxyError::BackendUnavailable)?;
        Ok(Proxy {
            url: pick.url,
            timeout_ms: pick.timeout_ms,
        })
    }

    fn report_success(proxy_url: String, options: Options) {
        report(&proxy_url, None, &options);
    }

    fn report_failure(proxy_url: String, failure: Failure, options: Options) {
        let kind = ytdlp_contract::FailureKind::from(failure.kind);
        report(&proxy_url, Some(kind.name()), &options);
    }
}

export!(VendorApi);
