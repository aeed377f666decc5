//! What the host tells a backend about an attempt (the contract's
//! `request`, `site` and `wanted`), and what a backend tells about a proxy
//! besides where it is (`proxy-meta`): region, tags, tier.

use std::fmt;

/// The site a URL belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Site {
    /// The URL's host name, lower case, no port.
    pub host: String,
    /// Its registrable domain (eTLD+1); for an IP address, the address.
    pub domain: String,
}

/// What the proxy must be, for one attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Wanted {
    /// One of these regions (see [`region_matches`]); empty: any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub regions: Vec<String>,
    /// None of these regions.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub avoid_regions: Vec<String>,
    /// All of these tags; empty: any.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub tags: Vec<String>,
    /// This tier or a dearer one.
    #[cfg_attr(feature = "serde", serde(default))]
    pub min_tier: u8,
    /// This tier or a cheaper one.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub max_tier: Option<u8>,
}

impl Wanted {
    /// Does a proxy with `meta` satisfy this?
    pub fn admits(&self, meta: &ProxyMeta) -> bool {
        let region_ok = self.regions.is_empty()
            || meta
                .region
                .as_deref()
                .is_some_and(|r| self.regions.iter().any(|w| region_matches(r, w)));
        let avoided = meta
            .region
            .as_deref()
            .is_some_and(|r| self.avoid_regions.iter().any(|w| region_matches(r, w)));
        region_ok
            && !avoided
            && self.tags.iter().all(|t| meta.tags.contains(t))
            && meta.tier >= self.min_tier
            && self.max_tier.is_none_or(|m| meta.tier <= m)
    }

    /// The wish in words, for messages: `in region DE or FR outside US
    /// with tags residential of tier 1 or dearer` (only what is asked;
    /// empty when nothing is).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.regions.is_empty() {
            parts.push(format!("in region {}", self.regions.join(" or ")));
        }
        if !self.avoid_regions.is_empty() {
            parts.push(format!("outside {}", self.avoid_regions.join(", ")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("with tags {}", self.tags.join(", ")));
        }
        match (self.min_tier, self.max_tier) {
            (0, None) => {}
            (min, Some(max)) if min == max => parts.push(format!("of tier {min}")),
            (0, Some(max)) => parts.push(format!("of tier {max} or cheaper")),
            (min, None) => parts.push(format!("of tier {min} or dearer")),
            (min, Some(max)) => parts.push(format!("of tier {min} to {max}")),
        }
        parts.join(" ")
    }

    /// Why none of a pool's `total` proxies satisfy this, for a no-proxy
    /// answer, with what the pool has of what was asked: `no proxy in
    /// region DE (3 proxies, regions: FR, US)`. `metas` are the pool's
    /// proxies' metadata (repeats are fine).
    pub fn unmet_message<'a>(
        &self,
        total: usize,
        metas: impl IntoIterator<Item = &'a ProxyMeta>,
    ) -> String {
        use std::collections::BTreeSet;
        let (mut regions, mut tags, mut tiers) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for m in metas {
            regions.extend(m.region.as_deref());
            tags.extend(m.tags.iter().map(String::as_str));
            tiers.insert(m.tier);
        }
        // At most a few of each: the message stays one short line.
        fn list<T: fmt::Display>(what: &str, items: &BTreeSet<T>) -> String {
            if items.is_empty() {
                return format!("no {what}");
            }
            let mut shown: Vec<String> = items.iter().take(8).map(|i| i.to_string()).collect();
            if items.len() > 8 {
                shown.push("...".to_string());
            }
            format!("{what}: {}", shown.join(", "))
        }
        let count = format!("{total} prox{}", if total == 1 { "y" } else { "ies" });
        let mut have = Vec::new();
        if !self.regions.is_empty() || !self.avoid_regions.is_empty() {
            have.push(list("regions", &regions));
        }
        if !self.tags.is_empty() {
            have.push(list("tags", &tags));
        }
        if self.min_tier != 0 || self.max_tier.is_some() {
            have.push(list("tiers", &tiers));
        }
        let wish = self.describe();
        let head = if wish.is_empty() {
            "no proxy".to_string()
        } else {
            format!("no proxy {wish}")
        };
        if have.is_empty() {
            format!("{head} ({count})")
        } else {
            format!("{head} ({count}, {})", have.join("; "))
        }
    }

    /// Nothing asked.
    pub fn is_any(&self) -> bool {
        self.regions.is_empty()
            && self.avoid_regions.is_empty()
            && self.tags.is_empty()
            && self.min_tier == 0
            && self.max_tier.is_none()
    }
}

