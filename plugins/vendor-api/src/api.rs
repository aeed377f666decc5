//! The vendor API's protocol, independent of the transport so it is tested
//! natively: options, the requests to make, and what each answer means.
//!
//! - `GET {base_url}/proxy` with `Authorization: Bearer {token}` answers
//!   `{"url": "scheme://[user:pass@]host:port", "timeout_ms": N, "id": ...,
//!   "region": "DE", "tags": [...], "tier": N}` (all but `url` optional).
//!   What the request asks is in the query, only when it asks it:
//!   `region`, `avoid_region`, `tags` (comma-separated), `min_tier`,
//!   `max_tier`, `session` (its sticky key), `avoid` (proxy ids that failed
//!   this URL); the site is not sent;
//! - `POST {base_url}/report` with `{"proxy_id": ..., "proxy_url": ...,
//!   "outcome": "success"|"failure", "kind": ..., "site": ...}` (`kind` is
//!   null for a success; `proxy_url` null if the plugin no longer knows it).
//!
//! Every way the API can fail (429, 5xx, timeouts, unreachable, denied by
//! the host, nonsense answers) becomes a one-line message for the
//! contract's `backend-unavailable`; a proxy outside what the request
//! admits is `no-proxy-available` (never handed out).

use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use ytdlp_plugin_sdk::contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_plugin_sdk::contract::proxy_url;
use ytdlp_plugin_sdk::{
    NoProxy, OptionInfo, PluginError, PluginInfo, Proxy, ProxyMeta, Request, is_host_key, num,
    parse_region, parse_tag,
};

/// Where the API is: `http(s)://host[:port][/prefix]`, split the way
/// wasi:http wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// The path prefix, without a trailing `/` (may be empty).
    pub prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<BaseUrl, PluginError> {
        let bad = |why: &str| {
            Err(PluginError::invalid(
                "base_url",
                format!("`{url}` {why} (want http(s)://host[:port][/path])"),
            ))
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return bad("is not an http:// or https:// URL");
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("contains whitespace");
        }
        if rest.contains(['?', '#']) {
            return bad("has a query or fragment");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') {
            return bad("has no host, or has credentials (use the `token` option)");
        }
        Ok(BaseUrl {
            https,
            authority: authority.to_string(),
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// `scheme://authority`: what a grant must name.
    pub fn origin(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority
        )
    }

    pub fn path(&self, endpoint: &str) -> String {
        format!("{}/{endpoint}", self.prefix)
    }
}

/// Every option, with its value in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub base: BaseUrl,
    pub token: String,
    /// The proxy timeout handed to the host when the API gives none.
    pub timeout_ms: u32,
    /// Bound on one API request, connect to last byte. Keep it under the
    /// host's call deadline (`call_timeout_ms`, 500 by default) so that a
    /// slow API gives a typed error rather than a killed call.
    pub request_timeout_ms: u64,
}

/// What `describe` answers: every option, all of which may also be given
/// per download (each call's options are parsed over the init ones).
pub fn describe() -> PluginInfo {
    let o = OptionInfo::per_call;
    ytdlp_plugin_sdk::plugin_info!()
        .summary("proxies from a vendor's HTTP JSON API")
        .option(o(
            "base_url",
            "the API: http(s)://host[:port][/path] (its origin must be granted)",
        ))
        .option(o("token", "the API's bearer token").secret())
        .option(o(
            "token_env",
            "the name of a granted environment variable holding the token",
        ))
        .option(o(
            "timeout_ms",
            "the proxy timeout when the API gives none (default 30000)",
        ))
        .option(o(
            "request_timeout_ms",
            "bound on one API request, connect to last byte (default 400)",
        ))
}

