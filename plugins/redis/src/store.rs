//! The pool in Redis: one connection, opened lazily and replaced when it
//! breaks, and one Lua script per operation, so that every change a host
//! makes is atomic with respect to every other host.
//!
//! Layout of a pool `P` (the pool name is a hash tag, so all of a pool's
//! keys are in one cluster slot):
//! - `ytdlp:{P}:proxies`: LIST of proxy ids in rotation order (the
//!   membership);
//! - `ytdlp:{P}:proxy:<id>`: HASH of that proxy: `url` (credentials
//!   included), its metadata `region`, `tags` (comma-separated) and `tier`,
//!   and its health: `successes`, `failures`, `f:<kind>` (failures by
//!   kind), `faults` (proxy faults), `consecutive` (proxy faults since the
//!   last success), `until` (out until then, ms since the epoch),
//!   `disabled` (`1`: out until removed), `disables` (how often it was
//!   taken out), `last_used` (ms);
//! - `ytdlp:{P}:site:<domain>`: HASH of that site's bans, proxy id ->
//!   banned until (ms), expiring with its last ban;
//! - `ytdlp:{P}:sites`: ZSET of the sites with bans, by when the last ends;
//! - `ytdlp:{P}:level:<domain>`: HASH of that site's ban levels, proxy id
//!   -> `LEVEL:UNTIL` (bans since the pair's last success, and when the
//!   last one ends, ms);
//! - `ytdlp:{P}:strike:<domain>`: HASH of that site's strikes, proxy id ->
//!   `WHEN:SHA1` (the last refusal through that proxy, ms, and the SHA-1 of
//!   its URL; empty: the URL was unknown);
//! - `ytdlp:{P}:learn:<domain>`: HASH of that site's budgets learned from
//!   429s, proxy id -> `LIMIT:RELEASE:LAST`; this and the two above
//!   expire a horizon (the cap, or the window if longer) after the site's
//!   last refusal or ban end;
//! - `ytdlp:{P}:pace:<domain>:<id>`: ZSET of that pair's handout times
//!   (ms), only at sites with a `site_rate` or a learned budget: at most N
//!   members (64 without N), trimmed to the window, expiring a window
//!   after the last handout;
//! - `ytdlp:{P}:sticky:<key>`: STRING, the proxy id a sticky key keeps,
//!   expiring `sticky_ttl_ms` after its last use.
//!
//! A proxy's id is its URL's identity without the password, so adding it
//! again with a new password updates its `url` and keeps its health. A
//! pool in the 0.1 layout (a list of URLs, hashes keyed by URL) is moved to
//! this one the first time a plugin instance uses it.
//!
//! Times come from Redis (`TIME`), so hosts with skewed clocks agree on
//! cooldowns and bans.
//!
//! Site rules (the memory plugin's, across hosts): `blocked` concerns a
//! (proxy, site) pair and bans it only on evidence: with the site's
//! `Retry-After`, at once; without, when a second distinct URL is refused
//! through that proxy within `site_ban_cap_ms` (one URL refused, however
//! often, is a strike; an unknown URL counts as a new one). Bans start at
//! `site_ban_base_ms` and double per further ban, times a jitter factor, at
//! most the cap, at least the `Retry-After`; a success through the pair,
//! or a cap's length without a refusal, resets the doubling and the
//! strike; a refusal while banned only lengthens the ban to its
//! `Retry-After`. Pacing (`site_rate`): `get-proxy` checks a pair's
//! handouts in the sliding window and counts the one it makes in the same
//! script, so N is a budget for all hosts together. Learned rates: a 429
//! sets the pair's budget to half its handouts in the window (at least 1),
//! each success through the pair adds one back, up to N (or, without N,
//! past twice what drew the 429: then dropped); forgotten with the strike.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock};

use redis::{
    Connection, ConnectionLike, IntoConnectionInfo, RedisError, RedisResult, Script, Value,
};
use ytdlp_plugin_sdk::{Proxy, ProxyEntry, ProxyMeta, Request, Wanted, parse_entry};

use crate::settings::{Kind, Rate, Settings};

/// Why [`Store::get_proxy`] found nothing usable, proxy states and stats
/// rows: the contract's own (through the SDK).
pub use ytdlp_plugin_sdk::{NoProxy, ProxyState, ProxyStats as Stat};

/// What a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The id is not in the pool (removed meanwhile): nothing recorded.
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