/// The download an attempt is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Request {
    pub url: String,
    pub site: Site,
    /// 1 for the first attempt at the URL.
    pub attempt: u32,
    /// Shared by all attempts at one URL.
    pub download_id: String,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub sticky_key: Option<String>,
    /// Ids of proxies that already failed this URL.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub avoid: Vec<String>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub want: Wanted,
}

/// What is known about a proxy besides where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProxyMeta {
    /// ISO 3166-1 alpha-2, optionally `-SUB` (`DE`, `US-CA`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub region: Option<String>,
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Vec::is_empty")
    )]
    pub tags: Vec<String>,
    /// A cost rank; 0 is the cheapest.
    #[cfg_attr(feature = "serde", serde(default))]
    pub tier: u8,
}

impl ProxyMeta {
    pub fn is_empty(&self) -> bool {
        self.region.is_none() && self.tags.is_empty() && self.tier == 0
    }
}

impl fmt::Display for ProxyMeta {
    /// `region=DE;tags=a,b;tier=1`, the proxy list's suffix syntax (empty
    /// parts left out).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = &self.region {
            parts.push(format!("region={r}"));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags={}", self.tags.join(",")));
        }
        if self.tier != 0 {
            parts.push(format!("tier={}", self.tier));
        }
        f.write_str(&parts.join(";"))
    }
}

/// A region code in its canonical form: `de` -> `DE`, `us-ca` -> `US-CA`.
/// A country is two ASCII letters; a sub-region one to three letters or
/// digits.
pub fn parse_region(s: &str) -> Result<String, String> {
    let up = s.trim().to_ascii_uppercase();
    let (country, sub) = match up.split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (up.as_str(), None),
    };
    let country_ok = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
    let sub_ok = sub
        .is_none_or(|s| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    if country_ok && sub_ok {
        Ok(up)
    } else {
        Err(format!(
            "`{s}` is not a region (an ISO 3166-1 country code such as `DE`, optionally with a sub-region: `US-CA`)"
        ))
    }
}

/// Does a proxy of region `have` satisfy a wish for `want`? The same code,
/// or `have` inside `want` (`US-CA` satisfies `US`; `US` does not satisfy
/// `US-CA`).
pub fn region_matches(have: &str, want: &str) -> bool {
    have.eq_ignore_ascii_case(want)
        || (have.len() > want.len()
            && have.as_bytes()[want.len()] == b'-'
            && have[..want.len()].eq_ignore_ascii_case(want))
}

