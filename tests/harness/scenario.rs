//! Goodput scenarios (issue 15): a pool mix, a URL list and a site rate
//! limit, laid out by a seed. Shared by `cargo bench --bench goodput` and
//! its smoke test, so both run the same mixes.

use std::time::Duration;

use crate::pool::{Pool, ProxyKind, Rng, site_config};
use crate::site::{RateLimit, Site};

/// One scenario: what the pool holds, what is asked, what the site allows.
#[derive(Clone, Debug)]
pub struct Mix {
    pub name: &'static str,
    pub about: &'static str,
    pub pool: &'static [(ProxyKind, usize)],
    /// Downloadable URLs.
    pub media: usize,
    /// URLs the site answers 404.
    pub missing: usize,
    pub limit: RateLimit,
}

const fn limit(requests: u32, window_s: u64, retry_after_s: u64) -> RateLimit {
    RateLimit {
        requests,
        window: Duration::from_secs(window_s),
        retry_after: Duration::from_secs(retry_after_s),
    }
}

use ProxyKind::*;

/// Every mix, the issue's first. Each stresses another part: the issue's a
/// bit of everything; `mostly-dead` finding the few that work (and a slow
/// one, and SOCKS with auth); `one-good` waiting for a single address;
/// `many-tight` spreading over many addresses under a tight limit.
pub const MIXES: &[Mix] = &[
    Mix {
        name: "issue",
        about: "issue 15's pool",
        pool: &[(Good, 4), (Flagged, 2), (Dead, 3), (BlackHole, 3)],
        media: 24,
        missing: 2,
        limit: limit(6, 10, 15),
    },
    Mix {
        name: "mostly-dead",
        about: "3 that deliver (one slow, one SOCKS with auth) among 12 that do not",
        pool: &[
            (Good, 1),
            (Socks, 1),
            (Slow, 1),
            (BotChecked, 1),
            (Dead, 6),
            (BlackHole, 5),
        ],
        media: 10,
        missing: 1,
        limit: limit(6, 10, 15),
    },
    Mix {
        name: "one-good",
        about: "a single good proxy",
        pool: &[(Good, 1)],
        media: 6,
        missing: 1,
        limit: limit(6, 10, 15),
    },
    Mix {
        name: "many-tight",
        about: "8 that deliver under a tight limit (one download per address per window)",
        pool: &[
            (Good, 6),
            (Socks, 1),
            (Slow, 1),
            (Flagged, 1),
            (BotChecked, 1),
            (Dead, 1),
            (BlackHole, 1),
        ],
        media: 16,
        missing: 1,
        limit: limit(2, 15, 20),
    },
];

pub fn mix(name: &str) -> Option<&'static Mix> {
    MIXES.iter().find(|m| m.name == name)
}

impl Mix {
    /// With another number of downloadable URLs (404s scale along, at least one).
    pub fn with_media(&self, media: usize) -> Mix {
        let mut m = self.clone();
        m.missing = if self.media == 0 {
            self.missing
        } else {
            (self.missing * media).div_ceil(self.media).max(1)
        };
        m.media = media;
        m
    }

    pub fn proxies(&self) -> usize {
        self.pool.iter().map(|&(_, n)| n).sum()
    }

    /// Addresses the site delivers to.
    pub fn delivering(&self) -> usize {
        self.pool
            .iter()
            .filter(|(k, _)| k.delivers())
            .map(|&(_, n)| n)
            .sum()
    }

    /// The requests a perfect downloader makes: two per download (yt-dlp's
    /// generic extractor on a direct URL), one per 404.
    pub fn requests(&self) -> usize {
        2 * self.media + self.missing
    }

    /// How long the site makes even a perfectly paced downloader take:
    /// every delivering address spends its budget at once and again after
    /// each window, so the last request goes in after this (downloads' own
    /// time comes on top).
    pub fn floor(&self) -> Duration {
        let per_window = self.delivering() * self.limit.requests as usize;
        if per_window == 0 {
            return Duration::MAX;
        }
        let windows = self.requests().div_ceil(per_window);
        self.limit.window * (windows.saturating_sub(1) as u32)
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        let kinds: Vec<String> = self
            .pool
            .iter()
            .map(|(k, n)| format!("{n} {}", k.name()))
            .collect();
        format!(
            "{} proxies ({}); {} downloadable URLs + {} 404s; site limit {} requests / {} s per address, then 429 with Retry-After {} s",
            self.proxies(),
            kinds.join(", "),
            self.media,
            self.missing,
            self.limit.requests,
            self.limit.window.as_secs(),
            self.limit.retry_after.as_secs()
        )
    }
}

/// A mix laid out and running: the site, the pool, the URLs.
pub struct Scenario {
    pub mix: Mix,
    pub seed: u64,
    pub site: Site,
    pub pool: Pool,
    /// In the seeded order, 404s among them.
    pub urls: Vec<String>,
    /// The ids of the downloadable URLs (yt-dlp names files `<id>.mp4`).
    pub media_ids: Vec<String>,
}

impl Scenario {
    /// Starts the pool (kinds' order and egress addresses from `seed`) and
    /// the site, and draws the URL order.
    pub fn start(mix: &Mix, seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let pool = Pool::start(mix.pool, &mut rng);
        let site = Site::start(site_config(Some(mix.limit.clone())));
        let media_ids: Vec<String> = (0..mix.media).map(|i| format!("s{seed}-{i}")).collect();
        let mut urls: Vec<String> = media_ids
            .iter()
            .map(|id| site.url(&format!("/v/{id}.mp4")))
            .chain((0..mix.missing).map(|i| site.url(&format!("/gone/s{seed}-{i}.mp4"))))
            .collect();
        rng.shuffle(&mut urls);
        Scenario {
            mix: mix.clone(),
            seed,
            site,
            pool,
            urls,
            media_ids,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_mix_floor() {
        let m = mix("issue").unwrap();
        assert_eq!(m.proxies(), 12);
        assert_eq!(m.delivering(), 4);
        // 50 requests, 24 per window: the third window is needed for the
        // 404s' two.
        assert_eq!(m.floor(), Duration::from_secs(20));
        assert_eq!(m.with_media(22).floor(), Duration::from_secs(10));
        // 33 requests, 16 per window of 15 s.
        assert_eq!(mix("many-tight").unwrap().floor(), Duration::from_secs(30));
    }
}
