//! The pool in PostgreSQL: one connection, opened lazily and replaced when
//! it breaks, and one SQL statement per operation, each atomic with respect
//! to every other host. Times come from the server (`now()`), so hosts with
//! skewed clocks agree on cooldowns and bans.
//!
//! Proxies are named by their `ident` (the contract's proxy id, the URL's
//! [`ProxyUrl::identity_id`](ytdlp_plugin_sdk::ProxyUrl::identity_id)); what
//! a request wants (regions, avoided regions, tags, tiers) is filtered in
//! SQL, the cheapest tier first.

use std::time::{Duration, Instant};

use ytdlp_plugin_sdk::{
    FailureDetail, NoProxy, Proxy, ProxyEntry, ProxyMeta, ProxyState, ProxyStats, Request, Wanted,
    parse_region, parse_tag,
};

use crate::pg::{self, Client, Row, ToParam, text_array};
use crate::schema;
use crate::settings::{Kind, Settings, Strategy};

/// What a report did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The id is not in the pool (removed meanwhile): nothing recorded.
    Unknown,
    Counted,
    /// This report took the proxy out (cooldown or disabled): exactly one
    /// report per crossing of the threshold, whatever the concurrency.
    TookOut,
    /// A `blocked` report banned the proxy from the site until then (ms).
    Banned(u64),
}

/// A failure to use PostgreSQL, for the user: never holds the password.
#[derive(Debug)]
pub struct StoreError {
    pub message: String,
    pub cause: pg::Error,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    fn new(s: &Settings, connecting: bool, cause: pg::Error) -> StoreError {
        let at = s.pg_display();
        let message = match &cause {
            pg::Error::Connect { .. } => format!("PostgreSQL at {at} is unreachable: {cause}"),
            pg::Error::Auth { .. } => format!("PostgreSQL at {at} refused the login: {cause}"),
            // The bound is the whole call's, whichever request ran out.
            pg::Error::Timeout { .. } if connecting => {
                format!(
                    "PostgreSQL at {at} is unreachable: no answer within {} ms",
                    s.pg_timeout_ms
                )
            }
            pg::Error::Timeout { .. } => {
                format!(
                    "PostgreSQL at {at}: no answer within {} ms",
                    s.pg_timeout_ms
                )
            }
            _ => format!("PostgreSQL at {at}: {cause}"),
        };
        StoreError { message, cause }
    }
}

/// The contract's failure kinds (8, in its order), 1-based as in
/// `failures_by_kind`.
fn kind_index(k: Kind) -> i32 {
    Kind::ALL
        .iter()
        .position(|x| *x == k)
        .map_or(Kind::ALL.len() as i32, |i| i as i32 + 1)
}

/// Milliseconds since the epoch of a `timestamptz`, in SQL.
macro_rules! ms {
    ($e:expr) => {
        concat!("(extract(epoch FROM ", $e, ") * 1000)::int8")
    };
}

/// What the request wants. Parameters of the pick and of its diagnosis:
/// $1 site (registrable domain), $2 regions, $3 avoided regions, $4 tags
/// (`text[]`, NULL: no wish), $5 min tier, $6 max tier (NULL: none), $7
/// site interval (ms). A region wish `US` admits `US` and `US-CA`
/// ([`region_matches`](ytdlp_plugin_sdk::region_matches)); a proxy without
/// a region satisfies only no region wish, and is never avoided. A NULL
/// wish folds away when the statement is planned (unnamed statements are
/// planned with their parameter values).
const FILTERS: &str = "($2::text[] IS NULL
         OR p.region = ANY($2::text[]) OR split_part(p.region, '-', 1) = ANY($2::text[]))
    AND ($3::text[] IS NULL OR p.region IS NULL
         OR NOT (p.region = ANY($3::text[]) OR split_part(p.region, '-', 1) = ANY($3::text[])))
    AND ($4::text[] IS NULL OR p.tags @> $4::text[])
    AND p.tier >= $5::int AND ($6::int IS NULL OR p.tier <= $6::int)";

