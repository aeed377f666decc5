//! Health that survives restarts: a snapshot plus an append-only journal in
//! the state directory the host grants (`state_dir`).
//!
//! Every change appends the changed proxy's whole entry to the journal (one
//! JSON line, O(1) per report), so replay is idempotent. At start, and when
//! the journal grows past a bound, the state is compacted into a new
//! snapshot written atomically (temp file + rename) and the journal is
//! emptied. A missing state starts fresh; a corrupt one starts fresh with a
//! warning; a torn last journal line (a crash mid-write) is skipped.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use ytdlp_plugin_sdk::{ProxyEntry, parse_entry};

use crate::engine::{Change, Engine, Record, nth_id};

const SNAPSHOT: &str = "memory-state.json";
const JOURNAL: &str = "memory-journal.jsonl";
/// 2: proxies keyed by id (contract 0.2). 1: keyed by URL (0.1), still read.
const FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    entries: Vec<Record>,
    /// Configured proxies removed through admin (so a restart with the same
    /// configuration does not bring them back): ids (URLs in format 1).
    #[serde(default)]
    removed: Vec<String>,
    /// (site, proxy id (URL in format 1), banned until ms)
    bans: Vec<(String, String, u64)>,
}

/// A journal line. A proxy is named by its id, or by its URL in lines a
/// 0.1 build wrote (ids never hold `://`).
#[derive(Serialize, Deserialize)]
enum Line {
    Entry(Record),
    Removed(String),
    Ban(String, String, u64),
}

/// What was saved: proxies (each with its id), and bans.
#[derive(Default)]
pub struct Saved {
    pub entries: Vec<Record>,
    /// Ids of configured proxies removed through admin.
    pub removed: Vec<String>,
    /// (site, id, until)
    pub bans: Vec<(String, String, u64)>,
    /// The state was a 0.1 one, keyed by URL: write it anew at once, so
    /// the journal never mixes the two.
    pub migrated: bool,
}

pub struct Store {
    dir: PathBuf,
    journal: Option<File>,
    journal_lines: usize,
}

