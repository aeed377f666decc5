//! The PostgreSQL plugin (`plugins/postgres`) against a local PostgreSQL 15
//! on loopback (its own cluster, server defaults: fsync on; the plugin's
//! test harness): the get-proxy + report-success round trip through the
//! wasm plugin and through the plugin's store compiled natively (the same
//! statements from a native client), picks per second with 1 and 4 hosts,
//! and a pick's median with 10 proxies against 100,000.
//!
//!     cargo bench --bench postgres_roundtrip
//!
//! "Hosts" are in-process: each thread has its own plugin instance and
//! PostgreSQL connection, as separate hosts would.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;

use ytdlp_contract::{Request, Success};
use ytdlp_host_config::{Grants, LimitsConfig, PluginConfig};
use ytdlp_host_plugin_host::{Backend, CompileCache, Plugin, PluginRuntime};
use ytdlp_host_tests::plugins;
use ytdlp_plugin_postgres::pg::{Client, Config};
use ytdlp_plugin_postgres::settings::Settings;
use ytdlp_plugin_postgres::store::Store;

#[path = "../../../plugins/postgres/tests/support/mod.rs"]
mod pg;
mod support;
use support::runtime;

const PROXIES: u16 = 10;
const BIG: i64 = 100_000;
/// Picks per latency sample run, and runs.
const SAMPLES: usize = 500;
const RUNS: usize = 3;

type Options = Vec<(String, String)>;

fn options(url: &str) -> Options {
    // A generous bound: the bench measures, it does not test deadlines.
    vec![
        ("url".to_string(), url.to_string()),
        ("pg_timeout_ms".to_string(), "5000".to_string()),
    ]
}

fn plugin_config(port: u16) -> PluginConfig {
    PluginConfig {
        grants: Grants {
            tcp: vec![format!("127.0.0.1:{port}")],
            ..Grants::default()
        },
        limits: LimitsConfig {
            call_timeout_ms: 10_000,
            ..LimitsConfig::default()
        },
        ..PluginConfig::default()
    }
}

fn entries() -> Vec<ytdlp_contract::proxy_list::ProxyEntry> {
    (1..=PROXIES)
        .map(|i| ytdlp_contract::proxy_list::parse_entry(&format!("http://127.0.0.1:{}", 3000 + i)))
        .collect::<Result<_, _>>()
        .unwrap()
}

/// One host's plugin instance on the database at `url`.
fn start(rt: &tokio::runtime::Runtime, plugin: &Plugin, port: u16, url: &str) -> Backend {
    rt.block_on(Backend::start(
        plugin.clone(),
        plugin_config(port),
        options(url),
    ))
    .unwrap()
}

fn pick(rt: &tokio::runtime::Runtime, backend: &mut Backend, opts: &Options) {
    rt.block_on(backend.get_proxy(&Request::default(), black_box(opts)))
        .unwrap();
}

fn round_trip(rt: &tokio::runtime::Runtime, backend: &mut Backend, opts: &Options) {
    rt.block_on(async {
        let req = Request::default();
        let p = backend.get_proxy(&req, black_box(opts)).await.unwrap();
        backend
            .report_success(&p, &req, &Success::default(), opts)
            .await
            .unwrap();
    })
}

fn latency(c: &mut Criterion, plugin: &Plugin, port: u16, url: &str) {
    let mut group = c.benchmark_group("postgres: get-proxy + report-success");
    let settings = Settings::parse(&Settings::default(), &options(url)).unwrap();
    let mut store = Store::new();
    let req = Request::default();
    group.bench_function("native store (no wasm)", |b| {
        b.iter(|| {
            let p = store
                .get_proxy(black_box(&settings), &req)
                .unwrap()
                .unwrap();
            store.report_success(&settings, &p.id).unwrap();
        })
    });
    let rt = runtime();
    let mut backend = start(&rt, plugin, port, url);
    let opts = options(url);
    group.bench_function("wasm plugin", |b| {
        b.iter(|| round_trip(&rt, &mut backend, &opts))
    });
    group.finish();
}

