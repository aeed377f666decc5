//! Proxy lists as people have them: one proxy per line in the formats
//! vendors and free lists use, with an optional metadata suffix.
//!
//! ```text
//! # comments and blank lines are skipped
//! http://user:pass@10.0.0.1:3128
//! socks5h://10.0.0.2:1080;region=DE;tags=residential,vendor-a;tier=1
//! 10.0.0.3:3128                     # no scheme: http://
//! user:pass@10.0.0.4:3128
//! 10.0.0.5:3128:user:pass           # host:port:user:pass
//! ```
//!
//! The same syntax is `--proxy 'URL;region=DE;tier=1'` on the command line
//! and a `proxy` option of the bundled plugin.

use crate::proxy_url::{self, InvalidProxyUrl, ProxyUrl};
use crate::request::{ProxyMeta, parse_region, parse_tag};

/// One proxy of a list: its URL and what is known about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyEntry {
    pub url: ProxyUrl,
    pub meta: ProxyMeta,
    /// The line had no scheme and was taken as `http://` (worth a notice).
    pub assumed_http: bool,
}

impl ProxyEntry {
    /// The entry in the list's own syntax: `URL;region=DE;tier=1`, with the
    /// credentials in clear (for a plugin's init options, never for output).
    pub fn to_line(&self) -> String {
        let meta = self.meta.to_string();
        if meta.is_empty() {
            self.url.expose().to_string()
        } else {
            format!("{};{meta}", self.url.expose())
        }
    }
}

impl ProxyEntry {
    /// An entry from its parts (the 0.2 contract's `proxy-spec`): the URL
    /// in any format of a list line, the metadata checked as in a line's
    /// suffix (regions made canonical, repeated tags dropped).
    pub fn from_spec(
        url: &str,
        region: Option<&str>,
        tags: &[String],
        tier: u8,
    ) -> Result<ProxyEntry, BadEntry> {
        let (url, assumed_http) = parse_address(url.trim())?;
        let mut meta = ProxyMeta {
            region: region
                .map(|r| parse_region(r).map_err(BadEntry::Value))
                .transpose()?,
            tags: Vec::new(),
            tier,
        };
        for t in tags {
            let t = parse_tag(t).map_err(BadEntry::Value)?;
            if !meta.tags.contains(&t) {
                meta.tags.push(t);
            }
        }
        Ok(ProxyEntry {
            url,
            meta,
            assumed_http,
        })
    }
}

/// Why a line is not a proxy (never holding the line's credentials).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadEntry {
    #[error("{0}")]
    Url(#[from] InvalidProxyUrl),
    #[error("`{0}` is not a metadata key (region, tags, tier)")]
    UnknownKey(String),
    #[error("metadata `{0}` has no `=`")]
    NoValue(String),
    #[error("{0}")]
    Value(String),
}

/// Parses one entry: `URL[;key=value...]`, the URL in any of the formats
/// above.
pub fn parse_entry(line: &str) -> Result<ProxyEntry, BadEntry> {
    let line = line.trim();
    let (addr, suffix) = match line.split_once(';') {
        Some((a, s)) => (a.trim(), Some(s)),
        None => (line, None),
    };
    let (url, assumed_http) = parse_address(addr)?;
    let mut meta = ProxyMeta::default();
    for part in suffix.into_iter().flat_map(|s| s.split(';')) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| BadEntry::NoValue(part.to_string()))?;
        match k.trim() {
            "region" => meta.region = Some(parse_region(v).map_err(BadEntry::Value)?),
            "tags" | "tag" => {
                for t in v.split(',').filter(|t| !t.trim().is_empty()) {
                    let t = parse_tag(t).map_err(BadEntry::Value)?;
                    if !meta.tags.contains(&t) {
                        meta.tags.push(t);
                    }
                }
            }
            "tier" => {
                meta.tier = v
                    .trim()
                    .parse()
                    .map_err(|_| BadEntry::Value(format!("tier `{v}` is not 0-255")))?
            }
            other => return Err(BadEntry::UnknownKey(other.to_string())),
        }
    }
    Ok(ProxyEntry {
        url,
        meta,
        assumed_http,
    })
}

