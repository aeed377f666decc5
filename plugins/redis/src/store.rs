//! The pool in Redis: one connection, opened lazily and replaced when it
//! breaks, and one Lua script per operation, so that every change a host
//! makes is atomic with respect to every other host.
//!
//! Layout of a pool `P` (the pool name is a hash tag, so all of a pool's
//! keys are in one cluster slot):
//! - `ytdlp:{P}:proxies`: LIST of proxy URLs in rotation order (the
//!   membership; `RPUSH` onto it is all it takes to add a proxy);
//! - `ytdlp:{P}:proxy:<url>`: HASH of that proxy's health: `successes`,
//!   `failures`, `f:<kind>` (failures by kind), `faults` (proxy faults),
//!   `consecutive` (proxy faults since the last success), `until` (out
//!   until then, ms since the epoch), `disabled` (`1`: out until removed),
//!   `disables` (how often it was taken out), `last_used` (ms).
//!
//! Times come from Redis (`TIME`), so hosts with skewed clocks agree on
//! cooldowns.

use std::sync::{Arc, LazyLock};

use redis::{
    Connection, ConnectionLike, IntoConnectionInfo, RedisError, RedisResult, Script, Value,
};

use crate::settings::{Kind, Settings};

/// A proxy chosen by [`Store::get_proxy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pick {
    pub url: String,
}

/// Why [`Store::get_proxy`] found nothing usable, proxy states and stats
/// rows: the contract's own (through the SDK).
pub use ytdlp_plugin_sdk::{NoProxy, ProxyState, ProxyStats as Stat};

/// What a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The URL is not in the pool (removed meanwhile): nothing recorded.
    Unknown,
    Counted,
    /// This report took the proxy out (cooldown or disabled).
    TookOut,
}

/// The current time in Redis, ms; shared by the scripts.
const NOW: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function str(n) return string.format('%.0f', n) end
"#;

/// KEYS[1] list; ARGV[1] proxy key prefix, ARGV[2] strategy.
/// Returns {1, url} | {0} (empty pool) | {2, n, disabled, soonest or -1}.
static GET_PROXY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
local now = now_ms()
local n = redis.call('LLEN', KEYS[1])
if n == 0 then return {0} end
local soonest, disabled = -1, 0
local function usable(key)
  local st = redis.call('HMGET', key, 'disabled', 'until')
  if st[1] == '1' then disabled = disabled + 1; return false end
  local u = tonumber(st[2] or '0') or 0
  if u > now then
    if soonest < 0 or u < soonest then soonest = u end
    return false
  end
  return true
end
if ARGV[2] == 'healthiest' then
  local best, best_score, best_used = nil, -1, 0
  for _, url in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
    local key = ARGV[1] .. url
    if usable(key) then
      local h = redis.call('HMGET', key, 'successes', 'faults', 'last_used')
      local s = tonumber(h[1] or '0') or 0
      local f = tonumber(h[2] or '0') or 0
      local used = tonumber(h[3] or '0') or 0
      local score = (s + 1) / (s + f + 2)
      if best == nil or score > best_score or (score == best_score and used < best_used) then
        best, best_score, best_used = url, score, used
      end
    end
  end
  if best then
    redis.call('HSET', ARGV[1] .. best, 'last_used', str(now))
    return {1, best}
  end
else
  for i = 1, n do
    local url = redis.call('LMOVE', KEYS[1], KEYS[1], 'LEFT', 'RIGHT')
    local key = ARGV[1] .. url
    if usable(key) then
      redis.call('HSET', key, 'last_used', str(now))
      return {1, url}
    end
  end
end
return {2, n, disabled, soonest}
"#
    ))
});

/// KEYS[1] list, KEYS[2] the proxy's hash; ARGV[1] url, ARGV[2] `success`
/// or the failure kind, ARGV[3] `1` for a proxy fault, ARGV[4] threshold,
/// ARGV[5] cooldown ms (0: disable). Returns -1 unknown, 0 counted, 1
/// counted and took the proxy out.
static REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return -1 end
if ARGV[2] == 'success' then
  redis.call('HINCRBY', KEYS[2], 'successes', 1)
  redis.call('HSET', KEYS[2], 'consecutive', 0)
  return 0
