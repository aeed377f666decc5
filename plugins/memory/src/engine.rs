//! Proxy selection and health, independent of WebAssembly so it is tested
//! natively. Time is passed in (milliseconds since the Unix epoch) so tests
//! control the clock; randomness comes from a seedable generator.
//!
//! Rules:
//! - a proxy's id is its URL's identity without the password
//!   ([`ProxyUrl::identity_id`]), so a new password keeps its health; two
//!   proxies of one identity (two passwords at once) are told apart by a
//!   suffix in the order they were added (`p1a2b3c4d`, `p1a2b3c4d-2`);
//! - `get-proxy` hands out only proxies the request admits
//!   ([`Wanted::admits`]), the cheapest tier first, then by the configured
//!   strategy; the request's `avoid` ids only when nothing else is left; a
//!   `sticky_key` keeps its proxy while that proxy stays usable, admitted,
//!   unbanned and unavoided;
//! - proxy faults (connect, timeout, auth) count toward disabling, on
//!   *consecutive* failures; a success resets the count;
//! - `blocked` (403/429/bot check) concerns the proxy and that site's
//!   domain only (a *pair*), and bans the pair only on evidence: with the
//!   site's `Retry-After`, at once; without, when the site has refused a
//!   second distinct URL through that proxy within `site_ban_cap_ms` (one
//!   URL refused, however often, is a strike: the site may refuse that URL
//!   to everyone; an unknown URL counts as a new one);
//! - a pair's bans start short and double: `site_ban_base_ms`, then twice
//!   that per further ban, times a jitter factor in
//!   [1, 1 + `site_ban_jitter`), at most `site_ban_cap_ms` (0: no bans), at
//!   least the `Retry-After`; a success through the pair resets the
//!   doubling and the strike, and so does a cap's length without a
//!   refusal; a refusal while the pair is banned (a run handed out before
//!   the ban) only lengthens it to its `Retry-After`; a ban restored from
//!   the state counts as one (its doubling is not saved);
//! - pacing: `site_rate` (`DOMAIN=N/WINDOW`) hands a pair out at most N
//!   times in any sliding WINDOW (a handout is one `get-proxy` answer, one
//!   yt-dlp run); a pair at budget is skipped like a banned one and is
//!   free again exactly when its oldest counted handout leaves the window;
//! - learned rates (AIMD), for every site: a `blocked` with HTTP status
//!   429 sets the pair's budget to half its handouts in the window (the
//!   configured one, else `learn_window_ms`; at least 1; the 429 itself
//!   counts as a handout when none is counted); each success through the
//!   pair raises it by one, and the learned budget is dropped when it
//!   reaches the configured N or, without one, exceeds twice the handouts
//!   that drew the 429; it is forgotten by the sweep that follows a cap's
//!   length (or a window, if longer) without a refusal or ban. Handouts
//!   are counted only for sites with a configured rate or a learned
//!   budget, so other sites cost nothing;
//! - when every admitted proxy is banned, cooling down or at budget for
//!   the site, the answer says which and when the first is usable again
//!   (`retry_at_ms`: the latest of its ban end, cooldown end and budget's
//!   free time, the earliest over the proxies);
//! - `geo-restricted` is counted by kind and nothing else: the site refuses
//!   that URL in the proxy's country, which is neither the proxy's fault
//!   nor a ban for the site's other URLs;
//! - content, host and unknown failures never count against a proxy;
//! - a disabled proxy comes back after an exponential backoff with full
//!   jitter (`backoff_base_ms` doubling per failed recovery, capped at
//!   `backoff_cap_ms`), on probation: one success restores it, a proxy
//!   fault sends it back with its backoff doubled.
//!
//! Proxies are grouped by metadata (region, tags, tier: a class), each
//! class with the strategy's own index of its usable proxies, so a request
//! looks only at the classes it admits. Every strategy picks in
//! O(k log n) for k admitted classes of the cheapest tier (plus the
//! proxies banned for the site or avoided being skipped): round robin over
//! ordered sets merged in one global order, random over dense vectors,
//! least used and healthiest over ordered sets, weighted over Fenwick
//! trees of weights.
//!
//! [`ProxyUrl::identity_id`]: ytdlp_plugin_sdk::ProxyUrl::identity_id
//! [`Wanted::admits`]: ytdlp_plugin_sdk::Wanted::admits

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

/// Failure kinds, proxy states, stats rows and no-proxy answers: the
/// contract's own (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
pub use ytdlp_plugin_sdk::Rate;
use ytdlp_plugin_sdk::contract::limits::{MAX_PROXY_TIMEOUT_MS, MAX_WINDOW_MS};
pub use ytdlp_plugin_sdk::{
    NoProxy, PluginError, Proxy, ProxyEntry, ProxyMeta, ProxyState, ProxyStats as Stat, Request,
};
use ytdlp_plugin_sdk::{
    flag, fraction, is_host_key, num, parse_entry, parse_site_rate, window_text,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    Random,
    LeastUsed,
    Healthiest,
    Weighted,
}

impl Strategy {
    pub const NAMES: &'static str = "round_robin, random, least_used, healthiest, weighted";

    fn parse(s: &str) -> Result<Self, PluginError> {
        Ok(match s.replace('-', "_").as_str() {
            "round_robin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "least_used" => Strategy::LeastUsed,
            "healthiest" => Strategy::Healthiest,
            "weighted" => Strategy::Weighted,
            _ => {
                return Err(PluginError::invalid(
                    "strategy",
                    format!("unknown strategy `{s}` (supported: {})", Self::NAMES),
                ));
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub strategy: Strategy,
    /// Consecutive proxy faults that disable a proxy.
    pub failure_threshold: u32,
    /// Handed to the host with each proxy.
    pub timeout_ms: u32,
    /// First recovery window; doubles with each failed recovery.
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// Full jitter (a uniform delay in [0, window]) or the whole window.
    pub jitter: bool,
    /// Disabled proxies come back (false: they stay disabled, like
    /// yt-dlp.ex's manager).
    pub recovery: bool,
    /// A pair's first ban; each further one doubles it.
    pub site_ban_base_ms: u64,
    /// The longest ban (a `Retry-After` may be longer); 0: no bans. Also
    /// how long a strike, and a pair's doubling, are remembered.
    pub site_ban_cap_ms: u64,
    /// A ban is multiplied by a factor in [1, 1 + this), so pairs banned
    /// together do not all come back together.
    pub site_ban_jitter: f64,
    /// Configured budgets by site (`site_rate`).
    pub site_rates: HashMap<Box<str>, Rate>,
    /// The window of a learned budget at a site without a `site_rate`.
    pub learn_window_ms: u64,
    /// Most sticky keys remembered.
    pub sticky_max: usize,
    /// Healthiest: the prior (pseudo-successes, pseudo-failures) that makes
    /// a new proxy look good enough to be tried.
    pub prior: (f64, f64),
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            strategy: Strategy::RoundRobin,
            failure_threshold: 3,
            timeout_ms: 30_000,
            backoff_base_ms: 300_000,
            backoff_cap_ms: 3_600_000,
            jitter: true,
            recovery: true,
            // Short: a ban is re-earned cheaply and doubles, and a site's
            // Retry-After (the floor) usually says more than a guess.
            site_ban_base_ms: 5_000,
            site_ban_cap_ms: 1_800_000,
            site_ban_jitter: 0.2,
            site_rates: HashMap::new(),
            // Sites' rate windows are seconds to a minute; halving the
            // runs of a long window would pace far below what they allow.
            learn_window_ms: 10_000,
            sticky_max: 10_000,
            prior: (2.0, 0.25),
        }
    }
}

/// Where a proxy stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    Active,
    /// Back from a cooldown: one success restores it.
    Probation,
    /// Not handed out until the time (ms).
    Cooling(u64),
    /// Not handed out (recovery off).
    Disabled,
}

/// A proxy id as the engine makes them: `p` and 8 hex digits (the URL's
/// identity, [`ProxyUrl::identity_id`]), then `-N` for the Nth proxy of one
/// identity. Kept as numbers: 8 bytes rather than a string's 25, for each
/// of perhaps 100k proxies.
///
/// [`ProxyUrl::identity_id`]: ytdlp_plugin_sdk::ProxyUrl::identity_id
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Id {
    hash: u32,
    n: u16,
}

impl Id {
    /// An id in the engine's form (exactly as it prints), or `None`.
    pub fn parse(s: &str) -> Option<Id> {
        let rest = s.strip_prefix('p')?;
        let (hex, n) = match rest.split_once('-') {
            Some((h, n)) => (h, n.parse::<u16>().ok().filter(|&n| n >= 2)?),
            None => (rest, 1),
        };
        if hex.len() != 8 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let id = Id {
            hash: u32::from_str_radix(hex, 16).ok()?,
            n,
        };
        // One spelling per id (no `-02`).
        (id.to_string() == s).then_some(id)
    }

