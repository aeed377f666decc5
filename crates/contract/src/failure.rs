//! The host's classification of a failed attempt: the contract's
//! `failure-kind`, with its names and what each kind means for a proxy.

use std::fmt;
use std::str::FromStr;

/// Why an attempt failed, as the host classifies it (the contract's
/// `failure-kind`, in the contract's order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum FailureKind {
    /// The proxy refused or dropped the connection, or could not be reached.
    ProxyConnect,
    /// The proxy accepted the connection but did not answer in time.
    ProxyTimeout,
    /// The proxy rejected its credentials.
    ProxyAuth,
    /// The site refused this proxy's address (403, 429, a bot check).
    Blocked,
    /// The site serves this URL only in some countries, and the proxy is
    /// outside them (contract 0.2; a 0.1 plugin hears `blocked`).
    GeoRestricted,
    /// The content is at fault (404, unsupported URL, ...): never the proxy.
    Content,
    /// The host's own setup failed (yt-dlp missing, killed): never the proxy.
    Host,
    /// Not classified.
    Unknown,
}

impl FailureKind {
    /// Every kind, in the contract's order (`kind as usize` indexes it).
    pub const ALL: [FailureKind; 8] = [
        FailureKind::ProxyConnect,
        FailureKind::ProxyTimeout,
        FailureKind::ProxyAuth,
        FailureKind::Blocked,
        FailureKind::GeoRestricted,
        FailureKind::Content,
        FailureKind::Host,
        FailureKind::Unknown,
    ];

    /// The contract's names, in the same order.
    pub const NAMES: [&'static str; 8] = [
        "proxy-connect",
        "proxy-timeout",
        "proxy-auth",
        "blocked",
        "geo-restricted",
        "content",
        "host",
        "unknown",
    ];

    /// The contract's name: `proxy-connect`, `blocked`, ...
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind called `name` in the contract.
    pub fn from_name(name: &str) -> Option<FailureKind> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// The proxy's own fault (connect, timeout, auth): counts against the
    /// proxy. `Blocked` and `GeoRestricted` are per-site matters; the others
    /// are never the proxy's.
    pub fn is_proxy_fault(self) -> bool {
        matches!(
            self,
            FailureKind::ProxyConnect | FailureKind::ProxyTimeout | FailureKind::ProxyAuth
        )
    }

    /// Worth another attempt through another proxy? Content and host
    /// failures would fail the same way whatever the proxy.
    pub fn retry_elsewhere(self) -> bool {
        !matches!(self, FailureKind::Content | FailureKind::Host)
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        FailureKind::from_name(s).ok_or_else(|| {
            format!(
                "`{s}` is not a failure kind ({})",
                FailureKind::NAMES.join(", ")
            )
        })
    }
}

/// Where in an attempt a failure happened (the contract's `phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Phase {
    /// The host's own check of the proxy before yt-dlp ran.
    Preflight,
    /// Connecting to the site through the proxy.
    Connect,
    /// A request to the site.
    Request,
    /// Downloading the media.
    Transfer,
}

/// What the host knows about a failure beyond its kind (the contract's
/// `failure-detail`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FailureDetail {
    /// The HTTP status that failed the attempt.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", default)
    )]
    pub http_status: Option<u16>,
    /// The site's `Retry-After`, in milliseconds.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", default)
    )]
    pub retry_after_ms: Option<u64>,
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Option::is_none", default)
    )]
    pub phase: Option<Phase>,
    /// The error came from the proxy layer (the proxy's own answer, a
    /// tunnel or SOCKS error), not from the site.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "std::ops::Not::not", default)
    )]
    pub from_proxy: bool,
    /// For `geo-restricted`: the countries the site allows (ISO 3166-1
    /// alpha-2, upper case), when it says.
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "Vec::is_empty", default)
    )]
    pub countries: Vec<String>,
}

/// A failed attempt, as the host classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Failure {
    pub kind: FailureKind,
    /// A short excerpt of yt-dlp's error, cleaned.
    pub message: String,
    pub detail: FailureDetail,
}

impl Failure {
    /// A failure with no detail.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            detail: FailureDetail::default(),
        }
    }
}

