//! The SQLite engine against its contract, with real files; the same
//! checks run against a real redis-server in tests/all/store.rs.

use std::sync::Arc;

use crate::{SqliteStore, Store, StoreError};

fn fresh() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let (s, w) = SqliteStore::open(&dir.path().join("sub/store.sqlite3")).unwrap();
    assert!(w.is_empty(), "{w:?}");
    (dir, s)
}

/// What every engine must do; `pub` so the Redis test runs it too.
pub fn contract(s: &dyn Store) {
    assert_eq!(s.get("a/x", "k").unwrap(), None);
    s.set("a/x", "k", b"v1").unwrap();
    assert_eq!(s.get("a/x", "k").unwrap().as_deref(), Some(&b"v1"[..]));
    // Namespaces are apart.
    assert_eq!(s.get("b/x", "k").unwrap(), None);
    assert!(s.exists("a/x", "k").unwrap());
    // Compare-and-swap: from the value read, not from another.
    assert!(!s.compare_and_swap("a/x", "k", Some(b"old"), b"v2").unwrap());
    assert!(s.compare_and_swap("a/x", "k", Some(b"v1"), b"v2").unwrap());
    assert!(!s.compare_and_swap("a/x", "k", None, b"v3").unwrap());
    assert!(s.compare_and_swap("a/x", "new", None, b"n").unwrap());
    assert_eq!(s.get("a/x", "k").unwrap().as_deref(), Some(&b"v2"[..]));
    // Counters.
    assert_eq!(s.increment("a/x", "c", 5).unwrap(), 5);
    assert_eq!(s.increment("a/x", "c", -2).unwrap(), 3);
    assert!(matches!(
        s.increment("a/x", "k", 1),
        Err(StoreError::NotACounter(_))
    ));
    // Batches.
    s.set_many(
        "a/y",
        &[("1".into(), b"one".to_vec()), ("2".into(), b"two".to_vec())],
    )
    .unwrap();
    let got = s
        .get_many("a/y", &["1".into(), "3".into(), "2".into()])
        .unwrap();
    assert_eq!(
        got,
        vec![Some(b"one".to_vec()), None, Some(b"two".to_vec())]
    );
    s.delete_many("a/y", &["1".into()]).unwrap();
    assert_eq!(s.get("a/y", "1").unwrap(), None);
    s.delete("a/x", "k").unwrap();
    assert!(!s.exists("a/x", "k").unwrap());
    // Listing pages through everything once.
    let many: Vec<(String, Vec<u8>)> = (0..2500).map(|i| (format!("k{i:05}"), vec![1])).collect();
    s.set_many("a/z", &many).unwrap();
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let (keys, next) = s.list_keys("a/z", cursor.as_deref()).unwrap();
        seen.extend(keys);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2500);
}

#[test]
fn sqlite_keeps_the_contract() {
    let (_d, s) = fresh();
    contract(&s);
}

#[test]
fn what_one_process_wrote_another_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    let (a, _) = SqliteStore::open(&path).unwrap();
    a.set("p/h", "k", b"from a").unwrap();
    drop(a);
    let (b, _) = SqliteStore::open(&path).unwrap();
    assert_eq!(b.get("p/h", "k").unwrap().as_deref(), Some(&b"from a"[..]));
}

/// Eight connections (as eight processes would hold) increment and
/// compare-and-swap the same keys from eight threads: nothing is lost.
#[test]
fn concurrent_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    SqliteStore::open(&path).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let (s, _) = SqliteStore::open(&path).unwrap();
                for _ in 0..200 {
                    s.increment("p/h", "n", 1).unwrap();
                    // Read-modify-write by compare-and-swap.
                    loop {
                        let cur = s.get("p/h", "cas").unwrap();
                        let n: u64 = cur
                            .as_deref()
                            .map(|v| std::str::from_utf8(v).unwrap().parse().unwrap())
                            .unwrap_or(0);
                        if s.compare_and_swap(
                            "p/h",
                            "cas",
                            cur.as_deref(),
                            (n + 1).to_string().as_bytes(),
                        )
                        .unwrap()
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (s, _) = SqliteStore::open(&path).unwrap();
    assert_eq!(s.get("p/h", "n").unwrap().as_deref(), Some(&b"1600"[..]));
    assert_eq!(s.get("p/h", "cas").unwrap().as_deref(), Some(&b"1600"[..]));
}

#[test]
fn a_damaged_file_is_moved_aside_and_a_fresh_store_started() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    std::fs::write(
        &path,
        b"this is not a database, it is a shopping list\n".repeat(200),
    )
    .unwrap();
    let (s, warnings) = SqliteStore::open(&path).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&path.display().to_string()),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("moved to"), "{warnings:?}");
    assert_eq!(s.get("p/h", "k").unwrap(), None);
    s.set("p/h", "k", b"v").unwrap();
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1);
}

#[test]
fn a_truncated_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    {
        let (s, _) = SqliteStore::open(&path).unwrap();
        let many: Vec<(String, Vec<u8>)> =
            (0..3000).map(|i| (format!("k{i}"), vec![7; 200])).collect();
        s.set_many("p/h", &many).unwrap();
        // Checkpoint the WAL into the file, so truncating the file cuts data.
        s.with(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))
            .unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 3).unwrap();
    drop(f);
    let (s, warnings) = SqliteStore::open(&path).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(s.get("p/h", "k1").unwrap(), None);
}

#[test]
fn a_newer_schema_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.sqlite3");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 9;").unwrap();
    }
    let err = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(err.contains("newer ytdlp-host"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn an_unopenable_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = SqliteStore::open(&blocker.join("store.sqlite3"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains(&blocker.display().to_string()), "{err}");
    let _: Arc<dyn Store> = Arc::new(fresh().1);
}

/// Many processes opening a new file at the same moment (the first
/// `download -a` batches on a machine): every one opens it.
#[test]
fn many_opening_a_new_file_at_once_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("store-{round}.sqlite3"));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let (s, _) = SqliteStore::open(&path).unwrap();
                    s.increment("p/h", "n", 1).unwrap();
                    let _ = i;
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (s, _) = SqliteStore::open(&path).unwrap();
        assert_eq!(s.get("p/h", "n").unwrap().as_deref(), Some(&b"8"[..]));
    }
}