end
redis.call('HINCRBY', KEYS[2], 'failures', 1)
redis.call('HINCRBY', KEYS[2], 'f:' .. ARGV[2], 1)
if ARGV[3] ~= '1' then return 0 end
redis.call('HINCRBY', KEYS[2], 'faults', 1)
local c = redis.call('HINCRBY', KEYS[2], 'consecutive', 1)
if c < tonumber(ARGV[4]) then return 0 end
local now = now_ms()
local st = redis.call('HMGET', KEYS[2], 'disabled', 'until')
if st[1] == '1' or (tonumber(st[2] or '0') or 0) > now then return 0 end
redis.call('HINCRBY', KEYS[2], 'disables', 1)
local cooldown = tonumber(ARGV[5])
if cooldown == 0 then
  redis.call('HSET', KEYS[2], 'disabled', '1')
else
  redis.call('HSET', KEYS[2], 'until', str(now + cooldown))
end
return 1
"#
    ))
});

/// KEYS[1] list; ARGV urls. Returns how many were new.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local added = 0
for _, url in ipairs(ARGV) do
  if not redis.call('LPOS', KEYS[1], url) then
    redis.call('RPUSH', KEYS[1], url)
    added = added + 1
  end
end
return added
"#,
    )
});

/// KEYS[1] list; ARGV[1] proxy key prefix, ARGV[2..] urls. Removes each
/// URL and its health. Returns how many were known.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local known = 0
for i = 2, #ARGV do
  if redis.call('LREM', KEYS[1], 0, ARGV[i]) > 0 then known = known + 1 end
  redis.call('DEL', ARGV[1] .. ARGV[i])
end
return known
"#,
    )
});

/// KEYS[1] list; ARGV[1] proxy key prefix. Returns {now, url, {hash}, ...}.
static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
local out = {now_ms()}
for _, url in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  table.insert(out, url)
  table.insert(out, redis.call('HGETALL', ARGV[1] .. url))
end
return out
"#
    ))
});

struct Conn {
    url: String,
    timeout_ms: u64,
    con: Connection,
}

/// The Redis side of the plugin. Holds at most one connection; every call
/// reconnects if there is none, so a Redis that comes back is used again
/// without restarting anything.
#[derive(Default)]
pub struct Store {
    conn: Option<Conn>,
}

fn connect(s: &Settings) -> Result<Conn, String> {
    let unreachable = |e: RedisError| {
        format!(
            "Redis at {} is unreachable: {}",
            s.redis_display(),
            describe(&e, s, true)
        )
    };
    // No CLIENT SETINFO at connect: with neither password nor database in
    // the URL, connecting is one TCP connect and nothing to wait for.
    let info = s.url.as_str().into_connection_info().map_err(unreachable)?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(unreachable)?;
    let con = client
        .get_connection_with_timeout(s.redis_timeout())
        .map_err(unreachable)?;
    con.set_read_timeout(Some(s.redis_timeout()))
        .map_err(unreachable)?;
    con.set_write_timeout(Some(s.redis_timeout()))
        .map_err(unreachable)?;
    Ok(Conn {
        url: s.url.clone(),
        timeout_ms: s.redis_timeout_ms,
        con,
    })
}

/// The I/O error under a Redis error, if that is what it is.
fn io_error(e: &RedisError) -> Option<&std::io::Error> {
    let source = std::error::Error::source(e)?;
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return Some(io);
    }
    source
        .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?
        .downcast_ref::<std::io::Error>()
}

/// A short reason for a user, e.g. "connection refused".
fn describe(e: &RedisError, s: &Settings, connecting: bool) -> String {
    let io = io_error(e);
    if e.is_timeout() {
        format!("no answer within {} ms", s.redis_timeout_ms)
    } else if io.is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied) {
        let addr = s.redis_hostport();
        format!(
            "the host denied the connection to {addr} (grant it to the plugin: tcp = [\"{addr}\"])"
        )
    } else if io.is_some_and(|io| io.to_string().contains("lookup")) {
        format!(
            "cannot resolve the address of {} (the host allows name lookups only when a tcp grant names a host by name): {e}",
            s.redis_hostport()
        )
    } else if e.is_connection_dropped() {
        // A refused connect shows as "not connected" through wasi:sockets.
        if connecting {
            "connection refused".to_string()
        } else {
            "connection lost".to_string()
        }
    } else {
        e.to_string()
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) => Some(a),
        _ => None,
    }
}