/// Not one of the request's `avoid` ids ($9), when it has some.
const NOT_AVOIDED: &str = "p.ident <> ALL($9::text[])";

/// Usable now: enabled and not cooling down.
const USABLE: &str = "p.enabled AND (p.cooldown_until IS NULL OR p.cooldown_until <= now())";

/// For a site: not banned from it, not used on it within the pacing
/// interval. Added to the SQL only when there is a site (a top-level
/// `NOT EXISTS` that the planner turns into an anti-join probing the
/// primary key of `proxy_site` for each candidate, rather than hashing all
/// of the site's rows at every pick).
const SITE_OK: &str = "NOT EXISTS (
        SELECT 1 FROM proxy_site s
        WHERE s.proxy_id = p.id AND s.site = $1::text
          AND (s.banned_until > now()
               OR ($7::int8 > 0 AND s.last_used_at > now() - $7::int8 * interval '1 millisecond')))";

fn order_by(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::RoundRobin => "p.tier, p.last_used_at NULLS FIRST, p.id",
        Strategy::Healthiest => "p.tier, p.health DESC, p.last_used_at NULLS FIRST, p.id",
        Strategy::LeastUsed => "p.tier, p.pick_count, p.last_used_at NULLS FIRST, p.id",
    }
}

/// The pick: one statement. The row is locked with `SKIP LOCKED`, so
/// concurrent picks by other hosts take other proxies instead of waiting;
/// a row that changed meanwhile (taken out by a report) is re-checked
/// against the filters after locking and skipped. $8: default timeout; $9
/// the avoided ids (only with `avoid`). The SQL varies only by strategy,
/// by whether there is a site and by whether ids are avoided: values always
/// travel as parameters.
pub fn pick_sql(strategy: Strategy, site: bool, avoid: bool) -> String {
    let site_ok = if site {
        format!("\n      AND {SITE_OK}")
    } else {
        String::new()
    };
    let not_avoided = if avoid {
        format!("\n      AND {NOT_AVOIDED}")
    } else {
        String::new()
    };
    format!(
        "WITH pick AS (
    SELECT p.id FROM proxies p
    WHERE {USABLE}
      AND {FILTERS}{site_ok}{not_avoided}
    ORDER BY {order}
    LIMIT 1
    FOR UPDATE OF p SKIP LOCKED
), used AS (
    UPDATE proxies p SET last_used_at = now(), pick_count = p.pick_count + 1
    FROM pick WHERE p.id = pick.id
    RETURNING p.id, p.ident, p.url, p.timeout_ms, p.region, p.tags, p.tier
), paced AS (
    INSERT INTO proxy_site AS s (proxy_id, site, last_used_at)
    SELECT id, $1::text, now() FROM used WHERE $1::text IS NOT NULL AND $7::int8 > 0
    ON CONFLICT (proxy_id, site) DO UPDATE SET last_used_at = excluded.last_used_at
)
SELECT ident, url, coalesce(timeout_ms, $8::int), region, array_to_string(tags, ','), tier
FROM used",
        order = order_by(strategy)
    )
}