    /// The `n`th id of this one's identity.
    fn nth(self, n: u16) -> Id {
        Id { n, ..self }
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{:08x}", self.hash)?;
        if self.n > 1 {
            write!(f, "-{}", self.n)?;
        }
        Ok(())
    }
}

/// One proxy. Kept small: memory per proxy is a goal (≤ 200 bytes); its
/// metadata lives once per class.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: Id,
    /// The URL as configured, credentials included (the current password).
    pub url: Box<str>,
    /// Its class (metadata) and its place among the class's members.
    class: u32,
    slot: u32,
    pub weight: u32,
    pub successes: u32,
    pub failures: [u32; Kind::ALL.len()],
    pub consecutive: u16,
    pub backoff_level: u8,
    pub health: Health,
    pub uses: u32,
    pub last_used: u64,
    /// Added through `admin` rather than the configured list.
    pub added: bool,
    /// Removed (slots are not reused, so indices stay valid).
    removed: bool,
    /// In its class's index (usable and not removed).
    indexed: bool,
}

impl Entry {
    /// Removed from the list (through admin or a reload).
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    fn usable(&self) -> bool {
        !self.removed && matches!(self.health, Health::Active | Health::Probation)
    }

    fn proxy_failures(&self) -> u32 {
        self.failures[Kind::ProxyConnect as usize]
            + self.failures[Kind::ProxyTimeout as usize]
            + self.failures[Kind::ProxyAuth as usize]
    }

    /// Healthiest's score, as an integer key (higher is healthier).
    fn score(&self, prior: (f64, f64)) -> u32 {
        let s = f64::from(self.successes) + prior.0;
        let f = f64::from(self.proxy_failures()) + prior.1;
        ((s / (s + f)) * 1e9) as u32
    }
}

/// What the state files keep of a proxy: its identity, URL, metadata and
/// health.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Empty in a 0.1 state file (keyed by URL); given when it is loaded.
    #[serde(default)]
    pub id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "ProxyMeta::is_empty")]
    pub meta: ProxyMeta,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub successes: u32,
    #[serde(default, with = "by_kind")]
    pub failures: [u32; Kind::ALL.len()],
    #[serde(default)]
    pub consecutive: u16,
    #[serde(default)]
    pub backoff_level: u8,
    pub health: Health,
    #[serde(default)]
    pub uses: u32,
    #[serde(default)]
    pub last_used: u64,
    #[serde(default)]
    pub added: bool,
}

fn one() -> u32 {
    1
}

impl Record {
    /// A proxy at `url`, never used.
    pub fn new(id: &str, url: &str) -> Record {
        Record {
            id: id.to_string(),
            url: url.to_string(),
            meta: ProxyMeta::default(),
            weight: 1,
            successes: 0,
            failures: [0; Kind::ALL.len()],
            consecutive: 0,
            backoff_level: 0,
            health: Health::Active,
            uses: 0,
            last_used: 0,
            added: false,
        }
    }
}

/// Failure counts stored by kind name (`{"blocked": 2}`), so a kind added
/// to the contract never shifts the others; the list of 0.1's seven
/// counts, in 0.1's order, is still read.
mod by_kind {
    use super::Kind;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    const V01_ORDER: [Kind; 7] = [
        Kind::ProxyConnect,
        Kind::ProxyTimeout,
        Kind::ProxyAuth,
        Kind::Blocked,
        Kind::Content,
        Kind::Host,
        Kind::Unknown,
    ];

    pub fn serialize<S: Serializer>(
        counts: &[u32; Kind::ALL.len()],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, u32> = Kind::ALL
            .iter()
            .filter(|k| counts[**k as usize] > 0)
            .map(|k| (k.name(), counts[*k as usize]))
            .collect();
        map.serialize(s)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        ByName(BTreeMap<String, u32>),
        V01(Vec<u32>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u32; Kind::ALL.len()], D::Error> {
        let mut counts = [0; Kind::ALL.len()];
        match Stored::deserialize(d)? {
            Stored::ByName(map) => {
                // A kind this build does not know is dropped, not an error.
                for (name, n) in map {
                    if let Some(k) = Kind::from_name(&name) {
                        counts[k as usize] = n;
                    }
                }
            }
            Stored::V01(list) => {
                for (k, n) in V01_ORDER.iter().zip(list) {
                    counts[*k as usize] = n;
                }
            }
        }
        Ok(counts)
    }
}

/// What changed since the last [`Engine::take_dirty`], for the journal.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Entry(Record),
    Removed(String),
}

/// The `n`th id of identity `base`: `base`, then `base-2`, `base-3`, ...
/// (the strings of [`Id`]).
pub fn nth_id(base: &str, n: u32) -> String {
    if n <= 1 {
        base.to_string()
    } else {
        format!("{base}-{n}")
    }
}

/// The index a class's strategy picks from: its usable proxies.
#[derive(Debug)]
enum Index {
    RoundRobin(BTreeSet<u32>),
    Random {
        dense: Vec<u32>,
        /// By slot: the position in `dense`, or `NONE`.
        pos: Vec<u32>,
    },
    LeastUsed(BTreeSet<(u32, u32)>),
    Healthiest(BTreeSet<(Reverse<u32>, u64, u32)>),
    /// By slot.
    Weighted(Fenwick),
}

const NONE: u32 = u32::MAX;

/// Proxies of one metadata.
#[derive(Debug)]
struct Class {
    meta: ProxyMeta,
    /// Slot -> entry (slots are not reused).
    members: Vec<u32>,
    index: Index,
    /// Members in the index.
    usable: u32,
    /// Members not removed.
    live: u32,
}

/// A Fenwick tree of weights: prefix sums and sampling in O(log n).
#[derive(Debug, Default)]
struct Fenwick {
    tree: Vec<u64>,
    values: Vec<u32>,
}

impl Fenwick {
    fn ensure(&mut self, n: usize) {
        if self.values.len() < n {
            // Rebuild: growth is rare (adding proxies).
            let mut values = std::mem::take(&mut self.values);
            values.resize(n.next_power_of_two(), 0);
            self.tree = vec![0; values.len() + 1];
            self.values = vec![0; values.len()];
            for (i, v) in values.into_iter().enumerate() {
                self.set(i, v);
            }
        }
    }

    fn set(&mut self, i: usize, v: u32) {
        self.ensure(i + 1);
        let delta = i64::from(v) - i64::from(self.values[i]);
        self.values[i] = v;
        let mut j = i + 1;
        while j < self.tree.len() {
            self.tree[j] = (self.tree[j] as i64 + delta) as u64;
            j += j & j.wrapping_neg();
        }
    }

    fn total(&self) -> u64 {
        let mut sum = 0;
        let mut j = self.values.len();
        while j > 0 {
            sum += self.tree[j];
            j -= j & j.wrapping_neg();
        }
        sum
    }

    /// The index whose cumulative range contains `target` (< total).
    fn find(&self, mut target: u64) -> usize {
        let mut pos = 0;
        let mut step = self.values.len().next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next < self.tree.len() && self.tree[next] <= target {
                target -= self.tree[next];
                pos = next;
            }
            step >>= 1;
        }
        pos
    }
}

/// Handouts counted per pair at a site without a configured rate (for the
/// count a 429 halves): more runs than this through one proxy in one
/// learn window are not expected, and memory per pair stays bounded.
const TRACK_MAX: usize = 64;

/// How often `get-proxy` sweeps out pairs that hold nothing any more (an
/// engine that saves nothing never calls [`Engine::prune_bans`]).
const PRUNE_EVERY_MS: u64 = 60_000;

/// A learned budget (AIMD) of one pair.
#[derive(Clone, Copy, Debug)]
struct Learned {
    /// Handouts allowed per window (at least 1).
    limit: u32,
    /// Without a configured rate, the budget is dropped once `limit`
    /// exceeds this (twice the handouts that drew the 429).
    release: u32,
}

/// What the engine knows of one (proxy, site) pair. Only pairs with
/// something to remember have one.
#[derive(Debug, Default)]
struct Pair {
    /// Banned until (ms); 0: never banned.
    until: u64,
    /// Bans since the pair's last success: the next lasts base · 2^level.
    level: u8,
    /// The last refusal: the URL's hash (`None`: unknown URL) and when.
    strike: Option<(Option<u64>, u64)>,
    /// Recent handout times, oldest first, while the site is paced.
    handouts: VecDeque<u64>,
    learned: Option<Learned>,
}

impl Pair {
    /// The pair's budget (handouts per window), if any.
    fn budget(&self, rate: Option<Rate>, learn_ms: u64) -> Option<(usize, u64)> {
        let window = rate.map_or(learn_ms, |r| r.window_ms);
        let limit = match (rate, self.learned) {
            (Some(r), Some(l)) => r.n.min(l.limit),
            (Some(r), None) => r.n,
            (None, Some(l)) => l.limit,
            (None, None) => return None,
        };
        Some((limit as usize, window))
    }