/// KEYS[1] list. ARGV: [1] proxy key prefix, [2] strategy, [3] the site's
/// ban hash key (`` for none), [4] the sticky key's key (`` for none),
/// [5] sticky TTL ms, [6] min tier, [7] max tier (-1: none), [8] the
/// site's pace key prefix (`` for no site), [9] the site's budget N (0:
/// none), [10] the pacing window ms (N's, else the learning window),
/// [11] the site's learned-budget hash (`` for no site), [12] the forget
/// horizon ms, then four counted lists: regions, avoided regions, tags,
/// avoided ids.
/// Returns {1, id, url, region, tags, tier} | {0} (empty pool) |
/// {2, total, admitted, disabled, retry at or -1, banned, paced, 1 if a
/// learned budget is below N, region, tags, tier, ...} (the metadata of
/// every proxy when none is admitted).
/// A pair at budget (N, or less as learned from 429s) is skipped like a
/// banned one; handouts are counted, in the same script, at sites with N
/// or a learned budget, so budgets hold across hosts.
static GET_PROXY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
local now = now_ms()
local argi = 13
local pace, rate_n, window = ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[10])
-- id -> learned limit, filled once the bans are known.
local learned = {}
local paced_site = false
local function budget(id)
  local l = learned[id]
  if rate_n > 0 and l then return math.min(rate_n, l) end
  if rate_n > 0 then return rate_n end
  return l
end
-- When a pair at budget is free again (nil: not at budget): its N-th most
-- recent handout in the window leaves it.
local function free_at(id)
  if not paced_site then return nil end
  local lim = budget(id)
  if not lim then return nil end
  local r = redis.call('ZREVRANGEBYSCORE', pace .. id, '+inf', '(' .. str(now - window),
    'WITHSCORES', 'LIMIT', lim - 1, 1)
  if #r == 0 then return nil end
  return tonumber(r[2]) + window
end
-- Regions compare in upper case; tags as they are.
local function list(upper)
  local n = tonumber(ARGV[argi]); argi = argi + 1
  local t = {}
  for i = 1, n do
    t[i] = upper and string.upper(ARGV[argi]) or ARGV[argi]
    argi = argi + 1
  end
  return t
end
local regions, away, tags = list(true), list(true), list(false)
local avoided = {}
local n_avoid = tonumber(ARGV[argi]); argi = argi + 1
for i = 1, n_avoid do avoided[ARGV[argi]] = true; argi = argi + 1 end
local min_tier, max_tier = tonumber(ARGV[6]), tonumber(ARGV[7])
-- A proxy of US-CA is in US; US is not in US-CA.
local function inside(have, want)
  return have == want or string.sub(have, 1, string.len(want) + 1) == want .. '-'
end
local function admits(p)
  local region = string.upper(p.region or '')
  if #regions > 0 then
    if region == '' then return false end
    local ok = false
    for _, w in ipairs(regions) do if inside(region, w) then ok = true end end
    if not ok then return false end
  end
  if region ~= '' then
    for _, w in ipairs(away) do if inside(region, w) then return false end end
  end
  if #tags > 0 then
    local have = {}
    for t in string.gmatch(p.tags or '', '[^,]+') do have[t] = true end
    for _, w in ipairs(tags) do if not have[w] then return false end end
  end
  return p.tier >= min_tier and (max_tier < 0 or p.tier <= max_tier)
end
local bans = {}
if ARGV[3] ~= '' then
  local flat = redis.call('HGETALL', ARGV[3])
  for i = 1, #flat, 2 do bans[flat[i]] = tonumber(flat[i + 1]) or 0 end
end
-- Learned budgets (`LIMIT:RELEASE:LAST`), but not those a horizon past the
-- pair's last refusal or ban end.
if ARGV[11] ~= '' then
  local flat = redis.call('HGETALL', ARGV[11])
  local horizon = tonumber(ARGV[12])
  for i = 1, #flat, 2 do
    local limit, _, last = string.match(flat[i + 1], '^(%d+):(%d+):(%d+)$')
    if limit and math.max(tonumber(last), bans[flat[i]] or 0) + horizon > now then
      learned[flat[i]] = math.max(tonumber(limit), 1)
    else
      redis.call('HDEL', ARGV[11], flat[i])
    end
  end
end
paced_site = pace ~= '' and (rate_n > 0 or next(learned) ~= nil)
local function load(id)
  local h = redis.call('HMGET', ARGV[1] .. id, 'url', 'region', 'tags', 'tier', 'disabled',
    'until', 'successes', 'faults', 'last_used')
  if not h[1] then return nil end
  return {id = id, url = h[1], region = h[2], tags = h[3], tier = tonumber(h[4] or '0') or 0,
    disabled = h[5] == '1', out = tonumber(h[6] or '0') or 0,
    s = tonumber(h[7] or '0') or 0, f = tonumber(h[8] or '0') or 0,
    used = tonumber(h[9] or '0') or 0}
end
local function usable(p)
  return not p.disabled and p.out <= now and (bans[p.id] or 0) <= now and free_at(p.id) == nil
end
local function hand_out(p)
  redis.call('HSET', ARGV[1] .. p.id, 'last_used', str(now))
  if paced_site then
    local key = pace .. p.id
    local t = redis.call('TIME')
    redis.call('ZREMRANGEBYSCORE', key, '-inf', str(now - window))
    -- Unique even for two handouts in one ms.
    redis.call('ZADD', key, str(now), str(now) .. ':' .. t[2] .. ':' .. redis.call('ZCARD', key))
    -- Enough to decide "at budget" and, at a site without N, to count
    -- for a 429; never more.
    local keep = rate_n
    if keep == 0 then keep = math.max(budget(p.id) or 0, 64) end
    redis.call('ZREMRANGEBYRANK', key, 0, -(keep + 1))
    redis.call('PEXPIRE', key, window)
  end
  if ARGV[4] ~= '' then redis.call('SET', ARGV[4], p.id, 'PX', ARGV[5]) end
  return {1, p.id, p.url, p.region or '', p.tags or '', p.tier}
