//! Health kept in the host's key-value store (`ytdlp_plugin_sdk::kv`), so
//! every host process using one store (a SQLite file on this machine, or
//! Redis) counts every report and sees a proxy another one benched.
//!
//! Layout of the bucket:
//! - `rec/ID`: a proxy's [`Record`] (JSON), written by compare-and-swap
//!   against the bytes this instance last read, so two processes never
//!   overwrite each other's counts;
//! - `ids`: the proxies known (JSON list), `removed`: configured ids
//!   removed through admin, `bans`: (site, id, until) in force;
//! - `gen`: a counter every write bumps; a call first reads it, and reads
//!   the records again only when another process wrote since.
//!
//! A call runs the engine, then writes what it changed. The proxy the call
//! is about (the one handed out or reported) goes first: if another
//! process changed it since this one read it, its record is read again and
//! the call is run again on it, so a report is applied exactly once to
//! the latest record. Other changes (cool-downs ending, which any process
//! computes alike) lose to what is stored.

use std::collections::{HashMap, HashSet};

use ytdlp_plugin_sdk::ProxyEntry;
use ytdlp_plugin_sdk::kv::{KeyValue, KvError, KvResult};

use crate::engine::{Change, Engine, Record};
use crate::state::{self, Saved};

/// The bucket's layout version.
const FORMAT: &str = "3";
/// Runs of one call when other processes keep winning the race.
const MAX_TRIES: usize = 16;

fn rec_key(id: &str) -> String {
    format!("rec/{id}")
}

/// Handout times of a proxy for a paced site, every process's.
fn pace_key(site: &str, id: &str) -> String {
    format!("pace/{site}/{id}")
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("plain data serialises")
}

fn decode<T: serde::de::DeserializeOwned>(v: &[u8], what: &str) -> KvResult<T> {
    serde_json::from_slice(v)
        .map_err(|e| KvError::Other(format!("the store's `{what}` does not parse ({e})")))
}

pub struct Shared<K: KeyValue> {
    kv: K,
    /// Each record's bytes as last read or written: what a write is
    /// conditional on.
    seen: HashMap<String, Vec<u8>>,
    ids_seen: Option<Vec<u8>>,
    bans_seen: Option<Vec<u8>>,
    /// The `gen` this instance has caught up with.
    generation: i64,
    /// Read everything on the next call (after a lost race).
    stale: bool,
}

/// What [`Shared::open`] found.
pub struct Opened<K: KeyValue> {
    pub shared: Shared<K>,
    /// The bucket was empty: the caller may move older saved health in.
    pub fresh: bool,
}

impl<K: KeyValue> Shared<K> {
    /// Reads what the bucket holds into `engine`, reconciled with the
    /// configured proxies (as a restart with the journal did), and writes
    /// back what that changed unless `read_only`. `legacy`: health saved
    /// by an older build, used only when the bucket is empty.
    pub fn open(
        kv: K,
        engine: &mut Engine,
        configured: &[(ProxyEntry, u32)],
        legacy: impl FnOnce() -> Option<Saved>,
        read_only: bool,
        now: u64,
    ) -> KvResult<Opened<K>> {
        let mut s = Shared {
            kv,
            seen: HashMap::new(),
            ids_seen: None,
            bans_seen: None,
            generation: 0,
            stale: false,
        };
        let format = s.kv.get("format")?;
        let fresh = format.is_none();
        let mut migrated = false;
        let saved = match format.as_deref() {
            None => match legacy() {
                Some(saved) => {
                    migrated = true;
                    saved
                }
                None => Saved::default(),
            },
            Some(f) if f == FORMAT.as_bytes() => s.load()?,
            Some(f) => {
                return Err(KvError::Other(format!(
                    "the store holds proxy health of an unknown layout ({}); a newer build wrote it",
                    String::from_utf8_lossy(f)
                )));
            }
        };
        state::apply(engine, saved, configured, now);
        if migrated {
            // Everything read from the old files is new to the store.
            for r in engine.records() {
                engine.touch(&r.id);
            }
        }
        if read_only {
            let _ = engine.take_dirty();
            let _ = engine.take_new_bans();
        } else {
            s.write(engine, None, now).map_err(WriteError::into_kv)?;
            if fresh {
                s.kv.set("format", FORMAT.as_bytes())?;
            }
        }
        Ok(Opened {
            shared: s,
            fresh: fresh && !migrated,
        })
    }