    /// When the pair is free again if it is at budget now: the time the
    /// `limit`-th most recent handout leaves the window. O(1): the
    /// handouts are in time order.
    fn free_at(&self, rate: Option<Rate>, learn_ms: u64, now: u64) -> Option<u64> {
        let (limit, window) = self.budget(rate, learn_ms)?;
        let n = self.handouts.len();
        let t = *self.handouts.get(n.checked_sub(limit)?)?;
        let free = t.saturating_add(window);
        (free > now).then_some(free)
    }

    /// Handouts within the window ending now.
    fn in_window(&self, window: u64, now: u64) -> usize {
        let old = self
            .handouts
            .partition_point(|&t| t.saturating_add(window) <= now);
        self.handouts.len() - old
    }

    /// Neither banned nor at budget.
    fn free(&self, rate: Option<Rate>, learn_ms: u64, now: u64) -> bool {
        self.until <= now && self.free_at(rate, learn_ms, now).is_none()
    }
}

/// One site's pairs, by proxy.
#[derive(Debug, Default)]
struct SiteState {
    pairs: HashMap<u32, Pair>,
    /// Pairs with a learned budget: while any (or a rate is configured),
    /// handouts for the site are counted.
    learning: u32,
}

/// The engine: proxies, their health, and the strategy's indices.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    entries: Vec<Entry>,
    by_id: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    classes: Vec<Class>,
    class_of: HashMap<ProxyMeta, u32>,
    /// Round robin: the next entry index in the global order.
    cursor: u32,
    /// Cooling proxies by the time they come back.
    cooling: BinaryHeap<Reverse<(u64, u32)>>,
    /// site (registrable domain) -> its pairs: bans, strikes, pacing.
    sites: HashMap<Box<str>, SiteState>,
    /// When `get-proxy` next sweeps `sites`.
    next_prune: u64,
    sticky: HashMap<Box<str>, u32>,
    rng: fastrand::Rng,
    /// Entries changed since the last [`Engine::take_dirty`] (only while
    /// changes are tracked, i.e. saved somewhere).
    dirty: Vec<u32>,
    track: bool,
    new_bans: Vec<(String, String, u64)>,
    live: usize,
}

/// Every option the engine reads (all at `init`): key, help, repeated,
/// secret. `describe` lists them and [`Init::parse`] refuses any other.
pub const OPTIONS: &[(&str, &str, bool, bool)] = &[
    (
        "proxy",
        "a proxy: URL[;region=DE;tags=a,b;tier=1] (also host:port, user:pass@host:port, host:port:user:pass)",
        true,
        // Proxy URLs carry passwords.
        true,
    ),
    (
        "weight",
        "URL=N or ID=N: a proxy's weight for strategy `weighted` (default 1)",
        true,
        false,
    ),
    (
        "strategy",
        "round_robin (default), random, least_used, healthiest or weighted",
        false,
        false,
    ),
    (
        "failure_threshold",
        "consecutive proxy faults that take a proxy out (default 3)",
        false,
        false,
    ),
    (
        "timeout_ms",
        "the proxy timeout handed to the host (default 30000)",
        false,
        false,
    ),
    (
        "backoff_base_ms",
        "first time out after the threshold, doubling per failed recovery (default 300000)",
        false,
        false,
    ),
    (
        "backoff_cap_ms",
        "longest time out (default 3600000)",
        false,
        false,
    ),
    (
        "jitter",
        "full (default: a random part of the window) or none",
        false,
        false,
    ),
    (
        "recovery",
        "false: a proxy taken out stays out (default true)",
        false,
        false,
    ),
    (
        "site_ban_base_ms",
        "a proxy's first ban from a site after `blocked` (two URLs refused, or a Retry-After); each further ban doubles (default 5000)",
        false,
        false,
    ),
    (
        "site_ban_cap_ms",
        "the longest ban from a site, unless its Retry-After is longer; 0: no bans (default 1800000)",
        false,
        false,
    ),
    (
        "site_ban_jitter",
        "a ban is multiplied by a random factor in [1, 1 + this), a fraction from 0 to 1 (default 0.2)",
        false,
        false,
    ),
    (
        "site_ban_ms",
        "deprecated: sets site_ban_cap_ms (bans now start at site_ban_base_ms and double)",
        false,
        false,
    ),
    (
        "site_rate",
        "DOMAIN=N/WINDOW: each proxy at most N runs per sliding WINDOW for that site (10s, 90s, 1m, h; e.g. youtube.com=300/h)",
        true,
        false,
    ),
    (
        "learn_window_ms",
        "the window of a rate learned from a site's 429 where no site_rate is set (default 10000)",
        false,
        false,
    ),
    ("seed", "seed of the random choices (tests)", false, false),
    (
        "state_dir",
        "where older builds kept health (set by the host; read once to move it into the store)",
        false,
        false,
    ),
    (
        "keyvalue",
        "the granted key-value bucket health is kept in, shared by every host process using the store (set by the host)",
        false,
        false,
    ),
    (
        "read_only",
        "read the state, never write it (set by the host for queries)",
        false,
        false,
    ),
];

/// Parsed init options.
#[derive(Debug, Default)]
pub struct Init {
    pub settings: Settings,
    /// The configured proxies, in order, with their weights.
    pub proxies: Vec<(ProxyEntry, u32)>,
    pub seed: Option<u64>,
    pub state_dir: Option<String>,
    /// The key-value bucket health lives in (`None`: the state directory,
    /// or nowhere).
    pub keyvalue: Option<String>,
    /// Read the saved state, never write it (`proxies stats`, `proxies get`).
    pub read_only: bool,
}

impl Init {
    /// See [`OPTIONS`]. Unknown keys are refused so a typo does not
    /// silently do nothing; a `proxy` that does not parse is refused with
    /// its position (not its text, which may hold a password).
    pub fn parse(options: &[(String, String)]) -> Result<Init, PluginError> {
        let mut init = Init::default();
        let s = &mut init.settings;
        let mut weights: HashMap<String, u32> = HashMap::new();
        // `site_ban_ms` (deprecated) is the cap unless the cap is given.
        let (mut cap, mut old_ban) = (None, None);
        let mut lines = Vec::new();
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "proxy" => lines.push(v.to_string()),
                "weight" => {
                    let (url, w) = v
                        .rsplit_once('=')
                        .ok_or_else(|| PluginError::invalid("weight", "not URL=N or ID=N"))?;
                    weights.insert(url.trim().to_string(), num("weight", w, 0, 1_000_000)?);
                }
                "strategy" => s.strategy = Strategy::parse(v)?,
                "failure_threshold" => s.failure_threshold = num(key, v, 1, 1_000_000)?,
                "timeout_ms" => s.timeout_ms = num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "backoff_base_ms" => s.backoff_base_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                "backoff_cap_ms" => s.backoff_cap_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                "jitter" => {
                    s.jitter = match v {
                        "full" => true,
                        "none" => false,
                        _ => return Err(PluginError::invalid("jitter", "not full or none")),
                    }
                }
                "recovery" => s.recovery = flag(key, v)?,
                "site_ban_base_ms" => s.site_ban_base_ms = num(key, v, 0, MAX_WINDOW_MS)?,
                "site_ban_cap_ms" => cap = Some(num(key, v, 0, MAX_WINDOW_MS)?),
                "site_ban_ms" => old_ban = Some(num(key, v, 0, MAX_WINDOW_MS)?),
                "site_ban_jitter" => s.site_ban_jitter = fraction(key, v)?,
                "site_rate" => {
                    let (domain, rate) = parse_site_rate(key, v, &[])?;
                    s.site_rates.insert(domain.into(), rate);
                }
                "learn_window_ms" => s.learn_window_ms = num(key, v, 1, MAX_WINDOW_MS)?,
                "seed" => init.seed = Some(num(key, v, 0, u64::MAX)?),
                "state_dir" => init.state_dir = Some(v.to_string()),
                "keyvalue" => init.keyvalue = Some(v.to_string()),
                "read_only" => init.read_only = flag(key, v)?,
                other if is_host_key(other) => {}
                other => return Err(PluginError::unknown_option(other)),
            }
        }
        if let Some(cap) = cap.or(old_ban) {
            s.site_ban_cap_ms = cap;
        }
        if s.backoff_cap_ms < s.backoff_base_ms {
            s.backoff_cap_ms = s.backoff_base_ms;
        }
        for (n, line) in lines.iter().enumerate().filter(|(_, l)| !l.is_empty()) {
            let entry = parse_entry(line)
                .map_err(|e| PluginError::invalid("proxy", format!("proxy {}: {e}", n + 1)))?;
            let address = line.split(';').next().unwrap_or("").trim();
            let w = [address, entry.url.expose(), &entry.url.identity_id()]
                .iter()
                .find_map(|k| weights.get(*k))
                .copied()
                .unwrap_or(1);
            init.proxies.push((entry, w));
        }
        Ok(init)
    }
}

