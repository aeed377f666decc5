//! The fleet's work queue on Redis: several `serve` hosts share one
//! stream (`ytdlp-host:queue:stream`) read by one consumer group, so each
//! download is claimed by one host. A claim is a lease: the host that holds
//! it refreshes it while the download runs; one whose host died is taken
//! over by another (`XAUTOCLAIM`) once it has been idle for the lease. The
//! records themselves are the store's (`ytdlp-host:kv:NS` hash), so the
//! record and its stream entry are written together, by one script.
//!
//! Writes that must not be done by a host that lost its claim (the final
//! record, the acknowledgement) check the claim in the same script: a
//! download ends once, by the host that holds it.

use std::time::Duration;

use redis::{Script, Value};

use crate::{RedisStore, Result};

const STREAM: &str = "ytdlp-host:queue:stream";
const SEQ: &str = "ytdlp-host:queue:seq";
const GROUP: &str = "hosts";

/// KEYS: records hash, stream. ARGV: id, record, queue limit. The record
/// and its entry, both or neither; -1-n: full with n entries.
const ENQUEUE: &str = r"
local n = redis.call('XLEN', KEYS[2])
if n >= tonumber(ARGV[3]) then return -1 - n end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
return 1
";

/// Is entry ARGV[2] in consumer ARGV[1]'s pending list? (KEYS[1] the
/// stream.)
const MINE: &str = r"
local function mine(stream, consumer, entry)
  local p = redis.call('XPENDING', stream, 'hosts', entry, entry, 1, consumer)
  return #p > 0
end
";

/// KEYS: stream. ARGV: consumer, entry. Resets the entry's idle time if
/// the consumer still holds it; 0 if it does not.
const REFRESH: &str = r"
if not mine(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
redis.call('XCLAIM', KEYS[1], 'hosts', ARGV[1], 0, ARGV[2], 'JUSTID')
return 1
";

/// KEYS: records hash, stream. ARGV: consumer, entry, id, record (empty:
/// none). Writes the final record, acknowledges and removes the entry, if
/// the consumer still holds it; 0 if it does not.
const FINISH: &str = r"
if not mine(KEYS[2], ARGV[1], ARGV[2]) then return 0 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end
redis.call('XACK', KEYS[2], 'hosts', ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
return 1
";

/// KEYS: stream. ARGV: consumer, min idle ms. The first entry idle that
/// long (its host is gone), now the consumer's: {entry, id}, or nil.
const TAKE_OVER: &str = r"
local cur = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], 'hosts', ARGV[1], ARGV[2], cur, 'COUNT', 10)
  for _, e in ipairs(r[2]) do
    if e and e[2] then return {e[1], e[2][2]} end
  end
  cur = r[1]
until cur == '0-0'
return false
";

/// A claimed stream entry: which download, under which entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub entry: String,
    pub id: String,
}

/// One connection to the fleet's queue (a blocking read holds it: the
/// claiming loop has one of its own).
pub struct RedisQueue {
    redis: RedisStore,
    records: String,
    enqueue: Script,
    refresh: Script,
    finish: Script,
    take_over: Script,
}

impl RedisQueue {
    /// The queue at `url`, its records in the store's namespace `ns`.
    /// Connects on first use.
    pub fn open(url: &str, ns: &str) -> Result<RedisQueue> {
        Ok(RedisQueue {
            redis: RedisStore::open(url)?,
            records: RedisStore::hash(ns),
            enqueue: Script::new(ENQUEUE),
            refresh: Script::new(&format!("{MINE}{REFRESH}")),
            finish: Script::new(&format!("{MINE}{FINISH}")),
            take_over: Script::new(TAKE_OVER),
        })
    }

    pub fn describe(&self) -> String {
        format!("redis {}", self.redis.shown())
    }

    /// Creates the consumer group (and the stream) unless it exists. From
    /// the stream's start: entries added before it are read too.
    pub fn ensure_group(&self) -> Result<()> {
        let r = self.redis.raw(|c| {
            redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(STREAM)
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query::<()>(c)
        });
        match r {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            r => r.map_err(|e| self.redis.err(e)),
        }
    }

