//! Test fixture: a backend without stats (contract 0.2, world
//! `proxy-backend`) that shows the host what a 0.2 plugin receives.
//!
//! - It hands out the proxy of the last `use_proxy` option of the call (or
//!   of init), in the proxy-list syntax (`URL[;region=DE;tags=a;tier=1]`),
//!   with the id of option `proxy_id` if given (else the URL's identity),
//!   so tests can see that per-download options reach a user plugin. A
//!   proxy outside the request's `want` is not handed out (no-proxy, as
//!   the contract says; the hostile fixture is the one that breaks it).
//! - With option `echo` (call or init) = a comma-separated list of field
//!   names, get-proxy answers `backend-unavailable("echo: NAME=VALUE; ...")`
//!   instead. Each answer is capped by the host (300 bytes), so ask for a
//!   few fields at a time. Fields:
//!   - the request: `url`, `site.host`, `site.domain`, `attempt`,
//!     `download-id`, `sticky-key`, `avoid`, `want.regions`,
//!     `want.avoid-regions`, `want.tags`, `want.min-tier`,
//!     `want.max-tier`;
//!   - options: `options` (every `key=value` of the call, in order),
//!     `option.KEY` (its last value), `init.KEY` (init's);
//!   - the last report: `report.call` (`report-success`,
//!     `report-failure` or `none`), `report.proxy-id`, `report.options`,
//!     `report.request.FIELD` (any request field above), for a success
//!     `report.elapsed-ms` and `report.bytes`, for a failure
//!     `report.kind`, `report.message`, `report.http-status`,
//!     `report.retry-after-ms`, `report.phase`, `report.from-proxy`,
//!     `report.countries`, `report.elapsed-ms`.
//!
//!   Lists are comma-separated, absent values `none`, unknown fields `?`.
//! - Init option `refuse` refuses init (`invalid-value` of `refuse`).

use std::cell::RefCell;

wit_bindgen::generate!({
    path: "../../../wit/proxy-0.2.wit",
    world: "proxy-backend",
});

use exports::ytdlp::proxy::backend::Guest;
use ytdlp::proxy::types::{
    Credentials, Failure, FailureKind, GetProxyError, InvalidValue, NoProxy, Options, Phase,
    PluginError, Proxy, ProxyMeta, Request, Scheme, Success,
};

/// The last report, as its fields.
struct Report {
    call: &'static str,
    proxy_id: String,
    request: Request,
    options: Options,
    fields: Vec<(&'static str, String)>,
}

thread_local! {
    static INIT: RefCell<Options> = const { RefCell::new(Vec::new()) };
    static REPORT: RefCell<Option<Report>> = const { RefCell::new(None) };
}

fn last<'a>(options: &'a Options, key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A call's option, else init's.
fn call_opt(options: &Options, key: &str) -> Option<String> {
    last(options, key)
        .map(str::to_string)
        .or_else(|| INIT.with(|i| last(&i.borrow(), key).map(str::to_string)))
}

fn none_or<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "none".to_string(), |v| v.to_string())
}

fn pairs(options: &Options) -> String {
    options
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A request field by name.
fn request_field(r: &Request, name: &str) -> Option<String> {
    Some(match name {
        "url" => r.url.clone(),
        "site.host" => r.site.host.clone(),
        "site.domain" => r.site.domain.clone(),
        "attempt" => r.attempt.to_string(),
        "download-id" => r.download_id.clone(),
        "sticky-key" => none_or(r.sticky_key.as_ref()),
        "avoid" => r.avoid.join(","),
        "want.regions" => r.want.regions.join(","),
        "want.avoid-regions" => r.want.avoid_regions.join(","),
        "want.tags" => r.want.tags.join(","),
        "want.min-tier" => r.want.min_tier.to_string(),
        "want.max-tier" => none_or(r.want.max_tier),
        _ => return None,
    })
}

fn report_field(name: &str) -> Option<String> {
    REPORT.with(|r| {
        let r = r.borrow();
        let Some(r) = r.as_ref() else {
            return (name == "call").then(|| "none".to_string());
        };
        match name {
            "call" => Some(r.call.to_string()),
            "proxy-id" => Some(r.proxy_id.clone()),
            "options" => Some(pairs(&r.options)),
            _ => match name.strip_prefix("request.") {
                Some(f) => request_field(&r.request, f),
                None => r
                    .fields
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone()),
            },
        }
    })
}

fn field(request: &Request, options: &Options, name: &str) -> String {
    let value = if name == "options" {
        Some(pairs(options))
    } else if let Some(key) = name.strip_prefix("option.") {
        Some(none_or(last(options, key)))
    } else if let Some(key) = name.strip_prefix("init.") {
        Some(INIT.with(|i| none_or(last(&i.borrow(), key))))
    } else if let Some(f) = name.strip_prefix("report.") {
        report_field(f)
    } else {
        request_field(request, name)
    };
    value.unwrap_or_else(|| "?".to_string())
}