end
if ARGV[4] ~= '' then
  local id = redis.call('GET', ARGV[4])
  if id and redis.call('LPOS', KEYS[1], id) then
    local p = load(id)
    if p and admits(p) and usable(p) and not avoided[id] then return hand_out(p) end
  end
end
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
if #ids == 0 then return {0} end
-- A proxy is usable again at the latest of its cooldown's end, its ban's
-- end and its budget's free time; retry is the earliest over them.
local total, admitted, disabled, retry, banned, paced, lower = 0, 0, 0, -1, 0, 0, 0
local metas = {}
local strict, loose = {}, {}
for _, id in ipairs(ids) do
  local p = load(id)
  if p then
    total = total + 1
    table.insert(metas, p.region or ''); table.insert(metas, p.tags or ''); table.insert(metas, p.tier)
    if admits(p) then
      admitted = admitted + 1
      if p.disabled then
        disabled = disabled + 1
      else
        local cooling, ban, free = p.out > now, bans[id] or 0, free_at(id)
        local at = math.max(p.out, now)
        if ban > now then
          at = math.max(at, ban)
          if not cooling then banned = banned + 1 end
        elseif free and not cooling then
          paced = paced + 1
          if learned[id] and (rate_n == 0 or learned[id] < rate_n) then lower = 1 end
        end
        if free then at = math.max(at, free) end
        if at > now and (retry < 0 or at < retry) then retry = at end
        if not cooling and ban <= now and not free then
          loose[id] = p
          if not avoided[id] then strict[id] = p end
        end
      end
    end
  end
end
local pool = strict
if next(pool) == nil then pool = loose end
if next(pool) == nil then
  local out = {2, total, admitted, disabled, retry, banned, paced, lower}
  if admitted == 0 then for _, m in ipairs(metas) do table.insert(out, m) end end
  return out
end
-- The cheapest tier first, then the strategy.
local best = nil
for _, p in pairs(pool) do if best == nil or p.tier < best then best = p.tier end end
if ARGV[2] == 'healthiest' then
  local pick, pick_score = nil, -1
  for _, id in ipairs(ids) do
    local p = pool[id]
    if p and p.tier == best then
      local score = (p.s + 1) / (p.s + p.f + 2)
      if pick == nil or score > pick_score or (score == pick_score and p.used < pick.used) then
        pick, pick_score = p, score
      end
    end
  end
  return hand_out(pick)
end
for i = 1, #ids do
  local id = redis.call('LMOVE', KEYS[1], KEYS[1], 'LEFT', 'RIGHT')
  local p = pool[id]
  if p and p.tier == best then return hand_out(p) end
end
return {2, total, admitted, disabled, retry, banned, paced, lower}
"#
    ))
});

/// KEYS[1] list, KEYS[2] the proxy's hash, KEYS[3] the site's ban hash,
/// KEYS[4] the sites ZSET, KEYS[5] the site's level hash, KEYS[6] the
/// site's strike hash; ARGV[1] id, ARGV[2] `success` or the failure kind,
/// ARGV[3] `1` for a proxy fault, ARGV[4] threshold, ARGV[5] cooldown ms
/// (0: disable), ARGV[6] `1` if the site refused the proxy (`blocked`
/// with bans on), ARGV[7] the site's domain (`` for none), ARGV[8] ban
/// base ms, ARGV[9] ban cap ms, ARGV[10] jitter factor (>= 1), ARGV[11]
/// the site's Retry-After ms (`` for none), ARGV[12] the URL (`` if
/// unknown), ARGV[13] `1` for an HTTP 429, ARGV[14] the site's budget N
/// (0: none), ARGV[15] the pacing window ms (N's, else the learning
/// window); KEYS[7] the site's learned-budget hash, KEYS[8] the pair's
/// pace ZSET. Returns -1 unknown, 0 counted, 1 counted and took the proxy
/// out.
static REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
if not redis.call('LPOS', KEYS[1], ARGV[1]) then return -1 end
local id = ARGV[1]
if ARGV[2] == 'success' then
  redis.call('HINCRBY', KEYS[2], 'successes', 1)
  redis.call('HSET', KEYS[2], 'consecutive', 0)
  -- A success through the pair resets its doubling and its strike.
  if ARGV[7] ~= '' then
    redis.call('HDEL', KEYS[5], id)
    redis.call('HDEL', KEYS[6], id)
    -- Additive increase, up to N or, without one, past twice what drew
    -- the 429: then no learned budget.
    local lv = redis.call('HGET', KEYS[7], id)
    if lv then
      local limit, release, last = string.match(lv, '^(%d+):(%d+):(%d+)$')
      if limit then
        local rate_n = tonumber(ARGV[14])
        limit = tonumber(limit) + 1
        if (rate_n > 0 and limit >= rate_n) or (rate_n == 0 and limit > tonumber(release)) then
          redis.call('HDEL', KEYS[7], id)
        else
          redis.call('HSET', KEYS[7], id, limit .. ':' .. release .. ':' .. last)
        end
      else
        redis.call('HDEL', KEYS[7], id)
      end
    end
  end
  return 0