/// What a failure report tells the engine besides the kind: the request's
/// URL and the failure's detail.
#[derive(Clone, Copy, Debug, Default)]
pub struct FailureInfo<'a> {
    /// The URL of the attempt; empty if unknown (then each refusal counts
    /// as a URL of its own).
    pub url: &'a str,
    pub http_status: Option<u16>,
    /// The site's `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The host's pre-flight check found the proxy dead or refusing: that
    /// is certain (no site, no yt-dlp in between), so a proxy fault cools
    /// the proxy down at once instead of after `failure_threshold`.
    pub certain: bool,
}

/// Forgets what a pair learned from refusals (its strike, doubling and
/// learned budget) once `horizon` has passed since the last refusal and
/// the end of its last ban; `learning` is the site's count of learned
/// budgets.
fn forget_stale(p: &mut Pair, learning: &mut u32, horizon: u64, now: u64) {
    let last = p.strike.map_or(0, |(_, at)| at).max(p.until);
    if last.saturating_add(horizon) <= now {
        p.strike = None;
        p.level = 0;
        if p.learned.take().is_some() {
            *learning -= 1;
        }
    }
}

/// The first item, in key order across `iters` (each already in key
/// order), that `ok` accepts: a k-way merge that stops at the first hit.
fn first_in_order<K: Ord, I: Iterator<Item = (K, u32)>>(
    iters: Vec<I>,
    ok: &impl Fn(u32) -> bool,
) -> Option<u32> {
    let mut iters = iters;
    let mut heap = BinaryHeap::new();
    for (n, it) in iters.iter_mut().enumerate() {
        if let Some((k, i)) = it.next() {
            heap.push(Reverse((k, i, n)));
        }
    }
    while let Some(Reverse((_, i, n))) = heap.pop() {
        if ok(i) {
            return Some(i);
        }
        if let Some((k, j)) = iters[n].next() {
            heap.push(Reverse((k, j, n)));
        }
    }
    None
}

/// The strategy's choice among the usable proxies of `group` (classes of
/// one tier) that `ok` accepts.
fn pick_in(
    classes: &[Class],
    group: &[u32],
    rng: &mut fastrand::Rng,
    cursor: &mut u32,
    ok: &impl Fn(u32) -> bool,
) -> Option<u32> {
    let of = |c: &u32| &classes[*c as usize];
    match &of(group.first()?).index {
        Index::RoundRobin(_) => {
            let sets: Vec<&BTreeSet<u32>> = group
                .iter()
                .filter_map(|c| match &of(c).index {
                    Index::RoundRobin(s) => Some(s),
                    _ => None,
                })
                .collect();
            let start = *cursor;
            let after: Vec<_> = sets
                .iter()
                .map(|s| s.range(start..).map(|&i| (i, i)))
                .collect();
            let found = first_in_order(after, ok).or_else(|| {
                let before: Vec<_> = sets
                    .iter()
                    .map(|s| s.range(..start).map(|&i| (i, i)))
                    .collect();
                first_in_order(before, ok)
            });
            if let Some(i) = found {
                *cursor = i + 1;
            }
            found
        }
        Index::LeastUsed(_) => {
            let iters: Vec<_> = group
                .iter()
                .filter_map(|c| match &of(c).index {
                    Index::LeastUsed(s) => Some(s.iter().map(|&k| (k, k.1))),
                    _ => None,
                })
                .collect();
            first_in_order(iters, ok)
        }
        Index::Healthiest(_) => {
            let iters: Vec<_> = group
                .iter()
                .filter_map(|c| match &of(c).index {
                    Index::Healthiest(s) => Some(s.iter().map(|&k| (k, k.2))),
                    _ => None,
                })
                .collect();
            first_in_order(iters, ok)
        }
        Index::Random { .. } => {
            let dense: Vec<&Vec<u32>> = group
                .iter()
                .filter_map(|c| match &of(c).index {
                    Index::Random { dense, .. } => Some(dense),
                    _ => None,
                })
                .collect();
            let total: usize = dense.iter().map(|d| d.len()).sum();
            if total == 0 {
                return None;
            }
            // A few draws (bans and avoided proxies are few), then a scan.
            for _ in 0..8 {
                let mut r = rng.usize(..total);
                for d in &dense {
                    if r < d.len() {
                        if ok(d[r]) {
                            return Some(d[r]);
                        }
                        break;
                    }
                    r -= d.len();
                }
            }
            dense
                .iter()
                .flat_map(|d| d.iter().copied())
                .find(|&i| ok(i))
        }
        Index::Weighted(_) => {
            let trees: Vec<(&Fenwick, &[u32], u64)> = group
                .iter()
                .filter_map(|c| match &of(c).index {
                    Index::Weighted(t) => Some((t, of(c).members.as_slice(), t.total())),
                    _ => None,
                })
                .collect();
            let total: u64 = trees.iter().map(|t| t.2).sum();
            if total == 0 {
                return None;
            }
            for _ in 0..8 {
                let mut r = rng.u64(..total);
                for (tree, members, sum) in &trees {
                    if r < *sum {
                        let i = members[tree.find(r)];
                        if ok(i) {
                            return Some(i);
                        }
                        break;
                    }
                    r -= sum;
                }
            }
            trees.iter().find_map(|(tree, members, _)| {
                members
                    .iter()
                    .enumerate()
                    .find(|&(slot, &i)| tree.values.get(slot).is_some_and(|&w| w > 0) && ok(i))
                    .map(|(_, &i)| i)
            })
        }
    }
}

impl Engine {
    /// An engine with `settings` and no proxies.
    pub fn new(settings: Settings, seed: Option<u64>) -> Engine {
        let hasher = std::hash::RandomState::new();
        // The standard library seeds RandomState from the platform's
        // randomness (wasi:random in a plugin): a seed without a dependency.
        let seed = seed.unwrap_or_else(|| hasher.hash_one(0xfeed_u64));
        Engine {
            settings,
            entries: Vec::new(),
            by_id: hashbrown::HashTable::new(),
            hasher,
            classes: Vec::new(),
            class_of: HashMap::new(),
            cursor: 0,
            cooling: BinaryHeap::new(),
            sites: HashMap::new(),
            next_prune: 0,
            sticky: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            dirty: Vec::new(),
            track: false,
            new_bans: Vec::new(),
            live: 0,
        }
    }

    /// Builds an engine from init options (see [`Init::parse`]).
    pub fn from_options(options: &[(String, String)]) -> Result<Engine, PluginError> {
        let init = Init::parse(options)?;
        let mut engine = Engine::new(init.settings, init.seed);
        for (entry, w) in &init.proxies {
            engine.add(entry, *w, false);
        }
        Ok(engine)
    }

