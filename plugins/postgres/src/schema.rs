//! The tables, created on first use and versioned: `ytdlp_schema` holds the
//! version; [`MIGRATIONS`]`[n]` takes a database from version `n` to
//! `n + 1`. Hosts that start together serialise on an advisory lock, so a
//! migration runs once.
//!
//! Version 1 is the 0.1 prototype's; version 2 is contract 0.2's: the
//! proxy's `ident` (the contract's proxy id), eight failure kinds, tiers
//! leading the pick indexes (the cheapest tier first).

use std::collections::HashSet;

use ytdlp_plugin_sdk::contract::proxy_url;

use crate::pg::{Client, Error, ToParam};

/// The schema version this build writes and reads.
pub const VERSION: i32 = 2;

/// Version 1 (the 0.1 prototype's): the pool and its per-site state.
///
/// `failures_by_kind` is indexed like the contract's `failure-kind`
/// (1 = proxy-connect, 2 = proxy-timeout, 3 = proxy-auth, 4 = blocked,
/// 5 = content, 6 = host, 7 = unknown). `fault_count` counts only the
/// proxy's own faults (1-3); `failure_count` every failure reported.
const V1: &str = r#"
CREATE TABLE proxies (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                  text NOT NULL UNIQUE,
    timeout_ms           integer CHECK (timeout_ms BETWEEN 1 AND 600000),
    enabled              boolean NOT NULL DEFAULT true,
    success_count        bigint NOT NULL DEFAULT 0,
    failure_count        bigint NOT NULL DEFAULT 0,
    fault_count          bigint NOT NULL DEFAULT 0,
    failures_by_kind     bigint[] NOT NULL DEFAULT '{0,0,0,0,0,0,0}',
    consecutive_failures integer NOT NULL DEFAULT 0,
    times_taken_out      integer NOT NULL DEFAULT 0,
    pick_count           bigint NOT NULL DEFAULT 0,
    last_used_at         timestamptz,
    last_success_at      timestamptz,
    last_failure_at      timestamptz,
    cooldown_until       timestamptz,
    region               text,
    tags                 text[] NOT NULL DEFAULT '{}',
    tier                 integer NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL DEFAULT now(),
    health               double precision GENERATED ALWAYS AS
                         ((success_count + 2)::float8 / (success_count + fault_count + 2.25)) STORED
);
-- One index per strategy, in its ORDER BY, over the enabled proxies only:
-- a pick reads the first few entries whatever the size of the pool.
CREATE INDEX proxies_round_robin ON proxies (last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_healthiest ON proxies (health DESC, last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_least_used ON proxies (pick_count, last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_region_round_robin ON proxies (region, last_used_at NULLS FIRST, id) WHERE enabled;

CREATE TABLE proxy_site (
    proxy_id     bigint NOT NULL REFERENCES proxies (id) ON DELETE CASCADE,
    site         text NOT NULL,
    banned_until timestamptz,
    ban_count    integer NOT NULL DEFAULT 0,
    last_used_at timestamptz,
    PRIMARY KEY (proxy_id, site)
);-- No other index: the pick probes the primary key (proxy_id, site) for each
-- candidate (an anti-join), the stats read it by proxy_id.
"#;

/// Version 2 (contract 0.2), in SQL around [`backfill_ident`]:
///
/// - `ident`: the contract's proxy id, [`ProxyUrl::identity_id`] of the URL
///   (`p` + 8 hex digits of SHA-256 of `scheme://user@host:port`, without
///   the password), computed by the plugin when it adds a proxy, unique: a
///   proxy added again with a rotated password is the same row;
/// - `failures_by_kind`: 8 counters, `geo-restricted` inserted as 5th;
/// - regions upper case (the contract's canonical form), tiers 0-255;
/// - the pick indexes lead with `tier`, the cheapest tier first.
///
/// [`ProxyUrl::identity_id`]: ytdlp_plugin_sdk::ProxyUrl::identity_id
const V2_BEFORE: &str = r#"
ALTER TABLE proxies ADD COLUMN ident text;
ALTER TABLE proxies ALTER COLUMN failures_by_kind SET DEFAULT '{0,0,0,0,0,0,0,0}';
UPDATE proxies SET
    failures_by_kind = failures_by_kind[1:4] || ARRAY[0::int8] || failures_by_kind[5:7],
    region = nullif(upper(btrim(region)), ''),
    tier = least(greatest(tier, 0), 255);
ALTER TABLE proxies ADD CONSTRAINT proxies_tier_range CHECK (tier BETWEEN 0 AND 255);
ALTER TABLE proxies ADD CONSTRAINT proxies_kinds CHECK (cardinality(failures_by_kind) = 8);
DROP INDEX proxies_round_robin, proxies_healthiest, proxies_least_used, proxies_region_round_robin;
CREATE INDEX proxies_round_robin ON proxies (tier, last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_healthiest ON proxies (tier, health DESC, last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_least_used ON proxies (tier, pick_count, last_used_at NULLS FIRST, id) WHERE enabled;
CREATE INDEX proxies_region ON proxies (region) WHERE enabled;
"#;

const V2_AFTER: &str = r#"
ALTER TABLE proxies ALTER COLUMN ident SET NOT NULL;
ALTER TABLE proxies ADD CONSTRAINT proxies_ident_key UNIQUE (ident);
"#;

/// The `ident` of every row of a version 1 pool. Two rows of one identity
/// (one proxy under two passwords) keep both, the second suffixed with its
/// row id; a URL that is not a proxy URL (written in SQL) gets
/// `invalid-<row id>` and is refused by the host if handed out.
fn backfill_ident(c: &mut Client) -> Result<(), Error> {
    let rows = c.query(
        "SELECT id::text, url FROM proxies WHERE ident IS NULL ORDER BY id",
        &[],
    )?;
    let mut seen = HashSet::new();
    let mut sets: Vec<(String, String)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.get(0)?;
        let url: String = r.get(1)?;
        let ident = match proxy_url::validate(&url) {
            Ok(u) => u.identity_id(),
            Err(_) => format!("invalid-{id}"),
        };
        let ident = if seen.insert(ident.clone()) {
            ident
        } else {
            format!("{ident}-{id}")
        };
        sets.push((id, ident));
    }
    if sets.is_empty() {
        return Ok(());
    }
    let params: Vec<[&dyn ToParam; 2]> = sets
        .iter()
        .map(|(id, ident)| [id as &dyn ToParam, ident as &dyn ToParam])
        .collect();
    let refs: Vec<&[&dyn ToParam]> = params.iter().map(|p| p.as_slice()).collect();
    c.execute_many("UPDATE proxies SET ident = $2 WHERE id = $1::int8", &refs)?;
    Ok(())
}

fn v1(c: &mut Client) -> Result<(), Error> {
    c.batch_execute(V1)
}

fn v2(c: &mut Client) -> Result<(), Error> {
    c.batch_execute(V2_BEFORE)?;
    backfill_ident(c)?;
    c.batch_execute(V2_AFTER)
}

/// A step from one version to the next, in the migration's transaction.
pub type Migration = fn(&mut Client) -> Result<(), Error>;

pub const MIGRATIONS: [Migration; VERSION as usize] = [v1, v2];

/// Takes the tables to `target` (at most [`VERSION`]): for tests of a
/// migration from an older version.
pub fn migrate_to(c: &mut Client, schema: &str, target: i32) -> Result<(), Error> {
    migrate(c, schema, target.clamp(1, VERSION))
}

const VERSION_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS ytdlp_schema (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     integer NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT now()
)
"#;

fn too_new(v: i32) -> Error {
    Error::Config(format!(
        "the tables are at schema version {v}, newer than this plugin's {VERSION}: update the plugin"
    ))
}

/// Makes sure the tables exist at [`VERSION`] in the first schema of the
/// session's `search_path` (`schema`). One query when they do.
pub fn ensure(c: &mut Client, schema: &str) -> Result<(), Error> {
    match c.query_opt("SELECT version FROM ytdlp_schema", &[]) {
        Ok(Some(row)) => {
            let v: i32 = row.get(0)?;
            if v == VERSION {
                return Ok(());
            }
            if v > VERSION {
                return Err(too_new(v));
            }
        }
        Ok(None) => {}
        // 42P01 undefined_table, 3F000 invalid_schema_name.
        Err(e) if matches!(e.code(), Some("42P01" | "3F000")) => {}
        Err(e) => return Err(e),
    }
    migrate(c, schema, VERSION)
}

fn migrate(c: &mut Client, schema: &str, target: i32) -> Result<(), Error> {
    c.transaction(|c| {
        c.query(
            "SELECT pg_advisory_xact_lock(hashtext('ytdlp-host proxies ' || $1::text))",
            &[&schema],
        )?;
        if schema != "public" {
            // `schema` is checked to be a plain lower-case identifier.
            c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
        }
        c.batch_execute(VERSION_TABLE)?;
        let v: i32 = match c.query_opt("SELECT version FROM ytdlp_schema FOR UPDATE", &[])? {
            Some(row) => row.get(0)?,
            None => 0,
        };
        if v > VERSION {
            return Err(too_new(v));
        }
        if v >= target {
            return Ok(());
        }
        for m in MIGRATIONS
            .iter()
            .take(target as usize)
            .skip(v.max(0) as usize)
        {
            m(c)?;
        }
        c.execute(
            "INSERT INTO ytdlp_schema (singleton, version) VALUES (true, $1)
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, migrated_at = now()",
            &[&target],
        )?;
        Ok(())
    })
}
