//! Proxy URLs: validation of what plugins and users hand us, and masking of
//! credentials wherever a URL is shown.
//!
//! A [`ProxyUrl`] is shown as `scheme://***@host:port` when it carries any
//! credentials (the user name too: vendors put API keys there), with a
//! short stable [`ProxyUrl::id`] to tell two credentials on one proxy
//! apart. [`mask_url`] and [`mask`] hide credentials in strings that may not
//! even parse (an error message about a bad URL must not echo its password).

use std::fmt;

/// Schemes yt-dlp's `--proxy` understands.
pub const SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// Longest proxy URL accepted; real ones are well under 300 bytes.
pub const MAX_LEN: usize = 2048;

/// What takes the place of credentials in output.
pub const HIDDEN: &str = "***";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidProxyUrl {
    #[error("empty proxy URL")]
    Empty,
    #[error("proxy URL is {0} bytes long (at most {MAX_LEN})")]
    TooLong(usize),
    #[error("proxy URL contains whitespace or control characters")]
    ControlChars,
    #[error("proxy URL starts with `-` (would be read as an option)")]
    LeadingDash,
    #[error("proxy URL does not parse: {0}")]
    Parse(String),
    #[error("proxy scheme `{0}` is not one of http, https, socks4, socks4a, socks5, socks5h")]
    Scheme(String),
    #[error("proxy URL has no host")]
    NoHost,
    #[error("proxy URL has no port; give scheme://[user:pass@]host:port")]
    NoPort,
    #[error(
        "proxy URL has more than one `@`; percent-encode an `@` in a user name or password as %40"
    )]
    TwoAts,
    #[error("proxy URL has a path, query or fragment; give only scheme://[user:pass@]host:port")]
    Extra,
}

/// Longest proxy id the contract allows (`proxy.id`).
pub const MAX_ID_LEN: usize = 128;

/// Checks a proxy id as the 0.2 contract states it: 1 to [`MAX_ID_LEN`]
/// bytes of printable ASCII without spaces (ids are shown to users and
/// typed back on command lines, so no whitespace or control characters).
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("the proxy id is empty".to_string());
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!(
            "the proxy id is {} bytes long (at most {MAX_ID_LEN})",
            id.len()
        ));
    }
    if !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the proxy id has characters other than printable ASCII (no spaces)".to_string(),
        );
    }
    Ok(())
}

/// A proxy URL that passed [`validate`]. Its `Display` hides the
/// credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    raw: String,
    shown: String,
}

impl ProxyUrl {
    /// The URL as given, credentials included: only for yt-dlp and for
    /// reports to the backend, never for output.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// A short stable id of this proxy's identity (the whole URL,
    /// credentials included, so two credentials on one proxy are two ids),
    /// safe to show and to use as a metrics label: `p` and 8 hex digits of
    /// a SHA-256 of the URL.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.raw.as_bytes());
        let mut id = String::from("p");
        for b in &digest[..4] {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }

    /// A short stable id of where the proxy is and who logs in, without the
    /// password: `p` and 8 hex digits of a SHA-256 of
    /// `scheme://user@host:port`. Rotating a password keeps it; two user
    /// names on one proxy are two ids. What 0.2 plugins built on the SDK use
    /// as the contract's proxy `id`.
    pub fn identity_id(&self) -> String {
        use sha2::Digest;
        let user = self.credentials().map(|(u, _)| u).unwrap_or_default();
        let identity = format!("{}://{}@{}", self.scheme(), user, self.host_port());
        let digest = sha2::Sha256::digest(identity.as_bytes());
        let mut id = String::from("p");
        for b in &digest[..4] {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials().is_some()
    }

    /// The user name and password, percent-decoded (`None`: neither).
    pub fn credentials(&self) -> Option<(String, Option<String>)> {
        let u = url::Url::parse(&self.raw).ok()?;
        if u.username().is_empty() && u.password().is_none() {
            return None;
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Some((decode(u.username()), u.password().map(decode)))
    }
}

impl ProxyUrl {
    /// A proxy URL from its parts (the 0.2 contract's `proxy` record):
    /// credentials percent-encoded once, here, and the result validated
    /// like any other. An IPv6 host is given without brackets.
    pub fn from_parts(
        scheme: &str,
        host: &str,
        port: u16,
        credentials: Option<(&str, &str)>,
    ) -> Result<ProxyUrl, InvalidProxyUrl> {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        // Everything but RFC 3986's unreserved characters.
        const USERINFO: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        if host.is_empty() {
            return Err(InvalidProxyUrl::NoHost);
        }
        if port == 0 {
            return Err(InvalidProxyUrl::Parse(
                "port 0 (no proxy listens there)".into(),
            ));
        }
        // A host name's labels never start with `-` (RFC 1123); one that
        // does is an option smuggled in, whatever yt-dlp would make of it.
        if host.starts_with('-') {
            return Err(InvalidProxyUrl::Parse(
                "the host starts with `-`, which a host name cannot".into(),
            ));
        }
        if host
            .chars()
            .any(|c| "/?#@[]".contains(c) || c.is_whitespace())
            && !host.contains(':')
        {
            return Err(InvalidProxyUrl::Parse(
                "the host has characters a host name cannot have".into(),
            ));
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let userinfo = match credentials {
            None => String::new(),
            Some((u, "")) => format!("{}@", utf8_percent_encode(u, USERINFO)),
            Some((u, p)) => format!(
                "{}:{}@",
                utf8_percent_encode(u, USERINFO),
                utf8_percent_encode(p, USERINFO)
            ),
        };
        validate(&format!("{scheme}://{userinfo}{host}:{port}"))
    }

    /// The scheme: `http`, `socks5h`, ...
    pub fn scheme(&self) -> &str {
        self.raw.split_once("://").map_or("", |(s, _)| s)
    }

    /// `host:port` as shown (IPv6 in brackets).
    pub fn host_port(&self) -> &str {
        self.shown
            .split_once("://")
            .map_or("", |(_, r)| r.rsplit('@').next().unwrap_or(r))
    }

    /// The host (IPv6 without brackets) and the port.
    pub fn host_and_port(&self) -> (String, u16) {
        let hp = self.host_port();
        let (h, p) = hp.rsplit_once(':').unwrap_or((hp, "0"));
        (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse().unwrap_or(0),
        )
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", self.shown)
    }
}

/// Checks a proxy URL before it can reach yt-dlp: one of yt-dlp's schemes,
/// `[user[:password]@]host:port` and nothing else, no whitespace or control
/// characters, no leading `-`.
pub fn validate(raw: &str) -> Result<ProxyUrl, InvalidProxyUrl> {
    if raw.is_empty() {
        return Err(InvalidProxyUrl::Empty);
    }
    if raw.len() > MAX_LEN {
        return Err(InvalidProxyUrl::TooLong(raw.len()));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidProxyUrl::ControlChars);
    }
    if raw.starts_with('-') {
        return Err(InvalidProxyUrl::LeadingDash);
    }
    let parsed = url::Url::parse(raw).map_err(|e| InvalidProxyUrl::Parse(e.to_string()))?;
    if !SCHEMES.contains(&parsed.scheme()) {
        return Err(InvalidProxyUrl::Scheme(parsed.scheme().to_string()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(InvalidProxyUrl::NoHost);
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some()
    {
        return Err(InvalidProxyUrl::Extra);
    }
    // The raw authority: what a reader of the URL sees, before the parser's
    // normalisation (it takes the last `@`, and drops a default port).
    let after_scheme = raw.split_once("://").map_or(raw, |(_, r)| r);
    let authority = after_scheme.split('/').next().unwrap_or("");
    if authority.matches('@').count() > 1 {
        return Err(InvalidProxyUrl::TwoAts);
    }
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let port = match hostport.rfind(']') {
        Some(i) => hostport[i + 1..].strip_prefix(':'),
        None => hostport.rsplit_once(':').map(|(_, p)| p),
    };
    if !port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(InvalidProxyUrl::NoPort);
    }
    let shown = if authority.contains('@') {
        format!("{}://{HIDDEN}@{hostport}", parsed.scheme())
    } else {
        format!("{}://{hostport}", parsed.scheme())
    };
    Ok(ProxyUrl {
        raw: raw.to_string(),
        shown,
    })
}

/// `candidate`, meant to be one URL (valid or not), with anything before its
/// last `@` hidden: `http://user:s3cret/x@h:1` -> `http://***@h:1`, and
/// `user:pw@h:1` (no scheme) -> `***@h:1`.
pub fn mask_url(candidate: &str) -> String {
    let (scheme, rest) = match candidate.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, candidate),
    };
    let rest = match rest.rfind('@') {
        Some(at) => format!("{HIDDEN}{}", &rest[at..]),
        None => rest.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{rest}"),
        None => rest,
    }
}

/// Free text with the credentials of every `scheme://...@` in it hidden.
/// A URL runs to the next whitespace; anything before its last `@` is
/// hidden (a password may hold `/`, `)`, `,` or `'`). This errs towards
/// hiding too much; secrets the host knows are also redacted by value at
/// output.
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let token = &tail[..end];
        match token.rfind('@') {
            Some(at) => {
                out.push_str(HIDDEN);
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_id_ignores_the_password_only() {
        let a = validate("http://u:one@h:1").unwrap();
        let b = validate("http://u:two@h:1").unwrap();
        let c = validate("http://v:one@h:1").unwrap();
        let d = validate("socks5://u:one@h:1").unwrap();
        assert_eq!(a.identity_id(), b.identity_id());
        assert_ne!(a.identity_id(), c.identity_id());
        assert_ne!(a.identity_id(), d.identity_id());
        assert_ne!(a.id(), b.id());
        let p = ProxyUrl::from_parts("http", "::1", 8080, Some(("u s", "p@ss:w"))).unwrap();
        assert_eq!(p.expose(), "http://u%20s:p%40ss%3Aw@[::1]:8080");
        assert_eq!(p.host_and_port(), ("::1".to_string(), 8080));
        assert_eq!(p.scheme(), "http");
        assert_eq!(
            p.credentials(),
            Some(("u s".to_string(), Some("p@ss:w".to_string())))
        );
        for (host, port) in [("h", 0), ("-x", 1), ("--exec=touch /tmp/x", 1), ("a/b", 1)] {
            assert!(
                ProxyUrl::from_parts("http", host, port, None).is_err(),
                "{host}:{port}"
            );
        }
    }

    #[test]
    fn ids_are_short_printable_ascii() {
        assert!(check_id("p1a2b3c4d").is_ok());
        assert!(check_id("p1a2b3c4d-2").is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_LEN)).is_ok());
        let long = "x".repeat(MAX_ID_LEN + 1);
        for bad in ["", "a b", "a\nb", "caf\u{e9}", long.as_str()] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn accepts_every_yt_dlp_scheme() {
        for s in SCHEMES {
            let url = format!("{s}://127.0.0.1:8080");
            assert!(validate(&url).is_ok(), "{url}");
        }
        assert!(validate("http://user:pa%40ss@proxy.example:3128").is_ok());
        assert!(validate("socks5h://[::1]:1080").is_ok());
        assert!(validate("http://u:pa)ss@h:1").is_ok());
    }

    #[test]
    fn refuses_what_must_never_reach_yt_dlp() {
        let cases = [
            ("", InvalidProxyUrl::Empty),
            ("--exec=touch /tmp/x", InvalidProxyUrl::ControlChars),
            ("--exec=touch", InvalidProxyUrl::LeadingDash),
            ("file:///etc/passwd", InvalidProxyUrl::Scheme("file".into())),
            ("ftp://h:21", InvalidProxyUrl::Scheme("ftp".into())),
            ("http://h:1\n--exec", InvalidProxyUrl::ControlChars),
            ("http://h:1/path", InvalidProxyUrl::Extra),
            ("http://h:1?q=1", InvalidProxyUrl::Extra),
            ("http://127.0.0.1", InvalidProxyUrl::NoPort),
            ("http://u:p@127.0.0.1:1@x", InvalidProxyUrl::TwoAts),
            ("socks5://[::1]", InvalidProxyUrl::NoPort),
        ];
        for (raw, want) in cases {
            assert_eq!(validate(raw).unwrap_err(), want, "{raw:?}");
        }
        // A default port written out is still a port.
        assert!(validate("http://127.0.0.1:80").is_ok());
        assert!(matches!(
            validate(&format!("http://{}:1", "a".repeat(3000))),
            Err(InvalidProxyUrl::TooLong(_))
        ));
        assert!(matches!(
            validate("not a url"),
            Err(InvalidProxyUrl::ControlChars)
        ));
        assert!(matches!(validate("h:1"), Err(InvalidProxyUrl::Scheme(_))));
    }

    #[test]
    fn shows_no_credential_and_names_each_identity() {
        let p = validate("http://u:secret@h:1").unwrap();
        assert_eq!(p.to_string(), "http://***@h:1");
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(p.expose(), "http://u:secret@h:1");
        assert_eq!(
            p.credentials(),
            Some(("u".to_string(), Some("secret".to_string())))
        );
        let key = validate("http://APIKEY:@vendor.example:8011").unwrap();
        assert_eq!(key.to_string(), "http://***@vendor.example:8011");
        assert_eq!(validate("http://h:1").unwrap().to_string(), "http://h:1");
        assert_eq!(validate("http://h:1").unwrap().credentials(), None);
        let id = p.id();
        assert_eq!((id.len(), id.starts_with('p')), (9, true));
        assert_eq!(id, validate("http://u:secret@h:1").unwrap().id());
        assert_ne!(id, validate("http://u:other@h:1").unwrap().id());
        assert!(!id.contains("secret"));
    }

    #[test]
    fn masks_credentials_in_any_text() {
        assert_eq!(mask("http://u:secret@h:1"), "http://***@h:1");
        assert_eq!(mask("http://token@h:1"), "http://***@h:1");
        assert_eq!(mask("http://h:1"), "http://h:1");
        for raw in [
            "http://u:pa)ss@h:1",
            "http://u:pa,ss@h:1",
            "http://u:it's@h:1",
            "socks5://u:p]w@h:1080",
            "http://u:s3cret/x@127.0.0.1:9",
        ] {
            let m = mask(&format!("error: ({raw}), retrying"));
            assert!(
                !m.contains("pa")
                    && !m.contains("it's")
                    && !m.contains("s3cret")
                    && !m.contains("p]w"),
                "{m}"
            );
        }
        assert_eq!(
            mask(
                "Unable to connect to proxy 'socks5://a:b@h:1' (caused by x); via http://c:d@e:2/"
            ),
            "Unable to connect to proxy 'socks5://***@h:1' (caused by x); via http://***@e:2/"
        );
        assert_eq!(
            mask_url("http://user:s3cret/x@127.0.0.1:9"),
            "http://***@127.0.0.1:9"
        );
        assert_eq!(mask_url("user:pw@127.0.0.1:3128"), "***@127.0.0.1:3128");
        assert_eq!(mask_url("http://u:pa ss@h:1"), "http://***@h:1");
        assert_eq!(mask_url("127.0.0.1:3128"), "127.0.0.1:3128");
    }
}
