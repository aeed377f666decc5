//! Which proxy tier a site gets: the cheapest that works for it.
//!
//! Every site starts at tier 0 (the cheapest). When a site refuses a proxy
//! (`blocked`) of the tier it is at, it escalates to the next tier, for that
//! site only. A geo restriction does not escalate: the next attempt asks for
//! a proxy in an allowed country instead (see the downloader), and a cheap
//! proxy there is what fixes it; paying for a dearer tier would not. A cheaper tier is probed again after a
//! backoff that doubles each time the probe is refused (up to a cap) and
//! resets when a probe succeeds, at which point the site comes back down.
//! (Crawlee's tier tracker probes a blocked cheap tier on a fixed share of
//! requests forever; here a tier that stays blocked costs one request per
//! backoff period, and the period grows.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ytdlp_contract::FailureKind;

/// First wait before probing a cheaper tier again.
pub const PROBE_BASE: Duration = Duration::from_secs(60);
/// Longest wait between probes.
pub const PROBE_CAP: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone)]
struct SiteTier {
    /// The tier the site is at: proxies of this tier or a dearer one.
    level: u8,
    /// The wait before the next probe of `level - 1`.
    backoff: Duration,
    next_probe: Instant,
    /// A probe is out (one at a time per site).
    probing: bool,
}

/// The tier of each site, shared by every download of a host.
#[derive(Debug)]
pub struct Tiers {
    sites: Mutex<HashMap<String, SiteTier>>,
    base: Duration,
    cap: Duration,
}

/// What an attempt should ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierChoice {
    /// `want.min-tier` for the request.
    pub min_tier: u8,
    /// This attempt probes a cheaper tier than the site's.
    pub probe: bool,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers::new(PROBE_BASE, PROBE_CAP)
    }
}

