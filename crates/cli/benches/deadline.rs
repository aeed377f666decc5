//! Time from a call's deadline to the host getting control back, for a
//! plugin stuck computing (epoch interruption) and one stuck in a host call
//! (a sleep: the timer around the call). Uses the hostile test fixture.
//!
//!     cargo bench --bench deadline

use std::time::{Duration, Instant};

use ytdlp_contract::{Failure, FailureKind, Request, proxy_url};
use ytdlp_host_config::{LimitsConfig, PluginConfig};
use ytdlp_host_plugin_host::{Backend, BackendError, CompileCache, PluginRuntime, ProxyChoice};

fn opts(mode: &str) -> Vec<(String, String)> {
    vec![("mode".to_string(), mode.to_string())]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let loader = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = loader
        .load_file(
            "hostile",
            std::path::Path::new(ytdlp_host_tests::fixtures::HOSTILE),
        )
        .unwrap();
    let proxy = ProxyChoice::for_url(proxy_url::validate("http://127.0.0.1:9").unwrap());
    let report = Failure::new(FailureKind::ProxyConnect, "");
    let req = Request::default();
    println!("deadline  case                      overshoot median / p90 / max (20 runs)");
    for deadline_ms in [50u64, 100, 200, 500] {
        let config = PluginConfig {
            limits: LimitsConfig {
                call_timeout_ms: deadline_ms,
                ..LimitsConfig::default()
            },
            ..PluginConfig::default()
        };
        let mut backend = rt
            .block_on(Backend::start(plugin.clone(), config, Vec::new()))
            .unwrap();
        for case in ["loop in get-proxy", "sleep in report-failure"] {
            let mut over: Vec<Duration> = (0..20)
                .map(|_| {
                    let started = Instant::now();
                    let err = rt.block_on(async {
                        if case.starts_with("loop") {
                            backend.get_proxy(&req, &opts("loop")).await.map(|_| ())
                        } else {
                            backend
                                .report_failure(&proxy, &req, &report, 0, &opts("sleep"))
                                .await
                        }
                    });
                    let took = started.elapsed();
                    assert!(matches!(err, Err(BackendError::Timeout { .. })), "{err:?}");
                    // A call that goes well resets the crash backoff.
                    rt.block_on(backend.get_proxy(&req, &opts("ok"))).unwrap();
                    took.saturating_sub(Duration::from_millis(deadline_ms))
                })
                .collect();
            over.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{deadline_ms:>5} ms  {case:24}  {:.1} / {:.1} / {:.1} ms",
                ms(over[10]),
                ms(over[17]),
                ms(over[19])
            );
        }
    }
}
