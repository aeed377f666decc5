//! The contract glue, through the SDK: settings from `init` (the token
//! read once from an option or a granted environment variable), each
//! call's options over them.

use std::collections::HashMap;

use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, Options, PluginError, PluginInfo, Proxy, Request, Success,
};

use crate::api::{self, Settings};
use crate::http;

/// How many handed-out proxies' URLs are remembered for the reports (the
/// contract reports by id; the vendor's API wants the URL back too).
const REMEMBERED: usize = 256;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

struct VendorApi {
    settings: Settings,
    /// Proxy id -> the URL it was handed out with (recent ones).
    urls: HashMap<String, String>,
}

impl VendorApi {
    /// Reports cannot fail in the contract; one that the API does not take
    /// is dropped (the vendor's own accounting is the vendor's).
    fn report(&mut self, proxy_id: &str, request: &Request, kind: Option<&str>, options: &Options) {
        let Ok(s) = Settings::parse(Some(&self.settings), options, env) else {
            return;
        };
        let url = self.urls.get(proxy_id).map(String::as_str);
        let body = api::report_body(proxy_id, url, kind, &request.site.domain);
        let _ = http::send(
            &s.base,
            &s.base.path("report"),
            &s.authorization(),
            Some(&body),
            s.request_timeout(),
        );
    }
}

impl Backend for VendorApi {
    fn init(options: &Options) -> Result<Self, PluginError> {
        Ok(VendorApi {
            settings: Settings::parse(None, options, env)?,
            urls: HashMap::new(),
        })
    }

    fn get_proxy(&mut self, request: &Request, options: &Options) -> Result<Proxy, GetProxyError> {
        let s = Settings::parse(Some(&self.settings), options, env)
            .map_err(|e| GetProxyError::Unavailable(e.to_string()))?;
        let answer = http::send(
            &s.base,
            &api::proxy_path(&s, request),
            &s.authorization(),
            None,
            s.request_timeout(),
        )
        .map_err(|e| GetProxyError::Unavailable(api::transport_message(&s, &e)))?;
        let proxy =
            api::parse_proxy_answer(&s, request, &answer).map_err(GetProxyError::Unavailable)??;
        if self.urls.len() >= REMEMBERED {
            self.urls.clear();
        }
        self.urls.insert(proxy.id.clone(), proxy.url.clone());
        Ok(proxy)
    }

    fn report_success(
        &mut self,
        proxy_id: &str,
        request: &Request,
        _: &Success,
        options: &Options,
    ) {
        self.report(proxy_id, request, None, options);
    }

    fn report_failure(
        &mut self,
        proxy_id: &str,
        request: &Request,
        f: &Failure,
        options: &Options,
    ) {
        self.report(proxy_id, request, Some(f.kind.name()), options);
    }

    fn describe() -> PluginInfo {
        api::describe()
    }
}

ytdlp_plugin_sdk::export_backend!(VendorApi);
