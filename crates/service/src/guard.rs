//! Who may talk to the service at all, before any token is looked at:
//!
//! - the `Host` header must name this service: an IP address (a DNS
//!   rebinding attack needs a name), `localhost`, or a name in `[serve]
//!   allowed_hosts`;
//! - a browser's `Origin`, when sent, must be this service's own or one in
//!   `[serve] cors_origins` (no CORS otherwise).

use std::net::Ipv4Addr;

/// The Host and Origin rules of one service.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Lower case, `name` or `name:port`.
    allowed_hosts: Vec<String>,
    /// Exact origins (`https://app.example.com`), lower case.
    cors_origins: Vec<String>,
}

impl Guard {
    pub fn new(allowed_hosts: &[String], cors_origins: &[String]) -> Guard {
        Guard {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            cors_origins: cors_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Why a `Host` header value is refused; `None` if it is accepted.
    pub fn refuse_host(&self, host: Option<&str>) -> Option<String> {
        let Some(host) = host else {
            return Some("no Host header".to_string());
        };
        let host = host.to_ascii_lowercase();
        let name = split_host(&host);
        // An entry without a port matches the name on any port.
        let ok = name.starts_with('[') // an IPv6 literal
            || name.parse::<Ipv4Addr>().is_ok()
            || name == "localhost"
            || self
                .allowed_hosts
                .iter()
                .any(|a| *a == host || (!a.contains(':') && a == name));
        (!ok).then(|| {
            format!(
                "Host `{host}` is not this service's name; add it to [serve] allowed_hosts if clients use it"
            )
        })
    }

    /// Why an `Origin` is refused: not this service's own (`host` is the
    /// request's Host), not a configured CORS origin.
    pub fn refuse_origin(&self, origin: &str, host: &str) -> Option<String> {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.cors_origins.contains(&o) {
            return None;
        }
        let same = o.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https") && authority == host.to_ascii_lowercase()
        });
        (!same).then(|| {
            format!(
                "Origin `{origin}` may not call this API; list it in [serve] cors_origins to allow a web app"
            )
        })
    }

    pub fn cors_origins(&self) -> &[String] {
        &self.cors_origins
    }
}

/// The name part of a Host value (`[v6]:port` too).
fn split_host(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_that_could_be_a_rebinding_are_refused() {
        let g = Guard::new(
            &["downloads.example.com".into(), "dl.internal:8080".into()],
            &[],
        );
        for ok in [
            "127.0.0.1:8080",
            "10.0.0.5",
            "[::1]:8080",
            "localhost:8080",
            "LOCALHOST",
            "downloads.example.com",
            "downloads.example.com:443",
            "dl.internal:8080",
        ] {
            assert_eq!(g.refuse_host(Some(ok)), None, "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "dl.internal:9090",
            "127.0.0.1.evil.example",
        ] {
            let why = g.refuse_host(Some(bad)).unwrap();
            assert!(why.contains("allowed_hosts"), "{bad}: {why}");
        }
        assert!(g.refuse_host(None).is_some());
    }

    #[test]
    fn origins_are_our_own_or_configured() {
        let g = Guard::new(&[], &["https://app.example.com".into()]);
        assert_eq!(
            g.refuse_origin("https://app.example.com", "10.0.0.5:8080"),
            None
        );
        assert_eq!(
            g.refuse_origin("http://127.0.0.1:8080", "127.0.0.1:8080"),
            None
        );
        assert!(
            g.refuse_origin("http://evil.example", "127.0.0.1:8080")
                .is_some()
        );
        assert!(g.refuse_origin("null", "127.0.0.1:8080").is_some());
        assert!(
            g.refuse_origin("http://127.0.0.1:9999", "127.0.0.1:8080")
                .is_some()
        );
    }
}