/// `scheme://...`, `host:port`, `user:pass@host:port` or
/// `host:port:user:pass`; the bool says `http://` was assumed.
fn parse_address(addr: &str) -> Result<(ProxyUrl, bool), InvalidProxyUrl> {
    if addr.contains("://") {
        return proxy_url::validate(addr).map(|u| (u, false));
    }
    if addr.is_empty() {
        return Err(InvalidProxyUrl::Empty);
    }
    // host:port:user:pass (no `@`, four fields, a numeric second one).
    if !addr.contains('@') && !addr.starts_with('[') {
        let fields: Vec<&str> = addr.splitn(4, ':').collect();
        if fields.len() == 4 && fields[1].bytes().all(|b| b.is_ascii_digit()) {
            let port = fields[1].parse().map_err(|_| InvalidProxyUrl::NoPort)?;
            let url = ProxyUrl::from_parts("http", fields[0], port, Some((fields[2], fields[3])))?;
            return Ok((url, true));
        }
    }
    proxy_url::validate(&format!("http://{addr}")).map(|u| (u, true))
}

/// A list read: its entries and its bad lines, each with its 1-based line
/// number.
#[derive(Debug, Default)]
pub struct ParsedList {
    pub entries: Vec<(usize, ProxyEntry)>,
    pub bad: Vec<(usize, BadEntry)>,
}

/// A list's lines: the entries, and the bad lines (the rest are kept).
pub fn parse_list(text: &str) -> ParsedList {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        // A `#` starts a comment when it begins the line or follows a space
        // (a password may hold a `#`).
        let line = match raw.find(" #").or_else(|| raw.find("\t#")) {
            Some(at) => &raw[..at],
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_entry(line) {
            Ok(e) => good.push((i + 1, e)),
            Err(e) => bad.push((i + 1, e)),
        }
    }
    ParsedList { entries: good, bad }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(line: &str) -> String {
        parse_entry(line).unwrap().url.expose().to_string()
    }

    #[test]
    fn every_common_format_is_read() {
        assert_eq!(url("http://u:p@10.0.0.1:3128"), "http://u:p@10.0.0.1:3128");
        assert_eq!(url("10.0.0.3:3128"), "http://10.0.0.3:3128");
        assert_eq!(url("u:p@10.0.0.4:3128"), "http://u:p@10.0.0.4:3128");
        assert_eq!(
            url("10.0.0.5:3128:user:pa:ss"),
            "http://user:pa%3Ass@10.0.0.5:3128"
        );
        assert_eq!(
            url("proxy.example:8080:u:p"),
            "http://u:p@proxy.example:8080"
        );
        assert!(parse_entry("10.0.0.3:3128").unwrap().assumed_http);
        assert!(!parse_entry("socks5://10.0.0.3:1080").unwrap().assumed_http);
    }

    #[test]
    fn the_metadata_suffix_is_read_and_checked() {
        let e = parse_entry("socks5h://10.0.0.2:1080;region=de; tags=residential,vendor-a ;tier=1")
            .unwrap();
        assert_eq!(e.meta.region.as_deref(), Some("DE"));
        assert_eq!(e.meta.tags, ["residential", "vendor-a"]);
        assert_eq!(e.meta.tier, 1);
        assert_eq!(
            e.to_line(),
            "socks5h://10.0.0.2:1080;region=DE;tags=residential,vendor-a;tier=1"
        );
        for bad in [
            "10.0.0.1:1;colour=red",
            "10.0.0.1:1;region",
            "10.0.0.1:1;region=Germany",
            "10.0.0.1:1;tier=300",
            "10.0.0.1:1;tags=a b",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_spec_is_checked_like_a_line() {
        let tags = vec!["residential".to_string(), "residential".to_string()];
        let e = ProxyEntry::from_spec("u:p@10.0.0.4:3128", Some("us-ca"), &tags, 2).unwrap();
        assert_eq!(
            e.to_line(),
            "http://u:p@10.0.0.4:3128;region=US-CA;tags=residential;tier=2"
        );
        assert!(ProxyEntry::from_spec("http://h:1", Some("Germany"), &[], 0).is_err());
        assert!(ProxyEntry::from_spec("http://h:1", None, &["a b".into()], 0).is_err());
        let err = ProxyEntry::from_spec("ftp://u:s3cret@h:1", None, &[], 0).unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn a_list_keeps_good_lines_and_names_bad_ones_without_secrets() {
        let text = "# pool\n\nhttp://10.0.0.1:1\nnot a proxy\nu:s3cret@host\n10.0.0.2:2 # second\n";
        let ParsedList { entries: good, bad } = parse_list(text);
        assert_eq!(good.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [3, 6]);
        assert_eq!(bad.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [4, 5]);
        for (_, e) in &bad {
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
    }
}