end
local now = now_ms()
redis.call('HINCRBY', KEYS[2], 'failures', 1)
redis.call('HINCRBY', KEYS[2], 'f:' .. ARGV[2], 1)
if ARGV[6] == '1' and ARGV[7] ~= '' then
  local cap = tonumber(ARGV[9])
  local rate_n, window = tonumber(ARGV[14]), tonumber(ARGV[15])
  local horizon = math.max(cap, window)
  local until_ = tonumber(redis.call('HGET', KEYS[3], id) or '0') or 0
  local level, last_ban = 0, 0
  local lv = redis.call('HGET', KEYS[5], id)
  if lv then
    local sep = string.find(lv, ':', 1, true)
    level = tonumber(string.sub(lv, 1, sep - 1)) or 0
    last_ban = tonumber(string.sub(lv, sep + 1)) or 0
  end
  local prev_at, prev_url = nil, ''
  local sv = redis.call('HGET', KEYS[6], id)
  if sv then
    local sep = string.find(sv, ':', 1, true)
    prev_at = tonumber(string.sub(sv, 1, sep - 1))
    prev_url = string.sub(sv, sep + 1)
  end
  local learned = nil
  local lrn = redis.call('HGET', KEYS[7], id)
  if lrn then
    local limit, release, last = string.match(lrn, '^(%d+):(%d+):(%d+)$')
    if limit then
      learned = {limit = tonumber(limit), release = tonumber(release), last = tonumber(last)}
    end
  end
  -- Strike, doubling and learned budget are forgotten a horizon (the cap,
  -- or the window if longer) after the last refusal and the last ban's end.
  local last = math.max(prev_at or 0, last_ban, until_, learned and learned.last or 0)
  if last + horizon <= now then
    prev_at, level, learned = nil, 0, nil
  end
  local url = ''
  if ARGV[12] ~= '' then url = redis.sha1hex(ARGV[12]) end
  -- Evidence: a second distinct URL refused within the cap (an unknown URL
  -- is never the same as another).
  local distinct = prev_at ~= nil and prev_at + cap > now and (prev_url == '' or prev_url ~= url)
  if cap > 0 then redis.call('HSET', KEYS[6], id, str(now) .. ':' .. url) end
  local floor = nil
  if ARGV[11] ~= '' then floor = tonumber(ARGV[11]) end
  local new_until = nil
  if cap == 0 then
    -- No bans.
  elseif until_ > now then
    -- Already banned (a run handed out before the ban): its Retry-After
    -- may lengthen the ban; it is not a further ban.
    if floor and now + floor > until_ then new_until = now + floor end
  elseif floor or distinct then
    local ban = math.floor(tonumber(ARGV[8]) * 2 ^ math.min(level, 40) * tonumber(ARGV[10]))
    ban = math.min(ban, cap)
    if floor then ban = math.max(ban, floor) end
    new_until = now + ban
    level = level + 1
  end
  if new_until and new_until > now then
    last_ban = new_until
    redis.call('HSET', KEYS[3], id, str(new_until))
    -- The hash lives as long as its longest ban.
    local ttl = new_until - now
    if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
    redis.call('ZADD', KEYS[4], 'GT', str(new_until), ARGV[7])
  end
  if level > 0 then
    redis.call('HSET', KEYS[5], id, level .. ':' .. str(last_ban))
  else
    redis.call('HDEL', KEYS[5], id)
  end
  if ARGV[13] == '1' then
    -- Multiplicative decrease: half the pair's handouts in the window.
    -- Uncounted (the site was not paced), or none left in the window: the
    -- 429 itself is one, just now.
    local tracked = rate_n > 0 or redis.call('HLEN', KEYS[7]) > 0
    local count = 0
    if tracked then count = redis.call('ZCOUNT', KEYS[8], '(' .. str(now - window), '+inf') end
    if count == 0 then
      local t = redis.call('TIME')
      redis.call('DEL', KEYS[8])
      redis.call('ZADD', KEYS[8], str(now), str(now) .. ':' .. t[2] .. ':0')
      redis.call('PEXPIRE', KEYS[8], window)
      count = 1
    end
    learned = {limit = math.max(math.floor(count / 2), 1), release = math.max(count * 2, 2)}
  end
  if learned then
    learned.last = math.max(now, last_ban)
    redis.call('HSET', KEYS[7], id,
      str(learned.limit) .. ':' .. str(learned.release) .. ':' .. str(learned.last))
  else
    redis.call('HDEL', KEYS[7], id)
  end
  -- Strikes, levels and learned budgets are remembered a horizon past the
  -- last refusal or ban end.
  local keep = math.max(last_ban - now, 0) + horizon
  for _, k in ipairs({KEYS[5], KEYS[6], KEYS[7]}) do
    if redis.call('PTTL', k) < keep then redis.call('PEXPIRE', k, keep) end
  end