    fn empty_index(&self) -> Index {
        match self.settings.strategy {
            Strategy::RoundRobin => Index::RoundRobin(BTreeSet::new()),
            Strategy::Random => Index::Random {
                dense: Vec::new(),
                pos: Vec::new(),
            },
            Strategy::LeastUsed => Index::LeastUsed(BTreeSet::new()),
            Strategy::Healthiest => Index::Healthiest(BTreeSet::new()),
            Strategy::Weighted => Index::Weighted(Fenwick::default()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Proxies known (not removed).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The proxy with this id.
    pub fn find(&self, id: &str) -> Option<u32> {
        self.find_id(Id::parse(id)?)
    }

    fn find_id(&self, id: Id) -> Option<u32> {
        let h = self.hasher.hash_one(id);
        self.by_id
            .find(h, |&i| self.entries[i as usize].id == id)
            .copied()
    }

    /// The proxies of one identity, in id order (`base`, `base-2`, ...).
    fn chain(&self, base: Id) -> Vec<u32> {
        (1..=u16::MAX)
            .map_while(|n| self.find_id(base.nth(n)))
            .collect()
    }

    /// The proxy at exactly `url` (credentials included), among the ids
    /// of its identity.
    pub fn find_url(&self, url: &str) -> Option<u32> {
        let parsed = parse_entry(url).ok()?;
        let base = Id::parse(&parsed.url.identity_id())?;
        let url = parsed.url.expose();
        self.chain(base)
            .into_iter()
            .find(|&i| &*self.entries[i as usize].url == url)
    }

    /// The proxy named by an id or, failing that, a URL (what reports and
    /// `remove-proxies` may name).
    pub fn find_proxy(&self, id_or_url: &str) -> Option<u32> {
        self.find(id_or_url).or_else(|| {
            if id_or_url.contains(':') {
                self.find_url(id_or_url)
            } else {
                None
            }
        })
    }

    /// The entry at `i` (from [`Engine::find`]).
    pub fn entry(&self, i: u32) -> &Entry {
        &self.entries[i as usize]
    }

    /// The metadata of the proxy at `i`.
    pub fn meta(&self, i: u32) -> &ProxyMeta {
        &self.classes[self.entries[i as usize].class as usize].meta
    }

    /// The class of `meta`, made if new.
    fn class_for(&mut self, meta: &ProxyMeta) -> u32 {
        if let Some(&c) = self.class_of.get(meta) {
            return c;
        }
        let c = self.classes.len() as u32;
        let index = self.empty_index();
        self.classes.push(Class {
            meta: meta.clone(),
            members: Vec::new(),
            index,
            usable: 0,
            live: 0,
        });
        self.class_of.insert(meta.clone(), c);
        c
    }

    /// Makes `i` a member of class `c` (it must be out of any index).
    fn join(&mut self, i: u32, c: u32) {
        let class = &mut self.classes[c as usize];
        let slot = class.members.len() as u32;
        class.members.push(i);
        if let Index::Random { pos, .. } = &mut class.index {
            pos.push(NONE);
        }
        let e = &mut self.entries[i as usize];
        e.class = c;
        e.slot = slot;
    }

    /// Adds a proxy; returns whether it is new (or back after a removal).
    /// The same URL is the same proxy (its metadata and weight updated,
    /// its health kept). A new URL gets the first id of its identity that
    /// is free, or that of a removed proxy of that identity, whose health
    /// it takes over (a password changed through remove + add).
    pub fn add(&mut self, entry: &ProxyEntry, weight: u32, added: bool) -> bool {
        let url = entry.url.expose();
        let base = Id::parse(&entry.url.identity_id()).expect("identity ids are the engine's form");
        let chain = self.chain(base);
        if let Some(&i) = chain
            .iter()
            .find(|&&i| &*self.entries[i as usize].url == url)
        {
            let back = self.entries[i as usize].removed;
            if back {
                self.revive(i, added);
            }
            self.update(i, &entry.meta, weight);
            return back;
        }
        if let Some(&i) = chain.iter().find(|&&i| self.entries[i as usize].removed) {
            self.entries[i as usize].url = url.into();
            self.revive(i, added);
            self.update(i, &entry.meta, weight);
            return true;
        }
        let Ok(n) = u16::try_from(chain.len() + 1) else {
            return false; // 65535 passwords for one identity: enough
        };
        let mut rec = Record::new(&base.nth(n).to_string(), url);
        rec.meta = entry.meta.clone();
        rec.weight = weight;
        rec.added = added;
        self.restore(rec);
        true
    }

    /// Adds a proxy under a given id (the state's assignment); false if
    /// that id is known already (then only its metadata and weight are
    /// updated).
    pub fn add_as(&mut self, id: &str, entry: &ProxyEntry, weight: u32) -> bool {
        if let Some(i) = self.find(id) {
            self.update(i, &entry.meta, weight);
            return false;
        }
        let mut rec = Record::new(id, entry.url.expose());
        rec.meta = entry.meta.clone();
        rec.weight = weight;
        self.restore(rec).is_some()
    }

    /// Sets a known proxy's metadata and weight.
    fn update(&mut self, i: u32, meta: &ProxyMeta, weight: u32) {
        let e = &self.entries[i as usize];
        let moved = self.classes[e.class as usize].meta != *meta;
        if !moved && e.weight == weight {
            return;
        }
        let was = e.indexed;
        self.index_remove(i);
        if moved {
            let old = self.entries[i as usize].class as usize;
            let c = self.class_for(meta);
            if !self.entries[i as usize].removed {
                self.classes[old].live -= 1;
                self.classes[c as usize].live += 1;
            }
            self.join(i, c);
        }
        self.entries[i as usize].weight = weight;
        if was {
            self.index_insert(i);
        }
        self.mark_dirty(i);
    }

    fn revive(&mut self, i: u32, added: bool) {
        let e = &mut self.entries[i as usize];
        e.removed = false;
        e.added = added;
        let c = e.class as usize;
        self.live += 1;
        self.classes[c].live += 1;
        self.after_restore(i);
    }

    /// Puts back a proxy from saved state (or a new one): a known id gets
    /// the saved URL, metadata and health. `None` for an id not of the
    /// engine's form (a hand-edited state).
    pub fn restore(&mut self, rec: Record) -> Option<u32> {
        let id = Id::parse(&rec.id)?;
        let i = match self.find_id(id) {
            Some(i) => {
                self.index_remove(i);
                let e = &self.entries[i as usize];
                if !e.removed {
                    self.live -= 1;
                    self.classes[e.class as usize].live -= 1;
                }
                i
            }
            None => {
                let i = self.entries.len() as u32;
                self.entries.push(Entry {
                    id,
                    url: "".into(),
                    class: NONE,
                    slot: NONE,
                    weight: 1,
                    successes: 0,
                    failures: [0; Kind::ALL.len()],
                    consecutive: 0,
                    backoff_level: 0,
                    health: Health::Active,
                    uses: 0,
                    last_used: 0,
                    added: false,
                    removed: true,
                    indexed: false,
                });
                let h = self.hasher.hash_one(id);
                let (entries, hasher) = (&self.entries, &self.hasher);
                self.by_id
                    .insert_unique(h, i, |&j| hasher.hash_one(entries[j as usize].id));
                i
            }
        };
        let c = self.class_for(&rec.meta);
        if self.entries[i as usize].class != c {
            self.join(i, c);
        }
        let e = &mut self.entries[i as usize];
        e.url = rec.url.into();
        e.weight = rec.weight;
        e.successes = rec.successes;
        e.failures = rec.failures;
        e.consecutive = rec.consecutive;
        e.backoff_level = rec.backoff_level;
        e.health = rec.health;
        e.uses = rec.uses;
        e.last_used = rec.last_used;
        e.added = rec.added;
        e.removed = false;
        self.live += 1;
        self.classes[c as usize].live += 1;
        self.after_restore(i);
        Some(i)
    }

    fn after_restore(&mut self, i: u32) {
        match self.entries[i as usize].health {
            Health::Active | Health::Probation => self.index_insert(i),
            Health::Cooling(t) => self.cooling.push(Reverse((t, i))),
            Health::Disabled => {}
        }
        self.mark_dirty(i);
    }

    /// Removes a proxy by id or URL; returns false if it was not known.
    pub fn remove(&mut self, id_or_url: &str) -> bool {
        let Some(i) = self.find_proxy(id_or_url) else {
            return false;
        };
        if self.entries[i as usize].removed {
            return false;
        }
        self.index_remove(i);
        let e = &mut self.entries[i as usize];
        e.removed = true;
        let c = e.class as usize;
        self.live -= 1;
        self.classes[c].live -= 1;
        self.mark_dirty(i);
        true
    }

    /// Removes every proxy not in `keep` that was not added through admin.
    pub fn retain_configured(&mut self, keep: &[(ProxyEntry, u32)]) {
        let keep: HashSet<&str> = keep.iter().map(|(e, _)| e.url.expose()).collect();
        let drop: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.removed && !e.added && !keep.contains(&*e.url))
            .map(|e| e.id.to_string())
            .collect();
        for id in drop {
            self.remove(&id);
        }
    }

    fn index_insert(&mut self, i: u32) {
        let prior = self.settings.prior;
        let e = &mut self.entries[i as usize];
        if e.indexed || !e.usable() {
            return;
        }
        e.indexed = true;
        let e = &self.entries[i as usize];
        let class = &mut self.classes[e.class as usize];
        class.usable += 1;
        match &mut class.index {
            Index::RoundRobin(set) => {
                set.insert(i);
            }
            Index::Random { dense, pos } => {
                pos[e.slot as usize] = dense.len() as u32;
                dense.push(i);
            }
            Index::LeastUsed(set) => {
                set.insert((e.uses, i));
            }
            Index::Healthiest(set) => {
                set.insert((Reverse(e.score(prior)), e.last_used, i));
            }
            Index::Weighted(tree) => tree.set(e.slot as usize, e.weight),
        }
    }

    /// Takes `i` out of its class's index, with the keys it was put in
    /// with (so call it before changing what a key is made of).
    fn index_remove(&mut self, i: u32) {
        let prior = self.settings.prior;
        let e = &mut self.entries[i as usize];
        if !e.indexed {
            return;
        }
        e.indexed = false;
        let e = &self.entries[i as usize];
        let (class_no, slot) = (e.class as usize, e.slot as usize);
        let class = &mut self.classes[class_no];
        class.usable -= 1;
        match &mut class.index {
            Index::RoundRobin(set) => {
                set.remove(&i);
            }
            Index::Random { dense, pos } => {
                let p = std::mem::replace(&mut pos[slot], NONE);
                let last = dense.pop().expect("dense not empty");
                if last != i {
                    dense[p as usize] = last;
                    pos[self.entries[last as usize].slot as usize] = p;
                }
            }
            Index::LeastUsed(set) => {
                set.remove(&(e.uses, i));
            }
            Index::Healthiest(set) => {
                set.remove(&(Reverse(e.score(prior)), e.last_used, i));
            }
            Index::Weighted(tree) => {
                if slot < tree.values.len() {
                    tree.set(slot, 0)
                }
            }
        }
    }

    /// Brings back cooled-down proxies whose time has come (on probation).
    fn wake(&mut self, now: u64) {
        while let Some(&Reverse((t, i))) = self.cooling.peek() {
            if t > now {
                break;
            }
            self.cooling.pop();
            let e = &mut self.entries[i as usize];
            if e.removed || e.health != Health::Cooling(t) {
                continue; // stale heap entry
            }
            e.health = Health::Probation;
            self.mark_dirty(i);
            self.index_insert(i);
        }
    }

    /// The configured budget for `site`. No hashing when none is
    /// configured (the common case: get-proxy is a hot path).
    fn rate_for(&self, site: &str) -> Option<Rate> {
        if self.settings.site_rates.is_empty() || site.is_empty() {
            return None;
        }
        self.settings.site_rates.get(site).copied()
    }

    /// Neither banned for `site` nor at budget there.
    fn free_for(&self, i: u32, site: &str, rate: Option<Rate>, now: u64) -> bool {
        let learn = self.settings.learn_window_ms;
        self.sites
            .get(site)
            .and_then(|s| s.pairs.get(&i))
            .is_none_or(|p| p.free(rate, learn, now))
    }

    /// Chooses a proxy for `request`: admitted by its `want`, neither
    /// banned for its site (`site.domain`) nor at budget there, its `avoid`
    /// ids only if nothing else is left, the cheapest tier first, its
    /// `sticky_key`'s proxy while that one qualifies.
    pub fn next_for(&mut self, now: u64, request: &Request) -> Result<Proxy, NoProxy> {
        self.wake(now);
        if now >= self.next_prune {
            self.prune_bans(now);
            self.next_prune = now.saturating_add(PRUNE_EVERY_MS);
        }
        let site = request.site.domain.as_str();
        let rate = self.rate_for(site);
        let avoid: Vec<u32> = request
            .avoid
            .iter()
            .filter_map(|id| self.find(id))
            .collect();
        let sticky = request.sticky_key.as_deref().filter(|k| !k.is_empty());
        if let Some(&i) = sticky.and_then(|key| self.sticky.get(key)) {
            let e = &self.entries[i as usize];
            if e.indexed
                && request.want.admits(self.meta(i))
                && self.free_for(i, site, rate, now)
                && !avoid.contains(&i)
            {
                return Ok(self.hand_out(i, site, rate, now));
            }
        }
        let mut admitted: Vec<(u8, u32)> = self
            .classes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.usable > 0 && request.want.admits(&c.meta))
            .map(|(n, c)| (c.meta.tier, n as u32))
            .collect();
        admitted.sort_unstable();
        let mut found = self.pick(&admitted, site, rate, &avoid, false, now);
        if found.is_none() && !avoid.is_empty() {
            found = self.pick(&admitted, site, rate, &avoid, true, now);
        }
        let Some(i) = found else {
            return Err(self.no_proxy(request, rate, now));
        };
        if let Some(key) = sticky {
            if self.sticky.len() >= self.settings.sticky_max
                && !self.sticky.contains_key(key)
                && let Some(k) = self.sticky.keys().next().cloned()
            {
                self.sticky.remove(&k);
            }
            self.sticky.insert(key.into(), i);
        }
        Ok(self.hand_out(i, site, rate, now))
    }

    /// Chooses a proxy for a request that asks nothing.
    pub fn next(&mut self, now: u64) -> Result<Proxy, NoProxy> {
        self.next_for(now, &Request::default())
    }

    /// The strategy's pick from `admitted` (tier, class), tier by tier,
    /// skipping proxies banned for `site` or at budget there and, unless
    /// `with_avoided`, those in `avoid`.
    fn pick(
        &mut self,
        admitted: &[(u8, u32)],
        site: &str,
        rate: Option<Rate>,
        avoid: &[u32],
        with_avoided: bool,
        now: u64,
    ) -> Option<u32> {
        let Engine {
            classes,
            rng,
            cursor,
            sites,
            settings,
            ..
        } = self;
        let learn = settings.learn_window_ms;
        // One lookup of the site; then one of the pair per candidate.
        let pairs = sites.get(site).map(|s| &s.pairs);
        let ok = |i: u32| {
            pairs
                .and_then(|m| m.get(&i))
                .is_none_or(|p| p.free(rate, learn, now))
                && (with_avoided || !avoid.contains(&i))
        };
        for tier in admitted.chunk_by(|a, b| a.0 == b.0) {
            let group: Vec<u32> = tier.iter().map(|&(_, c)| c).collect();
            if let Some(i) = pick_in(classes, &group, rng, cursor, &ok) {
                return Some(i);
            }
        }
        None
    }

    fn hand_out(&mut self, i: u32, site: &str, rate: Option<Rate>, now: u64) -> Proxy {
        let keyed = matches!(
            self.settings.strategy,
            Strategy::LeastUsed | Strategy::Healthiest
        );
        if keyed {
            self.index_remove(i);
        }
        let e = &mut self.entries[i as usize];
        e.uses = e.uses.saturating_add(1);
        e.last_used = now;
        if keyed {
            self.index_insert(i);
        }
        self.mark_dirty(i);
        self.count_handout(i, site, rate, now);
        self.proxy(i)
    }

    /// Counts a handout of `i` for `site`, if the site is paced (a
    /// configured rate or a learned budget); otherwise nothing is stored.
    fn count_handout(&mut self, i: u32, site: &str, rate: Option<Rate>, now: u64) {
        if site.is_empty() {
            return;
        }
        let st = match self.sites.get_mut(site) {
            Some(st) if rate.is_some() || st.learning > 0 => st,
            Some(_) => return,
            None if rate.is_some() => self.sites.entry(site.into()).or_default(),
            None => return,
        };
        let p = st.pairs.entry(i).or_default();
        let (limit, window) = p
            .budget(rate, self.settings.learn_window_ms)
            .unwrap_or((0, self.settings.learn_window_ms));
        // Enough to decide "at budget" (the last `limit`), and at a site
        // without a rate enough to count for a 429; never more.
        let keep = rate.map_or(limit.max(TRACK_MAX), |r| r.n as usize);
        while p
            .handouts
            .front()
            .is_some_and(|&t| t.saturating_add(window) <= now || p.handouts.len() >= keep)
        {
            p.handouts.pop_front();
        }
        // In time order even if the clock steps back.
        let t = p.handouts.back().map_or(now, |&b| b.max(now));
        p.handouts.push_back(t);
    }

    /// The configured pacing of `site` (`site_rate`), if any.
    pub fn site_rate(&self, site: &str) -> Option<Rate> {
        self.rate_for(site)
    }

    /// The handout times of the proxy `id` for `site` kept for pacing,
    /// oldest first.
    pub fn handouts(&self, site: &str, id: &str) -> Vec<u64> {
        self.find(id)
            .and_then(|i| self.sites.get(site)?.pairs.get(&i))
            .map_or_else(Vec::new, |p| p.handouts.iter().copied().collect())
    }

    /// Replaces the handout times of (`site`, `id`) with `times` (what
    /// every process sharing the store handed out), the last `site_rate`
    /// many within its window kept.
    pub fn set_handouts(&mut self, site: &str, id: &str, mut times: Vec<u64>, now: u64) {
        let (Some(i), Some(rate)) = (self.find(id), self.rate_for(site)) else {
            return;
        };
        times.sort_unstable();
        times.retain(|&t| t.saturating_add(rate.window_ms) > now);
        let skip = times.len().saturating_sub(rate.n as usize);
        if times.is_empty()
            && !self
                .sites
                .get(site)
                .is_some_and(|s| s.pairs.contains_key(&i))
        {
            return;
        }
        let st = self.sites.entry(site.into()).or_default();
        st.pairs.entry(i).or_default().handouts = times.into_iter().skip(skip).collect();
    }

    /// The proxy at `i` as the contract hands it out.
    fn proxy(&self, i: u32) -> Proxy {
        let e = &self.entries[i as usize];
        Proxy {
            id: e.id.to_string(),
            url: e.url.to_string(),
            timeout_ms: self.settings.timeout_ms,
            meta: self.meta(i).clone(),
        }
    }

    fn no_proxy(&self, request: &Request, rate: Option<Rate>, now: u64) -> NoProxy {
        if self.live == 0 {
            return NoProxy {
                message: "no proxies configured".to_string(),
                retry_at_ms: None,
            };
        }
        let want = &request.want;
        let admitted: Vec<u32> = (0..self.classes.len() as u32)
            .filter(|&c| {
                let c = &self.classes[c as usize];
                c.live > 0 && want.admits(&c.meta)
            })
            .collect();
        if admitted.is_empty() {
            let metas = self.classes.iter().filter(|c| c.live > 0).map(|c| &c.meta);
            return NoProxy {
                message: want.unmet_message(self.live, metas),
                retry_at_ms: None,
            };
        }
        let site = request.site.domain.as_str();
        // Members that moved to another class since are counted there.
        let members: BTreeSet<u32> = admitted
            .iter()
            .flat_map(|&c| {
                self.classes[c as usize]
                    .members
                    .iter()
                    .copied()
                    .filter(move |&i| {
                        let e = &self.entries[i as usize];
                        !e.removed && e.class == c
                    })
            })
            .collect();
        let live = members.len();
        let learn = self.settings.learn_window_ms;
        let pairs = self.sites.get(site).map(|s| &s.pairs);
        // Each proxy is usable again at the latest of its cooldown's end,
        // its ban's end and its budget's free time; the answer is the
        // earliest over them (none for a disabled proxy).
        let (mut usable, mut banned, mut paced, mut learned) = (0, 0, 0, false);
        let mut retry_at_ms: Option<u64> = None;
        for &i in &members {
            let e = &self.entries[i as usize];
            let mut at = match e.health {
                Health::Cooling(t) => t.max(now),
                Health::Active | Health::Probation => now,
                Health::Disabled => continue,
            };
            if e.usable() {
                usable += 1;
            }
            if let Some(p) = pairs.and_then(|m| m.get(&i)) {
                if p.until > now {
                    at = at.max(p.until);
                    banned += usize::from(e.usable());
                } else if e.usable() && p.free_at(rate, learn, now).is_some() {
                    paced += 1;
                    learned |= p
                        .learned
                        .is_some_and(|l| rate.is_none_or(|r| l.limit < r.n));
                }
                if let Some(free) = p.free_at(rate, learn, now) {
                    at = at.max(free);
                }
            }
            if at > now {
                retry_at_ms = Some(retry_at_ms.map_or(at, |r| r.min(at)));
            }
        }
        let wish = want.describe();
        let which = if wish.is_empty() {
            String::new()
        } else {
            format!(" {wish}")
        };
        let budget = || match rate {
            Some(r) if learned => format!(
                "{} per {}, or less as learned from 429s",
                r.n,
                window_text(r.window_ms)
            ),
            Some(r) => format!("{} per {}", r.n, window_text(r.window_ms)),
            None => format!("learned from 429s, per {}", window_text(learn)),
        };
        let message = if usable > 0 && paced == 0 {
            format!("all {usable} usable proxies{which} are banned for {site}")
        } else if usable > 0 && banned == 0 {
            format!(
                "all {usable} usable proxies{which} are at their rate budget for {site} ({})",
                budget()
            )
        } else if usable > 0 {
            format!(
                "all {usable} usable proxies{which} are banned for {site} ({banned}) or at their rate budget there ({paced}; {})",
                budget()
            )
        } else if retry_at_ms.is_some() {
            format!("all {live} proxies{which} are cooling down after failures")
        } else {
            format!(
                "all {live} proxies{which} are disabled after {} consecutive failures",
                self.settings.failure_threshold
            )
        };
        NoProxy {
            message,
            retry_at_ms,
        }
    }

    /// Records a success through the proxy `id` (or URL), at no site in
    /// particular.
    pub fn success(&mut self, id: &str, now: u64) {
        self.success_for(id, "", now);
    }

    /// Records a success through the proxy `id` (or URL) while fetching
    /// from `site`: the pair's doubling and strike are reset and a learned
    /// budget grows by one.
    pub fn success_for(&mut self, id: &str, site: &str, _now: u64) {
        let Some(i) = self.find_proxy(id) else {
            return;
        };
        let keyed = self.settings.strategy == Strategy::Healthiest;
        let was = self.entries[i as usize].indexed;
        if keyed {
            self.index_remove(i);
        }
        let e = &mut self.entries[i as usize];
        e.successes = e.successes.saturating_add(1);
        e.consecutive = 0;
        if e.health == Health::Probation {
            e.health = Health::Active;
        }
        if e.health == Health::Active {
            e.backoff_level = 0;
        }
        if keyed && was {
            self.index_insert(i);
        }
        self.mark_dirty(i);
        let rate = self.rate_for(site);
        if let Some(st) = self.sites.get_mut(site)
            && let Some(p) = st.pairs.get_mut(&i)
        {
            p.level = 0;
            p.strike = None;
            if let Some(l) = &mut p.learned {
                // Additive increase, up to the configured rate or, without
                // one, past twice what drew the 429: then no learned cap.
                l.limit = l.limit.saturating_add(1);
                if rate.map_or(l.limit > l.release, |r| l.limit >= r.n) {
                    p.learned = None;
                    st.learning -= 1;
                }
            }
        }
    }

    /// Records a failure of `kind` through the proxy `id` (or URL) while
    /// fetching from `site` (a registrable domain), the URL unknown.
    pub fn failure(&mut self, id: &str, kind: Kind, site: &str, now: u64) {
        self.failure_with(id, kind, site, &FailureInfo::default(), now);
    }

    /// [`Engine::failure`], with the site's `Retry-After` (ms), which bans
    /// a `blocked` pair at once, for at least that long.
    pub fn failure_after(
        &mut self,
        id: &str,
        kind: Kind,
        site: &str,
        retry_after_ms: Option<u64>,
        now: u64,
    ) {
        let info = FailureInfo {
            retry_after_ms,
            ..FailureInfo::default()
        };
        self.failure_with(id, kind, site, &info, now);
    }

    /// [`Engine::failure`], with what the report tells besides the kind:
    /// the URL, the HTTP status, the `Retry-After`.
    pub fn failure_with(
        &mut self,
        id: &str,
        kind: Kind,
        site: &str,
        info: &FailureInfo<'_>,
        now: u64,
    ) {
        let Some(i) = self.find_proxy(id) else {
            return;
        };
        let keyed = self.settings.strategy == Strategy::Healthiest;
        let usable = self.entries[i as usize].indexed;
        if keyed {
            self.index_remove(i);
        }
        let threshold = self.settings.failure_threshold;
        let e = &mut self.entries[i as usize];
        e.failures[kind as usize] = e.failures[kind as usize].saturating_add(1);
        let mut cool = false;
        if kind.is_proxy_fault() {
            e.consecutive = e.consecutive.saturating_add(1);
            cool = usable
                && (info.certain
                    || e.health == Health::Probation
                    || u32::from(e.consecutive) >= threshold);
        }
        if cool {
            self.index_remove(i);
            self.cool_down(i, now);
        } else if keyed && usable {
            self.index_insert(i);
        }
        if kind == Kind::Blocked && !site.is_empty() {
            self.refused(i, site, info, now);
        }
        self.mark_dirty(i);
    }

    /// The site refused a run through `i`: a strike or a ban, and on a 429
    /// a lower learned budget.
    fn refused(&mut self, i: u32, site: &str, info: &FailureInfo<'_>, now: u64) {
        let rate = self.rate_for(site);
        let url = (!info.url.is_empty()).then(|| self.hasher.hash_one(info.url));
        let s = &self.settings;
        let (base, cap, jitter, learn) = (
            s.site_ban_base_ms,
            s.site_ban_cap_ms,
            s.site_ban_jitter,
            s.learn_window_ms,
        );
        let horizon = cap.max(rate.map_or(learn, |r| r.window_ms));
        if !self.sites.contains_key(site) {
            self.sites.insert(site.into(), SiteState::default());
        }
        let st = self.sites.get_mut(site).expect("just made");
        let tracked = rate.is_some() || st.learning > 0;
        let p = st.pairs.entry(i).or_default();
        forget_stale(p, &mut st.learning, horizon, now);
        // Evidence: a second distinct URL refused within the cap (an
        // unknown URL is never the same as another).
        let distinct = p.strike.is_some_and(|(prev, at)| {
            at.saturating_add(cap) > now && (prev.is_none() || prev != url)
        });
        p.strike = Some((url, now));
        let floor = info.retry_after_ms.map(|r| r.min(MAX_WINDOW_MS));
        let mut banned_until = None;
        if cap > 0 && p.until > now {
            // Already banned: a run handed out before the ban. Its
            // Retry-After may lengthen the ban; it is not a further ban.
            if let Some(f) = floor
                && now + f > p.until
            {
                p.until = now + f;
                banned_until = Some(p.until);
            }
        } else if cap > 0 && (floor.is_some() || distinct) {
            let doubled = base.saturating_mul(1u64 << u32::from(p.level).min(40));
            let factor = if jitter > 0.0 {
                1.0 + jitter * self.rng.f64()
            } else {
                1.0
            };
            let ban = ((doubled as f64 * factor) as u64)
                .min(cap)
                .max(floor.unwrap_or(0));
            p.until = now + ban;
            p.level = p.level.saturating_add(1);
            banned_until = Some(p.until);
        }
        if info.http_status == Some(429) {
            // Multiplicative decrease: half the handouts the site saw in
            // the window. Uncounted (the site was not paced), or none left
            // in the window: the 429 itself is one, just now.
            let window = rate.map_or(learn, |r| r.window_ms);
            let mut count = if tracked { p.in_window(window, now) } else { 0 };
            if count == 0 {
                p.handouts.clear();
                p.handouts.push_back(now);
                count = 1;
            }
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            if p.learned.is_none() {
                st.learning += 1;
            }
            p.learned = Some(Learned {
                limit: (count / 2).max(1),
                release: count.saturating_mul(2).max(2),
            });
        }
        if let Some(until) = banned_until
            && self.track
        {
            self.new_bans.push((
                site.to_string(),
                self.entries[i as usize].id.to_string(),
                until,
            ));
        }
    }

    /// Takes a proxy out: for a backoff window (doubling each time), or for
    /// good if recovery is off. Full jitter: the delay is uniform in
    /// [0, window].
    fn cool_down(&mut self, i: u32, now: u64) {
        let s = &self.settings;
        let e = &mut self.entries[i as usize];
        if !s.recovery {
            e.health = Health::Disabled;
            return;
        }
        let window = s
            .backoff_base_ms
            .saturating_mul(1u64 << u32::from(e.backoff_level).min(40))
            .min(s.backoff_cap_ms);
        let delay = if s.jitter {
            self.rng.u64(..=window)
        } else {
            window
        };
        e.backoff_level = e.backoff_level.saturating_add(1);
        let until = now + delay.max(1);
        e.health = Health::Cooling(until);
        self.cooling.push(Reverse((until, i)));
    }

    /// Records which entries change, for [`Engine::take_dirty`]; off by
    /// default, so an engine that saves nothing does not grow a list.
    pub fn track_changes(&mut self, on: bool) {
        self.track = on;
        if !on {
            self.dirty.clear();
            self.new_bans.clear();
        }
    }

    fn mark_dirty(&mut self, i: u32) {
        if self.track {
            self.dirty.push(i);
        }
    }

    /// Marks the proxy `id` changed (for the next save).
    pub fn touch(&mut self, id: &str) {
        if let Some(i) = self.find(id) {
            self.mark_dirty(i);
        }
    }

    /// What changed since the last call (for persistence).
    pub fn take_dirty(&mut self) -> Vec<Change> {
        let mut d = std::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d.into_iter()
            .map(|i| {
                let e = &self.entries[i as usize];
                if e.removed {
                    Change::Removed(e.id.to_string())
                } else {
                    Change::Entry(self.record(i))
                }
            })
            .collect()
    }

    /// The proxy at `i` as the state files keep it.
    pub fn record(&self, i: u32) -> Record {
        let e = &self.entries[i as usize];
        Record {
            id: e.id.to_string(),
            url: e.url.to_string(),
            meta: self.meta(i).clone(),
            weight: e.weight,
            successes: e.successes,
            failures: e.failures,
            consecutive: e.consecutive,
            backoff_level: e.backoff_level,
            health: e.health,
            uses: e.uses,
            last_used: e.last_used,
            added: e.added,
        }
    }

    /// Every known proxy, for a snapshot.
    pub fn records(&self) -> Vec<Record> {
        (0..self.entries.len() as u32)
            .filter(|&i| !self.entries[i as usize].removed)
            .map(|i| self.record(i))
            .collect()
    }

    /// Ids of removed proxies that were not added through admin.
    pub fn removed_ids(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.removed && !e.added)
            .map(|e| e.id.to_string())
            .collect()
    }