impl Tiers {
    pub fn new(base: Duration, cap: Duration) -> Tiers {
        Tiers {
            sites: Mutex::new(HashMap::new()),
            base,
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SiteTier>> {
        self.sites.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tier to ask for, for `site`, now.
    pub fn choose(&self, site: &str, now: Instant) -> TierChoice {
        let mut sites = self.lock();
        let Some(t) = sites.get_mut(site) else {
            return TierChoice {
                min_tier: 0,
                probe: false,
            };
        };
        if t.level > 0 && !t.probing && now >= t.next_probe {
            t.probing = true;
            return TierChoice {
                min_tier: t.level - 1,
                probe: true,
            };
        }
        TierChoice {
            min_tier: t.level,
            probe: false,
        }
    }

    /// The outcome of an attempt through a proxy of `tier` for `site`
    /// (`None`: it downloaded).
    pub fn observe(
        &self,
        site: &str,
        choice: TierChoice,
        tier: u8,
        failure: Option<FailureKind>,
        now: Instant,
    ) {
        let refused = failure == Some(FailureKind::Blocked);
        let mut sites = self.lock();
        if choice.probe
            && let Some(t) = sites.get_mut(site)
        {
            t.probing = false;
        }
        match (failure, sites.get_mut(site)) {
            (None, Some(t)) if tier < t.level => {
                // A cheaper tier works again: come down, forget the backoff.
                t.level = tier;
                t.backoff = self.base;
                t.next_probe = now + self.base;
                if t.level == 0 {
                    sites.remove(site);
                }
            }
            (None, _) => {}
            (Some(_), _) if !refused => {}
            (Some(_), Some(t)) if tier < t.level => {
                // A refused probe: wait twice as long for the next one.
                t.backoff = (t.backoff * 2).min(self.cap);
                t.next_probe = now + t.backoff;
            }
            (Some(_), Some(t)) => {
                if tier == u8::MAX {
                    return;
                }
                t.level = tier + 1;
                t.next_probe = now + t.backoff;
            }
            (Some(_), None) => {
                if tier == u8::MAX {
                    return;
                }
                sites.insert(
                    site.to_string(),
                    SiteTier {
                        level: tier + 1,
                        backoff: self.base,
                        next_probe: now + self.base,
                        probing: false,
                    },
                );
            }
        }
    }

    /// The tier `site` is at (0 when it never escalated).
    pub fn level(&self, site: &str) -> u8 {
        self.lock().get(site).map_or(0, |t| t.level)
    }

    /// The site has no proxy of its tier or dearer: start again from the
    /// cheapest (a pool without dearer tiers must not stop a site).
    pub fn reset(&self, site: &str) {
        self.lock().remove(site);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "example.com";
    const BLOCKED: Option<FailureKind> = Some(FailureKind::Blocked);

    fn tiers() -> Tiers {
        Tiers::new(Duration::from_secs(60), Duration::from_secs(600))
    }

    #[test]
    fn a_site_starts_cheap_and_escalates_only_when_refused() {
        let t = tiers();
        let now = Instant::now();
        let c = t.choose(SITE, now);
        assert_eq!(
            c,
            TierChoice {
                min_tier: 0,
                probe: false
            }
        );
        // A content failure or a proxy fault says nothing about the tier.
        t.observe(SITE, c, 0, Some(FailureKind::Content), now);
        t.observe(SITE, c, 0, Some(FailureKind::ProxyConnect), now);
        assert_eq!(t.level(SITE), 0);
        t.observe(SITE, c, 0, BLOCKED, now);
        assert_eq!(t.level(SITE), 1);
        assert_eq!(t.level("other.org"), 0, "per site");
        assert_eq!(t.choose(SITE, now).min_tier, 1);
    }

    #[test]
    fn a_cheaper_tier_is_probed_after_a_doubling_backoff_and_reset_on_success() {
        let t = tiers();
        let t0 = Instant::now();
        let c = t.choose(SITE, t0);
        t.observe(SITE, c, 0, BLOCKED, t0);
        // Before the backoff: no probe.
        assert_eq!(t.choose(SITE, t0 + Duration::from_secs(59)).min_tier, 1);
        // At 60 s: one probe of tier 0, and only one at a time.
        let p = t.choose(SITE, t0 + Duration::from_secs(60));
        assert_eq!(
            p,
            TierChoice {
                min_tier: 0,
                probe: true
            }
        );
        assert_eq!(t.choose(SITE, t0 + Duration::from_secs(60)).min_tier, 1);
        // Refused: the next probe waits 120 s, then 240 s, capped at 600 s.
        let at = t0 + Duration::from_secs(60);
        t.observe(SITE, p, 0, BLOCKED, at);
        assert_eq!(t.level(SITE), 1);
        assert!(!t.choose(SITE, at + Duration::from_secs(119)).probe);
        let p = t.choose(SITE, at + Duration::from_secs(120));
        assert!(p.probe);
        let at = at + Duration::from_secs(120);
        t.observe(SITE, p, 0, BLOCKED, at);
        assert!(!t.choose(SITE, at + Duration::from_secs(239)).probe);
        let mut at = at + Duration::from_secs(240);
        for _ in 0..5 {
            let p = t.choose(SITE, at);
            assert!(p.probe);
            t.observe(SITE, p, 0, BLOCKED, at);
            at += Duration::from_secs(600);
        }
        // A probe that works brings the site back to the cheap tier.
        let p = t.choose(SITE, at);
        assert!(p.probe);
        t.observe(SITE, p, 0, None, at);
        assert_eq!(t.level(SITE), 0);
        assert_eq!(
            t.choose(SITE, at),
            TierChoice {
                min_tier: 0,
                probe: false
            }
        );
    }

    #[test]
    fn a_success_at_the_sites_tier_keeps_it_there() {
        let t = tiers();
        let now = Instant::now();
        let c = t.choose(SITE, now);
        t.observe(SITE, c, 0, BLOCKED, now);
        let c = t.choose(SITE, now);
        t.observe(SITE, c, 1, None, now);
        assert_eq!(t.level(SITE), 1);
        // A geo restriction is routed by region, not by tier.
        t.observe(SITE, c, 1, Some(FailureKind::GeoRestricted), now);
        assert_eq!(t.level(SITE), 1);
        t.observe(SITE, c, 1, BLOCKED, now);
        assert_eq!(t.level(SITE), 2);
        t.reset(SITE);
        assert_eq!(t.level(SITE), 0);
    }
}