/// Why nothing was picked, and when something is expected back.
const DIAGNOSE_SQL: &str = concat!(
    "SELECT count(*),
       count(*) FILTER (WHERE NOT p.enabled),
       count(*) FILTER (WHERE p.enabled AND p.cooldown_until > now()),
       count(*) FILTER (WHERE s.banned_until > now()),
       count(*) FILTER (WHERE $7::int8 > 0 AND s.last_used_at > now() - $7::int8 * interval '1 millisecond'),
       ",
    ms!("least(
           min(p.cooldown_until) FILTER (WHERE p.enabled AND p.cooldown_until > now()),
           min(s.banned_until) FILTER (WHERE p.enabled AND s.banned_until > now()),
           min(s.last_used_at + $7::int8 * interval '1 millisecond')
               FILTER (WHERE p.enabled AND $7::int8 > 0
                       AND s.last_used_at > now() - $7::int8 * interval '1 millisecond'))"),
    ",
       (SELECT count(*) FROM proxies)
FROM proxies p
LEFT JOIN proxy_site s ON s.proxy_id = p.id AND s.site = $1::text
WHERE ($2::text[] IS NULL
       OR p.region = ANY($2::text[]) OR split_part(p.region, '-', 1) = ANY($2::text[]))
  AND ($3::text[] IS NULL OR p.region IS NULL
       OR NOT (p.region = ANY($3::text[]) OR split_part(p.region, '-', 1) = ANY($3::text[])))
  AND ($4::text[] IS NULL OR p.tags @> $4::text[])
  AND p.tier >= $5::int AND ($6::int IS NULL OR p.tier <= $6::int)"
);

/// What the pool has (for a message when nothing matches the wish): its
/// distinct metadata, a bounded sample.
const METAS_SQL: &str = "SELECT region, array_to_string(tags, ','), tier
FROM (SELECT DISTINCT region, tags, tier FROM proxies) m
ORDER BY region NULLS FIRST, tier LIMIT 200";

const SUCCESS_SQL: &str = "UPDATE proxies
SET success_count = success_count + 1, consecutive_failures = 0, last_success_at = now()
WHERE ident = $1
RETURNING id";

/// A proxy fault ($2 its kind): counted, and the proxy taken out when its
/// consecutive faults reach the threshold ($3) and it is not out already;
/// `crosses` says whether this statement took it out. The CTE locks the
/// row first (`FOR UPDATE` returns the latest committed version), so the
/// decision is made on the same version the UPDATE changes: under any
/// concurrency exactly one report takes it out per crossing. After a
/// cooldown the count still stands (probation): one more fault takes it out
/// again, a success clears it. $4: cooldown ms, 0 = disable.
const FAULT_SQL: &str = "WITH cur AS (
    SELECT id, (enabled AND consecutive_failures + 1 >= $3::int
                AND (cooldown_until IS NULL OR cooldown_until <= now())) AS crosses
    FROM proxies WHERE ident = $1 FOR UPDATE
)
UPDATE proxies p SET
    failure_count = p.failure_count + 1,
    fault_count = p.fault_count + 1,
    failures_by_kind[$2::int] = p.failures_by_kind[$2::int] + 1,
    consecutive_failures = p.consecutive_failures + 1,
    last_failure_at = now(),
    times_taken_out = p.times_taken_out + CASE WHEN cur.crosses THEN 1 ELSE 0 END,
    cooldown_until = CASE WHEN cur.crosses AND $4::int8 > 0
                          THEN now() + $4::int8 * interval '1 millisecond'
                          ELSE p.cooldown_until END,
    enabled = p.enabled AND NOT (cur.crosses AND $4::int8 = 0)
FROM cur WHERE p.id = cur.id
RETURNING cur.crosses";

/// `blocked`: counted in the stats (not against the proxy's health) and the
/// proxy banned from the site ($2) for $3 ms; a ban only ever grows.
const BLOCKED_SQL: &str = concat!(
    "WITH p AS (
    UPDATE proxies SET failure_count = failure_count + 1,
        failures_by_kind[4] = failures_by_kind[4] + 1, last_failure_at = now()
    WHERE ident = $1
    RETURNING id
), ban AS (
    INSERT INTO proxy_site AS s (proxy_id, site, banned_until, ban_count)
    SELECT id, $2::text, now() + $3::int8 * interval '1 millisecond', 1 FROM p
    WHERE $2::text IS NOT NULL AND $3::int8 > 0
    ON CONFLICT (proxy_id, site) DO UPDATE
    SET banned_until = greatest(s.banned_until, excluded.banned_until),
        ban_count = s.ban_count + 1
    RETURNING banned_until
)
SELECT (SELECT count(*) FROM p), ",
    ms!("(SELECT banned_until FROM ban)")
);