impl Settings {
    /// Settings from `options` over `base` (none at `init`). `env` looks up
    /// an environment variable (only granted ones are visible to a plugin).
    /// A key given several times takes its last value; `host.*` keys are
    /// the host's context; other unknown keys are refused.
    pub fn parse(
        base: Option<&Settings>,
        options: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, PluginError> {
        let mut base_url = base.map(|b| b.base.clone());
        let mut token = base.map(|b| b.token.clone());
        let mut timeout_ms = base.map_or(30_000, |b| b.timeout_ms);
        let mut request_timeout_ms = base.map_or(400, |b| b.request_timeout_ms);
        let mut token_opt = None;
        let mut token_env = None;
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "base_url" => base_url = Some(BaseUrl::parse(v)?),
                "token" => token_opt = Some(v.to_string()),
                "token_env" => token_env = Some(v.to_string()),
                "timeout_ms" => timeout_ms = num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "request_timeout_ms" => request_timeout_ms = num(key, v, 1, 600_000)?,
                other if is_host_key(other) => {}
                other => return Err(PluginError::unknown_option(other)),
            }
        }
        let base = base_url.ok_or(PluginError::invalid(
            "base_url",
            "is missing: the vendor API's URL, e.g. https://api.vendor.example/v1",
        ))?;
        // `token` wins over `token_env` when both are given.
        if let Some(t) = token_opt {
            token = Some(t);
        } else if let Some(name) = token_env {
            match env(&name).filter(|v| !v.trim().is_empty()) {
                Some(v) => token = Some(v.trim().to_string()),
                None => {
                    return Err(PluginError::invalid(
                        "token_env",
                        format!(
                            "the environment variable `{name}` is not set, or not granted to the plugin (grant it with env = [\"{name}\"] in the plugin's [grants])"
                        ),
                    ));
                }
            }
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(PluginError::invalid(
            "token",
            "no API token: set option `token`, or `token_env` to the name of a granted environment variable that holds it",
        ))?;
        if token.chars().any(|c| c.is_control()) {
            return Err(PluginError::invalid(
                "token",
                "the API token contains control characters",
            ));
        }
        Ok(Settings {
            base,
            token,
            timeout_ms,
            request_timeout_ms,
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn authorization(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// An HTTP answer from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// The host refused the request: its origin is not granted.
    Denied,
    /// No (complete) answer within the request timeout.
    Timeout,
    /// Could not connect (refused, no route, DNS...).
    Connect(String),
    /// Anything else (protocol errors, oversized bodies...).
    Other(String),
}

/// The message for a request that got no answer.
pub fn transport_message(s: &Settings, e: &TransportError) -> String {
    let origin = s.base.origin();
    match e {
        TransportError::Denied => format!(
            "request to the vendor API at {origin} denied by the host: that origin is not granted (add \"{origin}\" to the plugin's grants: http = [...])"
        ),
        TransportError::Timeout => format!(
            "the vendor API at {origin} did not answer within {} ms",
            s.request_timeout_ms
        ),
        TransportError::Connect(why) => {
            format!("the vendor API at {origin} is unreachable: {why}")
        }
        TransportError::Other(why) => format!("the vendor API at {origin} failed: {why}"),
    }
}

/// The path and query of `GET /proxy` for `request`: what it asks, and
/// nothing when it asks nothing.
pub fn proxy_path(s: &Settings, request: &Request) -> String {
    let want = &request.want;
    let mut query: Vec<(&str, String)> = Vec::new();
    let mut list = |key, items: &[String]| {
        if !items.is_empty() {
            query.push((key, items.join(",")));
        }
    };
    list("region", &want.regions);
    list("avoid_region", &want.avoid_regions);
    list("tags", &want.tags);
    if want.min_tier > 0 {
        query.push(("min_tier", want.min_tier.to_string()));
    }
    if let Some(max) = want.max_tier {
        query.push(("max_tier", max.to_string()));
    }
    if let Some(key) = request.sticky_key.as_deref().filter(|k| !k.is_empty()) {
        query.push(("session", key.to_string()));
    }
    if !request.avoid.is_empty() {
        query.push(("avoid", request.avoid.join(",")));
    }
    let mut path = s.base.path("proxy");
    for (n, (k, v)) in query.iter().enumerate() {
        let v = utf8_percent_encode(v, NON_ALPHANUMERIC);
        path.push_str(&format!("{}{k}={v}", if n == 0 { '?' } else { '&' }));
    }
    path
}

/// At most 120 characters of a body, on one line, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.len() > 120 {
        format!("{}...", &one[..one.floor_char_boundary(120)])
    } else {
        one
    }
}

/// What an answer to `GET /proxy` for `request` means: a proxy, no proxy
/// (one outside what the request admits), or why the API failed.
pub fn parse_proxy_answer(
    s: &Settings,
    request: &Request,
    r: &Response,
) -> Result<Result<Proxy, NoProxy>, String> {
    let origin = s.base.origin();
    match r.status {
        200 => {}
        429 => {
            // Retry-After is seconds or an HTTP date.
            let after = match r.retry_after.as_deref().map(str::trim) {
                Some(v) if v.parse::<u64>().is_ok() => format!("; retry after {v} s"),
                Some(v) if !v.is_empty() => format!("; retry after {}", excerpt(v.as_bytes())),
                _ => String::new(),
            };
            return Err(format!(
                "rate limited by the vendor API at {origin} (HTTP 429){after}"
            ));
        }
        401 | 403 => {
            return Err(format!(
                "the vendor API at {origin} refused the token (HTTP {})",
                r.status
            ));
        }
        500..=599 => {
            return Err(format!(
                "the vendor API at {origin} failed: HTTP {} {}",
                r.status,
                excerpt(&r.body)
            )
            .trim_end()
            .to_string());
        }
        other => {
            return Err(format!(
                "the vendor API at {origin} answered HTTP {other} {}",
                excerpt(&r.body)
            )
            .trim_end()
            .to_string());
        }
    }
    let bad = |why: &str| {
        format!(
            "the vendor API at {origin} answered {why}: {}",
            excerpt(&r.body)
        )
    };
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|_| bad("something that is not JSON"))?;
    let url = v
        .get("url")
        .and_then(|u| u.as_str())
        .ok_or_else(|| bad("without a proxy `url`"))?;
    // Checked as the host will check it, to say so in the vendor's terms.
    if proxy_url::validate(url).is_err() {
        return Err(bad("a proxy URL that is not scheme://host:port"));
    }
    let timeout_ms = match v.get("timeout_ms") {
        None | Some(serde_json::Value::Null) => s.timeout_ms,
        Some(t) => t
            .as_u64()
            .filter(|t| (1..=u64::from(MAX_PROXY_TIMEOUT_MS)).contains(t))
            .map(|t| t as u32)
            .ok_or_else(|| bad("a `timeout_ms` that is not 1 to 600000"))?,
    };
    let text = |key: &str| v.get(key).and_then(|x| x.as_str());
    let region = match text("region") {
        None => None,
        Some(r) => Some(parse_region(r).map_err(|_| bad("a `region` that is not a country code"))?),
    };
    let mut tags = Vec::new();
    if let Some(list) = v.get("tags").and_then(|t| t.as_array()) {
        for t in list {
            let t = t
                .as_str()
                .and_then(|t| parse_tag(t).ok())
                .ok_or_else(|| bad("a `tags` entry that is not a tag"))?;
            tags.push(t);
        }
    }
    let tier = match v.get("tier") {
        None | Some(serde_json::Value::Null) => 0,
        Some(t) => t
            .as_u64()
            .and_then(|t| u8::try_from(t).ok())
            .ok_or_else(|| bad("a `tier` that is not 0 to 255"))?,
    };
    let meta = ProxyMeta { region, tags, tier };
    let mut proxy = Proxy::new(url, timeout_ms).with_meta(meta);
    if let Some(id) = text("id") {
        proxy_url::check_id(id)
            .map_err(|_| bad("an `id` that is not 1-128 printable characters"))?;
        proxy.id = id.to_string();
    }
    if !request.want.admits(&proxy.meta) {
        let got = proxy.meta.to_string();
        return Ok(Err(NoProxy {
            message: format!(
                "the vendor API at {origin} answered a proxy ({}) outside the request's wish ({})",
                if got.is_empty() {
                    "no metadata"
                } else {
                    got.as_str()
                },
                request.want.describe()
            ),
            retry_at_ms: None,
        }));
    }
    Ok(Ok(proxy))
}

/// The body of `POST /report`: `kind` is `None` for a success; the URL the
/// proxy was handed out with, if the plugin still knows it.
pub fn report_body(
    proxy_id: &str,
    proxy_url: Option<&str>,
    kind: Option<&str>,
    site: &str,
) -> Vec<u8> {
    let body = serde_json::json!({
        "proxy_id": proxy_id,
        "proxy_url": proxy_url,
        "outcome": if kind.is_some() { "failure" } else { "success" },
        "kind": kind,
        "site": site,
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn settings() -> Settings {
        Settings::parse(
            None,
            &opts(&[("base_url", "http://127.0.0.1:8080/v1/"), ("token", "t0k")]),
            no_env,
        )
        .unwrap()
    }

    fn answer(status: u16, body: &str) -> Response {
        Response {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn base_urls_split_for_wasi_http() {
        let b = BaseUrl::parse("https://api.vendor.example:8443/v1/").unwrap();
        assert!(b.https);
        assert_eq!(b.authority, "api.vendor.example:8443");
        assert_eq!(b.path("proxy"), "/v1/proxy");
        assert_eq!(b.origin(), "https://api.vendor.example:8443");
        let b = BaseUrl::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(b.path("report"), "/report");
        for bad in [
            "ftp://h",
            "127.0.0.1:80",
            "http://",
            "http://u:p@h/",
            "http://h/?q=1",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_token_comes_from_an_option_or_a_granted_variable() {
        let s = settings();
        assert_eq!(s.authorization(), "Bearer t0k");
        let env = |name: &str| (name == "VENDOR_TOKEN").then(|| "from-env".to_string());
        let s = Settings::parse(
            None,
            &opts(&[("base_url", "http://h"), ("token_env", "VENDOR_TOKEN")]),
            env,
        )
        .unwrap();
        assert_eq!(s.token, "from-env");
        let err = Settings::parse(
            None,
            &opts(&[("base_url", "http://h"), ("token_env", "OTHER")]),
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`OTHER` is not set, or not granted") && err.contains("env = [\"OTHER\"]"),
            "{err}"
        );
        let err = Settings::parse(None, &opts(&[("base_url", "http://h")]), no_env).unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidValue { key, reason } if key == "token" && reason.starts_with("no API token")),
            "{err}"
        );
        let err = Settings::parse(None, &opts(&[("token", "x")]), no_env).unwrap_err();
        assert!(err.to_string().contains("base_url"), "{err}");
    }

    #[test]
    fn call_options_apply_over_init() {
        let init = settings();
        let call = Settings::parse(
            Some(&init),
            &opts(&[("timeout_ms", "5000"), ("host.site", "example.com")]),
            no_env,
        )
        .unwrap();
        assert_eq!(call.token, "t0k");
        assert_eq!(call.timeout_ms, 5000);
        let err = Settings::parse(Some(&init), &opts(&[("tokn", "x")]), no_env).unwrap_err();
        assert_eq!(err, PluginError::unknown_option("tokn"));
    }

    #[test]
    fn describe_lists_every_option_and_hides_the_token() {
        let info = describe();
        assert!(info.get("token").is_some_and(|o| o.secret));
        let keys: Vec<&str> = info.options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "base_url",
                "token",
                "token_env",
                "timeout_ms",
                "request_timeout_ms"
            ]
        );
        assert!(info.check(&opts(&[("tokn", "x")]), true).is_err());
    }

    /// What a request for `domain` asking nothing looks like.
    fn plain() -> Request {
        Request {
            site: ytdlp_plugin_sdk::Site {
                host: "www.video.example".into(),
                domain: "video.example".into(),
            },
            ..Request::default()
        }
    }

    #[test]
    fn the_query_says_what_the_request_asks_and_only_that() {
        let s = settings();
        assert_eq!(proxy_path(&s, &plain()), "/v1/proxy");
        let mut r = plain();
        r.want.regions = vec!["DE".into(), "AT".into()];
        r.want.min_tier = 1;
        r.want.max_tier = Some(2);
        r.sticky_key = Some("login 1&x".into());
        r.avoid = vec!["p1".into(), "p2".into()];
        assert_eq!(
            proxy_path(&s, &r),
            "/v1/proxy?region=DE%2CAT&min_tier=1&max_tier=2&session=login%201%26x&avoid=p1%2Cp2"
        );
    }

    #[test]
    fn a_good_answer_is_a_proxy() {
        let s = settings();
        let p = parse_proxy_answer(
            &s,
            &plain(),
            &answer(
                200,
                r#"{"url": "http://u:p@10.1.1.1:3128", "timeout_ms": 7000}"#,
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.url, "http://u:p@10.1.1.1:3128");
        assert_eq!(p.timeout_ms, 7000);
        assert_eq!(p.id, Proxy::new("http://u:other@10.1.1.1:3128", 1).id);
        let p = parse_proxy_answer(&s, &plain(), &answer(200, r#"{"url": "socks5://h:1080"}"#))
            .unwrap()
            .unwrap();
        assert_eq!(p.timeout_ms, 30_000);
        // With the vendor's id and metadata.
        let body = r#"{"url": "http://h:1", "id": "vendor-7", "region": "de", "tags": ["mobile"], "tier": 2}"#;
        let p = parse_proxy_answer(&s, &plain(), &answer(200, body))
            .unwrap()
            .unwrap();
        assert_eq!(p.id, "vendor-7");
        assert_eq!(p.meta.to_string(), "region=DE;tags=mobile;tier=2");
        assert!(p.check().is_ok());
    }

    #[test]
    fn a_proxy_outside_the_wish_is_no_proxy() {
        let s = settings();
        let mut r = plain();
        r.want.regions = vec!["FR".into()];
        let body = r#"{"url": "http://h:1", "region": "DE"}"#;
        let np = parse_proxy_answer(&s, &r, &answer(200, body))
            .unwrap()
            .unwrap_err();
        assert_eq!(
            np.message,
            "the vendor API at http://127.0.0.1:8080 answered a proxy (region=DE) outside the request's wish (in region FR)"
        );
        r.want.regions = vec!["DE".into()];
        assert!(
            parse_proxy_answer(&s, &r, &answer(200, body))
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn failures_say_what_the_api_did() {
        let s = settings();
        let r = plain();
        let mut limited = answer(429, "slow down");
        limited.retry_after = Some("30".to_string());
        let err = parse_proxy_answer(&s, &r, &limited).unwrap_err();
        assert_eq!(
            err,
            "rate limited by the vendor API at http://127.0.0.1:8080 (HTTP 429); retry after 30 s"
        );
        limited.retry_after = Some("Wed, 21 Oct 2026 07:28:00 GMT".to_string());
        let err = parse_proxy_answer(&s, &r, &limited).unwrap_err();
        assert!(
            err.ends_with("; retry after Wed, 21 Oct 2026 07:28:00 GMT"),
            "{err}"
        );
        let err = parse_proxy_answer(&s, &r, &answer(500, "boom\n")).unwrap_err();
        assert_eq!(
            err,
            "the vendor API at http://127.0.0.1:8080 failed: HTTP 500 boom"
        );
        let err = parse_proxy_answer(&s, &r, &answer(401, "")).unwrap_err();
        assert!(err.contains("refused the token"), "{err}");
        for (body, want) in [
            ("<html>", "not JSON"),
            (r#"{"proxy": "x"}"#, "without a proxy `url`"),
            (r#"{"url": "ftp://h:1"}"#, "not scheme://host:port"),
            (r#"{"url": "http://h:1", "timeout_ms": 0}"#, "timeout_ms"),
            (r#"{"url": "http://h:1", "region": "Germany"}"#, "region"),
            (r#"{"url": "http://h:1", "tags": ["a b"]}"#, "tags"),
            (r#"{"url": "http://h:1", "tier": 300}"#, "tier"),
            (r#"{"url": "http://h:1", "id": "a b"}"#, "id"),
        ] {
            let err = parse_proxy_answer(&s, &r, &answer(200, body)).unwrap_err();
            assert!(err.contains(want), "{body}: {err}");
        }
    }

    #[test]
    fn transport_errors_name_the_origin() {
        let s = settings();
        let m = transport_message(&s, &TransportError::Denied);
        assert!(
            m.contains("denied by the host") && m.contains("\"http://127.0.0.1:8080\""),
            "{m}"
        );
        let m = transport_message(&s, &TransportError::Timeout);
        assert!(m.ends_with("did not answer within 400 ms"), "{m}");
    }

    #[test]
    fn report_bodies_are_the_documented_json() {
        let body = report_body(
            "p1a2b3c4d",
            Some("http://h:1"),
            Some("proxy-timeout"),
            "video.example",
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "proxy_id": "p1a2b3c4d",
                "proxy_url": "http://h:1",
                "outcome": "failure",
                "kind": "proxy-timeout",
                "site": "video.example",
            })
        );
        let v: serde_json::Value =
            serde_json::from_slice(&report_body("p1a2b3c4d", None, None, "")).unwrap();
        assert_eq!(v["outcome"], "success");
        assert!(v["kind"].is_null() && v["proxy_url"].is_null());
    }
}