fn unexpected(what: &str, v: &Value) -> String {
    let mut shown = format!("{v:?}");
    if shown.len() > 200 {
        shown.truncate(shown.floor_char_boundary(200));
        shown.push_str("...");
    }
    format!("unexpected answer from Redis to {what}: {shown}")
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Is a connection open (it may still turn out broken)?
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Runs `op` on a connection to `s.url`. A connection that breaks is
    /// dropped; if it was an old one (Redis restarted since), the operation
    /// is tried once more on a fresh one. Not after a timeout: the command
    /// may have run, and reports must not count twice.
    fn run<T>(
        &mut self,
        s: &Settings,
        op: impl Fn(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, String> {
        let mut reused =
            matches!(&self.conn, Some(c) if c.url == s.url && c.timeout_ms == s.redis_timeout_ms);
        if !reused {
            self.conn = None;
        }
        loop {
            let fresh = self.conn.is_none();
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(connect(s)?),
            };
            match op(&mut conn.con) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    let broken = e.is_io_error()
                        || e.is_connection_dropped()
                        || e.is_unrecoverable_error()
                        || !conn.con.is_open();
                    if broken {
                        self.conn = None;
                        if reused && !e.is_timeout() {
                            reused = false;
                            continue;
                        }
                    }
                    // Through wasi:sockets a refused connect may only show
                    // at the first write, as "not connected".
                    if fresh && e.is_connection_dropped() {
                        return Err(format!(
                            "Redis at {} is unreachable: connection refused",
                            s.redis_display()
                        ));
                    }
                    return Err(format!(
                        "Redis at {}: {}",
                        s.redis_display(),
                        describe(&e, s, false)
                    ));
                }
            }
        }
    }

    /// The next usable proxy of the pool. `Err` when Redis cannot be used.
    pub fn get_proxy(&mut self, s: &Settings) -> Result<Result<Pick, NoProxy>, String> {
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let v: Value = self.run(s, |c| {
            GET_PROXY
                .key(&list)
                .arg(&prefix)
                .arg(s.strategy.name())
                .invoke(c)
        })?;
        let a = array(&v).ok_or_else(|| unexpected("get-proxy", &v))?;
        match a.first().and_then(int) {
            Some(1) => {
                let url = a.get(1).and_then(string);
                let url = url.ok_or_else(|| unexpected("get-proxy", &v))?;
                Ok(Ok(Pick { url }))
            }
            Some(0) => Ok(Err(NoProxy {
                message: format!(
                    "pool `{}` in Redis has no proxies (add some with `ytdlp-host proxies add URL...`)",
                    s.pool
                ),
                retry_at_ms: None,
            })),
            Some(2) => {
                let n = a.get(1).and_then(int).unwrap_or(0);
                let disabled = a.get(2).and_then(int).unwrap_or(0);
                let soonest = a.get(3).and_then(int).unwrap_or(-1);
                let message = if disabled == n {
                    format!("all {n} proxies of pool `{}` are disabled", s.pool)
                } else if disabled == 0 {
                    format!(
                        "all {n} proxies of pool `{}` are cooling down after {} consecutive failures",
                        s.pool, s.failure_threshold
                    )
                } else {
                    format!(
                        "all {n} proxies of pool `{}` are out: {disabled} disabled, {} cooling down",
                        s.pool,
                        n - disabled
                    )
                };
                Ok(Err(NoProxy {
                    message,
                    retry_at_ms: u64::try_from(soonest).ok(),
                }))
            }
            _ => Err(unexpected("get-proxy", &v)),
        }
    }

    pub fn report_success(&mut self, s: &Settings, url: &str) -> Result<Reported, String> {
        self.report(s, url, "success", false)
    }

    pub fn report_failure(
        &mut self,
        s: &Settings,
        url: &str,
        kind: Kind,
    ) -> Result<Reported, String> {
        self.report(s, url, kind.name(), kind.is_proxy_fault())
    }

    fn report(
        &mut self,
        s: &Settings,
        url: &str,
        outcome: &str,
        fault: bool,
    ) -> Result<Reported, String> {
        let (list, key) = (s.list_key(), s.proxy_key(url));
        let r: i64 = self.run(s, |c| {
            REPORT
                .key(&list)
                .key(&key)
                .arg(url)
                .arg(outcome)
                .arg(if fault { "1" } else { "0" })
                .arg(s.failure_threshold)
                .arg(s.cooldown_ms)
                .invoke(c)
        })?;
        Ok(match r {
            -1 => Reported::Unknown,
            1 => Reported::TookOut,
            _ => Reported::Counted,
        })
    }

    /// Adds proxies at the end of the rotation; returns how many were new.
    /// URLs already in the pool keep their place and health.
    pub fn add(&mut self, s: &Settings, urls: &[String]) -> Result<u32, String> {
        if urls.is_empty() {
            return Ok(0);
        }
        let list = s.list_key();
        let n: i64 = self.run(s, |c| ADD.key(&list).arg(urls).invoke(c))?;
        Ok(n.max(0) as u32)
    }

    /// Removes proxies and their health; returns how many were known.
    pub fn remove(&mut self, s: &Settings, urls: &[String]) -> Result<u32, String> {
        if urls.is_empty() {
            return Ok(0);
        }
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let n: i64 = self.run(s, |c| REMOVE.key(&list).arg(&prefix).arg(urls).invoke(c))?;
        Ok(n.max(0) as u32)
    }

    /// One row per proxy of the pool, sorted by URL.
    pub fn stats(&mut self, s: &Settings) -> Result<Vec<Stat>, String> {
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let v: Value = self.run(s, |c| STATS.key(&list).arg(&prefix).invoke(c))?;
        let a = array(&v).ok_or_else(|| unexpected("get-stats", &v))?;
        let now = a
            .first()
            .and_then(int)
            .ok_or_else(|| unexpected("get-stats", &v))?;
        let mut rows: Vec<Stat> = Vec::new();
        for pair in a[1..].chunks(2) {
            let (Some(url), Some(hash)) = (pair.first().and_then(string), pair.get(1)) else {
                return Err(unexpected("get-stats", &v));
            };
            if rows.iter().any(|r| r.url == url) {
                continue;
            }
            let fields = parse_hash(hash);
            rows.push(stat_of(s, url, &fields, now));
        }
        rows.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(rows)
    }
}