/// `geo-restricted`, `content`, `host`, `unknown` ($2): in the stats only;
/// never the proxy's fault, so neither its health nor its consecutive
/// count changes (`geo-restricted` is about one URL, not a site).
const OTHER_FAILURE_SQL: &str = "UPDATE proxies
SET failure_count = failure_count + 1, failures_by_kind[$2::int] = failures_by_kind[$2::int] + 1
WHERE ident = $1
RETURNING id";

/// Adds proxies ($1 idents, $2 URLs, $3 regions, $4 tags as array
/// literals, $5 tiers: parallel arrays, one round trip). A proxy already
/// in the pool (same ident) keeps its health and counts and takes the URL
/// given (a rotated password); its metadata too in `ADD_WITH_META_SQL`.
/// Returns how many rows were new (`xmax = 0`: inserted, not updated).
const ADD_SQL: &str = "WITH ins AS (
    INSERT INTO proxies AS p (ident, url, region, tags, tier)
    SELECT i.ident, i.url, i.region, i.tags::text[], i.tier
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
         AS i(ident, url, region, tags, tier)
    ON CONFLICT (ident) DO UPDATE SET url = excluded.url
    RETURNING (xmax = 0) AS new
)
SELECT count(*) FILTER (WHERE new) FROM ins";

const ADD_WITH_META_SQL: &str = "WITH ins AS (
    INSERT INTO proxies AS p (ident, url, region, tags, tier)
    SELECT i.ident, i.url, i.region, i.tags::text[], i.tier
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])
         AS i(ident, url, region, tags, tier)
    ON CONFLICT (ident) DO UPDATE
    SET url = excluded.url, region = excluded.region, tags = excluded.tags, tier = excluded.tier
    RETURNING (xmax = 0) AS new
)
SELECT count(*) FILTER (WHERE new) FROM ins";

/// Removes by id or by URL ($1, `text[]`), with the per-site rows.
const REMOVE_SQL: &str =
    "DELETE FROM proxies WHERE ident = ANY($1::text[]) OR url = ANY($1::text[])";

const STATS_SQL: &str = concat!(
    "SELECT p.ident, p.url, coalesce(p.timeout_ms, $1::int), p.region,
       array_to_string(p.tags, ','), p.tier,
       p.success_count, p.failure_count, p.consecutive_failures, p.enabled, ",
    ms!("p.cooldown_until"),
    ", p.cooldown_until > now(), ",
    ms!("p.last_used_at"),
    ", array_to_string(p.failures_by_kind, ','), p.times_taken_out, p.pick_count,
       (SELECT string_agg(s.site, ',' ORDER BY s.site) FROM proxy_site s
        WHERE s.proxy_id = p.id AND s.banned_until > now())
FROM proxies p
ORDER BY p.tier, p.url"
);

struct Conn {
    /// What the connection was opened for: url, schema, timeout.
    key: (String, String, u64),
    client: Client,
}

