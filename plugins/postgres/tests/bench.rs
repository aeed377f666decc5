//! Pick and report latency with 10 and with 100,000 proxies, on a server
//! with default durability (fsync on). Prints the numbers and checks the
//! plans use the indexes (timings alone are not asserted: the machine is
//! shared).
//!
//! `cargo test --release -p ytdlp-plugin-postgres --test bench -- --include-ignored --nocapture`

mod support;

use std::time::{Duration, Instant};

use support::{PASSWORD, PgServer, SUPERUSER, fill};
use ytdlp_plugin_postgres::pg::{Client, Config, ToParam, text_array};
use ytdlp_plugin_postgres::settings::{Kind, Settings};
use ytdlp_plugin_postgres::store::{Store, pick_sql};
use ytdlp_plugin_sdk::{FailureDetail, Request, Site, Wanted};

/// A request at `site` (host and domain) wanting `want`.
fn req(site: Option<&str>, want: Wanted) -> Request {
    let site = site.unwrap_or("");
    Request {
        site: Site {
            host: site.to_string(),
            domain: site.to_string(),
        },
        want,
        ..Request::default()
    }
}

fn settings(url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut opts = vec![
        ("url".to_string(), url.to_string()),
        ("pg_timeout_ms".to_string(), "5000".to_string()),
        ("failure_threshold".to_string(), "1000000".to_string()),
    ];
    opts.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::parse(&Settings::default(), &opts).unwrap()
}

struct Summary {
    median: Duration,
    p99: Duration,
    mean: Duration,
}

fn time(n: usize, mut f: impl FnMut()) -> Summary {
    for _ in 0..20 {
        f();
    }
    let mut d: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    let mean = d.iter().sum::<Duration>() / n as u32;
    d.sort();
    Summary {
        median: d[n / 2],
        p99: d[n * 99 / 100],
        mean,
    }
}

fn us(d: Duration) -> String {
    format!("{:>7.0}", d.as_secs_f64() * 1e6)
}