fn parse_hash(v: &Value) -> Vec<(String, String)> {
    match v {
        Value::Array(a) => a
            .chunks(2)
            .filter_map(|kv| Some((string(kv.first()?)?, string(kv.get(1)?)?)))
            .collect(),
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| Some((string(k)?, string(v)?)))
            .collect(),
        _ => Vec::new(),
    }
}

fn stat_of(s: &Settings, url: String, fields: &[(String, String)], now: i64) -> Stat {
    let get = |name: &str| -> u64 {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let until = get("until");
    let consecutive = get("consecutive");
    let state = if get("disabled") == 1 {
        ProxyState::Disabled
    } else if until as i64 > now {
        ProxyState::CoolingDown(until)
    } else {
        ProxyState::Active
    };
    let mut extra: Vec<(String, String)> = Kind::ALL
        .iter()
        .filter(|k| get(&format!("f:{}", k.name())) > 0)
        .map(|k| {
            (
                format!("failures.{}", k.name()),
                get(&format!("f:{}", k.name())).to_string(),
            )
        })
        .collect();
    let disables = get("disables");
    if disables > 0 {
        extra.push(("times-taken-out".to_string(), disables.to_string()));
    }
    if state == ProxyState::Active && consecutive >= u64::from(s.failure_threshold) {
        extra.push(("probation".to_string(), "yes".to_string()));
    }
    let last_used = get("last_used");
    Stat {
        url,
        meta: Default::default(),
        successes: get("successes"),
        failures: get("failures"),
        consecutive_failures: u32::try_from(consecutive).unwrap_or(u32::MAX),
        state,
        last_used_ms: (last_used > 0).then_some(last_used),
        extra,
    }
}

#[cfg(test)]
mod tests;