/// The PostgreSQL side of the plugin. Holds at most one connection; every
/// call connects if there is none, so a database that comes back is used
/// again without restarting anything.
#[derive(Default)]
pub struct Store {
    conn: Option<Conn>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Is a connection open (it may still turn out broken)?
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Runs `op` on a connection for `s`, opening one (and checking the
    /// tables) if needed, all by `deadline`: one call of the contract,
    /// whatever it takes (connecting, authenticating, checking the schema,
    /// one or two statements) stays within `pg_timeout_ms`, so a slow or
    /// hung server gives a typed error inside the host's call deadline. A broken connection is dropped; if the failed
    /// request never reached the server (the connection had died while
    /// idle: a restart), it is sent once more on a new one. Never after a
    /// timeout: the statement may have run, and a report must not count
    /// twice.
    pub fn run<T>(
        &mut self,
        s: &Settings,
        deadline: Instant,
        op: impl Fn(&mut Client) -> Result<T, pg::Error>,
    ) -> Result<T, StoreError> {
        let key = (s.url.clone(), s.schema.clone(), s.pg_timeout_ms);
        if self.conn.as_ref().is_some_and(|c| c.key != key) {
            self.conn = None;
        }
        let mut retried = false;
        loop {
            let fresh = self.conn.is_none();
            let conn = match &mut self.conn {
                Some(c) => c,
                None => {
                    let client = connect(s, deadline).map_err(|e| StoreError::new(s, true, e))?;
                    self.conn.insert(Conn {
                        key: key.clone(),
                        client,
                    })
                }
            };
            let left = remaining(deadline).map_err(|e| StoreError::new(s, false, e))?;
            conn.client.set_io_timeout(left);
            match op(&mut conn.client) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if conn.client.is_broken() {
                        self.conn = None;
                    }
                    if !fresh && !retried && e.is_retryable() {
                        retried = true;
                        continue;
                    }
                    return Err(StoreError::new(s, false, e));
                }
            }
        }
    }

    /// The next usable proxy for `request`: one its `want` admits, not
    /// banned from or paced on its site (`request.site.domain`), not one of
    /// its `avoid` ids unless nothing else is usable, the cheapest tier
    /// first and then the strategy's order.
    pub fn get_proxy(
        &mut self,
        s: &Settings,
        request: &Request,
    ) -> Result<Result<Proxy, NoProxy>, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        let site = site_of(request);
        let want = Want::of(&request.want);
        let interval = s.site_interval_ms as i64;
        let timeout = s.timeout_ms as i32;
        let avoid = (!request.avoid.is_empty())
            .then(|| text_array(request.avoid.iter().map(|a| Some(a.as_str()))));
        let params: [&dyn ToParam; 9] = [
            &site,
            &want.regions,
            &want.avoid_regions,
            &want.tags,
            &want.min_tier,
            &want.max_tier,
            &interval,
            &timeout,
            &avoid,
        ];
        let wrap = |e| StoreError::new(s, false, e);
        // First without the avoided ids; if that leaves nothing, with them.
        let mut tries = vec![pick_sql(s.strategy, site.is_some(), avoid.is_some())];
        if avoid.is_some() {
            tries.push(pick_sql(s.strategy, site.is_some(), false));
        }
        for sql in &tries {
            let n = if sql.contains("$9") { 9 } else { 8 };
            let row = self.run(s, deadline, |c| c.query_opt(sql, &params[..n]))?;
            if let Some(row) = row {
                return proxy_of(&row, 0).map(Ok).map_err(wrap);
            }
        }
        let row = self.run(s, deadline, |c| c.query_one(DIAGNOSE_SQL, &params[..7]))?;
        let counts = Diagnosis::of(&row).map_err(wrap)?;
        let metas = if counts.matching == 0 && counts.total > 0 {
            let rows = self.run(s, deadline, |c| c.query(METAS_SQL, &[]))?;
            rows.iter()
                .map(|r| meta_of(r, 0))
                .collect::<Result<Vec<_>, _>>()
                .map_err(wrap)?
        } else {
            Vec::new()
        };
        Ok(Err(diagnose(s, request, site, &counts, &metas)))
    }

    pub fn report_success(&mut self, s: &Settings, id: &str) -> Result<Reported, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        let row = self.run(s, deadline, |c| c.query_opt(SUCCESS_SQL, &[&id]))?;
        Ok(if row.is_some() {
            Reported::Counted
        } else {
            Reported::Unknown
        })
    }

    /// A failure of `kind` through proxy `id` at `site` (the request's
    /// registrable domain): proxy faults count against the proxy,
    /// `blocked` bans it from the site for `ban_ms` or the site's
    /// `Retry-After` if longer, the other kinds are only counted.
    pub fn report_failure(
        &mut self,
        s: &Settings,
        id: &str,
        kind: Kind,
        site: Option<&str>,
        detail: &FailureDetail,
    ) -> Result<Reported, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        let k = kind_index(kind);
        let wrap = |e| StoreError::new(s, false, e);
        if kind.is_proxy_fault() {
            let threshold = s.failure_threshold as i32;
            let cooldown = s.cooldown_ms as i64;
            let row = self.run(s, deadline, |c| {
                c.query_opt(FAULT_SQL, &[&id, &k, &threshold, &cooldown])
            })?;
            return match row {
                None => Ok(Reported::Unknown),
                Some(r) if r.get_bool(0).map_err(wrap)? => Ok(Reported::TookOut),
                Some(_) => Ok(Reported::Counted),
            };
        }
        if kind == Kind::Blocked {
            let ban = if s.ban_ms == 0 {
                0
            } else {
                s.ban_ms.max(detail.retry_after_ms.unwrap_or(0)) as i64
            };
            let row = self.run(s, deadline, |c| {
                c.query_one(BLOCKED_SQL, &[&id, &site, &ban])
            })?;
            let known: i64 = row.get(0).map_err(wrap)?;
            return Ok(match (known, row.opt::<u64>(1).map_err(wrap)?) {
                (0, _) => Reported::Unknown,
                (_, Some(until)) => Reported::Banned(until),
                (_, None) => Reported::Counted,
            });
        }
        let row = self.run(s, deadline, |c| c.query_opt(OTHER_FAILURE_SQL, &[&id, &k]))?;
        Ok(if row.is_some() {
            Reported::Counted
        } else {
            Reported::Unknown
        })
    }

    /// Adds proxies (one round trip per kind of entry, each all or
    /// nothing); returns how many were new. A proxy already in the pool
    /// (same id) keeps its health; it takes the URL given (a new password)
    /// and, if the entry has any, its metadata.
    pub fn add(&mut self, s: &Settings, entries: &[ProxyEntry]) -> Result<u32, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        // One row per id (the last entry wins): an upsert may not touch a
        // row twice.
        let mut by_id: Vec<(String, &ProxyEntry)> = Vec::new();
        for e in entries {
            let id = e.url.identity_id();
            by_id.retain(|(i, _)| *i != id);
            by_id.push((id, e));
        }
        let (with_meta, plain): (Vec<_>, Vec<_>) =
            by_id.into_iter().partition(|(_, e)| !e.meta.is_empty());
        let mut new = 0;
        for (sql, set) in [(ADD_WITH_META_SQL, with_meta), (ADD_SQL, plain)] {
            if set.is_empty() {
                continue;
            }
            let cols = AddColumns::of(&set);
            let params: [&dyn ToParam; 5] = [
                &cols.idents,
                &cols.urls,
                &cols.regions,
                &cols.tags,
                &cols.tiers,
            ];
            let row = self.run(s, deadline, |c| c.query_one(sql, &params))?;
            new += row
                .get::<u32>(0)
                .map_err(|e| StoreError::new(s, false, e))?;
        }
        Ok(new)
    }

    /// Removes proxies, by id or by URL, with their per-site rows; returns
    /// how many were known.
    pub fn remove(&mut self, s: &Settings, ids: &[String]) -> Result<u32, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        let list = text_array(ids.iter().map(|i| Some(i.as_str())));
        let n = self.run(s, deadline, |c| c.execute(REMOVE_SQL, &[&list]))?;
        Ok(n as u32)
    }

    /// One row per proxy, by tier then URL.
    pub fn stats(&mut self, s: &Settings) -> Result<Vec<ProxyStats>, StoreError> {
        let deadline = Instant::now() + s.pg_timeout();
        let timeout = s.timeout_ms as i32;
        let rows = self.run(s, deadline, |c| c.query(STATS_SQL, &[&timeout]))?;
        rows.iter()
            .map(|r| stat_of(s, r))
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::new(s, false, e))
    }
}

