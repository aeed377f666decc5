//! The vendor API's protocol, independent of the transport so it is tested
//! natively: options, the requests to make, and what each answer means.
//!
//! - `GET {base_url}/proxy` with `Authorization: Bearer {token}` answers
//!   `{"url": "scheme://[user:pass@]host:port", "timeout_ms": N}`
//!   (`timeout_ms` optional);
//! - `POST {base_url}/report` with
//!   `{"proxy_url": ..., "outcome": "success"|"failure", "kind": ...}`
//!   (`kind` is null for a success).
//!
//! Every way the API can fail (429, 5xx, timeouts, unreachable, denied by
//! the host, nonsense answers) becomes a one-line message for the
//! contract's `backend-unavailable`.

use std::time::Duration;

use ytdlp_contract::limits::MAX_PROXY_TIMEOUT_MS;
use ytdlp_contract::options::{parse_num, unknown};
use ytdlp_contract::proxy_url;

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
    pub fn parse(url: &str) -> Result<BaseUrl, String> {
        let bad = |why: &str| {
            Err(format!(
                "option `base_url`: `{url}` {why} (want http(s)://host[:port][/path])"
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

const KNOWN: &[&str] = &[
    "base_url",
    "token",
    "token_env",
    "timeout_ms",
    "request_timeout_ms",
];

impl Settings {
    /// Settings from `options` over `base` (none at `init`). `env` looks up
    /// an environment variable (only granted ones are visible to a plugin).
    /// A key given several times takes its last value; `host.*` keys are
    /// the host's context; other unknown keys are refused.
    pub fn parse(
        base: Option<&Settings>,
        options: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, String> {
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
                "timeout_ms" => timeout_ms = parse_num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "request_timeout_ms" => request_timeout_ms = parse_num(key, v, 1, 600_000)?,
                other => {
                    if let Some(refusal) = unknown(other, KNOWN) {
                        return Err(refusal);
                    }
                }
            }
        }
        let base = base_url.ok_or(
            "option `base_url` is missing: the vendor API's URL, e.g. https://api.vendor.example/v1",
        )?;
        // `token` wins over `token_env` when both are given.
        if let Some(t) = token_opt {
            token = Some(t);
        } else if let Some(name) = token_env {
            match env(&name).filter(|v| !v.trim().is_empty()) {
                Some(v) => token = Some(v.trim().to_string()),
                None => {
                    return Err(format!(
                        "option `token_env`: the environment variable `{name}` is not set, or not granted to the plugin (grant it with env = [\"{name}\"] in the plugin's [grants])"
                    ));
                }
            }
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(
            "no API token: set option `token`, or `token_env` to the name of a granted environment variable that holds it",
        )?;
        if token.chars().any(|c| c.is_control()) {
            return Err("the API token contains control characters".to_string());
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

/// A proxy from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub url: String,
    pub timeout_ms: u32,
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

/// What an answer to `GET /proxy` means: a proxy, or why not.
pub fn parse_proxy_answer(s: &Settings, r: &Response) -> Result<Pick, String> {
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
    Ok(Pick {
        url: url.to_string(),
        timeout_ms,
    })
}

/// The body of `POST /report`: `kind` is `None` for a success.
pub fn report_body(proxy_url: &str, kind: Option<&str>) -> Vec<u8> {
    let body = serde_json::json!({
        "proxy_url": proxy_url,
        "outcome": if kind.is_some() { "failure" } else { "success" },
        "kind": kind,
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
        .unwrap_err();
        assert!(
            err.contains("`OTHER` is not set, or not granted") && err.contains("env = [\"OTHER\"]"),
            "{err}"
        );
        let err = Settings::parse(None, &opts(&[("base_url", "http://h")]), no_env).unwrap_err();
        assert!(err.starts_with("no API token"), "{err}");
        let err = Settings::parse(None, &opts(&[("token", "x")]), no_env).unwrap_err();
        assert!(err.contains("base_url"), "{err}");
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
        assert!(err.contains("unknown option `tokn`"), "{err}");
    }

    #[test]
    fn a_good_answer_is_a_proxy() {
        let s = settings();
        let p = parse_proxy_answer(
            &s,
            &answer(
                200,
                r#"{"url": "http://u:p@10.1.1.1:3128", "timeout_ms": 7000}"#,
            ),
        )
        .unwrap();
        assert_eq!(p.url, "http://u:p@10.1.1.1:3128");
        assert_eq!(p.timeout_ms, 7000);
        let p = parse_proxy_answer(&s, &answer(200, r#"{"url": "socks5://h:1080"}"#)).unwrap();
        assert_eq!(p.timeout_ms, 30_000);
    }

    #[test]
    fn failures_say_what_the_api_did() {
        let s = settings();
        let mut limited = answer(429, "slow down");
        limited.retry_after = Some("30".to_string());
        let err = parse_proxy_answer(&s, &limited).unwrap_err();
        assert_eq!(
            err,
            "rate limited by the vendor API at http://127.0.0.1:8080 (HTTP 429); retry after 30 s"
        );
        limited.retry_after = Some("Wed, 21 Oct 2026 07:28:00 GMT".to_string());
        let err = parse_proxy_answer(&s, &limited).unwrap_err();
        assert!(
            err.ends_with("; retry after Wed, 21 Oct 2026 07:28:00 GMT"),
            "{err}"
        );
        let err = parse_proxy_answer(&s, &answer(500, "boom\n")).unwrap_err();
        assert_eq!(
            err,
            "the vendor API at http://127.0.0.1:8080 failed: HTTP 500 boom"
        );
        let err = parse_proxy_answer(&s, &answer(401, "")).unwrap_err();
        assert!(err.contains("refused the token"), "{err}");
        for (body, want) in [
            ("<html>", "not JSON"),
            (r#"{"proxy": "x"}"#, "without a proxy `url`"),
            (r#"{"url": "ftp://h:1"}"#, "not scheme://host:port"),
            (r#"{"url": "http://h:1", "timeout_ms": 0}"#, "timeout_ms"),
        ] {
            let err = parse_proxy_answer(&s, &answer(200, body)).unwrap_err();
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
        let v: serde_json::Value =
            serde_json::from_slice(&report_body("http://h:1", Some("proxy-timeout"))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"proxy_url": "http://h:1", "outcome": "failure", "kind": "proxy-timeout"})
        );
        let v: serde_json::Value =
            serde_json::from_slice(&report_body("http://h:1", None)).unwrap();
        assert_eq!(v["outcome"], "success");
        assert!(v["kind"].is_null());
    }
}
