//! What a backend hands out and reports: a proxy (its id, URL, timeout and
//! metadata) and a stats row, in plain Rust; the glue turns them into the
//! contract's records.

use ytdlp_contract::limits::{MAX_PROXY_TIMEOUT_MS, MIN_PROXY_TIMEOUT_MS};
use ytdlp_contract::proxy_list::ProxyEntry;
use ytdlp_contract::proxy_url::{self, ProxyUrl};
use ytdlp_contract::{FailureDetail, FailureKind, ProxyMeta, ProxyState, parse_region, parse_tag};

/// A proxy for one attempt.
///
/// The contract's record has the URL split into scheme, host, port and
/// credentials; a backend gives it whole here, and the glue splits it
/// (checking it as the host will: see [`Proxy::check`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Stable across calls and restarts and independent of the password:
    /// reports name the proxy by it. Empty: the glue uses the URL's
    /// [`ProxyUrl::identity_id`].
    pub id: String,
    /// `scheme://[user:password@]host:port`, the scheme one of http,
    /// https, socks4, socks4a, socks5, socks5h.
    pub url: String,
    /// Per-operation timeout through this proxy (yt-dlp's
    /// `--socket-timeout`), 1 to 600000 ms.
    pub timeout_ms: u32,
    /// Region, tags and tier.
    pub meta: ProxyMeta,
}

impl Proxy {
    /// A proxy at `url`, its id the URL's identity (without the password,
    /// so rotating a password keeps it), no metadata. An invalid URL gets
    /// an empty id and is refused by the glue.
    pub fn new(url: impl Into<String>, timeout_ms: u32) -> Proxy {
        let url = url.into();
        let id = proxy_url::validate(&url)
            .map(|u| u.identity_id())
            .unwrap_or_default();
        Proxy {
            id,
            url,
            timeout_ms,
            meta: ProxyMeta::default(),
        }
    }

    /// A proxy from a proxy-list entry, with its metadata.
    pub fn from_entry(entry: &ProxyEntry, timeout_ms: u32) -> Proxy {
        Proxy {
            id: entry.url.identity_id(),
            url: entry.url.expose().to_string(),
            timeout_ms,
            meta: entry.meta.clone(),
        }
    }

    /// The same proxy with another id.
    pub fn with_id(mut self, id: impl Into<String>) -> Proxy {
        self.id = id.into();
        self
    }

    /// The same proxy with metadata.
    pub fn with_meta(mut self, meta: ProxyMeta) -> Proxy {
        self.meta = meta;
        self
    }

    /// Checks the proxy as the host will (the URL, the id, the timeout,
    /// canonical region and tags) and returns its URL, parsed. The error
    /// names the problem and never holds the credentials, so the glue
    /// can answer `backend-unavailable` with it.
    pub fn check(&self) -> Result<ProxyUrl, String> {
        let url = proxy_url::validate(&self.url).map_err(|e| format!("invalid proxy URL: {e}"))?;
        if !self.id.is_empty() {
            proxy_url::check_id(&self.id).map_err(|e| format!("invalid proxy id: {e}"))?;
        }
        if !(MIN_PROXY_TIMEOUT_MS..=MAX_PROXY_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!(
                "invalid proxy timeout: {} ms (want {MIN_PROXY_TIMEOUT_MS} to {MAX_PROXY_TIMEOUT_MS})",
                self.timeout_ms
            ));
        }
        if let Some(r) = &self.meta.region
            && parse_region(r).ok().as_ref() != Some(r)
        {
            return Err(format!(
                "invalid proxy region `{r}` (an upper-case ISO 3166-1 code: `DE`, `US-CA`)"
            ));
        }
        if let Some(t) = self
            .meta
            .tags
            .iter()
            .find(|t| parse_tag(t).ok().as_ref() != Some(*t))
        {
            return Err(format!("invalid proxy tag `{t}` (1-64 of `A-Za-z0-9._-`)"));
        }
        Ok(url)
    }

    /// The id the contract gets: the one set, else the URL's identity.
    pub fn id_or_identity(&self, url: &ProxyUrl) -> String {
        if self.id.is_empty() {
            url.identity_id()
        } else {
            self.id.clone()
        }
    }
}