/// The site of a request, for bans and pacing: its registrable domain.
fn site_of(request: &Request) -> Option<&str> {
    Some(request.site.domain.as_str()).filter(|d| !d.is_empty())
}

/// A request's wish as parameters ($2-$6).
struct Want {
    regions: Option<String>,
    avoid_regions: Option<String>,
    tags: Option<String>,
    min_tier: i32,
    max_tier: Option<i32>,
}

impl Want {
    fn of(w: &Wanted) -> Want {
        // Regions as stored: canonical (upper case).
        let regions = |list: &[String]| {
            let canon: Vec<String> = list
                .iter()
                .map(|r| parse_region(r).unwrap_or_else(|_| r.to_ascii_uppercase()))
                .collect();
            (!canon.is_empty()).then(|| text_array(canon.iter().map(|r| Some(r.as_str()))))
        };
        Want {
            regions: regions(&w.regions),
            avoid_regions: regions(&w.avoid_regions),
            tags: (!w.tags.is_empty()).then(|| text_array(w.tags.iter().map(|t| Some(t.as_str())))),
            min_tier: i32::from(w.min_tier),
            max_tier: w.max_tier.map(i32::from),
        }
    }
}

/// The parallel arrays of an add.
struct AddColumns {
    idents: String,
    urls: String,
    regions: String,
    tags: String,
    tiers: String,
}