end
if ARGV[3] ~= '1' then return 0 end
redis.call('HINCRBY', KEYS[2], 'faults', 1)
local c = redis.call('HINCRBY', KEYS[2], 'consecutive', 1)
if c < tonumber(ARGV[4]) then return 0 end
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

/// KEYS[1] list; ARGV[1] proxy key prefix, then groups of five: id, url,
/// region, tags, tier (empty region or tags: none). A known id gets the
/// new URL and metadata and keeps its health. Returns how many were new.
static ADD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local added = 0
for i = 2, #ARGV, 5 do
  local id, key = ARGV[i], ARGV[1] .. ARGV[i]
  if not redis.call('LPOS', KEYS[1], id) then
    redis.call('RPUSH', KEYS[1], id)
    added = added + 1
  end
  redis.call('HSET', key, 'url', ARGV[i + 1], 'tier', ARGV[i + 4])
  for j, field in ipairs({'region', 'tags'}) do
    local v = ARGV[i + 1 + j]
    if v == '' then redis.call('HDEL', key, field) else redis.call('HSET', key, field, v) end
  end
end
return added
"#,
    )
});

/// KEYS[1] list; ARGV[1] proxy key prefix, ARGV[2..] ids. Removes each id
/// and its hash. Returns how many were known.
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

/// KEYS[1] list, KEYS[2] sites ZSET; ARGV[1] proxy key prefix, ARGV[2] site
/// key prefix. Returns {now, {site, {ban hash}, ...}, id, {hash}, ...}.
static STATS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NOW}{}",
        r#"
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', str(now))
local bans = {}
for _, site in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  table.insert(bans, site)
  table.insert(bans, redis.call('HGETALL', ARGV[2] .. site))
end
local out = {now, bans}
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  table.insert(out, id)
  table.insert(out, redis.call('HGETALL', ARGV[1] .. id))
end
return out
"#
    ))
});

/// The 0.1 layout to this one. KEYS[1] list; ARGV[1] proxy key prefix,
/// then pairs: a URL in the list, its id (`` if the URL is invalid). The
/// URL's place and health go to the id; a URL whose identity is in the
/// list already (a second password) or that is invalid is dropped.
static MIGRATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 2, #ARGV, 2 do
  local url, id = ARGV[i], ARGV[i + 1]
  local old = ARGV[1] .. url
  local pos = redis.call('LPOS', KEYS[1], url)
  if pos then
    if id == '' or redis.call('LPOS', KEYS[1], id) then
      redis.call('LREM', KEYS[1], 0, url)
      redis.call('DEL', old)
    else
      redis.call('LSET', KEYS[1], pos, id)
      if redis.call('EXISTS', old) == 1 then redis.call('RENAME', old, ARGV[1] .. id) end
      redis.call('HSET', ARGV[1] .. id, 'url', url)
    end
  end