    /// Bans made since the last call (for the journal): (site, id, until).
    pub fn take_new_bans(&mut self) -> Vec<(String, String, u64)> {
        std::mem::take(&mut self.new_bans)
    }

    pub fn stats(&self, now: u64) -> Vec<Stat> {
        // (key, value) rows by proxy: its bans and learned budgets.
        let mut by_proxy: HashMap<u32, Vec<(String, String)>> = HashMap::new();
        for (site, st) in &self.sites {
            let rate = self.rate_for(site);
            for (&i, p) in &st.pairs {
                if p.until > now {
                    by_proxy
                        .entry(i)
                        .or_default()
                        .push((format!("banned.{site}"), p.until.to_string()));
                }
                if let Some(l) = p.learned {
                    let window = rate.map_or(self.settings.learn_window_ms, |r| r.window_ms);
                    by_proxy.entry(i).or_default().push((
                        format!("learned_rate.{site}"),
                        format!("{} per {}", l.limit, window_text(window)),
                    ));
                }
            }
        }
        (0..self.entries.len() as u32)
            .filter(|&i| !self.entries[i as usize].removed)
            .map(|i| {
                let e = &self.entries[i as usize];
                let state = match e.health {
                    Health::Active | Health::Probation => ProxyState::Active,
                    Health::Cooling(t) if t <= now => ProxyState::Active,
                    Health::Cooling(t) => ProxyState::CoolingDown(t),
                    Health::Disabled => ProxyState::Disabled,
                };
                let mut extra: Vec<(String, String)> = Kind::ALL
                    .iter()
                    .filter(|k| e.failures[**k as usize] > 0)
                    .map(|k| {
                        (
                            format!("failures.{}", k.name()),
                            e.failures[*k as usize].to_string(),
                        )
                    })
                    .collect();
                if e.health == Health::Probation
                    || matches!(e.health, Health::Cooling(t) if t <= now)
                {
                    extra.push(("probation".into(), "true".into()));
                }
                if e.backoff_level > 0 {
                    extra.push(("backoff_level".into(), e.backoff_level.to_string()));
                }
                if let Some(rows) = by_proxy.remove(&i) {
                    let mut rows = rows;
                    rows.sort();
                    extra.extend(rows);
                }
                Stat {
                    proxy: self.proxy(i),
                    successes: u64::from(e.successes),
                    failures: e.failures.iter().map(|&f| u64::from(f)).sum(),
                    consecutive_failures: u32::from(e.consecutive),
                    state,
                    last_used_ms: (e.last_used > 0).then_some(e.last_used),
                    extra,
                }
            })
            .collect()
    }