/// `line` (proxy-list syntax) as the contract's record, if `request`
/// admits it (else why not).
fn proxy(line: &str, id: Option<String>, request: &Request) -> Result<Proxy, GetProxyError> {
    let entry = ytdlp_contract::proxy_list::parse_entry(line)
        .map_err(|e| GetProxyError::BackendUnavailable(format!("option `use_proxy`: {e}")))?;
    let w = &request.want;
    let want = ytdlp_contract::Wanted {
        regions: w.regions.clone(),
        avoid_regions: w.avoid_regions.clone(),
        tags: w.tags.clone(),
        min_tier: w.min_tier,
        max_tier: w.max_tier,
    };
    if !want.admits(&entry.meta) {
        return Err(GetProxyError::NoProxyAvailable(NoProxy {
            message: want.unmet_message(1, [&entry.meta]),
            retry_at_ms: None,
        }));
    }
    let url = &entry.url;
    let scheme = match url.scheme() {
        "https" => Scheme::Https,
        "socks4" => Scheme::Socks4,
        "socks4a" => Scheme::Socks4a,
        "socks5" => Scheme::Socks5,
        "socks5h" => Scheme::Socks5h,
        _ => Scheme::Http,
    };
    let (host, port) = url.host_and_port();
    Ok(Proxy {
        id: id.unwrap_or_else(|| url.identity_id()),
        scheme,
        host,
        port,
        credentials: url.credentials().map(|(username, password)| Credentials {
            username,
            password: password.unwrap_or_default(),
        }),
        timeout_ms: 5_000,
        meta: ProxyMeta {
            region: entry.meta.region,
            tags: entry.meta.tags,
            tier: entry.meta.tier,
        },
    })
}

fn kind_name(k: FailureKind) -> &'static str {
    match k {
        FailureKind::ProxyConnect => "proxy-connect",
        FailureKind::ProxyTimeout => "proxy-timeout",
        FailureKind::ProxyAuth => "proxy-auth",
        FailureKind::Blocked => "blocked",
        FailureKind::GeoRestricted => "geo-restricted",
        FailureKind::Content => "content",
        FailureKind::Host => "host",
        FailureKind::Unknown => "unknown",
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Preflight => "preflight",
        Phase::Connect => "connect",
        Phase::Request => "request",
        Phase::Transfer => "transfer",
    }
}

struct Echo;

impl Guest for Echo {
    fn init(options: Options) -> Result<(), PluginError> {
        if last(&options, "refuse").is_some() {
            return Err(PluginError::InvalidValue(InvalidValue {
                key: "refuse".to_string(),
                reason: "refused by option `refuse`".to_string(),
            }));
        }
        INIT.with(|i| *i.borrow_mut() = options);
        Ok(())
    }

    fn get_proxy(request: Request, options: Options) -> Result<Proxy, GetProxyError> {
        if let Some(names) = call_opt(&options, "echo") {
            let shown: Vec<String> = names
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("{n}={}", field(&request, &options, n)))
                .collect();
            return Err(GetProxyError::BackendUnavailable(format!(
                "echo: {}",
                shown.join("; ")
            )));
        }
        match call_opt(&options, "use_proxy") {
            Some(line) => proxy(&line, call_opt(&options, "proxy_id"), &request),
            None => Err(GetProxyError::NoProxyAvailable(NoProxy {
                message: "no `use_proxy` option".to_string(),
                retry_at_ms: None,
            })),
        }
    }

    fn report_success(proxy_id: String, request: Request, outcome: Success, options: Options) {
        let fields = vec![
            ("elapsed-ms", outcome.elapsed_ms.to_string()),
            ("bytes", none_or(outcome.bytes)),
        ];
        REPORT.with(|r| {
            *r.borrow_mut() = Some(Report {
                call: "report-success",
                proxy_id,
                request,
                options,
                fields,
            })
        });
    }

    fn report_failure(proxy_id: String, request: Request, failure: Failure, options: Options) {
        let d = &failure.detail;
        let fields = vec![
            ("kind", kind_name(failure.kind).to_string()),
            ("message", failure.message.clone()),
            ("http-status", none_or(d.http_status)),
            ("retry-after-ms", none_or(d.retry_after_ms)),
            ("phase", none_or(d.phase.map(phase_name))),
            ("from-proxy", d.from_proxy.to_string()),
            ("countries", d.countries.join(",")),
            ("elapsed-ms", failure.elapsed_ms.to_string()),
        ];
        REPORT.with(|r| {
            *r.borrow_mut() = Some(Report {
                call: "report-failure",
                proxy_id,
                request,
                options,
                fields,
            })
        });
    }
}

export!(Echo);