end
return 1
"#,
    )
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
    /// Pools (list keys) already checked for a 0.1 layout.
    migrated: HashSet<String>,
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

    /// Moves a pool of the 0.1 layout (URLs in the list) to ids, once per
    /// pool and instance.
    fn migrate(&mut self, s: &Settings) -> Result<(), String> {
        let list = s.list_key();
        if self.migrated.contains(&list) {
            return Ok(());
        }
        let members: Vec<String> = self.run(s, |c| {
            redis::cmd("LRANGE").arg(&list).arg(0).arg(-1).query(c)
        })?;
        let mut args: Vec<String> = Vec::new();
        for url in members.into_iter().filter(|m| m.contains("://")) {
            let id = parse_entry(&url)
                .map(|e| e.url.identity_id())
                .unwrap_or_default();
            args.push(url);
            args.push(id);
        }
        if !args.is_empty() {
            let prefix = s.proxy_key_prefix();
            let _: Value = self.run(s, |c| MIGRATE.key(&list).arg(&prefix).arg(&args).invoke(c))?;
        }
        self.migrated.insert(list);
        Ok(())
    }

    /// A proxy for `request`: one its `want` admits, not banned for its
    /// site, not one of its `avoid` ids unless nothing else is left, the
    /// cheapest tier first, its `sticky_key`'s proxy while that one
    /// qualifies. `Err` when Redis cannot be used.
    pub fn get_proxy(
        &mut self,
        s: &Settings,
        request: &Request,
    ) -> Result<Result<Proxy, NoProxy>, String> {
        self.migrate(s)?;
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let domain = request.site.domain.as_str();
        let site = if domain.is_empty() {
            String::new()
        } else {
            s.site_key(domain)
        };
        let sticky = match request.sticky_key.as_deref() {
            Some(k) if !k.is_empty() => s.sticky_key(k),
            _ => String::new(),
        };
        let rate = s.rate_for(domain);
        let (pace, learn) = if domain.is_empty() {
            (String::new(), String::new())
        } else {
            (s.pace_key_prefix(domain), s.learn_key(domain))
        };
        let want = &request.want;
        let v: Value = self.run(s, |c| {
            let mut inv = GET_PROXY.key(&list);
            inv.arg(&prefix)
                .arg(s.strategy.name())
                .arg(&site)
                .arg(&sticky)
                .arg(s.sticky_ttl_ms)
                .arg(u32::from(want.min_tier))
                .arg(want.max_tier.map_or(-1, i64::from))
                .arg(&pace)
                .arg(rate.map_or(0, |r| r.n))
                .arg(s.window_for(domain))
                .arg(&learn)
                .arg(s.horizon_for(domain));
            for l in [
                &want.regions,
                &want.avoid_regions,
                &want.tags,
                &request.avoid,
            ] {
                inv.arg(l.len()).arg(l);
            }
            inv.invoke(c)
        })?;
        let a = array(&v).ok_or_else(|| unexpected("get-proxy", &v))?;
        let bad = || unexpected("get-proxy", &v);
        match a.first().and_then(int) {
            Some(1) => {
                let field = |n: usize| a.get(n).and_then(string).ok_or_else(bad);
                let proxy = Proxy {
                    id: field(1)?,
                    url: field(2)?,
                    timeout_ms: s.timeout_ms,
                    meta: meta(&field(3)?, &field(4)?, &field(5)?),
                };
                Ok(Ok(proxy))
            }
            Some(0) => Ok(Err(NoProxy {
                message: format!(
                    "pool `{}` in Redis has no proxies (add some with `ytdlp-host proxies add URL...`)",
                    s.pool
                ),
                retry_at_ms: None,
            })),
            Some(2) => {
                let num = |n: usize| a.get(n).and_then(int).unwrap_or(-1);
                let (total, admitted, disabled) = (num(1), num(2), num(3));
                let (retry_at, banned, paced) = (num(4), num(5), num(6));
                let lower = num(7) == 1;
                if admitted == 0 {
                    let metas: Vec<ProxyMeta> = a[8..]
                        .chunks(3)
                        .map(|m| {
                            let f = |n: usize| m.get(n).and_then(string).unwrap_or_default();
                            meta(&f(0), &f(1), &f(2))
                        })
                        .collect();
                    let message = want.unmet_message(total.max(0) as usize, &metas);
                    return Ok(Err(NoProxy {
                        message: format!("pool `{}`: {message}", s.pool),
                        retry_at_ms: None,
                    }));
                }
                let out = Out {
                    admitted,
                    disabled,
                    banned,
                    paced,
                    lower,
                    retry_at,
                };
                Ok(Err(no_proxy(s, want, domain, rate, &out)))
            }
            _ => Err(bad()),
        }
    }

    /// A success through `id`, at no site in particular.
    pub fn report_success(&mut self, s: &Settings, id: &str) -> Result<Reported, String> {
        self.report_success_for(s, id, "")
    }

    /// A success through `id` while fetching from `domain`: the pair's ban
    /// doubling and strike are reset.
    pub fn report_success_for(
        &mut self,
        s: &Settings,
        id: &str,
        domain: &str,
    ) -> Result<Reported, String> {
        self.report(s, id, "success", false, domain, None)
    }

    /// A failure of `kind` through `id` while fetching from `domain`, the
    /// URL unknown (see [`Store::report_failure_with`]).
    pub fn report_failure(
        &mut self,
        s: &Settings,
        id: &str,
        kind: Kind,
        domain: &str,
        retry_after_ms: Option<u64>,
    ) -> Result<Reported, String> {
        let info = FailureInfo {
            retry_after_ms,
            ..FailureInfo::default()
        };
        self.report_failure_with(s, id, kind, domain, &info)
    }

    /// A failure of `kind` through `id` while fetching from `domain`:
    /// `blocked` is a strike or a ban of the pair (see the module doc).
    pub fn report_failure_with(
        &mut self,
        s: &Settings,
        id: &str,
        kind: Kind,
        domain: &str,
        info: &FailureInfo<'_>,
    ) -> Result<Reported, String> {
        let refused = kind == Kind::Blocked && !domain.is_empty();
        let refusal = refused.then_some(info);
        self.report(s, id, kind.name(), kind.is_proxy_fault(), domain, refusal)
    }

    fn report(
        &mut self,
        s: &Settings,
        id: &str,
        outcome: &str,
        fault: bool,
        domain: &str,
        refusal: Option<&FailureInfo<'_>>,
    ) -> Result<Reported, String> {
        self.migrate(s)?;
        let (list, key) = (s.list_key(), s.proxy_key(id));
        let (site, sites) = (s.site_key(domain), s.sites_key());
        let (level, strike) = (s.level_key(domain), s.strike_key(domain));
        let (learn, pace) = (
            s.learn_key(domain),
            format!("{}{id}", s.pace_key_prefix(domain)),
        );
        let too_many = refusal.is_some_and(|r| r.http_status == Some(429));
        let retry_after = refusal
            .and_then(|r| r.retry_after_ms)
            .map_or(String::new(), |r| r.min(MAX_BAN_MS).to_string());
        let url = refusal.map_or("", |r| r.url);
        let factor = jitter_factor(s.site_ban_jitter);
        let r: i64 = self.run(s, |c| {
            REPORT
                .key(&list)
                .key(&key)
                .key(&site)
                .key(&sites)
                .key(&level)
                .key(&strike)
                .key(&learn)
                .key(&pace)
                .arg(id)
                .arg(outcome)
                .arg(if fault { "1" } else { "0" })
                .arg(s.failure_threshold)
                .arg(s.cooldown_ms)
                .arg(if refusal.is_some() { "1" } else { "0" })
                .arg(domain)
                .arg(s.site_ban_base_ms)
                .arg(s.site_ban_cap_ms)
                .arg(format!("{factor:.6}"))
                .arg(&retry_after)
                .arg(url)
                .arg(if too_many { "1" } else { "0" })
                .arg(s.rate_for(domain).map_or(0, |r| r.n))
                .arg(s.window_for(domain))
                .invoke(c)
        })?;
        Ok(match r {
            -1 => Reported::Unknown,
            1 => Reported::TookOut,
            _ => Reported::Counted,
        })
    }

    /// Adds proxies at the end of the rotation; returns how many were new.
    /// A proxy already in the pool (the same id: the same URL but perhaps
    /// its password) keeps its place and health and takes the new URL and
    /// metadata.
    pub fn add(&mut self, s: &Settings, proxies: &[ProxyEntry]) -> Result<u32, String> {
        if proxies.is_empty() {
            return Ok(0);
        }
        self.migrate(s)?;
        let mut args: Vec<String> = Vec::with_capacity(proxies.len() * 5);
        for p in proxies {
            args.push(p.url.identity_id());
            args.push(p.url.expose().to_string());
            args.push(p.meta.region.clone().unwrap_or_default());
            args.push(p.meta.tags.join(","));
            args.push(p.meta.tier.to_string());
        }
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let n: i64 = self.run(s, |c| ADD.key(&list).arg(&prefix).arg(&args).invoke(c))?;
        Ok(n.max(0) as u32)
    }

    /// Removes proxies (by id, or by `scheme://` URL: its identity's id)
    /// and their health; returns how many were known.
    pub fn remove(&mut self, s: &Settings, ids: &[String]) -> Result<u32, String> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.migrate(s)?;
        let ids: Vec<String> = ids
            .iter()
            .map(|i| match parse_entry(i) {
                // Ids may hold a `:`; only a scheme makes it a URL.
                Ok(e) if i.contains("://") => e.url.identity_id(),
                _ => i.clone(),
            })
            .collect();
        let (list, prefix) = (s.list_key(), s.proxy_key_prefix());
        let n: i64 = self.run(s, |c| REMOVE.key(&list).arg(&prefix).arg(&ids).invoke(c))?;
        Ok(n.max(0) as u32)
    }

    /// One row per proxy of the pool, sorted by id.
    pub fn stats(&mut self, s: &Settings) -> Result<Vec<Stat>, String> {
        self.migrate(s)?;
        let (list, sites) = (s.list_key(), s.sites_key());
        let (prefix, site_prefix) = (s.proxy_key_prefix(), s.site_key_prefix());
        let v: Value = self.run(s, |c| {
            STATS
                .key(&list)
                .key(&sites)
                .arg(&prefix)
                .arg(&site_prefix)
                .invoke(c)
        })?;
        let a = array(&v).ok_or_else(|| unexpected("get-stats", &v))?;
        let now = a
            .first()
            .and_then(int)
            .ok_or_else(|| unexpected("get-stats", &v))?;
        // id -> [(site, until)]
        let mut bans: Vec<(String, String, u64)> = Vec::new();
        for pair in a
            .get(1)
            .and_then(array)
            .ok_or_else(|| unexpected("get-stats", &v))?
            .chunks(2)
        {
            let (Some(site), Some(hash)) = (pair.first().and_then(string), pair.get(1)) else {
                return Err(unexpected("get-stats", &v));
            };
            for (id, until) in parse_hash(hash) {
                if let Ok(until) = until.parse::<u64>()
                    && until as i64 > now
                {
                    bans.push((id, site.clone(), until));
                }
            }
        }
        bans.sort();
        let mut rows: Vec<Stat> = Vec::new();
        for pair in a[2..].chunks(2) {
            let (Some(id), Some(hash)) = (pair.first().and_then(string), pair.get(1)) else {
                return Err(unexpected("get-stats", &v));
            };
            if rows.iter().any(|r| r.proxy.id == id) {
                continue;
            }
            let fields = parse_hash(hash);
            if let Some(row) = stat_of(s, id, &fields, now, &bans) {
                rows.push(row);
            }
        }
        rows.sort_by(|a, b| a.proxy.id.cmp(&b.proxy.id));
        Ok(rows)
    }
}

