//! Routes each site through its own proxies, with failover: options
//! `route = "SITE=URL"` (repeatable; several per site form a failover list,
//! in order) and `default = "URL"` for every other site. A proxy fault moves
//! that site to its next proxy until a success; 3 in a row and the proxy is
//! skipped for 60 s.

use std::collections::HashMap;

use ytdlp_plugin_sdk::{Backend, Failure, GetProxyError, Options, Proxy, opt, opt_all};

struct Route {
    routes: HashMap<String, Vec<String>>,
    default: Vec<String>,
    /// proxy -> (consecutive faults, skipped until ms)
    health: HashMap<String, (u32, u64)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Backend for Route {
    fn init(options: &Options) -> Result<Self, String> {
        let mut routes: HashMap<String, Vec<String>> = HashMap::new();
        for r in opt_all(options, "route") {
            let (site, url) = r.split_once('=').ok_or(format!("route `{r}` is not SITE=URL"))?;
            routes.entry(site.to_ascii_lowercase()).or_default().push(url.to_string());
        }
        let default: Vec<String> = opt_all(options, "default").map(str::to_string).collect();
        Ok(Route { routes, default, health: HashMap::new() })
    }

    fn get_proxy(&mut self, options: &Options) -> Result<Proxy, GetProxyError> {
        let site = opt(options, "host.site").unwrap_or("");
        let list = self.routes.get(site).unwrap_or(&self.default);
        let now = now_ms();
        let usable = list.iter().find(|u| self.health.get(*u).is_none_or(|h| h.1 <= now));
        match usable {
            Some(url) => Ok(Proxy { url: url.clone(), timeout_ms: 20_000 }),
            None => Err(GetProxyError::NoProxy {
                message: format!("no usable proxy routed for `{site}`"),
                retry_at_ms: list.iter().filter_map(|u| self.health.get(u)).map(|h| h.1).min(),
            }),
        }
    }

    fn report_success(&mut self, proxy_url: &str, _options: &Options) {
        self.health.remove(proxy_url);
    }

    fn report_failure(&mut self, proxy_url: &str, failure: &Failure, _options: &Options) {
        if failure.kind.is_proxy_fault() {
            let h = self.health.entry(proxy_url.to_string()).or_insert((0, 0));
            h.0 += 1;
            // Move on at once; after 3 in a row, skip it for a minute.
            h.1 = now_ms() + if h.0 >= 3 { 60_000 } else { 1 };
        }
    }
}

ytdlp_plugin_sdk::export_backend!(Route);