    /// Everything in the bucket, as the journal's loader gives it.
    fn load(&mut self) -> KvResult<Saved> {
        self.generation = self.read_gen()?;
        let ids_raw = self.kv.get("ids")?;
        let ids: Vec<String> = match &ids_raw {
            Some(v) => decode(v, "ids")?,
            None => Vec::new(),
        };
        self.ids_seen = ids_raw;
        let keys: Vec<String> = ids.iter().map(|id| rec_key(id)).collect();
        let mut entries = Vec::new();
        for (id, v) in ids.iter().zip(self.kv.get_many(&keys)?) {
            let Some(v) = v else { continue };
            let r: Record = decode(&v, &rec_key(id))?;
            self.seen.insert(id.clone(), v);
            entries.push(r);
        }
        let removed = match self.kv.get("removed")? {
            Some(v) => decode(&v, "removed")?,
            None => Vec::new(),
        };
        let bans_raw = self.kv.get("bans")?;
        let bans = match &bans_raw {
            Some(v) => decode(v, "bans")?,
            None => Vec::new(),
        };
        self.bans_seen = bans_raw;
        Ok(Saved {
            entries,
            removed,
            bans,
            migrated: false,
        })
    }

    fn read_gen(&self) -> KvResult<i64> {
        Ok(match self.kv.get("gen")? {
            Some(v) => std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            None => 0,
        })
    }

    /// Catches up with what other processes wrote since this one last
    /// looked: records that changed, proxies added or removed, bans.
    pub fn sync(&mut self, engine: &mut Engine, now: u64) -> KvResult<()> {
        let generation = self.read_gen()?;
        if generation == self.generation && !self.stale {
            return Ok(());
        }
        let ids_raw = self.kv.get("ids")?;
        let ids: Vec<String> = match &ids_raw {
            Some(v) => decode(v, "ids")?,
            None => Vec::new(),
        };
        let keys: Vec<String> = ids.iter().map(|id| rec_key(id)).collect();
        let values = self.kv.get_many(&keys)?;
        let mut present: HashSet<&str> = HashSet::new();
        for (id, v) in ids.iter().zip(values) {
            let Some(v) = v else { continue };
            present.insert(id);
            if self.seen.get(id) != Some(&v) {
                let r: Record = decode(&v, &rec_key(id))?;
                engine.restore(r);
                self.seen.insert(id.clone(), v);
            }
        }
        if ids_raw != self.ids_seen {
            // Removed elsewhere: gone here too.
            let gone: Vec<String> = engine
                .records()
                .into_iter()
                .map(|r| r.id)
                .filter(|id| !present.contains(id.as_str()))
                .collect();
            for id in gone {
                engine.remove(&id);
                self.seen.remove(&id);
            }
            self.ids_seen = ids_raw;
        }
        let bans_raw = self.kv.get("bans")?;
        if bans_raw != self.bans_seen {
            if let Some(v) = &bans_raw {
                let bans: Vec<(String, String, u64)> = decode(v, "bans")?;
                for (site, id, until) in bans {
                    engine.restore_ban(&site, &id, until, now);
                }
            }
            self.bans_seen = bans_raw;
        }
        // What was just read needs no writing back.
        let _ = engine.take_dirty();
        self.generation = generation;
        self.stale = false;
        Ok(())
    }

    /// Runs `op` on the engine (after catching up) and writes what it
    /// changed; `primary` names the proxy the call was about, whose write
    /// must win or the call runs again on the fresh record.
    pub fn run<R>(
        &mut self,
        engine: &mut Engine,
        now: u64,
        mut op: impl FnMut(&mut Engine) -> R,
        primary: impl Fn(&R) -> Option<String>,
    ) -> KvResult<R> {
        let mut tries = 0;
        loop {
            tries += 1;
            self.sync(engine, now)?;
            let r = op(engine);
            let p = primary(&r);
            match self.write(engine, p.as_deref(), now) {
                Ok(()) => return Ok(r),
                Err(WriteError::Lost) if tries < MAX_TRIES => continue,
                Err(e) => return Err(e.into_kv()),
            }
        }
    }