/// Metadata from a proxy's hash fields.
fn meta(region: &str, tags: &str, tier: &str) -> ProxyMeta {
    ProxyMeta {
        region: (!region.is_empty()).then(|| region.to_string()),
        tags: tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        tier: tier.parse().unwrap_or(0),
    }
}

/// The longest `Retry-After` honoured: 30 days.
const MAX_BAN_MS: u64 = 30 * 24 * 3_600_000;

/// What a failure report tells besides the kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct FailureInfo<'a> {
    /// The URL of the attempt; empty if unknown (then each refusal counts
    /// as a URL of its own).
    pub url: &'a str,
    /// The site's `Retry-After`, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The HTTP status: a 429 halves the pair's budget (learned rates).
    pub http_status: Option<u16>,
}

/// A factor in [1, 1 + `jitter`), random per call.
fn jitter_factor(jitter: f64) -> f64 {
    if jitter <= 0.0 {
        return 1.0;
    }
    // A fresh RandomState has fresh keys (from the OS, then counted up).
    let bits = RandomState::new().hash_one(0u8) >> 11;
    1.0 + jitter * (bits as f64 / (1u64 << 53) as f64)
}

/// Why the admitted proxies are all out: how many of them are disabled,
/// banned for the site, at budget there (the last two counting usable
/// proxies only), and when the first is usable again (-1: never).
#[derive(Clone, Copy)]
struct Out {
    admitted: i64,
    disabled: i64,
    banned: i64,
    paced: i64,
    /// A learned budget below the configured one (or without one) is why
    /// some are at budget.
    lower: bool,
    retry_at: i64,
}