fn plan(admin: &mut Client, s: &Settings, r: &Request) -> String {
    let site = Some(r.site.domain.as_str()).filter(|d| !d.is_empty());
    let sql = format!(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {}",
        pick_sql(s.strategy, site.is_some(), false)
    );
    let list =
        |l: &[String]| (!l.is_empty()).then(|| text_array(l.iter().map(|v| Some(v.as_str()))));
    let (regions, avoid_regions, tags) = (
        list(&r.want.regions),
        list(&r.want.avoid_regions),
        list(&r.want.tags),
    );
    let min_tier = i32::from(r.want.min_tier);
    let max_tier = r.want.max_tier.map(i32::from);
    let interval = s.site_interval_ms as i64;
    let timeout = s.timeout_ms as i32;
    let params: [&dyn ToParam; 8] = [
        &site,
        &regions,
        &avoid_regions,
        &tags,
        &min_tier,
        &max_tier,
        &interval,
        &timeout,
    ];
    admin
        .query(&sql, &params)
        .unwrap()
        .iter()
        .map(|r| r.text(0).unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs PostgreSQL 15 (bash .ci/run installs it)"]
fn pick_and_report_latency_10_vs_100k_proxies() {
    // One server with default durability (fsync on, synchronous_commit on);
    // the plugin's default sessions run with synchronous_commit off,
    // `durable=true` ones wait for each commit's WAL flush.
    let pg = PgServer::require_with(&[]);
    let mut rows = Vec::new();
    for (db, n) in [("ten", 10), ("big", 100_000)] {
        let url = pg.create_db(db);
        let mut store = Store::new();
        // Creates the tables.
        assert!(
            store
                .get_proxy(&settings(&url, &[]), &Request::default())
                .unwrap()
                .is_err()
        );
        let mut cfg = Config::parse(&pg.url_for(SUPERUSER, PASSWORD, db)).unwrap();
        cfg.io_timeout = Duration::from_secs(120);
        let mut admin = Client::connect(&cfg).unwrap();
        let t = Instant::now();
        fill(&mut admin, n);
        eprintln!(
            "[bench] {n} proxies inserted + VACUUM ANALYZE in {:?}",
            t.elapsed()
        );
        // Per-site state: every proxy used on the site within the last day,
        // 1% of them banned from it, plus rows for 4 other sites.
        admin
            .execute(
                "INSERT INTO proxy_site (proxy_id, site, banned_until, ban_count, last_used_at)
                 SELECT id, site,
                        CASE WHEN id % 100 = 0 THEN now() + interval '1 hour' END,
                        CASE WHEN id % 100 = 0 THEN 1 ELSE 0 END,
                        now() - random() * interval '1 day'
                 FROM proxies,
                      unnest(ARRAY['youtube.com', 'vimeo.com', 'x.com', 'tiktok.com', 'twitch.tv']) site",
                &[],
            )
            .unwrap();
        admin.batch_execute("ANALYZE proxy_site").unwrap();
        for durable in ["false", "true"] {
            measure(&mut rows, &mut admin, &url, n, durable);
        }
        // A floor: the round trip of a trivial read-only query.
        let sum = time(500, || {
            admin.query_one("SELECT 1", &[]).unwrap();
        });
        rows.push(format!(
            "{n:>7} {:<30} query   median {} us  p99 {} us  mean {} us",
            "SELECT 1 (floor)",
            us(sum.median),
            us(sum.p99),
            us(sum.mean)
        ));
    }
    // A new connection: TCP, startup, SCRAM-SHA-256 (4096 PBKDF2 rounds on
    // each side), then Terminate.
    let cfg = Config::parse(&pg.url()).unwrap();
    let sum = time(50, || drop(Client::connect(&cfg).unwrap()));
    rows.push(format!(
        "{:>7} {:<30} connect median {} us  p99 {} us  mean {} us",
        "-",
        "connect + SCRAM + close",
        us(sum.median),
        us(sum.p99),
        us(sum.mean)
    ));
    eprintln!("[bench] one connection, loopback, release build, server defaults (fsync on):");
    for r in &rows {
        eprintln!("[bench] {r}");
    }
}

fn measure(rows: &mut Vec<String>, admin: &mut Client, url: &str, n: i64, durable: &str) {
    let d = [("durable", durable)];
    let with = |extra: &[(&str, &str)]| {
        let mut all = d.to_vec();
        all.extend_from_slice(extra);
        settings(url, &all)
    };
    let tag = if durable == "true" { " [durable]" } else { "" };
    let rr = with(&[]);
    let mut store = Store::new();
    let yt = Some("youtube.com");
    let any = Wanted::default;
    let cases: [(&str, Settings, Request); 7] = [
        ("round_robin", rr.clone(), req(None, any())),
        ("round_robin+site", rr.clone(), req(yt, any())),
        (
            "rr+site+pacing 60s",
            with(&[("site_interval_ms", "60000")]),
            req(yt, any()),
        ),
        (
            "round_robin+region",
            rr.clone(),
            req(
                None,
                Wanted {
                    regions: vec!["DE".into()],
                    ..any()
                },
            ),
        ),
        (
            "healthiest",
            with(&[("strategy", "healthiest")]),
            req(None, any()),
        ),
        (
            "least_used",
            with(&[("strategy", "least_used")]),
            req(None, any()),
        ),
        (
            "rr+tag+tier",
            rr.clone(),
            req(
                None,
                Wanted {
                    tags: vec!["residential".into()],
                    max_tier: Some(1),
                    ..any()
                },
            ),
        ),
    ];
    for (name, s, r) in &cases {
        if n == 10 && s.site_interval_ms > 0 {
            continue; // 10 proxies are all paced out after 10 picks
        }
        if n > 10 && tag.is_empty() {
            let p = plan(admin, s, r);
            eprintln!("[bench] plan {name} at {n}:\n{p}\n");
            let index = match *name {
                "healthiest" => Some("proxies_healthiest"),
                "least_used" => Some("proxies_least_used"),
                // The planner's choice (the tier-ordered index filtered, or
                // the region index and a sort): printed, not asserted.
                "round_robin+region" => None,
                "round_robin+site" | "rr+site+pacing 60s" => Some("proxy_site_pkey"),
                _ => Some("proxies_round_robin"),
            };
            if let Some(index) = index {
                assert!(p.contains(&format!(" {index} ")), "{name}: {p}");
            }
        }
        let sum = time(500, || {
            store.get_proxy(s, r).unwrap().unwrap();
        });
        rows.push(format!(
            "{n:>7} {:<30} pick    median {} us  p99 {} us  mean {} us",
            format!("{name}{tag}"),
            us(sum.median),
            us(sum.p99),
            us(sum.mean)
        ));
    }
    let target = store.get_proxy(&rr, &req(None, any())).unwrap().unwrap().id;
    for (name, kind) in [("success", None), ("proxy-fault", Some(Kind::ProxyConnect))] {
        let sum = time(500, || match kind {
            None => drop(store.report_success(&rr, &target).unwrap()),
            Some(k) => drop(
                store
                    .report_failure(&rr, &target, k, None, &FailureDetail::default())
                    .unwrap(),
            ),
        });
        rows.push(format!(
            "{n:>7} {:<30} report  median {} us  p99 {} us  mean {} us",
            format!("{name}{tag}"),
            us(sum.median),
            us(sum.p99),
            us(sum.mean)
        ));
    }
    // Sustained round robin: 5,000 picks in a row (each a new row version
    // and index entry), then the latency again.
    if n > 10 {
        let t = Instant::now();
        for _ in 0..5000 {
            store.get_proxy(&rr, &req(None, any())).unwrap().unwrap();
        }
        let burst = t.elapsed();
        let sum = time(500, || {
            store.get_proxy(&rr, &req(None, any())).unwrap().unwrap();
        });
        rows.push(format!(
            "{n:>7} {:<30} pick    median {} us  p99 {} us  mean {} us  (the 5000 took {burst:.2?})",
            format!("rr after 5000 picks{tag}"),
            us(sum.median),
            us(sum.p99),
            us(sum.mean)
        ));
    }
}