/// What a record is known by while loading: its id, or its URL if it has
/// none yet (a 0.1 record).
fn key(r: &Record) -> String {
    if r.id.is_empty() {
        r.url.clone()
    } else {
        r.id.clone()
    }
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store {
            dir: dir.into(),
            journal: None,
            journal_lines: 0,
        }
    }

    /// Lines in the journal when it was loaded.
    pub fn journal_lines(&self) -> usize {
        self.journal_lines
    }

    /// Reads the snapshot and replays the journal. Problems are returned
    /// as warnings; what could be read is kept. A 0.1 state (keyed by
    /// URL) is given ids as the engine would: the URL's identity, then
    /// `-2`, `-3`, ... for further URLs of one identity, in saved order.
    pub fn load(&mut self) -> (Saved, Vec<String>) {
        let mut warnings = Vec::new();
        let mut by_key: HashMap<String, Record> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut bans = Vec::new();
        let mut removed = Vec::new();
        let mut migrated = false;
        let snap_path = self.dir.join(SNAPSHOT);
        match std::fs::read(&snap_path) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if s.format == FORMAT || s.format == 1 => {
                    migrated |= s.format == 1;
                    for r in s.entries {
                        order.push(key(&r));
                        by_key.insert(key(&r), r);
                    }
                    bans = s.bans;
                    removed = s.removed;
                }
                Ok(s) => warnings.push(format!(
                    "{}: unknown format {}; starting fresh",
                    snap_path.display(),
                    s.format
                )),
                Err(e) => warnings.push(format!(
                    "{} is corrupt ({e}); starting fresh",
                    snap_path.display()
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("cannot read {}: {e}", snap_path.display())),
        }
        let journal_path = self.dir.join(JOURNAL);
        if let Ok(f) = File::open(&journal_path) {
            let mut bad = 0;
            for line in BufReader::new(f).lines() {
                self.journal_lines += 1;
                let Ok(line) = line else {
                    bad += 1;
                    continue;
                };
                match serde_json::from_str::<Line>(&line) {
                    Ok(Line::Entry(r)) => {
                        migrated |= r.id.is_empty();
                        let k = key(&r);
                        if !by_key.contains_key(&k) {
                            order.push(k.clone());
                        }
                        removed.retain(|x| x != &k);
                        by_key.insert(k, r);
                    }
                    Ok(Line::Removed(k)) => {
                        by_key.remove(&k);
                        removed.push(k);
                    }
                    Ok(Line::Ban(site, k, until)) => bans.push((site, k, until)),
                    Err(_) => bad += 1,
                }
            }
            if bad > 0 {
                warnings.push(format!(
                    "{}: skipped {bad} unreadable line(s)",
                    journal_path.display()
                ));
            }
        }
        // Ids for 0.1 records, and 0.1 references (URLs) mapped to them.
        let mut taken: HashSet<String> = by_key.values().map(|r| r.id.clone()).collect();
        let mut url_ids: HashMap<String, String> = HashMap::new();
        let mut entries = Vec::new();
        for k in order {
            let Some(mut r) = by_key.remove(&k) else {
                continue;
            };
            if r.id.is_empty() {
                let Ok(entry) = parse_entry(&r.url) else {
                    warnings.push("skipped a saved proxy whose URL does not parse".to_string());
                    continue;
                };
                let base = entry.url.identity_id();
                let id = (1..)
                    .map(|n| nth_id(&base, n))
                    .find(|id| !taken.contains(id))
                    .expect("an unused id");
                taken.insert(id.clone());
                url_ids.insert(r.url.clone(), id.clone());
                r.id = id;
            }
            entries.push(r);
        }
        let to_id = |k: String| -> Option<String> {
            if !k.contains("://") {
                return Some(k);
            }
            url_ids
                .get(&k)
                .cloned()
                .or_else(|| parse_entry(&k).ok().map(|e| e.url.identity_id()))
        };
        let removed = removed.into_iter().filter_map(to_id).collect();
        let bans = bans
            .into_iter()
            .filter_map(|(site, k, until)| to_id(k).map(|id| (site, id, until)))
            .collect();
        (
            Saved {
                entries,
                removed,
                bans,
                migrated,
            },
            warnings,
        )
    }

    /// Writes a snapshot of `engine` atomically and empties the journal.
    pub fn snapshot(&mut self, engine: &mut Engine, now: u64) -> std::io::Result<()> {
        engine.prune_bans(now);
        let snap = Snapshot {
            format: FORMAT,
            entries: engine.records(),
            removed: engine.removed_ids(),
            bans: engine.bans(now),
        };
        let _ = engine.take_dirty();
        std::fs::create_dir_all(&self.dir)?;
        let bytes = serde_json::to_vec(&snap)?;
        ytdlp_plugin_sdk::contract::atomic_file::write(&self.dir.join(SNAPSHOT), &bytes)?;
        self.journal = None;
        File::create(self.dir.join(JOURNAL))?;
        self.journal_lines = 0;
        Ok(())
    }

    /// Appends what changed since the last save; compacts when the journal
    /// has grown to several times the number of proxies.
    pub fn save_changes(&mut self, engine: &mut Engine, now: u64) -> std::io::Result<()> {
        let limit = (engine.len() * 4).max(4096);
        if self.journal_lines > limit {
            return self.snapshot(engine, now);
        }
        let mut buf = Vec::new();
        let mut n = 0;
        let mut lines: Vec<Line> = engine
            .take_dirty()
            .into_iter()
            .map(|c| match c {
                Change::Entry(r) => Line::Entry(r),
                Change::Removed(id) => Line::Removed(id),
            })
            .collect();
        // Removals after entries, as before: a removal wins on replay.
        lines.sort_by_key(|l| matches!(l, Line::Removed(_)));
        for (site, id, until) in engine.take_new_bans() {
            lines.push(Line::Ban(site, id, until));
        }
        for line in &lines {
            serde_json::to_writer(&mut buf, line)?;
            buf.push(b'\n');
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        if self.journal.is_none() {
            std::fs::create_dir_all(&self.dir)?;
            let path = self.dir.join(JOURNAL);
            // A crash mid-write leaves a torn last line without its newline:
            // end it first, or the next line would be glued onto it and be
            // lost with it.
            let torn = !ends_with_newline(&path)?;
            let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
            if torn {
                f.write_all(b"\n")?;
            }
            self.journal = Some(f);
        }
        let f = self.journal.as_mut().expect("just opened");
        f.write_all(&buf)?;
        self.journal_lines += n;
        Ok(())
    }
}