/// Calls per second with `hosts` threads, each its own host.
fn threads(
    plugin: &Plugin,
    port: u16,
    url: &str,
    hosts: usize,
    call: fn(&tokio::runtime::Runtime, &mut Backend, &Options),
    for_how_long: Duration,
) -> f64 {
    support::per_second(
        hosts,
        for_how_long,
        || {
            let rt = runtime();
            let backend = start(&rt, plugin, port, url);
            (rt, backend, options(url))
        },
        |(rt, backend, opts)| call(rt, backend, opts),
    )
}

/// The median of `SAMPLES` timings of `f` (after a warm-up).
fn median(mut f: impl FnMut()) -> Duration {
    for _ in 0..20 {
        f();
    }
    let mut d: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    d.sort();
    d[SAMPLES / 2]
}

/// `RUNS` values, sorted, and their median.
fn runs(mut f: impl FnMut() -> f64) -> (f64, Vec<f64>) {
    let mut v: Vec<f64> = (0..RUNS).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    (v[RUNS / 2], v)
}

fn shown(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() {
    let server = pg::PgServer::start_with(&[]).expect(
        "PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin; bash .ci/run installs it)",
    );
    let port = server.port;
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = loader
        .load_file("postgres", std::path::Path::new(plugins::POSTGRES))
        .unwrap();
    let rt = runtime();

    // 10 proxies, added through the plugin's `admin` (which creates the
    // tables); 100,000 filled by SQL into a second database.
    let ten = server.create_db("ten");
    let mut backend = start(&rt, &plugin, port, &ten);
    rt.block_on(backend.add_proxies(&entries(), &options(&ten)))
        .unwrap();
    // The tables made by the native store; the plugin connects after the
    // fill, as a host started on a full pool (a session that prepared its
    // statements on an empty table may keep plans made for it).
    let big = server.create_db("big");
    let big_settings = Settings::parse(&Settings::default(), &options(&big)).unwrap();
    assert!(
        Store::new()
            .get_proxy(&big_settings, &Request::default())
            .unwrap()
            .is_err(),
        "an empty pool"
    );
    let mut cfg = Config::parse(&server.url_for(pg::SUPERUSER, pg::PASSWORD, "big")).unwrap();
    cfg.io_timeout = Duration::from_secs(120);
    pg::fill(&mut Client::connect(&cfg).unwrap(), BIG);
    let mut big_backend = start(&rt, &plugin, port, &big);

    let mut c = Criterion::default().configure_from_args();
    latency(&mut c, &plugin, port, &ten);
    c.final_summary();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average before the runs below: {}", load.trim());

    println!(
        "a pick's median (get-proxy, round_robin, {SAMPLES} picks a run, median of {RUNS} runs), µs:"
    );
    let mut medians = Vec::new();
    for (n, url, backend) in [(10, &ten, &mut backend), (BIG, &big, &mut big_backend)] {
        let opts = options(url);
        let (wasm, wasm_runs) = runs(|| median(|| pick(&rt, backend, &opts)).as_secs_f64() * 1e6);
        let settings = Settings::parse(&Settings::default(), &opts).unwrap();
        let mut store = Store::new();
        let req = Request::default();
        let (native, native_runs) = runs(|| {
            median(|| drop(store.get_proxy(&settings, &req).unwrap().unwrap())).as_secs_f64() * 1e6
        });
        println!(
            "  {n:>7} proxies: wasm {wasm:>6.0} (runs: {}), native {native:>6.0} (runs: {})",
            shown(&wasm_runs, 0),
            shown(&native_runs, 0)
        );
        medians.push((wasm, native));
    }
    println!(
        "  100k / 10: wasm {:.2}x, native {:.2}x",
        medians[1].0 / medians[0].0,
        medians[1].1 / medians[0].1
    );

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before the throughput runs: {}", load.trim());
    type Call = fn(&tokio::runtime::Runtime, &mut Backend, &Options);
    for (what, call) in [
        ("picks (get-proxy)", pick as Call),
        (
            "round trips (get-proxy + report-success)",
            round_trip as Call,
        ),
    ] {
        println!(
            "throughput, {what}, 10 proxies (in-process hosts, median of {RUNS} runs of 3 s):"
        );
        for hosts in [1, 4] {
            let (rate, all) =
                runs(|| threads(&plugin, port, &ten, hosts, call, Duration::from_secs(3)));
            println!(
                "  {hosts} host(s): {rate:>7.0}/s (runs: {})",
                shown(&all, 0)
            );
        }
    }
}
