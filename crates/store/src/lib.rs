//! Durable key-value state that several host processes (and machines) can
//! share: the [`Store`] interface plugins reach through the host's
//! key-value import, with two engines. [`SqliteStore`] is the embedded
//! default (one file, WAL, safe for several processes on one machine);
//! [`RedisStore`] is for several machines.
//!
//! Keys live in namespaces (`plugin/bucket`), so two plugins never see each
//! other's keys. Values are bytes; counters are decimal text, as in Redis,
//! so the two engines hold the same data.

mod redis_engine;
mod redis_queue;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

pub use redis_engine::RedisStore;
pub use redis_queue::{Claim, RedisQueue};
pub use sqlite::SqliteStore;

/// Why a store call failed. The message names the store (its file or
/// address, never a password) and what to do where it can.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The store cannot be reached or used now (a file that cannot be
    /// opened, a full disk, Redis down): the call may work later.
    #[error("{0}")]
    Unavailable(String),
    /// A counter's value is not a number.
    #[error("{0}")]
    NotACounter(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// One store, shared by every plugin instance of a process. Every call is
/// atomic on its own; `compare_and_swap` is what read-modify-write is
/// built from.
pub trait Store: Send + Sync {
    /// Where the data is, for messages: a file, or a Redis address without
    /// credentials.
    fn describe(&self) -> String;
    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>>;
    fn set(&self, ns: &str, key: &str, value: &[u8]) -> Result<()>;
    fn delete(&self, ns: &str, key: &str) -> Result<()>;
    fn exists(&self, ns: &str, key: &str) -> Result<bool> {
        Ok(self.get(ns, key)?.is_some())
    }
    /// A page of keys from `cursor` (`None`: the first page), and the
    /// cursor of the next page (`None`: that was the last). Cursors are
    /// opaque; keys come in no promised order.
    fn list_keys(&self, ns: &str, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>)>;
    /// Adds `delta` to the counter at `key` (created at 0) and returns the
    /// new value.
    fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64>;
    /// Writes `new` only if the value is still `expected` (`None`: the key
    /// is absent). `Ok(false)`: someone else wrote first; read again.
    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool>;
    fn get_many(&self, ns: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
    /// All or nothing.
    fn set_many(&self, ns: &str, pairs: &[(String, Vec<u8>)]) -> Result<()>;
    fn delete_many(&self, ns: &str, keys: &[String]) -> Result<()>;
}

/// Keys per `list_keys` page.
pub const PAGE: usize = 1000;

/// Which engine, and where: `[store]` in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file (created with its directory).
    Sqlite(PathBuf),
    /// A Redis URL (`redis://[user:password@]host:port[/db]`).
    Redis(String),
}

/// Opens the store `engine` names. A SQLite file that is not a database
/// (corrupt, truncated mid-page) is moved aside and started afresh, with
/// the warning returned; nothing half-read is used.
pub fn open(engine: &Engine) -> Result<(Arc<dyn Store>, Vec<String>)> {
    match engine {
        Engine::Sqlite(path) => {
            let (s, warnings) = SqliteStore::open(path)?;
            Ok((Arc::new(s), warnings))
        }
        Engine::Redis(url) => Ok((Arc::new(RedisStore::open(url)?), Vec::new())),
    }
}

/// Counters are decimal text (as Redis keeps them).
fn parse_counter(store: &str, key: &str, v: &[u8]) -> Result<i64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| {
            StoreError::NotACounter(format!("{store}: the value at `{key}` is not a counter"))
        })
}

#[cfg(test)]
mod tests;
