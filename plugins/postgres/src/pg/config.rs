//! Connection settings from a `postgres://` URL (the libpq URI form, minus
//! what this client does not do: TLS, several hosts, Unix sockets).

use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::Error;

/// Where and how to connect. `Debug` and [`Config::display`] never show
/// the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    /// Bound on the TCP connect, and on the whole startup (authentication
    /// included).
    pub connect_timeout: Duration,
    /// Bound on one request: from sending it to its `ReadyForQuery`.
    pub io_timeout: Duration,
    /// Run-time parameters sent in the startup message (the server applies
    /// them as `SET` at backend start), e.g. `statement_timeout`,
    /// `search_path`, `application_name`.
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.display())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("params", &self.params)
            .finish()
    }
}

pub const DEFAULT_PORT: u16 = 5432;

fn decode(what: &str, s: &str) -> Result<String, Error> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::Config(format!("the {what} in the URL is not UTF-8 once decoded")))
}

impl Config {
    /// Parses `postgres[ql]://[user[:password]@]host[:port][/dbname][?k=v&...]`.
    /// User, password and database name are percent-decoded. The user
    /// defaults to `postgres`, the database to the user. Query parameters:
    /// `application_name`, `connect_timeout` (seconds, as libpq),
    /// `sslmode=disable` (the only mode: no TLS in this client), and
    /// `options` is refused (give run-time parameters through
    /// [`Config::params`]).
    ///
    /// Errors never contain the password: they show the URL without it.
    pub fn parse(url: &str) -> Result<Config, Error> {
        let shown = redact_url(url);
        let bad = |why: &str| {
            Err(Error::Config(format!(
                "`{shown}` {why} (want postgres://user:password@host:port/dbname)"
            )))
        };
        let rest = match url.split_once("://") {
            Some(("postgres" | "postgresql", rest)) => rest,
            _ => return bad("is not a postgres:// URL"),
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("contains whitespace");
        }
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (decode("user", u)?, Some(decode("password", p)?)),
                None => (decode("user", ui)?, None),
            },
            None => (String::new(), None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return bad("has an unclosed [IPv6 address]");
            };
            match after.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None if after.is_empty() => (h.to_string(), None),
                None => return bad("has junk after the [IPv6 address]"),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return bad("has no host");
        }
        if host.contains(',') {
            return bad("names several hosts (not supported)");
        }
        let port = match port {
            None | Some("") => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad("has a port that is not a number from 1 to 65535"),
            },
        };
        let user = if user.is_empty() {
            "postgres".to_string()
        } else {
            user
        };
        let dbname = match decode("database name", path)? {
            d if d.is_empty() => user.clone(),
            d => d,
        };
        let mut config = Config {
            host,
            port,
            user,
            password,
            dbname,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            params: Vec::new(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode("query parameter", v)?;
            match k {
                "application_name" => config.params.push((k.to_string(), v)),
                "connect_timeout" => match v.parse::<u64>() {
                    Ok(s) if s > 0 => config.connect_timeout = Duration::from_secs(s),
                    _ => return bad("has a connect_timeout that is not a whole number of seconds"),
                },
                "sslmode" if v == "disable" => {}
                "sslmode" => return bad("asks for TLS (only sslmode=disable is supported)"),
                other => return bad(&format!("has an unsupported parameter `{other}`")),
            }
        }
        Ok(config)
    }

    /// `postgres://user@host:port/dbname`: for messages.
    pub fn display(&self) -> String {
        format!(
            "postgres://{}@{}/{}",
            self.user,
            self.hostport(),
            self.dbname
        )
    }

    /// `host:port` (`[v6]:port`): what to connect to, and what a tcp grant
    /// must name.
    pub fn hostport(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL with any password replaced by `***` (best effort, for a URL that
/// may not even parse).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let (userinfo, host) = authority.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}{tail}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_is_decoded() {
        let c = Config::parse("postgres://us%40er:p%3Aw%2Fd%40@127.0.0.1:6543/my%20db").unwrap();
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.as_deref(), Some("p:w/d@"));
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 6543));
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.display(), "postgres://us@er@127.0.0.1:6543/my db");
        assert!(!format!("{c:?}").contains("p:w"));
    }

    #[test]
    fn defaults_and_forms() {
        let c = Config::parse("postgresql://db.internal").unwrap();
        assert_eq!(
            (c.user.as_str(), c.dbname.as_str()),
            ("postgres", "postgres")
        );
        assert_eq!(c.hostport(), "db.internal:5432");
        let c = Config::parse("postgres://u@[::1]:7/d?application_name=x&sslmode=disable").unwrap();
        assert_eq!(c.hostport(), "[::1]:7");
        assert_eq!(c.params, [("application_name".into(), "x".into())]);
        let c = Config::parse("postgres://u@h/?connect_timeout=3").unwrap();
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.dbname, "u");
    }

    #[test]
    fn bad_urls_never_show_the_password() {
        for url in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@/d",
            "postgres://u:hunter2@h:99999/d",
            "postgres://u:hunter2@h/d?sslmode=require",
            "postgres://u:hunter2@h/d?foo=1",
            "postgres://u:hunter2@a,b/d",
            "postgres://u:hunter2@[::1/d",
        ] {
            let err = Config::parse(url).unwrap_err().to_string();
            assert!(!err.contains("hunter2"), "{url}: {err}");
            assert!(err.contains("u:***@"), "{url}: {err}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_url("postgres://u:p@h/d"), "postgres://u:***@h/d");
        assert_eq!(redact_url("postgres://u@h/d"), "postgres://u@h/d");
        assert_eq!(redact_url("postgres://h/d?x=@"), "postgres://h/d?x=@");
    }
}
