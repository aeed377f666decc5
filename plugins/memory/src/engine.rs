//! Proxy selection and health, independent of WebAssembly so it is tested
//! natively. Time is passed in (milliseconds since the Unix epoch) so tests
//! control the clock; randomness comes from a seedable generator.
//!
//! Rules:
//! - proxy faults (connect, timeout, auth) count toward disabling, on
//!   *consecutive* failures; a success resets the count;
//! - `blocked` (403/429/bot check) bans the proxy for that site only, for
//!   `site_ban_ms`;
//! - content, host and unknown failures never count against a proxy;
//! - a disabled proxy comes back after an exponential backoff with full
//!   jitter (`backoff_base_ms` doubling per failed recovery, capped at
//!   `backoff_cap_ms`), on probation: one success restores it, a proxy
//!   fault sends it back with its backoff doubled.
//!
//! Every strategy picks in O(log n) (plus the proxies banned for the site
//! being skipped): round robin over an ordered set, random over a dense
//! vector, least used and healthiest over ordered sets, weighted over a
//! Fenwick tree of weights.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::hash::BuildHasher;

use serde::{Deserialize, Serialize};

/// Failure kinds, proxy states, stats rows and no-proxy answers: the
/// contract's own (through the SDK).
pub use ytdlp_plugin_sdk::FailureKind as Kind;
use ytdlp_plugin_sdk::contract::limits::MAX_PROXY_TIMEOUT_MS;
pub use ytdlp_plugin_sdk::{NoProxy, ProxyState, ProxyStats as Stat};
use ytdlp_plugin_sdk::{parse_bool, parse_num, unknown};

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

    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s.replace('-', "_").as_str() {
            "round_robin" => Strategy::RoundRobin,
            "random" => Strategy::Random,
            "least_used" => Strategy::LeastUsed,
            "healthiest" => Strategy::Healthiest,
            "weighted" => Strategy::Weighted,
            _ => {
                return Err(format!(
                    "unknown strategy `{s}` (supported: {})",
                    Self::NAMES
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
    /// How long `blocked` keeps a proxy away from that site.
    pub site_ban_ms: u64,
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
            site_ban_ms: 1_800_000,
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

/// One proxy. Kept small: memory per proxy is a goal (≤ 200 bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub url: Box<str>,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub successes: u32,
    #[serde(default)]
    pub failures: [u32; 7],
    #[serde(default)]
    pub consecutive: u16,
    #[serde(default)]
    pub backoff_level: u8,
    pub health: Health,
    #[serde(default)]
    pub uses: u32,
    #[serde(default)]
    pub last_used: u64,
    /// Added through `admin` rather than the configured list.
    #[serde(default)]
    pub added: bool,
    /// Removed (slots are not reused, so indices stay valid).
    #[serde(skip)]
    removed: bool,
}

fn one() -> u32 {
    1
}

impl Entry {
    fn new(url: &str, weight: u32, added: bool) -> Entry {
        Entry {
            url: url.into(),
            weight,
            successes: 0,
            failures: [0; 7],
            consecutive: 0,
            backoff_level: 0,
            health: Health::Active,
            uses: 0,
            last_used: 0,
            added,
            removed: false,
        }
    }

    /// Removed from the list (through admin or a reload).
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    fn usable(&self) -> bool {
        !self.removed && matches!(self.health, Health::Active | Health::Probation)
    }

    fn proxy_failures(&self) -> u32 {
        self.failures[0] + self.failures[1] + self.failures[2]
    }

    /// Healthiest's score, as an integer key (higher is healthier).
    fn score(&self, prior: (f64, f64)) -> u32 {
        let s = f64::from(self.successes) + prior.0;
        let f = f64::from(self.proxy_failures()) + prior.1;
        ((s / (s + f)) * 1e9) as u32
    }
}

/// A proxy chosen by [`Engine::next`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub url: String,
    pub timeout_ms: u32,
}

/// The index the configured strategy picks from: the usable proxies.
#[derive(Debug)]
enum Index {
    RoundRobin {
        set: BTreeSet<u32>,
        cursor: u32,
    },
    Random {
        dense: Vec<u32>,
        pos: HashMap<u32, u32>,
    },
    LeastUsed(BTreeSet<(u32, u32)>),
    Healthiest(BTreeSet<(Reverse<u32>, u64, u32)>),
    Weighted(Fenwick),
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

/// The engine: proxies, their health, and the strategy's index.
#[derive(Debug)]
pub struct Engine {
    settings: Settings,
    entries: Vec<Entry>,
    by_url: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    index: Index,
    /// Cooling proxies by the time they come back.
    cooling: BinaryHeap<Reverse<(u64, u32)>>,
    /// site -> proxy -> banned until.
    bans: HashMap<Box<str>, HashMap<u32, u64>>,
    sticky: HashMap<Box<str>, u32>,
    rng: fastrand::Rng,
    /// Entries changed since the last [`Engine::take_dirty`] (only while
    /// changes are tracked, i.e. saved somewhere).
    dirty: Vec<u32>,
    track: bool,
    new_bans: Vec<(String, String, u64)>,
    live: usize,
}

/// Longest backoff, ban or cooldown an option may set: 30 days.
const MAX_WINDOW_MS: u64 = 30 * 24 * 3_600_000;

/// Options the engine understands at init.
pub const INIT_OPTIONS: &[&str] = &[
    "proxy",
    "weight",
    "strategy",
    "failure_threshold",
    "timeout_ms",
    "backoff_base_ms",
    "backoff_cap_ms",
    "jitter",
    "recovery",
    "site_ban_ms",
    "seed",
    "state_dir",
    "read_only",
];

/// Parsed init options.
#[derive(Debug, Default)]
pub struct Init {
    pub settings: Settings,
    pub proxies: Vec<(String, u32)>,
    pub seed: Option<u64>,
    pub state_dir: Option<String>,
    /// Read the saved state, never write it (`proxies stats`, `proxies get`).
    pub read_only: bool,
}

impl Init {
    /// `proxy` (repeatable), `weight` (repeatable, `URL=N`), `strategy`,
    /// `failure_threshold`, `timeout_ms`, `backoff_base_ms`,
    /// `backoff_cap_ms`, `jitter` (`full`/`none`), `recovery`,
    /// `site_ban_ms`, `seed`, `state_dir`. Unknown keys are refused so a
    /// typo does not silently do nothing.
    pub fn parse(options: &[(String, String)]) -> Result<Init, String> {
        let mut init = Init::default();
        let s = &mut init.settings;
        let mut weights: HashMap<String, u32> = HashMap::new();
        let mut urls = Vec::new();
        for (key, value) in options {
            let v = value.trim();
            match key.as_str() {
                "proxy" => urls.push(v.to_string()),
                "weight" => {
                    let (url, w) = v
                        .rsplit_once('=')
                        .ok_or_else(|| format!("option `weight`: `{v}` is not URL=N"))?;
                    weights.insert(url.to_string(), parse_num("weight", w, 0, 1_000_000)?);
                }
                "strategy" => s.strategy = Strategy::parse(v)?,
                "failure_threshold" => s.failure_threshold = parse_num(key, v, 1, 1_000_000)?,
                "timeout_ms" => s.timeout_ms = parse_num(key, v, 1, MAX_PROXY_TIMEOUT_MS)?,
                "backoff_base_ms" => s.backoff_base_ms = parse_num(key, v, 1, MAX_WINDOW_MS)?,
                "backoff_cap_ms" => s.backoff_cap_ms = parse_num(key, v, 1, MAX_WINDOW_MS)?,
                "jitter" => {
                    s.jitter = match v {
                        "full" => true,
                        "none" => false,
                        _ => return Err(format!("option `jitter`: `{v}` is not full or none")),
                    }
                }
                "recovery" => s.recovery = parse_bool(key, v)?,
                "site_ban_ms" => s.site_ban_ms = parse_num(key, v, 0, MAX_WINDOW_MS)?,
                "seed" => init.seed = Some(parse_num(key, v, 0, u64::MAX)?),
                "state_dir" => init.state_dir = Some(v.to_string()),
                "read_only" => init.read_only = parse_bool(key, v)?,
                other => {
                    if let Some(refusal) = unknown(other, INIT_OPTIONS) {
                        return Err(refusal);
                    }
                }
            }
        }
        if s.backoff_cap_ms < s.backoff_base_ms {
            s.backoff_cap_ms = s.backoff_base_ms;
        }
        for url in urls {
            if !url.is_empty() {
                let w = weights.get(&url).copied().unwrap_or(1);
                init.proxies.push((url, w));
            }
        }
        Ok(init)
    }
}

impl Engine {
    /// An engine with `settings` and no proxies.
    pub fn new(settings: Settings, seed: Option<u64>) -> Engine {
        let hasher = std::hash::RandomState::new();
        // The standard library seeds RandomState from the platform's
        // randomness (wasi:random in a plugin): a seed without a dependency.
        let seed = seed.unwrap_or_else(|| hasher.hash_one(0xfeed_u64));
        let index = Self::empty_index(settings.strategy);
        Engine {
            settings,
            entries: Vec::new(),
            by_url: hashbrown::HashTable::new(),
            hasher,
            index,
            cooling: BinaryHeap::new(),
            bans: HashMap::new(),
            sticky: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
            dirty: Vec::new(),
            track: false,
            new_bans: Vec::new(),
            live: 0,
        }
    }

    /// Builds an engine from init options (see [`Init::parse`]).
    pub fn from_options(options: &[(String, String)]) -> Result<Engine, String> {
        let init = Init::parse(options)?;
        let mut engine = Engine::new(init.settings, init.seed);
        for (url, w) in init.proxies {
            engine.add(&url, w, false);
        }
        Ok(engine)
    }

    fn empty_index(strategy: Strategy) -> Index {
        match strategy {
            Strategy::RoundRobin => Index::RoundRobin {
                set: BTreeSet::new(),
                cursor: 0,
            },
            Strategy::Random => Index::Random {
                dense: Vec::new(),
                pos: HashMap::new(),
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

    fn hash(&self, url: &str) -> u64 {
        self.hasher.hash_one(url)
    }

    fn find(&self, url: &str) -> Option<u32> {
        let h = self.hash(url);
        self.by_url
            .find(h, |&i| &*self.entries[i as usize].url == url)
            .copied()
    }

    /// Adds a proxy; returns false if it was already known (its health is
    /// kept). Identity is the whole URL, credentials included.
    pub fn add(&mut self, url: &str, weight: u32, added: bool) -> bool {
        if let Some(i) = self.find(url) {
            let e = &mut self.entries[i as usize];
            if e.removed {
                e.removed = false;
                e.added = added;
                e.weight = weight;
                self.live += 1;
                if e.usable() {
                    self.index_insert(i);
                } else if let Health::Cooling(t) = e.health {
                    self.cooling.push(Reverse((t, i)));
                }
                self.mark_dirty(i);
                return true;
            }
            if e.weight != weight {
                let was = e.usable();
                if was {
                    self.index_remove(i);
                }
                self.entries[i as usize].weight = weight;
                if was {
                    self.index_insert(i);
                }
            }
            return false;
        }
        self.restore(Entry::new(url, weight, added));
        true
    }

    /// Puts back an entry (from saved state or a new one).
    pub fn restore(&mut self, mut entry: Entry) -> u32 {
        entry.removed = false;
        if let Some(i) = self.find(&entry.url) {
            // Replace the saved health of a known proxy.
            let was = self.entries[i as usize].usable() && !self.entries[i as usize].removed;
            if was {
                self.index_remove(i);
            }
            if self.entries[i as usize].removed {
                self.live += 1;
            }
            self.entries[i as usize] = entry;
            self.after_restore(i);
            return i;
        }
        let i = self.entries.len() as u32;
        let h = self.hash(&entry.url);
        self.entries.push(entry);
        let entries = &self.entries;
        let hasher = &self.hasher;
        self.by_url
            .insert_unique(h, i, |&j| hasher.hash_one(&*entries[j as usize].url));
        self.live += 1;
        self.after_restore(i);
        i
    }

    fn after_restore(&mut self, i: u32) {
        let e = &self.entries[i as usize];
        match e.health {
            Health::Active | Health::Probation => self.index_insert(i),
            Health::Cooling(t) => self.cooling.push(Reverse((t, i))),
            Health::Disabled => {}
        }
        self.mark_dirty(i);
    }

    /// Removes a proxy; returns false if it was not known.
    pub fn remove(&mut self, url: &str) -> bool {
        let Some(i) = self.find(url) else {
            return false;
        };
        if self.entries[i as usize].removed {
            return false;
        }
        if self.entries[i as usize].usable() {
            self.index_remove(i);
        }
        self.entries[i as usize].removed = true;
        self.live -= 1;
        self.mark_dirty(i);
        true
    }

    /// Removes every proxy not in `keep` that was not added through admin.
    pub fn retain_configured(&mut self, keep: &[(String, u32)]) {
        let keep: std::collections::HashSet<&str> = keep.iter().map(|(u, _)| u.as_str()).collect();
        let drop: Vec<Box<str>> = self
            .entries
            .iter()
            .filter(|e| !e.removed && !e.added && !keep.contains(&*e.url))
            .map(|e| e.url.clone())
            .collect();
        for url in drop {
            self.remove(&url);
        }
    }

    fn index_insert(&mut self, i: u32) {
        let e = &self.entries[i as usize];
        match &mut self.index {
            Index::RoundRobin { set, .. } => {
                set.insert(i);
            }
            Index::Random { dense, pos } => {
                if let std::collections::hash_map::Entry::Vacant(v) = pos.entry(i) {
                    v.insert(dense.len() as u32);
                    dense.push(i);
                }
            }
            Index::LeastUsed(set) => {
                set.insert((e.uses, i));
            }
            Index::Healthiest(set) => {
                set.insert((Reverse(e.score(self.settings.prior)), e.last_used, i));
            }
            Index::Weighted(tree) => tree.set(i as usize, e.weight),
        }
    }

    fn index_remove(&mut self, i: u32) {
        let e = &self.entries[i as usize];
        match &mut self.index {
            Index::RoundRobin { set, .. } => {
                set.remove(&i);
            }
            Index::Random { dense, pos } => {
                if let Some(p) = pos.remove(&i) {
                    let last = dense.pop().expect("dense not empty");
                    if last != i {
                        dense[p as usize] = last;
                        pos.insert(last, p);
                    }
                }
            }
            Index::LeastUsed(set) => {
                set.remove(&(e.uses, i));
            }
            Index::Healthiest(set) => {
                set.remove(&(Reverse(e.score(self.settings.prior)), e.last_used, i));
            }
            Index::Weighted(tree) => {
                if (i as usize) < tree.values.len() {
                    tree.set(i as usize, 0)
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

    fn banned(&self, i: u32, site: &str, now: u64) -> bool {
        !site.is_empty()
            && self
                .bans
                .get(site)
                .and_then(|m| m.get(&i))
                .is_some_and(|&until| until > now)
    }

    /// Chooses a proxy for `site` (may be empty). `sticky` keeps the same
    /// proxy for a key while it stays usable.
    pub fn next_for(
        &mut self,
        now: u64,
        site: &str,
        sticky: Option<&str>,
    ) -> Result<Pick, NoProxy> {
        self.wake(now);
        if let Some(&i) = sticky.and_then(|key| self.sticky.get(key))
            && self.entries[i as usize].usable()
            && !self.banned(i, site, now)
        {
            return Ok(self.hand_out(i, now));
        }
        let Some(i) = self.pick(site, now) else {
            return Err(self.no_proxy(site, now));
        };
        if let Some(key) = sticky {
            if self.sticky.len() >= self.settings.sticky_max
                && let Some(k) = self.sticky.keys().next().cloned()
            {
                self.sticky.remove(&k);
            }
            self.sticky.insert(key.into(), i);
        }
        Ok(self.hand_out(i, now))
    }

    /// Chooses a proxy with no site and no stickiness.
    pub fn next(&mut self, now: u64) -> Result<Pick, NoProxy> {
        self.next_for(now, "", None)
    }

    fn pick(&mut self, site: &str, now: u64) -> Option<u32> {
        // Candidates in the strategy's order, skipping proxies banned for
        // this site; bans are few, so this stays near O(log n).
        let site_bans = self.bans.get(site);
        let banned = |i: u32| site_bans.and_then(|m| m.get(&i)).is_some_and(|&t| t > now);
        let tries = site_bans.map_or(0, HashMap::len) + 1;
        let rng = &mut self.rng;
        match &mut self.index {
            Index::RoundRobin { set, cursor } => {
                let start = *cursor;
                let found = set
                    .range(start..)
                    .chain(set.range(..start))
                    .take(tries)
                    .copied()
                    .find(|&i| !banned(i));
                if let Some(i) = found {
                    *cursor = i + 1;
                }
                found
            }
            Index::Random { dense, .. } => {
                if dense.is_empty() {
                    return None;
                }
                for _ in 0..8 {
                    let i = dense[rng.usize(..dense.len())];
                    if !banned(i) {
                        return Some(i);
                    }
                }
                dense.iter().copied().find(|&i| !banned(i))
            }
            Index::LeastUsed(set) => set
                .iter()
                .take(tries)
                .map(|&(_, i)| i)
                .find(|&i| !banned(i)),
            Index::Healthiest(set) => set
                .iter()
                .take(tries)
                .map(|&(_, _, i)| i)
                .find(|&i| !banned(i)),
            Index::Weighted(tree) => {
                let total = tree.total();
                if total == 0 {
                    return None;
                }
                for _ in 0..8 {
                    let i = tree.find(rng.u64(..total)) as u32;
                    if !banned(i) {
                        return Some(i);
                    }
                }
                (0..tree.values.len() as u32).find(|&i| tree.values[i as usize] > 0 && !banned(i))
            }
        }
    }

    fn hand_out(&mut self, i: u32, now: u64) -> Pick {
        let keyed = matches!(self.index, Index::LeastUsed(_) | Index::Healthiest(_));
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
        Pick {
            url: self.entries[i as usize].url.to_string(),
            timeout_ms: self.settings.timeout_ms,
        }
    }

    fn no_proxy(&self, site: &str, now: u64) -> NoProxy {
        if self.live == 0 {
            return NoProxy {
                message: "no proxies configured".to_string(),
                retry_at_ms: None,
            };
        }
        let next_cool = self
            .cooling
            .iter()
            .map(|Reverse((t, _))| *t)
            .filter(|&t| t > now)
            .min();
        let next_ban = self.bans.get(site).and_then(|m| {
            m.iter()
                .filter(|(i, _)| self.entries[**i as usize].usable())
                .map(|(_, &t)| t)
                .filter(|&t| t > now)
                .min()
        });
        let retry_at_ms = match (next_cool, next_ban) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let usable = self.entries.iter().filter(|e| e.usable()).count();
        let message = if usable > 0 {
            format!("all {usable} usable proxies are banned for {site}")
        } else if retry_at_ms.is_some() {
            format!("all {} proxies are cooling down after failures", self.live)
        } else {
            format!(
                "all {} proxies are disabled after {} consecutive failures",
                self.live, self.settings.failure_threshold
            )
        };
        NoProxy {
            message,
            retry_at_ms,
        }
    }

    pub fn success(&mut self, url: &str, _now: u64) {
        let Some(i) = self.find(url) else {
            return;
        };
        let keyed = matches!(self.index, Index::Healthiest(_));
        let usable = self.entries[i as usize].usable();
        if keyed && usable {
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
        if keyed && usable {
            self.index_insert(i);
        }
        self.mark_dirty(i);
    }

    /// Records a failure of `kind` through `url` while fetching from `site`.
    pub fn failure(&mut self, url: &str, kind: Kind, site: &str, now: u64) {
        let Some(i) = self.find(url) else {
            return;
        };
        let keyed = matches!(self.index, Index::Healthiest(_));
        let usable = self.entries[i as usize].usable();
        if keyed && usable {
            self.index_remove(i);
        }
        let threshold = self.settings.failure_threshold;
        let e = &mut self.entries[i as usize];
        e.failures[kind as usize] = e.failures[kind as usize].saturating_add(1);
        let mut cool = false;
        if kind.is_proxy_fault() {
            e.consecutive = e.consecutive.saturating_add(1);
            cool =
                usable && (e.health == Health::Probation || u32::from(e.consecutive) >= threshold);
        }
        if keyed && usable && !cool {
            self.index_insert(i);
        }
        if cool {
            if !keyed {
                self.index_remove(i);
            }
            self.cool_down(i, now);
        }
        if kind == Kind::Blocked && !site.is_empty() && self.settings.site_ban_ms > 0 {
            let until = now + self.settings.site_ban_ms;
            self.bans.entry(site.into()).or_default().insert(i, until);
            if self.track {
                self.new_bans.push((
                    site.to_string(),
                    self.entries[i as usize].url.to_string(),
                    until,
                ));
            }
        }
        self.mark_dirty(i);
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

    /// Entries changed since the last call (for persistence).
    pub fn take_dirty(&mut self) -> Vec<&Entry> {
        let mut d = std::mem::take(&mut self.dirty);
        d.sort_unstable();
        d.dedup();
        d.into_iter().map(|i| &self.entries[i as usize]).collect()
    }

    /// Every known entry, for a snapshot.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| !e.removed)
    }

    /// URLs of removed proxies that were not added through admin.
    pub fn removed_urls(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.removed && !e.added)
            .map(|e| e.url.to_string())
            .collect()
    }

    /// Bans made since the last call (for the journal).
    pub fn take_new_bans(&mut self) -> Vec<(String, String, u64)> {
        std::mem::take(&mut self.new_bans)
    }

    pub fn stats(&self, now: u64) -> Vec<Stat> {
        let mut bans_by_proxy: HashMap<u32, Vec<(&str, u64)>> = HashMap::new();
        for (site, m) in &self.bans {
            for (&i, &until) in m {
                if until > now {
                    bans_by_proxy.entry(i).or_default().push((site, until));
                }
            }
        }
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.removed)
            .map(|(i, e)| {
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
                if let Some(bans) = bans_by_proxy.get_mut(&(i as u32)) {
                    bans.sort();
                    for (site, until) in bans {
                        extra.push((format!("banned.{site}"), until.to_string()));
                    }
                }
                Stat {
                    url: e.url.to_string(),
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
        if let (Some(i), Index::RoundRobin { cursor, .. }) = (last, &mut self.index) {
            *cursor = i + 1;
        }
    }

    /// Site bans, for persistence: (site, url, until).
    pub fn bans(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (site, m) in &self.bans {
            for (&i, &until) in m {
                out.push((
                    site.to_string(),
                    self.entries[i as usize].url.to_string(),
                    until,
                ));
            }
        }
        out
    }

    /// Restores a ban from saved state (expired ones are dropped).
    pub fn restore_ban(&mut self, site: &str, url: &str, until: u64, now: u64) {
        if until <= now {
            return;
        }
        if let Some(i) = self.find(url) {
            self.bans.entry(site.into()).or_default().insert(i, until);
        }
    }

    /// Forgets expired bans (called when saving).
    pub fn prune_bans(&mut self, now: u64) {
        self.bans.retain(|_, m| {
            m.retain(|_, &mut until| until > now);
            !m.is_empty()
        });
    }
}

#[cfg(test)]
mod tests;
