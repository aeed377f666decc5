//! The engine for several machines: one Redis hash per namespace
//! (`ytdlp-host:kv:NS`), so a namespace's keys are listed with `HSCAN`
//! and a batch is one command. Compare-and-swap is a Lua script (atomic
//! in Redis). The connection is opened lazily and again after an error.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, Script};

use crate::{PAGE, Result, Store, StoreError, parse_counter};

/// Per-command bound: a hung Redis becomes an error, not a hung plugin.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

const CAS: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if (ARGV[2] == '0' and v == false) or (ARGV[2] == '1' and v == ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
  return 1
end
return 0
";

pub struct RedisStore {
    client: Client,
    /// The address without credentials, for messages.
    shown: String,
    conn: Mutex<Option<Connection>>,
    cas: Script,
}

/// `redis://user:pass@host:port/db` -> `redis://host:port/db`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
            format!("{scheme}://{rest}")
        }
        None => "(a Redis URL)".to_string(),
    }
}

impl RedisStore {
    /// Checks the URL; connects on first use.
    pub fn open(url: &str) -> Result<RedisStore> {
        let shown = without_credentials(url);
        let client = Client::open(url).map_err(|e| {
            StoreError::Unavailable(format!(
                "[store] url: {shown} is not a Redis URL ({})",
                format!("{:?}", e.kind()).to_lowercase()
            ))
        })?;
        Ok(RedisStore {
            client,
            shown,
            conn: Mutex::new(None),
            cas: Script::new(CAS),
        })
    }

    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    pub(crate) fn hash(ns: &str) -> String {
        format!("ytdlp-host:kv:{ns}")
    }

    pub(crate) fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> Result<R> {
        self.raw(f).map_err(|e| self.err(e))
    }

    pub(crate) fn raw<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> redis::RedisResult<R> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let c = self.client.get_connection_with_timeout(IO_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            *slot = Some(c);
        }
        let r = f(slot.as_mut().expect("connected above"));
        if let Err(e) = &r
            && (e.is_io_error() || e.is_connection_dropped() || e.is_timeout())
        {
            // Reconnect next time rather than reuse a broken stream.
            *slot = None;
        }
        r
    }

    pub(crate) fn err(&self, e: redis::RedisError) -> StoreError {
        // The error's text may quote the URL; say only what kind it was.
        let what = if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            "cannot reach it".to_string()
        } else {
            format!("{:?}", e.kind()).to_lowercase()
        };
        StoreError::Unavailable(format!("store {}: {what}", self.shown))
    }
}

impl Store for RedisStore {
    fn describe(&self) -> String {
        format!("redis {}", self.shown)
    }

    fn get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| redis::cmd("HGET").arg(Self::hash(ns)).arg(key).query(c))
    }

    fn set(&self, ns: &str, key: &str, value: &[u8]) -> Result<()> {
        self.with(|c| {
            redis::cmd("HSET")
                .arg(Self::hash(ns))
                .arg(key)
                .arg(value)
                .query::<()>(c)
        })
    }

    fn delete(&self, ns: &str, key: &str) -> Result<()> {
        self.with(|c| {
            redis::cmd("HDEL")
                .arg(Self::hash(ns))
                .arg(key)
                .query::<()>(c)
        })
    }

    fn exists(&self, ns: &str, key: &str) -> Result<bool> {
        self.with(|c| redis::cmd("HEXISTS").arg(Self::hash(ns)).arg(key).query(c))
    }

    fn list_keys(&self, ns: &str, cursor: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        let (next, flat): (String, Vec<String>) = self.with(|c| {
            redis::cmd("HSCAN")
                .arg(Self::hash(ns))
                .arg(cursor.unwrap_or("0"))
                .arg("COUNT")
                .arg(PAGE)
                .query(c)
        })?;
        let keys = flat.into_iter().step_by(2).collect();
        Ok((keys, (next != "0").then_some(next)))
    }

    fn increment(&self, ns: &str, key: &str, delta: i64) -> Result<i64> {
        let r = self.raw(|c| {
            redis::cmd("HINCRBY")
                .arg(Self::hash(ns))
                .arg(key)
                .arg(delta)
                .query(c)
        });
        match r {
            // HINCRBY's only refusal: the value is not an integer.
            Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => {
                parse_counter(&self.describe(), key, b"not a number")
            }
            r => r.map_err(|e| self.err(e)),
        }
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool> {
        let n: i64 = self.with(|c| {
            self.cas
                .key(Self::hash(ns))
                .arg(key)
                .arg(if expected.is_some() { "1" } else { "0" })
                .arg(expected.unwrap_or(b""))
                .arg(new)
                .invoke(c)
        })?;
        Ok(n == 1)
    }

    fn get_many(&self, ns: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.with(|c| redis::cmd("HMGET").arg(Self::hash(ns)).arg(keys).query(c))
    }

    fn set_many(&self, ns: &str, pairs: &[(String, Vec<u8>)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HSET");
        cmd.arg(Self::hash(ns));
        for (k, v) in pairs {
            cmd.arg(k).arg(v);
        }
        self.with(|c| cmd.query::<()>(c))
    }

    fn delete_many(&self, ns: &str, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.with(|c| {
            redis::cmd("HDEL")
                .arg(Self::hash(ns))
                .arg(keys)
                .query::<()>(c)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_show() {
        assert_eq!(
            super::without_credentials("redis://u:p%40ss@10.0.0.1:6379/2"),
            "redis://10.0.0.1:6379/2"
        );
        assert_eq!(super::without_credentials("nonsense"), "(a Redis URL)");
    }
}
