//! What a backend says about its proxies: their state and statistics, and
//! why it has none to give.

/// The state of one proxy as the backend sees it (the contract's
/// `proxy-state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(
    feature = "serde",
    serde(tag = "state", content = "until_ms", rename_all = "kebab-case")
)]
pub enum ProxyState {
    /// Handed out normally.
    Active,
    /// Not handed out until this time (ms since the Unix epoch).
    CoolingDown(u64),
    /// Not handed out until something enables it again.
    Disabled,
}

/// Statistics of one proxy (the contract's `proxy-stats`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ProxyStats {
    /// The proxy URL (the host masks any password before showing it).
    pub url: String,
    /// Its region, tags and tier (contract 0.2; empty from 0.1 plugins).
    #[cfg_attr(
        feature = "serde",
        serde(skip_serializing_if = "crate::ProxyMeta::is_empty")
    )]
    pub meta: crate::ProxyMeta,
    pub successes: u64,
    /// All failures reported against this proxy, of any kind.
    pub failures: u64,
    /// Proxy faults since the last success.
    pub consecutive_failures: u32,
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub state: ProxyState,
    /// When the proxy was last handed out (ms since the Unix epoch).
    pub last_used_ms: Option<u64>,
    /// Anything else the backend shows, as key/value pairs.
    pub extra: Vec<(String, String)>,
}

/// Why a backend has no proxy to give now (the contract's `no-proxy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoProxy {
    /// A short explanation for the user.
    pub message: String,
    /// When the next proxy is expected back (ms since the Unix epoch).
    pub retry_at_ms: Option<u64>,
}

/// `From` conversions both ways between [`ProxyState`] / [`ProxyStats`] and
/// a generated binding's `proxy-state` / `proxy-stats` (same fields), so
/// their shape is written here only.
#[macro_export]
macro_rules! stats_conversions {
    (state: $($st:ident)::+, stats: $($ps:ident)::+) => {
        impl ::core::convert::From<$crate::ProxyState> for $($st)::+ {
            fn from(s: $crate::ProxyState) -> Self {
                match s {
                    $crate::ProxyState::Active => $($st)::+::Active,
                    $crate::ProxyState::CoolingDown(t) => $($st)::+::CoolingDown(t),
                    $crate::ProxyState::Disabled => $($st)::+::Disabled,
                }
            }
        }
        impl ::core::convert::From<$($st)::+> for $crate::ProxyState {
            fn from(s: $($st)::+) -> Self {
                match s {
                    $($st)::+::Active => $crate::ProxyState::Active,
                    $($st)::+::CoolingDown(t) => $crate::ProxyState::CoolingDown(t),
                    $($st)::+::Disabled => $crate::ProxyState::Disabled,
                }
            }
        }
        impl ::core::convert::From<$crate::ProxyStats> for $($ps)::+ {
            fn from(s: $crate::ProxyStats) -> Self {
                $($ps)::+ {
                    url: s.url,
                    successes: s.successes,
                    failures: s.failures,
                    consecutive_failures: s.consecutive_failures,
                    state: s.state.into(),
                    last_used_ms: s.last_used_ms,
                    extra: s.extra,
                }
            }
        }
        impl ::core::convert::From<$($ps)::+> for $crate::ProxyStats {
            fn from(s: $($ps)::+) -> Self {
                $crate::ProxyStats {
                    url: s.url,
                    meta: $crate::ProxyMeta::default(),
                    successes: s.successes,
                    failures: s.failures,
                    consecutive_failures: s.consecutive_failures,
                    state: s.state.into(),
                    last_used_ms: s.last_used_ms,
                    extra: s.extra,
                }
            }
        }
    };
}
