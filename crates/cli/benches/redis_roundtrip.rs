//! The Redis plugin (`plugins/redis`) against a local redis-server on
//! loopback: the get-proxy + report-success round trip (through the wasm
//! plugin, and the plugin's store called natively for comparison), then
//! throughput with 1 and 4 concurrent hosts.
//!
//!     cargo bench --bench redis_roundtrip
//!
//! "Hosts" are measured two ways: in-process (each thread has its own
//! plugin instance and Redis connection, as separate hosts would), and as
//! real `ytdlp-host proxies report --count N` processes started side by
//! side (process start and plugin load included).

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::Criterion;

use ytdlp_host_config::{Grants, PluginConfig};
use ytdlp_host_plugin_host::Plugin;
use ytdlp_host_plugin_host::{Backend, CompileCache, PluginRuntime};
use ytdlp_host_tests::{plugins, redis};
use ytdlp_plugin_redis::settings::Settings;
use ytdlp_plugin_redis::store::Store;

mod support;
use support::runtime;

const PROXIES: u16 = 10;

fn options(port: u16) -> Vec<(String, String)> {
    vec![("url".to_string(), format!("redis://127.0.0.1:{port}"))]
}

fn urls() -> Vec<String> {
    (1..=PROXIES)
        .map(|i| format!("http://127.0.0.1:{}", 3000 + i))
        .collect()
}

fn plugin_config(port: u16) -> PluginConfig {
    PluginConfig {
        grants: Grants {
            tcp: vec![format!("127.0.0.1:{port}")],
            ..Grants::default()
        },
        ..PluginConfig::default()
    }
}

/// One host's plugin instance, seeded with the pool.
fn start(rt: &tokio::runtime::Runtime, plugin: &Plugin, port: u16) -> Backend {
    let mut backend = rt
        .block_on(Backend::start(
            plugin.clone(),
            plugin_config(port),
            options(port),
        ))
        .unwrap();
    let entries: Vec<_> = urls()
        .iter()
        .map(|u| ytdlp_contract::proxy_list::parse_entry(u).unwrap())
        .collect();
    rt.block_on(backend.add_proxies(&entries, &options(port)))
        .unwrap();
    backend
}

fn round_trip(rt: &tokio::runtime::Runtime, backend: &mut Backend, opts: &Vec<(String, String)>) {
    rt.block_on(async {
        let req = ytdlp_contract::Request::default();
        let p = backend.get_proxy(&req, black_box(opts)).await.unwrap();
        backend
            .report_success(&p, &req, &ytdlp_contract::Success::default(), opts)
            .await
            .unwrap();
    })
}

fn latency(c: &mut Criterion, plugin: &Plugin, port: u16) {
    let mut group = c.benchmark_group("redis: get-proxy + report-success");
    let settings = Settings::parse(&Settings::default(), &options(port)).unwrap();
    let mut store = Store::new();
    let entries: Vec<_> = urls()
        .iter()
        .map(|u| ytdlp_contract::proxy_list::parse_entry(u).unwrap())
        .collect();
    store.add(&settings, &entries).unwrap();
    let req = ytdlp_contract::Request::default();
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
    let mut backend = start(&rt, plugin, port);
    let opts = options(port);
    group.bench_function("wasm plugin", |b| {
        b.iter(|| round_trip(&rt, &mut backend, &opts))
    });
    group.finish();
}

/// Round trips per second with `hosts` threads, each its own host.
fn threads(plugin: &Plugin, port: u16, hosts: usize, for_how_long: Duration) -> f64 {
    support::per_second(
        hosts,
        for_how_long,
        || {
            let rt = runtime();
            let backend = start(&rt, plugin, port);
            (rt, backend, options(port))
        },
        |(rt, backend, opts)| round_trip(rt, backend, opts),
    )
}

/// Reports per second with `hosts` real host processes side by side, each
/// making `count` reports (wall time from the first start to the last exit).
fn processes(port: u16, hosts: usize, count: u32) -> (f64, Duration) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("plugins");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(plugins::REDIS, dir.join("redis.wasm")).unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "backend = \"redis\"\nplugin_dir = \"{}\"\n[plugins.redis.options]\nurl = \"redis://127.0.0.1:{port}\"\n[plugins.redis.grants]\ntcp = [\"127.0.0.1:{port}\"]\n",
            dir.display()
        ),
    )
    .unwrap();
    let host = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ytdlp-host"));
        c.env("XDG_CACHE_HOME", home.path().join("cache"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_DATA_HOME", home.path().join("data"))
            .arg("--config")
            .arg(&config)
            .args(args);
        c
    };
    // Warm the compile cache once, as a long-running fleet would have it.
    assert!(
        host(&["plugins", "list"])
            .output()
            .unwrap()
            .status
            .success()
    );
    let count_s = count.to_string();
    let started = Instant::now();
    let children: Vec<_> = (0..hosts)
        .map(|_| {
            host(&[
                "proxies",
                "report",
                "http://127.0.0.1:3001",
                "--success",
                "--count",
                &count_s,
            ])
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let took = started.elapsed();
    (f64::from(count) * hosts as f64 / took.as_secs_f64(), took)
}

fn main() {
    let server = redis();
    let port = server.port;
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = loader
        .load_file("redis", std::path::Path::new(plugins::REDIS))
        .unwrap();

    let mut c = Criterion::default().configure_from_args();
    latency(&mut c, &plugin, port);
    c.final_summary();

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average before the throughput runs: {}", load.trim());
    println!(
        "throughput, get-proxy + report-success round trips (in-process hosts, median of 3 runs of 3 s):"
    );
    for hosts in [1, 4] {
        let mut runs: Vec<f64> = (0..3)
            .map(|_| threads(&plugin, port, hosts, Duration::from_secs(3)))
            .collect();
        runs.sort_by(f64::total_cmp);
        println!(
            "  {hosts} host(s): {:>9.0} round trips/s (runs: {:.0} {:.0} {:.0})",
            runs[1], runs[0], runs[1], runs[2]
        );
    }
    println!(
        "throughput, `ytdlp-host proxies report --count 5000` processes side by side (median of 3):"
    );
    for hosts in [1, 4] {
        let mut runs: Vec<(f64, Duration)> = (0..3).map(|_| processes(port, hosts, 5000)).collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (rate, took) = runs[1];
        println!(
            "  {hosts} process(es): {rate:>9.0} reports/s ({} reports in {:.2} s; runs: {:.0} {:.0} {:.0})",
            5000 * hosts,
            took.as_secs_f64(),
            runs[0].0,
            runs[1].0,
            runs[2].0
        );
    }
}
