//! What a plugin may reach beyond its own memory, as the config states it,
//! and the syntax of each grant. Whether a granted directory exists or a
//! granted host name resolves is checked by the sandbox when the plugin
//! starts, not here.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What a plugin may reach beyond its own memory. Empty means nothing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Host directories visible to the plugin.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Outbound TCP, `host:port` (`port` may be `*`).
    #[serde(default)]
    pub tcp: Vec<String>,
    /// Outbound HTTP origins, `scheme://host[:port]`.
    #[serde(default)]
    pub http: Vec<String>,
    /// Environment variables passed through by name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Key-value buckets (`wit/keyvalue-0.1.wit`) the plugin may open, by
    /// name; each is the plugin's own.
    #[serde(default)]
    pub keyvalue: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default)]
    pub rw: bool,
}

/// One `tcp` grant: a host (an IP address or a name) and a port, or any
/// port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpGrant {
    /// Without IPv6 brackets.
    pub host: String,
    /// `None`: any port (`*`).
    pub port: Option<u16>,
}

impl TcpGrant {
    pub fn parse(entry: &str) -> Result<TcpGrant> {
        let (host, port) = entry
            .rsplit_once(':')
            .with_context(|| format!("tcp: `{entry}` is not host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("tcp: `{entry}` has no host");
        }
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .with_context(|| format!("tcp: `{entry}`: port must be 1-65535 or *"))?,
            ),
        };
        Ok(TcpGrant {
            host: host.to_string(),
            port,
        })
    }
}

/// One `http` grant: an exact origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOrigin {
    pub scheme: String,
    /// Lower case, without IPv6 brackets.
    pub host: String,
    pub port: u16,
}

impl HttpOrigin {
    pub fn parse(entry: &str) -> Result<HttpOrigin> {
        let url = url::Url::parse(entry)
            .with_context(|| format!("http: `{entry}` is not scheme://host[:port]"))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.host_str().is_none()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
        {
            bail!("http: `{entry}` must be http(s)://host[:port] with nothing after it");
        }
        Ok(HttpOrigin {
            scheme: url.scheme().to_string(),
            host: url
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(80),
        })
    }
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty() && self.tcp.is_empty() && self.http.is_empty() && self.env.is_empty()
    }

    /// The grants' syntax, so a bad one refuses the whole config.
    pub fn validate(&self) -> Result<()> {
        for entry in &self.tcp {
            TcpGrant::parse(entry)?;
        }
        for entry in &self.http {
            HttpOrigin::parse(entry)?;
        }
        for name in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                bail!("env: `{name}` is not a variable name");
            }
        }
        for name in &self.keyvalue {
            if !valid_bucket(name) {
                bail!("keyvalue: `{name}` is not a bucket name (1-64 of a-z, 0-9, - and _)");
            }
        }
        for dir in &self.dirs {
            if !dir.guest.starts_with('/') {
                bail!("dirs: guest path `{}` must be absolute", dir.guest);
            }
            if dir.host.as_os_str().is_empty() {
                bail!("dirs: the host path of `{}` is empty", dir.guest);
            }
        }
        Ok(())
    }
}

/// A key-value bucket's name as a grant may give it.
pub fn valid_bucket(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_grants_parse_host_and_port() {
        assert_eq!(
            TcpGrant::parse("127.0.0.1:6379").unwrap(),
            TcpGrant {
                host: "127.0.0.1".into(),
                port: Some(6379)
            }
        );
        assert_eq!(TcpGrant::parse("[::1]:*").unwrap().port, None);
        assert_eq!(TcpGrant::parse("[::1]:*").unwrap().host, "::1");
        assert_eq!(
            TcpGrant::parse("redis.internal:6379").unwrap().host,
            "redis.internal"
        );
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:http", ":80"] {
            assert!(TcpGrant::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn http_grants_are_exact_origins() {
        let o = HttpOrigin::parse("https://API.example").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "api.example", 443)
        );
        for bad in ["ftp://h", "http://h/path", "h:80"] {
            assert!(HttpOrigin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validation_reads_nothing_from_the_world() {
        // A directory that does not exist and a name that does not resolve
        // are the sandbox's business when the plugin starts.
        let g = Grants {
            dirs: vec![DirGrant {
                host: "/does/not/exist".into(),
                guest: "/data".into(),
                rw: false,
            }],
            tcp: vec!["no-such-host.invalid:1".into()],
            ..Grants::default()
        };
        assert!(g.validate().is_ok());
        let g = Grants {
            dirs: vec![DirGrant {
                host: "/tmp".into(),
                guest: "data".into(),
                rw: false,
            }],
            ..Grants::default()
        };
        assert!(g.validate().is_err());
    }
}
