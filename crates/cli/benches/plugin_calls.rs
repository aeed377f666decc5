//! get-proxy + report-success round trip through the wasm boundary (the
//! bundled plugin), against the same logic called natively.
//!
//!     cargo bench --bench plugin_calls

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use ytdlp_host_config::PluginConfig;
use ytdlp_host_plugin_host::{Backend, CompileCache, PluginRuntime};
use ytdlp_plugin_memory::engine::Engine;

fn proxies() -> Vec<(String, String)> {
    (1..=10)
        .map(|i| {
            (
                "proxy".to_string(),
                format!("http://127.0.0.1:{}", 3000 + i),
            )
        })
        .collect()
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("get-proxy + report-success");

    let mut native = Engine::from_options(&proxies()).unwrap();
    let mut t = 0u64;
    group.bench_function("native engine", |b| {
        b.iter(|| {
            t += 1;
            let p = native.next(black_box(t)).unwrap();
            native.success(black_box(&p.url), t);
        })
    });

    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = loader.load_bundled().unwrap();
    // Calls are async (so a deadline also cuts a plugin blocked in a host
    // call); measured as a caller sees them, through a current-thread runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut backend = rt
        .block_on(Backend::start(plugin, PluginConfig::default(), proxies()))
        .unwrap();
    let none = Vec::new();
    group.bench_function("wasm plugin, no options", |b| {
        b.iter(|| {
            rt.block_on(async {
                let p = backend.get_proxy(black_box(&none)).await.unwrap();
                backend.report_success(&p.url, &none).await.unwrap();
            })
        })
    });
    // What a download passes: the host.* context options.
    let host_opts: Vec<(String, String)> = [
        ("host.url", "https://www.example.com/watch?v=abcdefghijk"),
        ("host.site", "www.example.com"),
        ("host.attempt", "1"),
        ("host.download-id", "1a2b-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    group.bench_function("wasm plugin, 4 host options", |b| {
        b.iter(|| {
            rt.block_on(async {
                let p = backend.get_proxy(black_box(&host_opts)).await.unwrap();
                backend.report_success(&p.url, &host_opts).await.unwrap();
            })
        })
    });
    group.finish();
}

/// Every strategy of the bundled plugin at 10, 1k and 100k proxies, through
/// the wasm boundary: get-proxy (with a site) + report-success.
fn strategies(c: &mut Criterion) {
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call_opts: Vec<(String, String)> = vec![("host.site".into(), "www.example.com".into())];
    let mut group = c.benchmark_group("strategy round trip");
    for strategy in [
        "round_robin",
        "random",
        "least_used",
        "healthiest",
        "weighted",
    ] {
        for n in [10usize, 1_000, 100_000] {
            let mut init: Vec<(String, String)> = (0..n)
                .map(|i| {
                    (
                        "proxy".to_string(),
                        format!("http://10.{}.{}.{}:3128", i >> 16, (i >> 8) & 255, i & 255),
                    )
                })
                .collect();
            init.push(("strategy".into(), strategy.into()));
            let limits = ytdlp_host_config::LimitsConfig {
                init_timeout_ms: 60_000,
                memory_mib: 256,
                ..Default::default()
            };
            let config = PluginConfig {
                limits,
                ..PluginConfig::default()
            };
            let plugin = loader.load_bundled().unwrap();
            let mut backend = rt.block_on(Backend::start(plugin, config, init)).unwrap();
            group.bench_function(format!("{strategy}/{n}"), |b| {
                b.iter(|| {
                    rt.block_on(async {
                        let p = backend.get_proxy(black_box(&call_opts)).await.unwrap();
                        backend.report_success(&p.url, &call_opts).await.unwrap();
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, round_trip, strategies);
criterion_main!(benches);