    /// After a restart, round robin continues after the proxy used last
    /// rather than starting over at the first.
    pub fn resume_rotation(&mut self) {
        let last = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.removed && e.last_used > 0)
            .max_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i as u32);
        if let Some(i) = last {
            self.cursor = i + 1;
        }
    }

    /// Site bans in force at `now`, for persistence: (site, id, until).
    pub fn bans(&self, now: u64) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (site, st) in &self.sites {
            for (&i, p) in &st.pairs {
                if p.until > now {
                    out.push((
                        site.to_string(),
                        self.entries[i as usize].id.to_string(),
                        p.until,
                    ));
                }
            }
        }
        out
    }

    /// Restores a ban from saved state (expired ones are dropped). The
    /// doubling is not saved: a restored ban counts as the pair's first.
    pub fn restore_ban(&mut self, site: &str, id: &str, until: u64, now: u64) {
        if until <= now || site.is_empty() {
            return;
        }
        if let Some(i) = self.find(id) {
            if !self.sites.contains_key(site) {
                self.sites.insert(site.into(), SiteState::default());
            }
            let st = self.sites.get_mut(site).expect("just made");
            let p = st.pairs.entry(i).or_default();
            p.until = p.until.max(until);
            p.level = p.level.max(1);
        }
    }

    /// Forgets what no longer matters: ended bans, handouts out of their
    /// window, strikes, doublings and learned budgets past their horizon
    /// (see [`forget_stale`]), and pairs and sites left with nothing.
    /// Called when saving, and by `get-proxy` every [`PRUNE_EVERY_MS`].
    pub fn prune_bans(&mut self, now: u64) {
        let (cap, learn) = (self.settings.site_ban_cap_ms, self.settings.learn_window_ms);
        let rates = &self.settings.site_rates;
        self.sites.retain(|site, st| {
            let rate = rates.get(site).copied();
            let window = rate.map_or(learn, |r| r.window_ms);
            let horizon = cap.max(window);
            let learning = &mut st.learning;
            st.pairs.retain(|_, p| {
                forget_stale(p, learning, horizon, now);
                while p
                    .handouts
                    .front()
                    .is_some_and(|&t| t.saturating_add(window) <= now)
                {
                    p.handouts.pop_front();
                }
                p.until > now
                    || p.strike.is_some()
                    || p.level > 0
                    || p.learned.is_some()
                    || !p.handouts.is_empty()
            });
            if st.pairs.capacity() > 4 * st.pairs.len().max(4) {
                st.pairs.shrink_to_fit();
            }
            !st.pairs.is_empty()
        });
    }
}

#[cfg(test)]
mod tests;