impl AddColumns {
    fn of(set: &[(String, &ProxyEntry)]) -> AddColumns {
        let tags: Vec<String> = set
            .iter()
            .map(|(_, e)| text_array(e.meta.tags.iter().map(|t| Some(t.as_str()))))
            .collect();
        let tiers: Vec<String> = set.iter().map(|(_, e)| e.meta.tier.to_string()).collect();
        AddColumns {
            idents: text_array(set.iter().map(|(i, _)| Some(i.as_str()))),
            urls: text_array(set.iter().map(|(_, e)| Some(e.url.expose()))),
            regions: text_array(set.iter().map(|(_, e)| e.meta.region.as_deref())),
            tags: text_array(tags.iter().map(|t| Some(t.as_str()))),
            tiers: text_array(tiers.iter().map(|t| Some(t.as_str()))),
        }
    }
}

/// What is left of the call's time; a timeout when nothing is.
fn remaining(deadline: Instant) -> Result<Duration, pg::Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(pg::Error::Timeout {
            what: "answer from the server",
            after: left,
        });
    }
    Ok(left)
}

fn connect(s: &Settings, deadline: Instant) -> Result<Client, pg::Error> {
    let mut cfg = s.pg_config()?;
    cfg.connect_timeout = remaining(deadline)?;
    let mut client = Client::connect(&cfg)?;
    client.set_io_timeout(remaining(deadline)?);
    schema::ensure(&mut client, &s.schema)?;
    Ok(client)
}

/// The counts of [`DIAGNOSE_SQL`].
struct Diagnosis {
    matching: i64,
    disabled: i64,
    cooling: i64,
    banned: i64,
    paced: i64,
    retry_at_ms: Option<u64>,
    total: i64,
}

impl Diagnosis {
    fn of(row: &Row) -> Result<Diagnosis, pg::Error> {
        Ok(Diagnosis {
            matching: row.get(0)?,
            disabled: row.get(1)?,
            cooling: row.get(2)?,
            banned: row.get(3)?,
            paced: row.get(4)?,
            retry_at_ms: row.opt(5)?,
            total: row.get(6)?,
        })
    }
}