/// `From` conversions both ways between [`FailureKind`] and a generated
/// binding of the contract's `failure-kind` (wasmtime's on the host side,
/// wit-bindgen's in the SDK), so the list of kinds is written here only.
/// `v0_1:` makes the conversions for a 0.1 binding, which has no
/// `geo-restricted`: the host tells a 0.1 plugin `blocked` instead (a site
/// refusing that proxy's address, which is what 0.1 plugins count).
///
/// ```ignore
/// ytdlp_contract::failure_kind_conversions!(bindings::ytdlp::proxy::types::FailureKind);
/// ytdlp_contract::failure_kind_conversions!(v0_1: v01::ytdlp::proxy::types::FailureKind);
/// ```
#[macro_export]
macro_rules! failure_kind_conversions {
    (v0_1: $($wit:ident)::+) => {
        impl ::core::convert::From<$crate::FailureKind> for $($wit)::+ {
            fn from(k: $crate::FailureKind) -> Self {
                match k {
                    $crate::FailureKind::ProxyConnect => $($wit)::+::ProxyConnect,
                    $crate::FailureKind::ProxyTimeout => $($wit)::+::ProxyTimeout,
                    $crate::FailureKind::ProxyAuth => $($wit)::+::ProxyAuth,
                    $crate::FailureKind::Blocked | $crate::FailureKind::GeoRestricted => {
                        $($wit)::+::Blocked
                    }
                    $crate::FailureKind::Content => $($wit)::+::Content,
                    $crate::FailureKind::Host => $($wit)::+::Host,
                    $crate::FailureKind::Unknown => $($wit)::+::Unknown,
                }
            }
        }
        impl ::core::convert::From<$($wit)::+> for $crate::FailureKind {
            fn from(k: $($wit)::+) -> Self {
                match k {
                    $($wit)::+::ProxyConnect => $crate::FailureKind::ProxyConnect,
                    $($wit)::+::ProxyTimeout => $crate::FailureKind::ProxyTimeout,
                    $($wit)::+::ProxyAuth => $crate::FailureKind::ProxyAuth,
                    $($wit)::+::Blocked => $crate::FailureKind::Blocked,
                    $($wit)::+::Content => $crate::FailureKind::Content,
                    $($wit)::+::Host => $crate::FailureKind::Host,
                    $($wit)::+::Unknown => $crate::FailureKind::Unknown,
                }
            }
        }
    };
    ($($wit:ident)::+) => {
        impl ::core::convert::From<$crate::FailureKind> for $($wit)::+ {
            fn from(k: $crate::FailureKind) -> Self {
                match k {
                    $crate::FailureKind::ProxyConnect => $($wit)::+::ProxyConnect,
                    $crate::FailureKind::ProxyTimeout => $($wit)::+::ProxyTimeout,
                    $crate::FailureKind::ProxyAuth => $($wit)::+::ProxyAuth,
                    $crate::FailureKind::Blocked => $($wit)::+::Blocked,
                    $crate::FailureKind::GeoRestricted => $($wit)::+::GeoRestricted,
                    $crate::FailureKind::Content => $($wit)::+::Content,
                    $crate::FailureKind::Host => $($wit)::+::Host,
                    $crate::FailureKind::Unknown => $($wit)::+::Unknown,
                }
            }
        }
        impl ::core::convert::From<$($wit)::+> for $crate::FailureKind {
            fn from(k: $($wit)::+) -> Self {
                match k {
                    $($wit)::+::ProxyConnect => $crate::FailureKind::ProxyConnect,
                    $($wit)::+::ProxyTimeout => $crate::FailureKind::ProxyTimeout,
                    $($wit)::+::ProxyAuth => $crate::FailureKind::ProxyAuth,
                    $($wit)::+::Blocked => $crate::FailureKind::Blocked,
                    $($wit)::+::GeoRestricted => $crate::FailureKind::GeoRestricted,
                    $($wit)::+::Content => $crate::FailureKind::Content,
                    $($wit)::+::Host => $crate::FailureKind::Host,
                    $($wit)::+::Unknown => $crate::FailureKind::Unknown,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_the_contracts_order() {
        for (i, k) in FailureKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(FailureKind::from_name(k.name()), Some(*k));
            assert_eq!(k.to_string().parse::<FailureKind>(), Ok(*k));
        }
        assert!("proxy_connect".parse::<FailureKind>().is_err());
    }

    #[test]
    fn only_proxy_faults_count_and_only_proxy_fixable_ones_retry() {
        let faults: Vec<&str> = FailureKind::ALL
            .iter()
            .filter(|k| k.is_proxy_fault())
            .map(|k| k.name())
            .collect();
        assert_eq!(faults, ["proxy-connect", "proxy-timeout", "proxy-auth"]);
        assert!(FailureKind::ProxyConnect.retry_elsewhere());
        assert!(FailureKind::Blocked.retry_elsewhere());
        assert!(FailureKind::GeoRestricted.retry_elsewhere());
        assert!(FailureKind::Unknown.retry_elsewhere());
        assert!(!FailureKind::Content.retry_elsewhere());
        assert!(!FailureKind::Host.retry_elsewhere());
    }

    mod generated {
        // Stands in for a generated binding: same variants, another type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum FailureKind {
            ProxyConnect,
            ProxyTimeout,
            ProxyAuth,
            Blocked,
            GeoRestricted,
            Content,
            Host,
            Unknown,
        }
    }
    crate::failure_kind_conversions!(generated::FailureKind);

    mod generated_v01 {
        // A 0.1 binding: no geo-restricted.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum FailureKind {
            ProxyConnect,
            ProxyTimeout,
            ProxyAuth,
            Blocked,
            Content,
            Host,
            Unknown,
        }
    }
    crate::failure_kind_conversions!(v0_1: generated_v01::FailureKind);

    #[test]
    fn conversions_keep_every_kind() {
        for k in FailureKind::ALL {
            let g: generated::FailureKind = k.into();
            assert_eq!(format!("{g:?}"), format!("{k:?}"));
            assert_eq!(FailureKind::from(g), k);
        }
    }

    #[test]
    fn a_01_plugin_hears_geo_restricted_as_blocked() {
        for k in FailureKind::ALL {
            let g: generated_v01::FailureKind = k.into();
            if k == FailureKind::GeoRestricted {
                assert_eq!(g, generated_v01::FailureKind::Blocked);
            } else {
                assert_eq!(format!("{g:?}"), format!("{k:?}"));
                assert_eq!(FailureKind::from(g), k);
            }
        }
    }
}
