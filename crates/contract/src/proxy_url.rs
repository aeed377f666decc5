//! Proxy URLs: validation of what plugins and users hand us, and masking of
//! credentials wherever a URL is shown.

use std::fmt;

/// Schemes yt-dlp's `--proxy` understands.
pub const SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// Longest proxy URL accepted; real ones are well under 300 bytes.
pub const MAX_LEN: usize = 2048;

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
    #[error("proxy URL has a path, query or fragment; give only scheme://[user:pass@]host:port")]
    Extra,
}

/// A proxy URL that passed [`validate`]. Its `Display` masks the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl(String);

impl ProxyUrl {
    /// The URL as given, credentials included: only for yt-dlp's argv and
    /// for reports to the backend, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A short stable id of this proxy's identity (the whole URL,
    /// credentials included, so two credentials on one proxy are two ids),
    /// safe to show and to use as a metrics label: `p` and 8 hex digits of
    /// a SHA-256 of the URL.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.0.as_bytes());
        let mut id = String::from("p");
        for b in &digest[..4] {
            id.push_str(&format!("{b:02x}"));
        }
        id
    }

    pub fn has_credentials(&self) -> bool {
        url::Url::parse(&self.0)
            .map(|u| !u.username().is_empty() || u.password().is_some())
            .unwrap_or(false)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({})", mask(&self.0))
    }
}

/// Checks a proxy URL before it can reach a yt-dlp command line.
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
    Ok(ProxyUrl(raw.to_string()))
}

/// Replaces the password of a URL with `***` (`user:***@host`). Works on
/// text that does not parse as a URL too, so it is safe for error messages.
pub fn mask(text: &str) -> String {
    // Mask every `scheme://user:pass@` occurrence, whatever surrounds it.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or ')'.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "'\")>,]".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
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
    fn accepts_every_yt_dlp_scheme() {
        for s in SCHEMES {
            let url = format!("{s}://127.0.0.1:8080");
            assert!(validate(&url).is_ok(), "{url}");
        }
        assert!(validate("http://user:pa%40ss@proxy.example:3128").is_ok());
        assert!(validate("socks5h://[::1]:1080").is_ok());
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
        ];
        for (raw, want) in cases {
            assert_eq!(validate(raw).unwrap_err(), want, "{raw:?}");
        }
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
    fn masks_passwords_everywhere() {
        assert_eq!(mask("http://u:secret@h:1"), "http://u:***@h:1");
        assert_eq!(mask("http://h:1"), "http://h:1");
        assert_eq!(mask("http://token@h:1"), "http://token@h:1");
        assert_eq!(
            mask(
                "Unable to connect to proxy 'socks5://a:b@h:1' (caused by x); via http://c:d@e:2/"
            ),
            "Unable to connect to proxy 'socks5://a:***@h:1' (caused by x); via http://c:***@e:2/"
        );
        let p = validate("http://u:secret@h:1").unwrap();
        assert_eq!(p.to_string(), "http://u:***@h:1");
        assert!(!format!("{p:?}").contains("secret"));
        assert_eq!(p.expose(), "http://u:secret@h:1");
        assert!(p.has_credentials());
        let id = p.id();
        assert_eq!((id.len(), id.starts_with('p')), (9, true));
        assert_eq!(id, validate("http://u:secret@h:1").unwrap().id());
        assert_ne!(id, validate("http://u:other@h:1").unwrap().id());
        assert!(!id.contains("secret"));
    }
}
