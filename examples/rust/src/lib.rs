//! Routes each site through its own proxies, with failover: options
//! `route = "SITE=URL"` (repeatable; several per site form a failover list,
//! in order; SITE is a host name such as `www.youtube.com` or a domain such
//! as `youtube.com`, which covers all its hosts) and `default = "URL"` for
//! every other site. URLs may carry metadata (`URL;region=DE;tier=1`), and
//! a proxy the request does not admit is skipped. A retry after a failure
//! moves to the site's next proxy (the host lists the failed one in
//! `request.avoid`); 3 proxy faults in a row and the proxy is skipped for
//! 60 s.

use std::collections::HashMap;

use ytdlp_plugin_sdk::contract::now_ms;
use ytdlp_plugin_sdk::{
    Backend, Failure, GetProxyError, OptionInfo, Options, PluginError, PluginInfo, Proxy, Request,
    Success, opt_all, parse_entry, plugin_info,
};

pub struct Route {
    routes: HashMap<String, Vec<Proxy>>,
    default: Vec<Proxy>,
    /// proxy id -> (consecutive faults, skipped until ms)
    health: HashMap<String, (u32, u64)>,
}

/// A `route` or `default` value as a proxy, or the refusal naming `key`.
fn proxy(key: &str, line: &str) -> Result<Proxy, PluginError> {
    let entry = parse_entry(line).map_err(|e| PluginError::invalid(key, e.to_string()))?;
    Ok(Proxy::from_entry(&entry, 20_000))
}

impl Backend for Route {
    fn init(options: &Options) -> Result<Self, PluginError> {
        Self::describe().check(options, false)?;
        let mut routes: HashMap<String, Vec<Proxy>> = HashMap::new();
        for r in opt_all(options, "route") {
            let (site, url) = r
                .split_once('=')
                .ok_or_else(|| PluginError::invalid("route", "not SITE=URL"))?;
            let p = proxy("route", url)?;
            routes.entry(site.to_ascii_lowercase()).or_default().push(p);
        }
        let default = opt_all(options, "default")
            .map(|u| proxy("default", u))
            .collect::<Result<_, _>>()?;
        Ok(Route {
            routes,
            default,
            health: HashMap::new(),
        })
    }

    fn get_proxy(&mut self, request: &Request, _: &Options) -> Result<Proxy, GetProxyError> {
        let site = &request.site;
        let list = self
            .routes
            .get(&site.host)
            .or_else(|| self.routes.get(&site.domain))
            .unwrap_or(&self.default);
        let now = now_ms();
        let up = |p: &Proxy| self.health.get(&p.id).is_none_or(|h| h.1 <= now);
        let admitted: Vec<&Proxy> = list
            .iter()
            .filter(|p| request.want.admits(&p.meta))
            .collect();
        // The first that works, preferring those that did not fail this URL.
        let pick = admitted
            .iter()
            .find(|p| up(p) && !request.avoid.contains(&p.id))
            .or_else(|| admitted.iter().find(|p| up(p)));
        match pick {
            Some(p) => Ok((*p).clone()),
            None if admitted.is_empty() => Err(GetProxyError::no_proxy(
                request
                    .want
                    .unmet_message(list.len(), list.iter().map(|p| &p.meta)),
            )),
            None => Err(GetProxyError::NoProxy {
                message: format!("no usable proxy routed for `{}`", site.host),
                retry_at_ms: admitted
                    .iter()
                    .filter_map(|p| self.health.get(&p.id))
                    .map(|h| h.1)
                    .min(),
            }),
        }
    }

    fn report_success(&mut self, proxy_id: &str, _: &Request, _: &Success, _: &Options) {
        self.health.remove(proxy_id);
    }

    fn report_failure(&mut self, proxy_id: &str, _: &Request, failure: &Failure, _: &Options) {
        if failure.kind.is_proxy_fault() {
            let h = self.health.entry(proxy_id.to_string()).or_insert((0, 0));
            h.0 += 1;
            // The retry avoids it anyway; after 3 in a row, skip it for a
            // minute for every URL.
            if h.0 >= 3 {
                h.1 = now_ms() + 60_000;
            }
        }
    }

    fn describe() -> PluginInfo {
        plugin_info!()
            .summary("a proxy per site, with failover")
            .option(
                OptionInfo::init(
                    "route",
                    "SITE=URL: a proxy for a site (repeat for failover)",
                )
                .repeated()
                .secret(),
            )
            .option(
                OptionInfo::init("default", "URL: the proxy for every other site")
                    .repeated()
                    .secret(),
            )
    }
}

ytdlp_plugin_sdk::export_backend!(Route);

#[cfg(test)]
mod tests {
    use super::*;
    use ytdlp_plugin_sdk::{FailureKind, Site};

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn for_site(host: &str, domain: &str) -> Request {
        Request {
            site: Site {
                host: host.into(),
                domain: domain.into(),
            },
            ..Request::default()
        }
    }

    #[test]
    fn routes_by_host_then_domain_with_failover() {
        let mut r = Route::init(&opts(&[
            ("route", "youtube.com=http://10.0.0.1:3128"),
            ("route", "youtube.com=http://10.0.0.2:3128"),
            ("default", "socks5://10.0.0.3:1080"),
        ]))
        .unwrap();
        let yt = for_site("www.youtube.com", "youtube.com");
        let first = r.get_proxy(&yt, &Vec::new()).unwrap();
        assert_eq!(first.url, "http://10.0.0.1:3128");
        let other = r.get_proxy(&for_site("a.example", "a.example"), &Vec::new());
        assert_eq!(other.unwrap().url, "socks5://10.0.0.3:1080");
        let fault = Failure::new(FailureKind::ProxyConnect, "refused");
        r.report_failure(&first.id, &yt, &fault, &Vec::new());
        // The retry of that URL avoids it; other URLs still get it.
        let retry = Request {
            avoid: vec![first.id.clone()],
            ..yt.clone()
        };
        assert_eq!(
            r.get_proxy(&retry, &Vec::new()).unwrap().url,
            "http://10.0.0.2:3128"
        );
        assert_eq!(r.get_proxy(&yt, &Vec::new()).unwrap(), first);
        // Three in a row: out for every URL.
        r.report_failure(&first.id, &yt, &fault, &Vec::new());
        r.report_failure(&first.id, &yt, &fault, &Vec::new());
        assert_eq!(
            r.get_proxy(&yt, &Vec::new()).unwrap().url,
            "http://10.0.0.2:3128"
        );
        assert!(Route::init(&opts(&[("rout", "x")])).is_err());
    }
}