fn diagnose(
    s: &Settings,
    request: &Request,
    site: Option<&str>,
    d: &Diagnosis,
    metas: &[ProxyMeta],
) -> NoProxy {
    let wish = request.want.describe();
    let which = if wish.is_empty() {
        String::new()
    } else {
        format!(" {wish}")
    };
    let retry_at_ms = d.retry_at_ms;
    let message = if d.total == 0 {
        "the pool in PostgreSQL has no proxies (add some with `ytdlp-host proxies add URL...`)"
            .to_string()
    } else if d.matching == 0 {
        request.want.unmet_message(d.total as usize, metas)
    } else {
        let mut out = Vec::new();
        if d.disabled > 0 {
            out.push(format!("{} disabled", d.disabled));
        }
        if d.cooling > 0 {
            out.push(format!(
                "{} cooling down after {} consecutive failures",
                d.cooling, s.failure_threshold
            ));
        }
        if let Some(site) = site {
            if d.banned > 0 {
                out.push(format!("{} banned from {site}", d.banned));
            }
            if d.paced > 0 {
                out.push(format!(
                    "{} used on {site} within the last {} ms",
                    d.paced, s.site_interval_ms
                ));
            }
        }
        if out.is_empty() {
            // Usable ones exist but were locked by concurrent picks.
            return NoProxy {
                message: format!(
                    "all {} proxies{which} are busy: the usable ones are being handed out to other hosts right now",
                    d.matching
                ),
                retry_at_ms,
            };
        }
        format!(
            "all {} proxies{which} are out: {}",
            d.matching,
            out.join(", ")
        )
    };
    NoProxy {
        message,
        retry_at_ms,
    }
}

/// Region, tags and tier from columns `at`, `at + 1`, `at + 2`; values the
/// contract would refuse (written in SQL: a lower-case region, a bad tag)
/// are made canonical or left out rather than failing the call.
fn meta_of(r: &Row, at: usize) -> Result<ProxyMeta, pg::Error> {
    let region = r.text(at).and_then(|v| parse_region(v).ok());
    let mut tags: Vec<String> = Vec::new();
    for t in r.text(at + 1).unwrap_or("").split(',') {
        if let Ok(t) = parse_tag(t)
            && !tags.contains(&t)
        {
            tags.push(t);
        }
    }
    let tier: i32 = r.get(at + 2)?;
    Ok(ProxyMeta {
        region,
        tags,
        tier: tier.clamp(0, 255) as u8,
    })
}

/// A proxy from columns `at..at + 6`: ident, url, timeout, region, tags,
/// tier.
fn proxy_of(r: &Row, at: usize) -> Result<Proxy, pg::Error> {
    let timeout: i64 = r.get(at + 2)?;
    Ok(Proxy {
        id: r.get(at)?,
        url: r.get(at + 1)?,
        timeout_ms: timeout.clamp(1, 600_000) as u32,
        meta: meta_of(r, at + 3)?,
    })
}

fn stat_of(s: &Settings, r: &Row) -> Result<ProxyStats, pg::Error> {
    let proxy = proxy_of(r, 0)?;
    let enabled = r.get_bool(9)?;
    let cooling = r.opt_bool(11)?.unwrap_or(false);
    let consecutive: u32 = r.get(8)?;
    let state = if !enabled {
        ProxyState::Disabled
    } else if cooling {
        ProxyState::CoolingDown(r.get(10)?)
    } else {
        ProxyState::Active
    };
    let mut extra = Vec::new();
    let by_kind: Vec<u64> = r
        .text(13)
        .unwrap_or("")
        .split(',')
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    for (k, n) in Kind::ALL.iter().zip(&by_kind) {
        if *n > 0 {
            extra.push((format!("failures.{}", k.name()), n.to_string()));
        }
    }
    let taken_out: u64 = r.get(14)?;
    if taken_out > 0 {
        extra.push(("times-taken-out".into(), taken_out.to_string()));
    }
    extra.push(("picks".into(), r.get::<u64>(15)?.to_string()));
    if let Some(sites) = r.text(16) {
        extra.push(("banned-on".into(), sites.to_string()));
    }
    if state == ProxyState::Active && consecutive >= s.failure_threshold {
        extra.push(("probation".into(), "yes".into()));
    }
    Ok(ProxyStats {
        proxy,
        successes: r.get(6)?,
        failures: r.get(7)?,
        consecutive_failures: consecutive,
        state,
        last_used_ms: r.opt(12)?,
        extra,
    })
}
