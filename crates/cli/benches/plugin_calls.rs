//! get-proxy + report-success round trip through the wasm boundary (the
//! bundled plugin), against the same logic called natively.
//!
//!     cargo bench --bench plugin_calls
//!
//! "with the typed context" passes what a download passes: a request for a
//! URL with its site, attempt and download id (a 0.1 plugin hears it as the
//! four `host.*` options).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use ytdlp_contract::{Request, Success};
use ytdlp_host_config::PluginConfig;
use ytdlp_host_plugin_host::{Backend, BackendHandle, CompileCache, PluginRuntime};

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

fn request() -> Request {
    ytdlp_host_core::first_request(
        "https://www.example.com/watch?v=abcdefghijk",
        "1a2b-1",
        Default::default(),
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn drive<F: std::future::Future>(rt: &tokio::runtime::Runtime, sync: bool, f: F) -> F::Output {
    if sync {
        ytdlp_host_plugin_host::exec::block_on(f)
    } else {
        rt.block_on(f)
    }
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("get-proxy + report-success");
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = loader.load_bundled().unwrap();
    eprintln!(
        "bundled plugin: contract {}, {} calls",
        plugin.version,
        plugin.call_mode()
    );
    let rt = rt();
    let mut backend = rt
        .block_on(Backend::start(plugin, PluginConfig::default(), proxies()))
        .unwrap();
    let none = Vec::new();
    let empty = Request::default();
    let ok = Success::default();
    // The plugin calls themselves, with no task hop: a sync plugin's
    // driven outside any runtime (where WASI's sync host calls may block),
    // an async one's on a current-thread runtime (its timer needs one).
    let sync_calls = backend.plugin().call_mode() == "sync";
    group.bench_function("wasm plugin, empty request", |b| {
        b.iter(|| {
            drive(&rt, sync_calls, async {
                let p = backend.get_proxy(black_box(&empty), &none).await.unwrap();
                backend
                    .report_success(&p, &empty, &ok, &none)
                    .await
                    .unwrap();
            })
        })
    });
    let req = request();
    group.bench_function("wasm plugin, with the typed context", |b| {
        b.iter(|| {
            drive(&rt, sync_calls, async {
                let p = backend.get_proxy(black_box(&req), &none).await.unwrap();
                backend.report_success(&p, &req, &ok, &none).await.unwrap();
            })
        })
    });
    // persist_health (the CLI's default): the plugin appends a journal
    // line to its granted state directory on every report.
    let state = tempfile::tempdir().unwrap();
    let mut pc = PluginConfig::default();
    pc.host.dirs.push(ytdlp_host_config::DirGrant {
        host: state.path().to_path_buf(),
        guest: "/state".to_string(),
        rw: true,
    });
    let mut opts = proxies();
    opts.push(("state_dir".to_string(), "/state".to_string()));
    let plugin = loader.load_bundled().unwrap();
    let mut persisted = rt.block_on(Backend::start(plugin, pc, opts)).unwrap();
    group.bench_function(
        "wasm plugin, typed context, persist_health (journal)",
        |b| {
            b.iter(|| {
                drive(&rt, sync_calls, async {
                    let p = persisted.get_proxy(black_box(&req), &none).await.unwrap();
                    persisted
                        .report_success(&p, &req, &ok, &none)
                        .await
                        .unwrap();
                })
            })
        },
    );
    // persist_health as the CLI does it since issue 16: every proxy a
    // record in the host's SQLite store, written by compare-and-swap.
    let mut pc = PluginConfig::default();
    pc.host.keyvalue.push("health".to_string());
    pc.host.store.path = Some(state.path().join("store.sqlite3"));
    let mut opts = proxies();
    opts.push(("keyvalue".to_string(), "health".to_string()));
    let plugin = loader.load_bundled().unwrap();
    let mut stored = rt.block_on(Backend::start(plugin, pc, opts)).unwrap();
    group.bench_function(
        "wasm plugin, typed context, persist_health (SQLite store)",
        |b| {
            b.iter(|| {
                drive(&rt, sync_calls, async {
                    let p = stored.get_proxy(black_box(&req), &none).await.unwrap();
                    stored.report_success(&p, &req, &ok, &none).await.unwrap();
                })
            })
        },
    );
    // The same on a local redis-server (`[store] url`): what several
    // machines sharing health pay per call.
    if ytdlp_host_tests::find("redis-server").is_some() {
        let redis = ytdlp_host_tests::redis();
        let mut pc = PluginConfig::default();
        pc.host.keyvalue.push("health".to_string());
        pc.host.store.url = Some(format!("redis://127.0.0.1:{}", redis.port));
        let mut opts = proxies();
        opts.push(("keyvalue".to_string(), "health".to_string()));
        let plugin = loader.load_bundled().unwrap();
        let mut on_redis = rt.block_on(Backend::start(plugin, pc, opts)).unwrap();
        group.bench_function(
            "wasm plugin, typed context, persist_health (Redis store)",
            |b| {
                b.iter(|| {
                    drive(&rt, sync_calls, async {
                        let p = on_redis.get_proxy(black_box(&req), &none).await.unwrap();
                        on_redis.report_success(&p, &req, &ok, &none).await.unwrap();
                    })
                })
            },
        );
    }
    // The smallest guest (the options-echo fixture hands out one fixed
    // proxy and ignores reports): what the boundary and the host's checks
    // cost without the bundled plugin's own work.
    let echo = loader
        .load_file(
            "echo",
            std::path::Path::new(ytdlp_host_tests::fixtures::OPTIONS_ECHO),
        )
        .unwrap();
    eprintln!("options-echo fixture: {} calls", echo.call_mode());
    let echo_sync = echo.call_mode() == "sync";
    let mut echo = rt
        .block_on(Backend::start(
            echo,
            PluginConfig::default(),
            vec![("use_proxy".to_string(), "http://127.0.0.1:3128".to_string())],
        ))
        .unwrap();
    group.bench_function("smallest guest (options-echo), typed context", |b| {
        b.iter(|| {
            drive(&rt, echo_sync, async {
                let p = echo.get_proxy(black_box(&req), &none).await.unwrap();
                echo.report_success(&p, &req, &ok, &none).await.unwrap();
            })
        })
    });
    // What a download pays: from an async task on a multi-thread runtime
    // (as the CLI and `serve` run), through the handle to the backend's
    // task and back, twice.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let plugin = loader.load_bundled().unwrap();
    let handle = mt.block_on(async {
        let b = Backend::start(plugin, PluginConfig::default(), proxies())
            .await
            .unwrap();
        BackendHandle::spawn(b)
    });
    group.bench_function("through BackendHandle, typed context", |b| {
        b.iter(|| {
            mt.block_on(async {
                let p = handle.get_proxy(black_box(&req), &none).await.unwrap();
                handle.report_success(&p, &req, &ok, &none).await.unwrap();
            })
        })
    });
    group.finish();
}

/// Every strategy of the bundled plugin at 10, 1k and 100k proxies, through
/// the wasm boundary: get-proxy (with a site) + report-success.
fn strategies(c: &mut Criterion) {
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let rt = rt();
    let req = request();
    let ok = Success::default();
    let none = Vec::new();
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
                        let p = backend.get_proxy(black_box(&req), &none).await.unwrap();
                        backend.report_success(&p, &req, &ok, &none).await.unwrap();
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, round_trip, strategies);
criterion_main!(benches);
