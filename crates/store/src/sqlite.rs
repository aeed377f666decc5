//! The embedded engine: one SQLite file in WAL mode. Several processes on
//! one machine share it safely (SQLite's own file locks; writers wait up
//! to `BUSY_TIMEOUT` for each other). `synchronous = NORMAL`: a write
//! acknowledged is kept when the process is killed; a power cut may lose
//! the last ones (WAL's documented trade).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use crate::{PAGE, Result, Store, StoreError, parse_counter};

/// How long a writer waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema this build writes; a file with a higher one is refused.
const SCHEMA: i64 = 1;

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`. A file that is not a
    /// database, or fails SQLite's quick check, is renamed to
    /// `PATH.corrupt-UNIXTIME` and a new one started; the warning says so.
    pub fn open(path: &Path) -> Result<(SqliteStore, Vec<String>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the store's directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let mut warnings = Vec::new();
        let conn = match Self::connect_patiently(path) {
            Ok(c) => c,
            Err(Broken::Corrupt(why)) => {
                let aside = set_aside(path)?;
                warnings.push(format!(
                    "the store {} is damaged ({why}); it was moved to {} and a new, empty store started (saved proxy health is lost)",
                    path.display(),
                    aside.display()
                ));
                Self::connect_patiently(path).map_err(|b| b.into_error(path))?
            }
            Err(b) => return Err(b.into_error(path)),
        };
        Ok((
            SqliteStore {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            },
            warnings,
        ))
    }

    /// Several processes opening a new file at once race to set it up;
    /// SQLite answers some of those races "busy" without waiting, so wait
    /// here.
    fn connect_patiently(path: &Path) -> std::result::Result<Connection, Broken> {
        let start = std::time::Instant::now();
        loop {
            match Self::connect(path) {
                Err(Broken::Busy(_)) if start.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => return r,
            }
        }
    }

    fn connect(path: &Path) -> std::result::Result<Connection, Broken> {
        let conn = Connection::open(path).map_err(Broken::from)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(Broken::from)?;
        // Reading the header is the first thing that fails on a file that
        // is not a database. WAL is kept in the file: only the first
        // process to open it switches it.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(Broken::from)?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(Broken::from)?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(Broken::from)?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(Broken::from)?;
        if check != "ok" {
            return Err(Broken::Corrupt(check));
        }
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(Broken::from)?;
        if version > SCHEMA {
            return Err(Broken::Other(format!(
                "it was written by a newer ytdlp-host (schema {version}, this build knows {SCHEMA}); upgrade, or point [store] path elsewhere"
            )));
        }
        if version < SCHEMA {
            conn.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS kv (
                     ns TEXT NOT NULL,
                     key TEXT NOT NULL,
                     value BLOB NOT NULL,
                     PRIMARY KEY (ns, key)
                 ) WITHOUT ROWID;
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(Broken::from)?;
        }
        Ok(conn)
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Unavailable(format!("store {}: {e}", self.path.display()))
    }

    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R> {
        // A panic while holding the lock leaves SQLite consistent (every
        // call is one statement or one transaction), so go on.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| self.err(e))
    }
}

enum Broken {
    Corrupt(String),
    /// Another process holds the lock (setting the file up).
    Busy(String),
    Other(String),
}

impl From<rusqlite::Error> for Broken {
    fn from(e: rusqlite::Error) -> Broken {
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                Broken::Corrupt(e.to_string())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Broken::Busy(e.to_string())
            }
            _ => Broken::Other(e.to_string()),
        }
    }
}

impl Broken {
    fn into_error(self, path: &Path) -> StoreError {
        let (Broken::Corrupt(why) | Broken::Busy(why) | Broken::Other(why)) = self;
        StoreError::Unavailable(format!("cannot open the store {}: {why}", path.display()))
    }
}

/// Moves a damaged store (and its WAL files) out of the way.
fn set_aside(path: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = PathBuf::from(format!("{}.corrupt-{secs}", path.display()));
    std::fs::rename(path, &aside).map_err(|e| {
        StoreError::Unavailable(format!(
            "the store {} is damaged and cannot be moved aside: {e}",
            path.display()
        ))
    })?;
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", path.display()));
        let _ = std::fs::remove_file(side);
    }
    Ok(aside)
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM kv WHERE ns = ?1 AND key = ?2")?
                .query_row(params![ns, key], |r| r.get(0))
                .optional()
        })
    }

    fn set(&self, ns: &str, key: &str, value: &[u8]) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?1, ?2, ?3)")?
                .execute(params![ns, key, value])
                .map(drop)
        })
    }

    fn delete(&self, ns: &str, key: &str) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?
                .execute(params![ns, key])
                .map(drop)
        })
    }

    fn list_keys(&self, ns: &str, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        let mut keys: Vec<String> = self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT key FROM kv WHERE ns = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )?;
            st.query_map(params![ns, cursor.unwrap_or(""), PAGE as i64 + 1], |r| {
                r.get(0)
            })?
            .collect()
        })?;
        let next = if keys.len() > PAGE {
            keys.truncate(PAGE);
            keys.last().cloned()
        } else {
            None
        };
        Ok((keys, next))
    }

    fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64> {
        let mut bad = false;
        let n = self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old: Option<Vec<u8>> = tx
                .prepare_cached("SELECT value FROM kv WHERE ns = ?1 AND key = ?2")?
                .query_row(params![ns, key], |r| r.get(0))
                .optional()?;
            let old = match old.as_deref().map(|v| parse_counter("", key, v)) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    bad = true;
                    return Ok(0);
                }
            };
            let new = old.saturating_add(delta);
            tx.prepare_cached("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?1, ?2, ?3)")?
                .execute(params![ns, key, new.to_string().as_bytes()])?;
            tx.commit()?;
            Ok(new)
        })?;
        if bad {
            return Err(StoreError::NotACounter(format!(
                "{}: the value at `{key}` is not a counter",
                self.describe()
            )));
        }
        Ok(n)
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        // One statement each: atomic without an explicit transaction.
        self.with(|c| {
            let changed = match expected {
                Some(old) => c
                    .prepare_cached(
                        "UPDATE kv SET value = ?4 WHERE ns = ?1 AND key = ?2 AND value = ?3",
                    )?
                    .execute(params![ns, key, old, new])?,
                None => c
                    .prepare_cached(
                        "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![ns, key, new])?,
            };
            Ok(changed == 1)
        })
    }

    fn get_many(&self, ns: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        // One read transaction: a consistent snapshot of all of them.
        self.with(|c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(keys.len());
            {
                let mut st =
                    tx.prepare_cached("SELECT value FROM kv WHERE ns = ?1 AND key = ?2")?;
                for k in keys {
                    out.push(st.query_row(params![ns, k], |r| r.get(0)).optional()?);
                }
            }
            tx.commit()?;
            Ok(out)
        })
    }

    fn set_many(&self, ns: &str, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?1, ?2, ?3)",
                )?;
                for (k, v) in pairs {
                    st.execute(params![ns, k, v])?;
                }
            }
            tx.commit()
        })
    }

    fn delete_many(&self, ns: &str, keys: &[String]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut st = tx.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?;
                for k in keys {
                    st.execute(params![ns, k])?;
                }
            }
            tx.commit()
        })
    }
}
