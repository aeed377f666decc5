//! Health that survives restarts: a snapshot plus an append-only journal in
//! the state directory the host grants (`state_dir`).
//!
//! Every change appends the changed proxy's whole entry to the journal (one
//! JSON line, O(1) per report), so replay is idempotent. At start, and when
//! the journal grows past a bound, the state is compacted into a new
//! snapshot written atomically (temp file + rename) and the journal is
//! emptied. A missing state starts fresh; a corrupt one starts fresh with a
//! warning; a torn last journal line (a crash mid-write) is skipped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Entry};

const SNAPSHOT: &str = "memory-state.json";
const JOURNAL: &str = "memory-journal.jsonl";
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    entries: Vec<Entry>,
    /// Configured proxies removed through admin (so a restart with the same
    /// configuration does not bring them back).
    #[serde(default)]
    removed: Vec<String>,
    /// (site, proxy URL, banned until ms)
    bans: Vec<(String, String, u64)>,
}

#[derive(Serialize, Deserialize)]
enum Line {
    Entry(Entry),
    Removed(String),
    Ban(String, String, u64),
}

/// What was saved: entries by URL, and bans.
#[derive(Default)]
pub struct Saved {
    pub entries: Vec<Entry>,
    pub removed: Vec<String>,
    pub bans: Vec<(String, String, u64)>,
}

pub struct Store {
    dir: PathBuf,
    journal: Option<File>,
    journal_lines: usize,
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
    /// as warnings; what could be read is kept.
    pub fn load(&mut self) -> (Saved, Vec<String>) {
        let mut warnings = Vec::new();
        let mut by_url: HashMap<String, Entry> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let mut bans = Vec::new();
        let mut removed_at_snapshot = Vec::new();
        let snap_path = self.dir.join(SNAPSHOT);
        match std::fs::read(&snap_path) {
            Ok(bytes) => match serde_json::from_slice::<Snapshot>(&bytes) {
                Ok(s) if s.format == FORMAT => {
                    for e in s.entries {
                        order.push(e.url.to_string());
                        by_url.insert(e.url.to_string(), e);
                    }
                    bans = s.bans;
                    removed_at_snapshot = s.removed;
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
        let mut removed = removed_at_snapshot;
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
                    Ok(Line::Entry(e)) => {
                        let url = e.url.to_string();
                        if !by_url.contains_key(&url) {
                            order.push(url.clone());
                        }
                        removed.retain(|r| r != &url);
                        by_url.insert(url, e);
                    }
                    Ok(Line::Removed(url)) => {
                        by_url.remove(&url);
                        removed.push(url);
                    }
                    Ok(Line::Ban(site, url, until)) => bans.push((site, url, until)),
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
        let entries = order
            .into_iter()
            .filter_map(|u| by_url.remove(&u))
            .collect();
        (
            Saved {
                entries,
                removed,
                bans,
            },
            warnings,
        )
    }

    /// Writes a snapshot of `engine` atomically and empties the journal.
    pub fn snapshot(&mut self, engine: &mut Engine, now: u64) -> std::io::Result<()> {
        engine.prune_bans(now);
        let snap = Snapshot {
            format: FORMAT,
            entries: engine.entries().cloned().collect(),
            removed: engine.removed_urls(),
            bans: engine.bans(),
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
        let removed: Vec<String>;
        {
            let dirty = engine.take_dirty();
            removed = dirty
                .iter()
                .filter(|e| e.is_removed())
                .map(|e| e.url.to_string())
                .collect();
            for e in dirty.into_iter().filter(|e| !e.is_removed()) {
                serde_json::to_writer(&mut buf, &Line::Entry(e.clone()))?;
                buf.push(b'\n');
                n += 1;
            }
        }
        for url in removed {
            serde_json::to_writer(&mut buf, &Line::Removed(url))?;
            buf.push(b'\n');
            n += 1;
        }
        for (site, url, until) in engine.take_new_bans() {
            serde_json::to_writer(&mut buf, &Line::Ban(site, url, until))?;
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

/// Rebuilds an engine's health from saved state: proxies still configured
/// (or added through admin) get their saved health back; the configured
/// list decides the rest.
pub fn apply(engine: &mut Engine, saved: Saved, configured: &[(String, u32)], now: u64) {
    let listed: HashMap<&str, u32> = configured.iter().map(|(u, w)| (u.as_str(), *w)).collect();
    for mut e in saved.entries {
        if let Some(&w) = listed.get(&*e.url) {
            e.weight = w;
            engine.restore(e);
        } else if e.added {
            engine.restore(e);
        }
    }
    // What was just read back needs no saving; new proxies below do.
    let _ = engine.take_dirty();
    for (url, w) in configured {
        if !saved.removed.contains(url) {
            engine.add(url, *w, false);
        }
    }
    for (site, url, until) in saved.bans {
        engine.restore_ban(&site, &url, until, now);
    }
    engine.resume_rotation();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Kind, ProxyState};

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
        let configured: Vec<(String, u32)> = urls.iter().map(|u| (u.to_string(), 1)).collect();
        apply(&mut e, saved, &configured, now);
        (e, warnings)
    }

    #[test]
    fn health_survives_a_restart_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(&["http://a:1", "http://b:1"]);
        let mut store = Store::new(dir.path());
        store.snapshot(&mut e, 0).unwrap();
        e.success("http://b:1", 5);
        e.failure("http://a:1", Kind::ProxyConnect, "", 10);
        e.failure("http://b:1", Kind::Blocked, "site.example", 11);
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
        assert!(e2.next_for(30, "site.example", None).is_err());
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
        // A journal whose last line a crash cut short, and a store that did
        // not compact it at start.
        std::fs::write(
            dir.path().join(JOURNAL),
            b"{\"Entry\":{\"url\":\"http://a:1\",\"health\":\"Active\",\"successes\":1}}\n{\"Entry\":{\"url",
        )
        .unwrap();
        let mut store = Store::new(dir.path());
        e.success("http://a:1", 1);
        e.success("http://a:1", 2);
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
        e.remove("http://a:1");
        e.add("http://c:1", 1, true);
        store.save_changes(&mut e, 1).unwrap();
        let (e2, _) = reopen(dir.path(), &["http://a:1", "http://b:1"], 2);
        let urls: Vec<String> = e2.stats(2).into_iter().map(|s| s.url).collect();
        assert_eq!(urls, ["http://b:1", "http://c:1"]);
    }
}