/// Renames the state files in `dir` to `*.moved` once the key-value store
/// holds their health, so they are not read again (and can be looked at).
pub fn retire(dir: &str) {
    for name in [SNAPSHOT, JOURNAL] {
        let from = std::path::Path::new(dir).join(name);
        if from.exists() {
            let _ = std::fs::rename(&from, from.with_extension("moved"));
        }
    }
}

/// An empty or missing file, or one whose last byte is a newline.
fn ends_with_newline(path: &std::path::Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The ids of the configured proxies, in order, given what was saved: a
/// saved proxy at exactly the same URL keeps its id (so reordering the
/// list moves no health); any other gets the first id of its identity
/// that no configured proxy nor saved admin-added one holds, taking over
/// the health of a saved configured proxy of that identity (a new
/// password keeps the proxy's health). Repeated URLs share one id.
pub fn assign_ids(configured: &[(ProxyEntry, u32)], saved: &[Record]) -> Vec<String> {
    let saved_by_url: HashMap<&str, &str> = saved
        .iter()
        .map(|r| (r.url.as_str(), r.id.as_str()))
        .collect();
    let mut ids: Vec<Option<String>> = vec![None; configured.len()];
    let mut by_url: HashMap<&str, String> = HashMap::new();
    let mut claimed: HashSet<String> = HashSet::new();
    for (k, (e, _)) in configured.iter().enumerate() {
        let url = e.url.expose();
        if let Some(id) = by_url.get(url) {
            ids[k] = Some(id.clone());
        } else if let Some(&id) = saved_by_url.get(url)
            && !claimed.contains(id)
        {
            claimed.insert(id.to_string());
            by_url.insert(url, id.to_string());
            ids[k] = Some(id.to_string());
        }
    }
    let reserved: HashSet<&str> = saved
        .iter()
        .filter(|r| r.added && !claimed.contains(&r.id))
        .map(|r| r.id.as_str())
        .collect();
    for (k, (e, _)) in configured.iter().enumerate() {
        if ids[k].is_some() {
            continue;
        }
        let url = e.url.expose();
        if let Some(id) = by_url.get(url) {
            ids[k] = Some(id.clone());
            continue;
        }
        let base = e.url.identity_id();
        let id = (1..)
            .map(|n| nth_id(&base, n))
            .find(|id| !claimed.contains(id) && !reserved.contains(id.as_str()))
            .expect("an unused id");
        claimed.insert(id.clone());
        by_url.insert(url, id.clone());
        ids[k] = Some(id);
    }
    ids.into_iter().map(|id| id.unwrap_or_default()).collect()
}

/// Rebuilds an engine's health from saved state: proxies still configured
/// (by URL, or by identity after a password change) or added through
/// admin get their saved health back; the configured list decides the
/// rest, and its URLs and metadata win over the saved ones.
pub fn apply(engine: &mut Engine, saved: Saved, configured: &[(ProxyEntry, u32)], now: u64) {
    let ids = assign_ids(configured, &saved.entries);
    let listed: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(k, id)| (id.as_str(), k))
        .collect();
    let mut changed = Vec::new();
    for mut r in saved.entries {
        if let Some(&k) = listed.get(r.id.as_str()) {
            let (entry, w) = &configured[k];
            if r.url != entry.url.expose() || r.meta != entry.meta {
                changed.push(r.id.clone());
            }
            r.url = entry.url.expose().to_string();
            r.meta = entry.meta.clone();
            r.weight = *w;
            r.added = false;
            engine.restore(r);
        } else if r.added {
            engine.restore(r);
        }
    }
    // What was just read back needs no saving, unless the list changed it;
    // new proxies below do.
    let _ = engine.take_dirty();
    for id in &changed {
        engine.touch(id);
    }
    for ((entry, w), id) in configured.iter().zip(&ids) {
        if !saved.removed.contains(id) {
            engine.add_as(id, entry, *w);
        }
    }
    for (site, id, until) in saved.bans {
        engine.restore_ban(&site, &id, until, now);
    }
    engine.resume_rotation();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FailureInfo, Kind, ProxyState};
    use ytdlp_plugin_sdk::{Request, Site};

    fn lines(urls: &[&str]) -> Vec<(ProxyEntry, u32)> {
        urls.iter().map(|u| (parse_entry(u).unwrap(), 1)).collect()
    }

    fn id(url: &str) -> String {
        parse_entry(url).unwrap().url.identity_id()
    }

    fn engine(urls: &[&str]) -> Engine {
        let mut pairs: Vec<(String, String)> = urls
            .iter()
            .map(|u| ("proxy".to_string(), u.to_string()))
            .collect();
        pairs.push(("failure_threshold".into(), "1".into()));
        pairs.push(("jitter".into(), "none".into()));
        pairs.push(("backoff_base_ms".into(), "60000".into()));
        let mut e = Engine::from_options(&pairs).unwrap();
        e.track_changes(true);
        e
    }

    fn reopen(dir: &std::path::Path, urls: &[&str], now: u64) -> (Engine, Vec<String>) {
        let mut e = Engine::new(engine(&[]).settings().clone(), Some(1));
        e.track_changes(true);
        let mut store = Store::new(dir);
        let (saved, warnings) = store.load();
        apply(&mut e, saved, &lines(urls), now);
        (e, warnings)
    }

    fn site(domain: &str) -> Request {
        Request {
            site: Site {
                host: domain.to_string(),
                domain: domain.to_string(),
            },
            ..Request::default()
        }
    }

    fn row(e: &Engine, url: &str, now: u64) -> crate::engine::Stat {
        e.stats(now)
            .into_iter()
            .find(|s| s.proxy.url == url)
            .unwrap_or_else(|| panic!("no row for {url}"))
    }

    #[test]
    fn failure_counts_are_stored_by_name_and_the_01_list_is_still_read() {
        let mut r = Record::new("p1", "http://a:1");
        r.failures[Kind::GeoRestricted as usize] = 2;
        r.failures[Kind::Content as usize] = 5;
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""failures":{"content":5,"geo-restricted":2}"#),
            "{json}"
        );
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
        // 0.1's seven counts: connect, timeout, auth, blocked, content, host, unknown.
        let old: Record = serde_json::from_str(
            r#"{"url":"http://a:1","health":"Active","failures":[1,0,0,3,4,0,6]}"#,
        )
        .unwrap();
        assert_eq!(old.id, "");
        assert_eq!(old.failures[Kind::ProxyConnect as usize], 1);
        assert_eq!(old.failures[Kind::Blocked as usize], 3);
        assert_eq!(old.failures[Kind::Content as usize], 4);
        assert_eq!(old.failures[Kind::Unknown as usize], 6);
        assert_eq!(old.failures[Kind::GeoRestricted as usize], 0);
    }

    #[test]
    fn health_survives_a_restart_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1", "http://b:1"]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        e.success(&id("http://b:1"), 5);
        e.failure(&id("http://a:1"), Kind::ProxyConnect, "", 10);
        // Two URLs refused: a ban (one would be a strike, not saved).
        for url in ["https://site.example/1", "https://site.example/2"] {
            let info = FailureInfo {
                url,
                ..FailureInfo::default()
            };
            e.failure_with(&id("http://b:1"), Kind::Blocked, "site.example", &info, 11);
        }
        store.save_changes(&mut e, 11).unwrap();

        let (mut e2, warnings) = reopen(dir.path(), &["http://a:1", "http://b:1"], 20);
        assert!(warnings.is_empty(), "{warnings:?}");
        let stats = e2.stats(20);
        assert_eq!(stats[0].state, ProxyState::CoolingDown(60010));
        assert_eq!(stats[1].successes, 1);
        assert!(
            stats[1]
                .extra
                .iter()
                .any(|(k, _)| k == "banned.site.example")
        );
        // Still cooling in the new process: only b is handed out, and not
        // for the site that blocked it.
        assert_eq!(e2.next(30).unwrap().url, "http://b:1");
        assert!(e2.next_for(30, &site("site.example")).is_err());
    }

    #[test]
    fn bans_round_trip_through_the_journal_and_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let urls = ["http://a:1", "http://b:1"];
        let mut e = engine(&urls);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        // A Retry-After bans at once; a lone refusal is a strike, not saved.
        e.failure_after(
            &id("http://a:1"),
            Kind::Blocked,
            "s.example",
            Some(90_000),
            10,
        );
        e.failure(&id("http://b:1"), Kind::Blocked, "s.example", 10);
        store.save_changes(&mut e, 10).unwrap();
        let ban = ("s.example".to_string(), id("http://a:1"), 90_010);
        let (saved, _) = Store::new(dir.path()).load();
        assert_eq!(saved.bans, std::slice::from_ref(&ban));
        let (mut e2, _) = reopen(dir.path(), &urls, 20);
        assert_eq!(e2.bans(20), std::slice::from_ref(&ban));
        // The snapshot keeps it too, and drops it once over.
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e2, 30).unwrap();
        let (saved, _) = Store::new(dir.path()).load();
        assert_eq!(saved.bans, [ban]);
        store.snapshot(&mut e2, 90_010).unwrap();
        let (saved, _) = Store::new(dir.path()).load();
        assert!(saved.bans.is_empty());
        // A restored ban counts as the pair's first: the next one doubles
        // (the base, 5 s, jittered by at most a fifth).
        let (mut e3, _) = reopen(dir.path(), &urls, 20);
        e3.restore_ban("s.example", &id("http://a:1"), 90_010, 20);
        e3.failure_after(
            &id("http://a:1"),
            Kind::Blocked,
            "s.example",
            Some(1),
            100_000,
        );
        let until = e3.bans(100_000)[0].2;
        assert!((110_000..112_000).contains(&until), "{until}");
    }

    #[test]
    fn a_new_password_keeps_the_proxys_health_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let old = "http://u:old@h:1;region=DE";
        let mut e = engine(&[old]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        e.success(&id(old), 1);
        e.success(&id(old), 2);
        store.save_changes(&mut e, 2).unwrap();

        // The config now has the new password (and a new region).
        let new = "http://u:new@h:1;region=AT";
        let (mut e2, _) = reopen(dir.path(), &[new], 3);
        let p = e2.next(4).unwrap();
        assert_eq!(p.id, id(old));
        assert_eq!(
            (p.url.as_str(), p.meta.region.as_deref()),
            ("http://u:new@h:1", Some("AT"))
        );
        assert_eq!(row(&e2, "http://u:new@h:1", 4).successes, 2);
        assert_eq!(e2.len(), 1);
        // And the new URL is what gets saved.
        let mut store = Store::new(dir.path());
        let (saved, _) = store.load();
        store.save_changes(&mut e2, 5).unwrap();
        assert_eq!(saved.entries[0].url, "http://u:old@h:1");
        let (saved, _) = Store::new(dir.path()).load();
        assert_eq!(saved.entries[0].url, "http://u:new@h:1");
    }

    #[test]
    fn colliding_identities_keep_their_ids_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = ("http://u:one@h:1", "http://u:two@h:1");
        let mut e = engine(&[one, two]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        let two_id = e.stats(0)[1].proxy.id.clone();
        assert_eq!(two_id, format!("{}-2", id(one)));
        e.success(&two_id, 1);
        store.save_changes(&mut e, 1).unwrap();
        // Listed the other way round: each URL keeps its id and health.
        let (e2, _) = reopen(dir.path(), &[two, one], 2);
        let r = row(&e2, two, 2);
        assert_eq!((r.proxy.id.as_str(), r.successes), (two_id.as_str(), 1));
        assert_eq!(row(&e2, one, 2).proxy.id, id(one));
        // Without a state, the list's order decides, the same way each time.
        let ids = assign_ids(&lines(&[two, one]), &[]);
        assert_eq!(ids, [id(one), format!("{}-2", id(one))]);
    }

    #[test]
    fn a_01_state_keyed_by_url_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        // As a 0.1 build wrote it: format 1, proxies, bans and removals by URL.
        std::fs::write(
            dir.path().join(SNAPSHOT),
            r#"{"format":1,"entries":[
                {"url":"http://u:pw@a:1","health":"Active","successes":4,"failures":[2,0,0,1,0,0,0],"last_used":7},
                {"url":"http://u:pw2@a:1","health":{"Cooling":99999},"consecutive":3},
                {"url":"http://c:1","health":"Active"}
               ],"removed":["http://gone:1"],
               "bans":[["www.site.example","http://u:pw@a:1",50000]]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(JOURNAL),
            "{\"Entry\":{\"url\":\"http://c:1\",\"health\":\"Active\",\"successes\":9}}\n\
             {\"Removed\":\"http://c:1\"}\n\
             {\"Ban\":[\"www.site.example\",\"http://u:pw2@a:1\",60000]}\n",
        )
        .unwrap();
        let mut store = Store::new(dir.path());
        let (saved, warnings) = store.load();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(saved.migrated);
        let a = id("http://u:pw@a:1");
        let ids: Vec<&str> = saved.entries.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, [a.clone(), format!("{a}-2")]);
        assert_eq!(saved.removed, [id("http://gone:1"), id("http://c:1")]);
        assert_eq!(
            saved.bans,
            [
                ("www.site.example".to_string(), a.clone(), 50000),
                ("www.site.example".to_string(), format!("{a}-2"), 60000)
            ]
        );
        let mut e = Engine::new(engine(&[]).settings().clone(), Some(1));
        e.track_changes(true);
        let configured = ["http://u:pw@a:1", "http://u:pw2@a:1", "http://gone:1"];
        apply(&mut e, saved, &lines(&configured), 1000);
        let first = row(&e, "http://u:pw@a:1", 1000);
        assert_eq!(
            (first.proxy.id.as_str(), first.successes, first.failures),
            (a.as_str(), 4, 3)
        );
        assert!(
            first
                .extra
                .contains(&("banned.www.site.example".into(), "50000".into()))
        );
        assert_eq!(
            row(&e, "http://u:pw2@a:1", 1000).state,
            ProxyState::CoolingDown(99999)
        );
        // Removed through admin under 0.1: still removed.
        assert_eq!(e.len(), 2);
        // Written anew as format 2, it loads the same.
        store.snapshot(&mut e, 1000).unwrap();
        let snap = std::fs::read_to_string(dir.path().join(SNAPSHOT)).unwrap();
        assert!(snap.starts_with(r#"{"format":2"#), "{snap}");
        let (again, _) = Store::new(dir.path()).load();
        assert!(!again.migrated);
        assert_eq!(again.entries.len(), 2);
        assert_eq!(again.entries[0].id, a);
    }

    #[test]
    fn snapshots_compact_and_survive_too() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1"]);
        let mut store = Store::new(dir.path());
        for t in 0..10 {
            e.success("http://a:1", t);
            store.save_changes(&mut e, t).unwrap();
        }
        store.snapshot(&mut e, 10).unwrap();
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL)).unwrap();
        assert!(journal.is_empty());
        let (e2, _) = reopen(dir.path(), &["http://a:1"], 10);
        assert_eq!(e2.stats(10)[0].successes, 10);
    }

    #[test]
    fn corrupt_or_torn_state_starts_fresh_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SNAPSHOT), b"{not json").unwrap();
        std::fs::write(
            dir.path().join(JOURNAL),
            b"{\"Entry\":{\"url\":\"http://a:1\",\"health\":\"Active\",\"successes\":3}}\n{\"Entry\":{\"url",
        )
        .unwrap();
        let (e, warnings) = reopen(dir.path(), &["http://a:1", "http://b:1"], 0);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("corrupt"), "{warnings:?}");
        // The readable journal line was kept; the torn one skipped.
        assert_eq!(e.stats(0)[0].successes, 3);
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn a_line_after_a_torn_one_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1"]);
        let a = id("http://a:1");
        // A journal whose last line a crash cut short, and a store that did
        // not compact it at start.
        std::fs::write(
            dir.path().join(JOURNAL),
            format!(
                "{{\"Entry\":{{\"id\":\"{a}\",\"url\":\"http://a:1\",\"health\":\"Active\",\"successes\":1}}}}\n{{\"Entry\":{{\"url"
            ),
        )
        .unwrap();
        let mut store = Store::new(dir.path());
        e.success(&a, 1);
        e.success(&a, 2);
        store.save_changes(&mut e, 2).unwrap();
        let (e2, warnings) = reopen(dir.path(), &["http://a:1"], 3);
        assert_eq!(warnings.len(), 1, "only the torn line: {warnings:?}");
        assert_eq!(
            e2.stats(3)[0].successes,
            2,
            "the line written after it counts"
        );
    }

    #[test]
    fn snapshots_leave_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1"]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        store.snapshot(&mut e, 1).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn removed_proxies_stay_removed_and_added_ones_stay_added() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1", "http://b:1"]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        e.remove(&id("http://a:1"));
        e.add(&parse_entry("http://c:1;tags=extra").unwrap(), 1, true);
        store.save_changes(&mut e, 1).unwrap();
        let (e2, _) = reopen(dir.path(), &["http://a:1", "http://b:1"], 2);
        let rows = e2.stats(2);
        let urls: Vec<&str> = rows.iter().map(|s| s.proxy.url.as_str()).collect();
        assert_eq!(urls, ["http://b:1", "http://c:1"]);
        // An added proxy keeps its metadata too.
        assert_eq!(rows[1].proxy.meta.tags, ["extra"]);
    }
}