/// Why the proxies `want` admits are all out.
fn no_proxy(s: &Settings, want: &Wanted, domain: &str, rate: Option<Rate>, out: &Out) -> NoProxy {
    let Out {
        admitted: n,
        disabled,
        banned,
        paced,
        lower,
        retry_at,
    } = *out;
    let wish = want.describe();
    let which = if wish.is_empty() {
        String::new()
    } else {
        format!(" {wish}")
    };
    let pool = &s.pool;
    let budget = || match rate {
        Some(r) if lower => format!(
            "{} per {}, or less as learned from 429s",
            r.n,
            r.window_text()
        ),
        Some(r) => format!("{} per {}", r.n, r.window_text()),
        None => {
            let w = Rate {
                n: 1,
                window_ms: s.learn_window_ms,
            };
            format!("learned from 429s, per {}", w.window_text())
        }
    };
    let usable = banned + paced;
    let message = if banned > 0 && paced == 0 {
        format!("all {usable} usable proxies{which} of pool `{pool}` are banned for {domain}")
    } else if paced > 0 && banned == 0 {
        format!(
            "all {usable} usable proxies{which} of pool `{pool}` are at their rate budget for {domain} ({})",
            budget()
        )
    } else if usable > 0 {
        format!(
            "all {usable} usable proxies{which} of pool `{pool}` are banned for {domain} ({banned}) or at their rate budget there ({paced}; {})",
            budget()
        )
    } else if disabled == n {
        format!("all {n} proxies{which} of pool `{pool}` are disabled")
    } else if disabled == 0 {
        format!(
            "all {n} proxies{which} of pool `{pool}` are cooling down after {} consecutive failures",
            s.failure_threshold
        )
    } else {
        format!(
            "all {n} proxies{which} of pool `{pool}` are out: {disabled} disabled, {} cooling down",
            n - disabled
        )
    };
    let retry_at_ms = u64::try_from(retry_at).ok();
    NoProxy {
        message,
        retry_at_ms,
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

/// The row of proxy `id`; `None` for a list member without a hash (not a
/// proxy: never handed out either). `bans` are (id, site, until), sorted.
fn stat_of(
    s: &Settings,
    id: String,
    fields: &[(String, String)],
    now: i64,
    bans: &[(String, String, u64)],
) -> Option<Stat> {
    let text = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let get = |name: &str| -> u64 { text(name).and_then(|v| v.parse().ok()).unwrap_or(0) };
    let url = text("url")?.to_string();
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
    for (_, site, until) in bans.iter().filter(|(b, _, _)| *b == id) {
        extra.push((format!("banned.{site}"), until.to_string()));
    }
    let last_used = get("last_used");
    let meta = meta(
        text("region").unwrap_or(""),
        text("tags").unwrap_or(""),
        text("tier").unwrap_or("0"),
    );
    Some(Stat {
        proxy: Proxy {
            id,
            url,
            timeout_ms: s.timeout_ms,
            meta,
        },
        successes: get("successes"),
        failures: get("failures"),
        consecutive_failures: u32::try_from(consecutive).unwrap_or(u32::MAX),
        state,
        last_used_ms: (last_used > 0).then_some(last_used),
        extra,
    })
}

#[cfg(test)]
mod tests;
