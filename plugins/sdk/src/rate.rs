//! Pacing budgets as plugins' `site_rate` options write them
//! (`DOMAIN=N/WINDOW`), shared so every plugin reads the same syntax.

use crate::PluginError;

use ytdlp_contract::limits::MAX_WINDOW_MS;

/// A pacing budget: a (proxy, site) pair is handed out at most `n` times
/// in any sliding window of `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub n: u32,
    pub window_ms: u64,
}

impl Rate {
    /// `N/WINDOW`, WINDOW a whole number of `s`, `m` or `h`, the number
    /// optional (`6/10s`, `300/h`, `1/90s`).
    pub fn parse(s: &str) -> Option<Rate> {
        let (n, window) = s.split_once('/')?;
        let n: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|&n| (1..=1_000_000).contains(&n))?;
        let window = window.trim();
        let unit_at = window.find(|c: char| !c.is_ascii_digit())?;
        let (count, unit) = window.split_at(unit_at);
        let count: u64 = if count.is_empty() {
            1
        } else {
            count.parse().ok()?
        };
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        let window_ms = count.checked_mul(unit_ms)?;
        (1..=MAX_WINDOW_MS)
            .contains(&window_ms)
            .then_some(Rate { n, window_ms })
    }

    /// The window as people write it: `10 s`, `1 min`, `2 h`.
    pub fn window_text(self) -> String {
        window_text(self.window_ms)
    }
}

/// A window as people write it: `10 s`, `1 min`, `2 h`.
pub fn window_text(ms: u64) -> String {
    if ms.is_multiple_of(3_600_000) {
        format!("{} h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{} min", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{} s", ms / 1_000)
    } else {
        format!("{ms} ms")
    }
}

/// Option `key`'s `DOMAIN=N/WINDOW`, the domain in lower case and free of
/// the characters in `forbidden` (besides `/` and spaces); a bad value is
/// refused naming `key` and the value.
pub fn parse_site_rate(
    key: &str,
    v: &str,
    forbidden: &[char],
) -> Result<(String, Rate), PluginError> {
    v.split_once('=')
        .map(|(d, r)| (d.trim().to_ascii_lowercase(), Rate::parse(r)))
        .filter(|(d, _)| !d.is_empty() && !d.contains(['/', ' ']) && !d.contains(forbidden))
        .and_then(|(d, r)| Some((d, r?)))
        .ok_or_else(|| {
            PluginError::invalid(
                key,
                format!(
                    "`{v}` is not DOMAIN=N/WINDOW (N from 1 to 1000000, WINDOW like 10s, 90s, 1m, h: at most 30 days)"
                ),
            )
        })
}