/// A tag as the contract keeps it: 1-64 bytes of `[A-Za-z0-9._-]`.
pub fn parse_tag(s: &str) -> Result<String, String> {
    let t = s.trim();
    if (1..=64).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Ok(t.to_string())
    } else {
        Err(format!(
            "`{s}` is not a tag (1-64 letters, digits, `.`, `_` or `-`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_canonical_and_sub_regions_match_their_country() {
        assert_eq!(parse_region("de").unwrap(), "DE");
        assert_eq!(parse_region(" us-ca ").unwrap(), "US-CA");
        for bad in ["", "D", "DEU", "eu-west", "D1", "US-", "US-CALI"] {
            assert!(parse_region(bad).is_err(), "{bad}");
        }
        assert!(region_matches("US-CA", "US"));
        assert!(region_matches("de", "DE"));
        assert!(!region_matches("US", "US-CA"));
        assert!(!region_matches("USX", "US"));
        assert!(!region_matches("FR", "DE"));
    }

    #[test]
    fn wanted_admits_by_region_tags_and_tier() {
        let meta = ProxyMeta {
            region: Some("DE".into()),
            tags: vec!["residential".into(), "vendor-a".into()],
            tier: 1,
        };
        assert!(Wanted::default().admits(&meta));
        let w = |regions: &[&str], tags: &[&str], min: u8, max: Option<u8>| Wanted {
            regions: regions.iter().map(|s| s.to_string()).collect(),
            avoid_regions: Vec::new(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            min_tier: min,
            max_tier: max,
        };
        assert!(w(&["FR", "DE"], &[], 0, None).admits(&meta));
        assert!(!w(&["FR"], &[], 0, None).admits(&meta));
        assert!(w(&[], &["residential"], 0, None).admits(&meta));
        assert!(!w(&[], &["residential", "mobile"], 0, None).admits(&meta));
        assert!(w(&[], &[], 1, Some(1)).admits(&meta));
        assert!(!w(&[], &[], 2, None).admits(&meta));
        assert!(!w(&[], &[], 0, Some(0)).admits(&meta));
        let away = Wanted {
            avoid_regions: vec!["DE".into()],
            ..Wanted::default()
        };
        assert!(!away.admits(&meta));
        assert!(away.admits(&ProxyMeta::default()));
        // No region known: only a wish for none admits it.
        assert!(!w(&["DE"], &[], 0, None).admits(&ProxyMeta::default()));
    }

    #[test]
    fn an_unmet_wish_says_what_the_pool_has() {
        let metas = [
            ProxyMeta {
                region: Some("FR".into()),
                ..ProxyMeta::default()
            },
            ProxyMeta {
                region: Some("US".into()),
                tags: vec!["dc".into()],
                tier: 1,
            },
            ProxyMeta {
                region: Some("FR".into()),
                ..ProxyMeta::default()
            },
        ];
        let de = Wanted {
            regions: vec!["DE".into()],
            ..Wanted::default()
        };
        assert_eq!(
            de.unmet_message(3, &metas),
            "no proxy in region DE (3 proxies, regions: FR, US)"
        );
        let picky = Wanted {
            regions: vec!["DE".into(), "AT".into()],
            avoid_regions: vec!["US".into()],
            tags: vec!["residential".into()],
            min_tier: 2,
            max_tier: None,
        };
        assert_eq!(
            picky.unmet_message(3, &metas),
            "no proxy in region DE or AT outside US with tags residential of tier 2 or dearer \
             (3 proxies, regions: FR, US; tags: dc; tiers: 0, 1)"
        );
        let cap = |min, max| Wanted {
            min_tier: min,
            max_tier: max,
            ..Wanted::default()
        };
        assert_eq!(cap(1, Some(1)).describe(), "of tier 1");
        assert_eq!(cap(0, Some(1)).describe(), "of tier 1 or cheaper");
        assert_eq!(cap(1, Some(3)).describe(), "of tier 1 to 3");
        assert_eq!(Wanted::default().describe(), "");
        assert_eq!(
            Wanted::default().unmet_message(1, &[]),
            "no proxy (1 proxy)"
        );
    }

    #[test]
    fn meta_prints_in_the_suffix_syntax() {
        let meta = ProxyMeta {
            region: Some("DE".into()),
            tags: vec!["a".into(), "b".into()],
            tier: 2,
        };
        assert_eq!(meta.to_string(), "region=DE;tags=a,b;tier=2");
        assert_eq!(ProxyMeta::default().to_string(), "");
        assert!(parse_tag("res.1_x-y").is_ok());
        assert!(parse_tag("a b").is_err() && parse_tag("").is_err());
    }
}