    /// Chooses a proxy for `request` (as [`Shared::run`] with
    /// `next_for`). At a site with a configured pace (`site_rate`), the
    /// budget is the store's: every process's handouts of each proxy for
    /// the site (`pace/SITE/ID`) are read first, and the handout is
    /// claimed by compare-and-swap; one another process took first makes
    /// the choice run again.
    pub fn pick(
        &mut self,
        engine: &mut Engine,
        now: u64,
        request: &ytdlp_plugin_sdk::Request,
    ) -> KvResult<Result<ytdlp_plugin_sdk::Proxy, ytdlp_plugin_sdk::NoProxy>> {
        let site = request.site.domain.as_str();
        let choose = |e: &mut Engine| e.next_for(now, request);
        let chosen = |r: &Result<ytdlp_plugin_sdk::Proxy, _>| r.as_ref().ok().map(|p| p.id.clone());
        let Some(rate) = engine.site_rate(site).filter(|_| !site.is_empty()) else {
            return self.run(engine, now, choose, chosen);
        };
        let fresh = |times: &[u64]| -> Vec<u64> {
            times
                .iter()
                .copied()
                .filter(|t| t.saturating_add(rate.window_ms) > now)
                .collect()
        };
        for _ in 0..MAX_TRIES {
            self.sync(engine, now)?;
            let ids: Vec<String> = engine.records().into_iter().map(|r| r.id).collect();
            let keys: Vec<String> = ids.iter().map(|id| pace_key(site, id)).collect();
            for (id, v) in ids.iter().zip(self.kv.get_many(&keys)?) {
                let times: Vec<u64> = match v {
                    Some(v) => decode(&v, &pace_key(site, id))?,
                    None => Vec::new(),
                };
                engine.set_handouts(site, id, times, now);
            }
            let r = self.run(engine, now, choose, chosen)?;
            let Ok(p) = &r else { return Ok(r) };
            let key = pace_key(site, &p.id);
            let cur = self.kv.get(&key)?;
            let mut times = match &cur {
                Some(v) => fresh(&decode::<Vec<u64>>(v, &key)?),
                None => Vec::new(),
            };
            if times.len() < rate.n as usize {
                times.push(now);
                if self
                    .kv
                    .compare_and_swap(&key, cur.as_deref(), &json(&times))?
                {
                    return Ok(r);
                }
            }
            // Another process used the budget since it was read: choose
            // again on what is stored.
        }
        Err(KvError::Other(format!(
            "lost the race for {site}'s pacing budget {MAX_TRIES} times in a row"
        )))
    }

    /// Writes the engine's changes; `Err(Lost)` when `primary`'s record
    /// changed in the store since it was read (nothing else is written
    /// then, and the record is read again).
    fn write(
        &mut self,
        engine: &mut Engine,
        primary: Option<&str>,
        now: u64,
    ) -> Result<(), WriteError> {
        let mut changes = engine.take_dirty();
        let bans = engine.take_new_bans();
        if changes.is_empty() && bans.is_empty() {
            return Ok(());
        }
        // The call's own proxy first.
        if let Some(p) = primary
            && let Some(k) = changes
                .iter()
                .position(|c| matches!(c, Change::Entry(r) if r.id == p))
        {
            let Change::Entry(r) = changes.remove(k) else {
                unreachable!()
            };
            if !self.put(&r)? {
                self.stale = true;
                let _ = engine.take_dirty();
                let _ = engine.take_new_bans();
                self.refresh(engine, &r.id)?;
                return Err(WriteError::Lost);
            }
        }
        let (mut added, mut gone) = (Vec::new(), Vec::new());
        for c in changes {
            match c {
                Change::Entry(r) => {
                    let new = !self.seen.contains_key(&r.id);
                    if self.put(&r)? {
                        if new {
                            added.push(r.id);
                        }
                    } else {
                        // Theirs wins: the same transition, computed there.
                        self.refresh(engine, &r.id)?;
                    }
                }
                Change::Removed(id) => {
                    self.kv.delete(&rec_key(&id))?;
                    self.seen.remove(&id);
                    gone.push(id);
                }
            }
        }
        if !added.is_empty() || !gone.is_empty() {
            let raw = self.update_list("ids", |l| {
                l.retain(|id| !gone.contains(id));
                for id in &added {
                    if !l.contains(id) {
                        l.push(id.clone());
                    }
                }
            })?;
            self.ids_seen = Some(raw);
            // A configured proxy removed through admin stays removed across
            // restarts; added back, it is no longer.
            let configured_gone: Vec<String> = engine
                .removed_ids()
                .into_iter()
                .filter(|id| gone.contains(id))
                .collect();
            self.update_list("removed", |l| {
                l.retain(|id| !added.contains(id));
                for id in &configured_gone {
                    if !l.contains(id) {
                        l.push(id.clone());
                    }
                }
            })?;
        }
        if !bans.is_empty() {
            let raw = self.update_bans(&bans, now)?;
            self.bans_seen = Some(raw);
        }
        let generation = self.kv.increment("gen", 1)?;
        // Only this write since the last catch-up: nothing to read.
        if generation == self.generation + 1 && !self.stale {
            self.generation = generation;
        }
        let _ = engine.take_dirty();
        Ok(())
    }