    /// The next download number, unique across the fleet and increasing.
    pub fn next_seq(&self) -> Result<u64> {
        let n: i64 = self.redis.with(|c| redis::cmd("INCR").arg(SEQ).query(c))?;
        Ok(n.max(0) as u64)
    }

    /// Keeps the number above `seq` (records from before the fleet).
    pub fn seq_at_least(&self, seq: u64) -> Result<()> {
        let now = self.next_seq()?;
        if now < seq {
            self.redis
                .with(|c| redis::cmd("INCRBY").arg(SEQ).arg(seq - now).query::<()>(c))?;
        }
        Ok(())
    }

    /// Records download `id` and queues it, unless `limit` downloads are
    /// queued or running in the fleet already: `Ok(Err(n))`, n of them.
    pub fn enqueue(
        &self,
        id: &str,
        record: &[u8],
        limit: usize,
    ) -> Result<std::result::Result<(), usize>> {
        let n: i64 = self.redis.with(|c| {
            self.enqueue
                .key(&self.records)
                .key(STREAM)
                .arg(id)
                .arg(record)
                .arg(limit)
                .invoke(c)
        })?;
        Ok(if n == 1 {
            Ok(())
        } else {
            Err((-1 - n).max(0) as usize)
        })
    }

    /// The next unclaimed download for `consumer`, waiting up to `block`.
    pub fn claim(&self, consumer: &str, block: Duration) -> Result<Option<Claim>> {
        let read = |c: &mut redis::Connection| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(STREAM)
                .arg(">")
                .query::<Value>(c)
        };
        let v = match self.redis.raw(read) {
            // Redis came back empty (no persistence): the group again.
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group()?;
                return Ok(None);
            }
            r => r.map_err(|e| self.redis.err(e))?,
        };
        Ok(first_entry(&v))
    }

    /// A download whose holder has not refreshed its claim for `idle`
    /// (its host died), now `consumer`'s.
    pub fn take_over(&self, consumer: &str, idle: Duration) -> Result<Option<Claim>> {
        let r = self.redis.raw(|c| {
            self.take_over
                .key(STREAM)
                .arg(consumer)
                .arg(idle.as_millis() as u64)
                .invoke::<Option<(String, String)>>(c)
        });
        match r {
            Err(e) if e.code() == Some("NOGROUP") => {
                self.ensure_group()?;
                Ok(None)
            }
            r => Ok(r
                .map_err(|e| self.redis.err(e))?
                .map(|(entry, id)| Claim { entry, id })),
        }
    }

    /// Renews `consumer`'s claim; false if it no longer holds it (another
    /// host took it over).
    pub fn refresh(&self, consumer: &str, entry: &str) -> Result<bool> {
        let n: i64 = self
            .redis
            .with(|c| self.refresh.key(STREAM).arg(consumer).arg(entry).invoke(c))?;
        Ok(n == 1)
    }

    /// Writes the final `record` of `id` (if given) and retires its entry,
    /// if `consumer` still holds it; false (nothing written) if not.
    pub fn finish(
        &self,
        consumer: &str,
        entry: &str,
        id: &str,
        record: Option<&[u8]>,
    ) -> Result<bool> {
        let n: i64 = self.redis.with(|c| {
            self.finish
                .key(&self.records)
                .key(STREAM)
                .arg(consumer)
                .arg(entry)
                .arg(id)
                .arg(record.unwrap_or(b""))
                .invoke(c)
        })?;
        Ok(n == 1)
    }
}

/// The first entry of an `XREADGROUP` reply (`[[stream, [[entry, [id,
/// ID]]]]]`), if any.
fn first_entry(v: &Value) -> Option<Claim> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let entries = match v {
        Value::Array(streams) => match streams.first()? {
            Value::Array(s) => s.get(1)?,
            _ => return None,
        },
        Value::Map(streams) => &streams.first()?.1,
        _ => return None,
    };
    let Value::Array(entries) = entries else {
        return None;
    };
    let Value::Array(e) = entries.first()? else {
        return None;
    };
    let entry = text(e.first()?)?;
    let Value::Array(fields) = e.get(1)? else {
        return None;
    };
    Some(Claim {
        entry,
        id: text(fields.get(1)?)?,
    })
}