/// Statistics of one proxy, for `ytdlp-host proxies stats`. The row carries
/// the proxy as `get-proxy` would hand it out (the contract's
/// `proxy-stats` does), checked like one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyStats {
    pub proxy: Proxy,
    pub successes: u64,
    /// All failures reported against this proxy, of any kind.
    pub failures: u64,
    /// Proxy faults (connect, timeout, auth) since the last success.
    pub consecutive_failures: u32,
    pub state: ProxyState,
    /// When the proxy was last handed out (ms since the Unix epoch).
    pub last_used_ms: Option<u64>,
    /// Anything else to show, as key/value pairs.
    pub extra: Vec<(String, String)>,
}

impl ProxyStats {
    /// A row for `proxy` with nothing counted yet.
    pub fn new(proxy: Proxy) -> ProxyStats {
        ProxyStats {
            proxy,
            successes: 0,
            failures: 0,
            consecutive_failures: 0,
            state: ProxyState::Active,
            last_used_ms: None,
            extra: Vec::new(),
        }
    }
}

/// A failed attempt, as the host classified it (the contract's `failure`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// A short excerpt of yt-dlp's error, credentials removed.
    pub message: String,
    pub detail: FailureDetail,
    /// How long the attempt took.
    pub elapsed_ms: u32,
}

impl Failure {
    /// A failure of `kind` with no detail (for tests).
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            detail: FailureDetail::default(),
            elapsed_ms: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ytdlp_contract::proxy_list::parse_entry;

    #[test]
    fn the_id_is_the_identity_without_the_password() {
        let a = Proxy::new("http://u:one@h:1", 1000);
        let b = Proxy::new("http://u:two@h:1", 1000);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 9);
        assert_ne!(a.id, Proxy::new("http://v:one@h:1", 1000).id);
        let e = parse_entry("socks5h://10.0.0.2:1080;region=DE;tier=1").unwrap();
        let p = Proxy::from_entry(&e, 5000);
        assert_eq!(p.url, "socks5h://10.0.0.2:1080");
        assert_eq!((p.meta.region.as_deref(), p.meta.tier), (Some("DE"), 1));
        assert_eq!(p.id, e.url.identity_id());
    }

    #[test]
    fn check_names_the_problem_and_never_the_password() {
        let ok = Proxy::new("socks5://u:s3cret@[::1]:1080", 30_000);
        let url = ok.check().unwrap();
        assert_eq!(url.host_and_port(), ("::1".to_string(), 1080));
        let bad = |p: Proxy, want: &str| {
            let e = p.check().unwrap_err();
            assert!(e.contains(want) && !e.contains("s3cret"), "{e}");
        };
        bad(Proxy::new("ftp://u:s3cret@h:21", 1000), "invalid proxy URL");
        bad(Proxy::new("http://u:s3cret@h", 1000), "no port");
        assert!(Proxy::new("ftp://h:21", 1000).id.is_empty());
        bad(Proxy::new("http://h:1", 0), "timeout");
        bad(Proxy::new("http://h:1", 600_001), "timeout");
        bad(
            Proxy::new("http://h:1", 1).with_id("a b"),
            "invalid proxy id",
        );
        let meta = |region: &str, tag: &str| ProxyMeta {
            region: Some(region.to_string()),
            tags: vec![tag.to_string()],
            tier: 0,
        };
        bad(
            Proxy::new("http://h:1", 1).with_meta(meta("de", "x")),
            "region",
        );
        bad(
            Proxy::new("http://h:1", 1).with_meta(meta("DE", "a b")),
            "tag",
        );
        assert!(
            Proxy::new("http://h:1", 1)
                .with_meta(meta("US-CA", "res.1"))
                .check()
                .is_ok()
        );
    }

    #[test]
    fn an_empty_id_becomes_the_identity() {
        let p = Proxy::new("http://u:p@h:1", 1).with_id("");
        let url = p.check().unwrap();
        assert_eq!(p.id_or_identity(&url), url.identity_id());
        let named = p.with_id("mine");
        assert_eq!(named.id_or_identity(&url), "mine");
    }
}