    /// Writes `r` if its stored record is still the one last read.
    fn put(&mut self, r: &Record) -> KvResult<bool> {
        let bytes = json(r);
        let expected = self.seen.get(&r.id).map(Vec::as_slice);
        if expected == Some(bytes.as_slice()) {
            return Ok(true);
        }
        let ok = self
            .kv
            .compare_and_swap(&rec_key(&r.id), expected, &bytes)?;
        if ok {
            self.seen.insert(r.id.clone(), bytes);
        }
        Ok(ok)
    }

    /// Reads `id`'s record again into the engine.
    fn refresh(&mut self, engine: &mut Engine, id: &str) -> KvResult<()> {
        match self.kv.get(&rec_key(id))? {
            Some(v) => {
                let r: Record = decode(&v, &rec_key(id))?;
                engine.restore(r);
                self.seen.insert(id.to_string(), v);
            }
            None => {
                self.seen.remove(id);
            }
        }
        let _ = engine.take_dirty();
        Ok(())
    }

    /// Read-modify-write of a JSON list by compare-and-swap; the bytes
    /// written.
    fn update_list(&self, key: &str, mut f: impl FnMut(&mut Vec<String>)) -> KvResult<Vec<u8>> {
        loop {
            let cur = self.kv.get(key)?;
            let mut l: Vec<String> = match &cur {
                Some(v) => decode(v, key)?,
                None => Vec::new(),
            };
            f(&mut l);
            let new = json(&l);
            if cur.as_deref() == Some(new.as_slice())
                || self.kv.compare_and_swap(key, cur.as_deref(), &new)?
            {
                return Ok(new);
            }
        }
    }

    /// Adds `bans` to the stored ones (the later end wins), dropping ended
    /// ones.
    fn update_bans(&self, bans: &[(String, String, u64)], now: u64) -> KvResult<Vec<u8>> {
        loop {
            let cur = self.kv.get("bans")?;
            let mut all: Vec<(String, String, u64)> = match &cur {
                Some(v) => decode(v, "bans")?,
                None => Vec::new(),
            };
            for (site, id, until) in bans {
                match all.iter_mut().find(|b| &b.0 == site && &b.1 == id) {
                    Some(b) => b.2 = b.2.max(*until),
                    None => all.push((site.clone(), id.clone(), *until)),
                }
            }
            // Ended bans go; a list of every ban ever would only grow.
            all.retain(|b| b.2 > now);
            let new = json(&all);
            if self.kv.compare_and_swap("bans", cur.as_deref(), &new)? {
                return Ok(new);
            }
        }
    }
}

enum WriteError {
    /// The call's own proxy was written by another process first.
    Lost,
    Store(KvError),
}

impl WriteError {
    fn into_kv(self) -> KvError {
        match self {
            WriteError::Lost => {
                KvError::Other("lost the race for a proxy's record; try again".to_string())
            }
            WriteError::Store(e) => e,
        }
    }
}

impl From<KvError> for WriteError {
    fn from(e: KvError) -> WriteError {
        WriteError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use ytdlp_plugin_sdk::kv::MemoryBucket;
    use ytdlp_plugin_sdk::{FailureKind, Request};

    use super::*;
    use crate::engine::Init;

    const PROXIES: [&str; 3] = [
        "http://10.0.0.1:3128",
        "http://10.0.0.2:3128",
        "http://10.0.0.3:3128",
    ];

    fn init(extra: &[(&str, &str)]) -> Init {
        let mut opts: Vec<(String, String)> = PROXIES
            .iter()
            .map(|p| ("proxy".to_string(), p.to_string()))
            .collect();
        opts.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Init::parse(&opts).unwrap()
    }

    /// A plugin instance ("process") on `kv`.
    fn instance(
        kv: &Rc<MemoryBucket>,
        extra: &[(&str, &str)],
    ) -> (Engine, Shared<Rc<MemoryBucket>>) {
        let init = init(extra);
        let mut e = Engine::new(init.settings.clone(), Some(1));
        e.track_changes(true);
        let o = Shared::open(kv.clone(), &mut e, &init.proxies, || None, false, 1_000).unwrap();
        (e, o.shared)
    }

    fn successes(e: &Engine, id: &str) -> u32 {
        e.records()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .successes
    }

    #[test]
    fn interleaved_reports_of_two_instances_are_all_counted() {
        let kv = Rc::new(MemoryBucket::default());
        let (mut a, mut sa) = instance(&kv, &[]);
        let (mut b, mut sb) = instance(&kv, &[]);
        let id = a.records()[0].id.clone();
        for n in 0..50u64 {
            sa.run(
                &mut a,
                2_000 + n,
                |e| e.success(&id, 2_000 + n),
                |_| Some(id.clone()),
            )
            .unwrap();
            sb.run(
                &mut b,
                2_000 + n,
                |e| e.success(&id, 2_000 + n),
                |_| Some(id.clone()),
            )
            .unwrap();
        }
        // Each saw the other's on its next call; a third reads all 100.
        let (c, _) = instance(&kv, &[]);
        assert_eq!(successes(&c, &id), 100);
        sa.sync(&mut a, 3_000).unwrap();
        assert_eq!(successes(&a, &id), 100);
    }

    /// The lost-update race itself: B read the record, A wrote it, B's
    /// write is refused and B applies its report to A's record.
    #[test]
    fn a_report_on_a_stale_record_is_applied_to_the_fresh_one() {
        let kv = Rc::new(MemoryBucket::default());
        let (mut a, mut sa) = instance(&kv, &[]);
        let (mut b, mut sb) = instance(&kv, &[]);
        let id = a.records()[0].id.clone();
        sb.sync(&mut b, 2_000).unwrap();
        sa.run(
            &mut a,
            2_000,
            |e| e.success(&id, 2_000),
            |_| Some(id.clone()),
        )
        .unwrap();
        // B skips its catch-up (as if A wrote between B's read and write).
        sb.generation = kv
            .get("gen")
            .unwrap()
            .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
        let mut runs = 0;
        sb.run(
            &mut b,
            2_001,
            |e| {
                runs += 1;
                e.success(&id, 2_001)
            },
            |_| Some(id.clone()),
        )
        .unwrap();
        assert_eq!(runs, 2, "the refused write is redone on the fresh record");
        let (c, _) = instance(&kv, &[]);
        assert_eq!(successes(&c, &id), 2);
    }

    #[test]
    fn a_proxy_benched_by_one_instance_is_not_handed_out_by_another() {
        let kv = Rc::new(MemoryBucket::default());
        let opts = [("failure_threshold", "1")];
        let (mut a, mut sa) = instance(&kv, &opts);
        let (mut b, mut sb) = instance(&kv, &opts);
        let bad = a.records()[1].id.clone();
        sa.run(
            &mut a,
            2_000,
            |e| e.failure(&bad, FailureKind::ProxyConnect, "", 2_000),
            |_| Some(bad.clone()),
        )
        .unwrap();
        for n in 0..12 {
            let p = sb
                .run(
                    &mut b,
                    2_001 + n,
                    |e| e.next_for(2_001 + n, &Request::default()),
                    |r| r.as_ref().ok().map(|p| p.id.clone()),
                )
                .unwrap()
                .unwrap();
            assert_ne!(p.id, bad, "pick {n}");
        }
    }

    /// A paced site's budget is the store's: two instances together hand
    /// each proxy out `site_rate` times per window, not that many each.
    #[test]
    fn a_site_pace_is_one_budget_for_every_instance() {
        let kv = Rc::new(MemoryBucket::default());
        let opts = [("site_rate", "example.com=2/60s")];
        let (mut a, mut sa) = instance(&kv, &opts);
        let (mut b, mut sb) = instance(&kv, &opts);
        let mut req = Request::default();
        req.site.domain = "example.com".into();
        req.site.host = "www.example.com".into();
        let mut handed = 0;
        let mut refused = 0;
        for n in 0..20u64 {
            let (e, s) = if n % 2 == 0 {
                (&mut a, &mut sa)
            } else {
                (&mut b, &mut sb)
            };
            match s.pick(e, 2_000 + n, &req).unwrap() {
                Ok(_) => handed += 1,
                Err(_) => refused += 1,
            }
        }
        // Three proxies, two handouts each in the minute, for both.
        assert_eq!((handed, refused), (6, 14));
        // Another site is not paced by it.
        let mut other = Request::default();
        other.site.domain = "other.org".into();
        assert!(sa.pick(&mut a, 2_100, &other).unwrap().is_ok());
        // A minute later the budget is back.
        assert!(sb.pick(&mut b, 62_001, &req).unwrap().is_ok());
    }

    #[test]
    fn a_restart_reads_what_was_saved_and_admin_changes_travel() {
        let kv = Rc::new(MemoryBucket::default());
        let (mut a, mut sa) = instance(&kv, &[]);
        let id = a.records()[2].id.clone();
        sa.run(
            &mut a,
            2_000,
            |e| e.success(&id, 2_000),
            |_| Some(id.clone()),
        )
        .unwrap();
        let extra = ytdlp_plugin_sdk::parse_entry("http://10.9.9.9:8080").unwrap();
        sa.run(&mut a, 2_001, |e| e.add(&extra, 1, true), |_| None)
            .unwrap();
        let removed = a.records()[0].id.clone();
        sa.run(&mut a, 2_002, |e| e.remove(&removed), |_| None)
            .unwrap();
        let (b, _) = instance(&kv, &[]);
        let ids: Vec<String> = b.records().into_iter().map(|r| r.id).collect();
        assert!(
            b.records().iter().any(|r| r.url.contains("10.9.9.9")),
            "{ids:?}"
        );
        assert!(!ids.contains(&removed), "{ids:?}");
        assert_eq!(successes(&b, &id), 1);
    }

    #[test]
    fn health_from_the_old_files_moves_in_once() {
        let kv = Rc::new(MemoryBucket::default());
        let init = init(&[]);
        // What an older build saved: one proxy with 7 successes.
        let mut old = Engine::new(init.settings.clone(), Some(1));
        state::apply(&mut old, Saved::default(), &init.proxies, 0);
        let id = old.records()[0].id.clone();
        for _ in 0..7 {
            old.success(&id, 1);
        }
        let saved = Saved {
            entries: old.records(),
            ..Saved::default()
        };
        let mut e = Engine::new(init.settings.clone(), Some(1));
        e.track_changes(true);
        let mut asked = 0;
        let o = Shared::open(
            kv.clone(),
            &mut e,
            &init.proxies,
            || {
                asked += 1;
                Some(saved)
            },
            false,
            10,
        )
        .unwrap();
        assert!(!o.fresh);
        assert_eq!(asked, 1);
        let (b, _) = instance(&kv, &[]);
        assert_eq!(successes(&b, &id), 7);
        // The store has it now: the old files are not asked again.
        let mut e2 = Engine::new(init.settings.clone(), Some(1));
        e2.track_changes(true);
        Shared::open(
            kv.clone(),
            &mut e2,
            &init.proxies,
            || panic!("asked again"),
            false,
            20,
        )
        .unwrap();
    }

    #[test]
    fn a_layout_from_a_newer_build_is_refused_by_name() {
        let kv = Rc::new(MemoryBucket::default());
        kv.set("format", b"9").unwrap();
        let init = init(&[]);
        let mut e = Engine::new(init.settings.clone(), Some(1));
        let err = Shared::open(kv, &mut e, &init.proxies, || None, false, 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown layout"), "{err}");
    }
}
