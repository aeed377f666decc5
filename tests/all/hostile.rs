//! Hostile plugins, one test each: the host survives, the error is the typed
//! one, the download follows the policy, and the next call works.
//!
//! Most tests drive the host library directly (so they can look at the
//! typed error and time the interruption); the download ones run the binary
//! with the real yt-dlp.

use std::time::{Duration, Instant};

use ytdlp_contract::{FailureKind, proxy_url};
use ytdlp_host_config::{DirGrant, Grants, LimitsConfig, PluginConfig};
use ytdlp_host_plugin_host::{
    Backend, BackendError, Call, CompileCache, PluginRuntime, ProxyChoice,
};

use crate::common::{Env, attempts, harness};
use harness::{MediaServer, fixtures};

const DEADLINE_MS: u64 = 200;

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The hostile fixture, started with `init` options and grants.
struct Hostile {
    backend: Backend,
}

async fn hostile(init: &[(&str, &str)], grants: Grants) -> Hostile {
    let runtime = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = runtime
        .load_file("hostile", std::path::Path::new(fixtures::HOSTILE))
        .unwrap();
    let config = PluginConfig {
        limits: LimitsConfig {
            call_timeout_ms: DEADLINE_MS,
            ..LimitsConfig::default()
        },
        grants,
        ..PluginConfig::default()
    };
    let backend = Backend::start(plugin, config, opts(init)).await.unwrap();
    Hostile { backend }
}

impl Hostile {
    async fn get(&mut self, call: &[(&str, &str)]) -> Result<String, BackendError> {
        self.backend
            .get_proxy(&ytdlp_contract::Request::default(), &opts(call))
            .await
            .map(|c| c.url.expose().to_string())
    }

    /// After any misdeed, a well-behaved call on the same backend works
    /// (a new instance if the old one died).
    async fn next_call_works(&mut self) {
        let got = self.get(&[("mode", "ok")]).await;
        assert_eq!(got.unwrap(), "http://127.0.0.1:9");
    }
}

fn unavailable_message(e: BackendError) -> String {
    match e {
        BackendError::Unavailable { message, .. } => message,
        other => panic!("want backend-unavailable, got: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn infinite_loop_in_get_proxy_is_interrupted_at_the_deadline() {
    let mut h = hostile(&[], Grants::default()).await;
    let started = Instant::now();
    let err = h.get(&[("mode", "loop")]).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            err,
            BackendError::Timeout {
                call: Call::GetProxy,
                ms: DEADLINE_MS,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("plugin `hostile`: get-proxy timed out after {DEADLINE_MS} ms")
    );
    // Interrupted near the deadline, not after the plugin's 10 s of work;
    // the latency itself is measured in BENCHMARKS.md (a loaded CI machine
    // can delay the epoch ticker thread, so this bound is generous).
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    h.next_call_works().await;
    assert_eq!(h.backend.restarts(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sleeping_past_the_deadline_in_report_failure_is_cut_off() {
    let mut h = hostile(&[], Grants::default()).await;
    let proxy = ProxyChoice::for_url(proxy_url::validate("http://127.0.0.1:9").unwrap());
    let report = ytdlp_contract::Failure::new(FailureKind::ProxyConnect, "refused");
    let started = Instant::now();
    let err = h
        .backend
        .report_failure(
            &proxy,
            &ytdlp_contract::Request::default(),
            &report,
            0,
            &opts(&[("mode", "sleep")]),
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(
            err,
            BackendError::Timeout {
                call: Call::ReportFailure,
                ..
            }
        ),
        "{err}"
    );
    // The plugin asked for 10 s; the host gave it the deadline.
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_runs_out_of_memory() {
    let mut h = hostile(&[], Grants::default()).await;
    let err = h.get(&[("mode", "hog")]).await.unwrap_err();
    assert!(
        matches!(err, BackendError::OutOfMemory { limit_mib: 64, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("ran out of memory (limit 64 MiB)"),
        "{err}"
    );
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn panic_is_a_trap_with_the_guest_message() {
    let mut h = hostile(&[], Grants::default()).await;
    let err = h.get(&[("mode", "panic")]).await.unwrap_err();
    match &err {
        BackendError::Trap { message, .. } => {
            assert!(
                message.contains("hostile plugin panics on purpose"),
                "{err}"
            )
        }
        other => panic!("want a trap, got {other}"),
    }
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_is_a_trap() {
    let mut h = hostile(&[], Grants::default()).await;
    let err = h.get(&[("mode", "unreachable")]).await.unwrap_err();
    match &err {
        BackendError::Trap { message, .. } => {
            assert!(message.contains("unreachable"), "{err}")
        }
        other => panic!("want a trap, got {other}"),
    }
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_string_is_a_contract_violation() {
    let mut h = hostile(&[], Grants::default()).await;
    let err = h.get(&[("mode", "huge")]).await.unwrap_err();
    assert!(
        matches!(err, BackendError::ContractViolation { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("limit 1048576"), "{err}");
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_etc_passwd_without_a_grant_is_denied() {
    let mut h = hostile(&[], Grants::default()).await;
    let msg = unavailable_message(
        h.get(&[("mode", "read-file"), ("target", "/etc/passwd")])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("read denied"), "{msg}");
    h.next_call_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_grant_allows_reading_and_denies_writing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("list.txt"), "http://127.0.0.1:3128\n").unwrap();
    let grants = Grants {
        dirs: vec![DirGrant {
            host: dir.path().to_path_buf(),
            guest: "/data".into(),
            rw: false,
        }],
        ..Grants::default()
    };
    let mut h = hostile(&[], grants).await;
    let msg = unavailable_message(
        h.get(&[("mode", "read-file"), ("target", "/data/list.txt")])
            .await
            .unwrap_err(),
    );
    assert_eq!(msg, "read ok: 22 bytes");
    let msg = unavailable_message(
        h.get(&[("mode", "write-file"), ("target", "/data/new.txt")])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("write denied"), "{msg}");
    assert!(!dir.path().join("new.txt").exists());
    // Outside the granted directory: nothing.
    let msg = unavailable_message(
        h.get(&[("mode", "read-file"), ("target", "/etc/passwd")])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("read denied"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_needs_a_grant_for_that_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut h = hostile(&[], Grants::default()).await;
    let msg = unavailable_message(
        h.get(&[("mode", "tcp"), ("target", &addr)])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("connect denied"), "{msg}");

    let grants = Grants {
        tcp: vec![addr.clone()],
        ..Grants::default()
    };
    let mut h = hostile(&[], grants).await;
    let msg = unavailable_message(
        h.get(&[("mode", "tcp"), ("target", &addr)])
            .await
            .unwrap_err(),
    );
    assert_eq!(msg, "connect ok");
    // The grant is for that port only.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = other.local_addr().unwrap().to_string();
    let msg = unavailable_message(
        h.get(&[("mode", "tcp"), ("target", &other)])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("connect denied"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_variables_need_a_grant() {
    // SAFETY: set before any plugin reads it; other tests do not use it.
    unsafe { std::env::set_var("YTDLP_HOST_TEST_SECRET", "hunter2") };
    let mut h = hostile(&[], Grants::default()).await;
    let msg = unavailable_message(
        h.get(&[("mode", "env"), ("target", "YTDLP_HOST_TEST_SECRET")])
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("env denied"), "{msg}");
    let grants = Grants {
        env: vec!["YTDLP_HOST_TEST_SECRET".into()],
        ..Grants::default()
    };
    let mut h = hostile(&[], grants).await;
    let msg = unavailable_message(
        h.get(&[("mode", "env"), ("target", "YTDLP_HOST_TEST_SECRET")])
            .await
            .unwrap_err(),
    );
    assert_eq!(msg, "env ok: hunter2");
}

#[tokio::test(flavor = "multi_thread")]
async fn urls_that_could_smuggle_options_or_files_are_refused() {
    let mut h = hostile(&[], Grants::default()).await;
    for bad in [
        "--exec=touch /tmp/x",
        "file:///etc/passwd",
        "-x",
        "http://h:1/\n--exec",
    ] {
        let err = h
            .get(&[("mode", "bad-url"), ("target", bad)])
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::ContractViolation { .. }),
            "{bad}: {err}"
        );
        assert!(
            err.to_string().contains("not a proxy yt-dlp can use"),
            "{err}"
        );
    }
    h.next_call_works().await;
}

/// The same misdeeds in a real download: policy `direct` downloads without
/// a proxy (and never passes the bad URL to yt-dlp), policy `fail` fails
/// the URL with the typed reason.
#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn downloads_follow_the_policy_when_the_plugin_misbehaves() {
    let media = MediaServer::start();
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    let marker = env.path().join("smuggled");
    let exec = format!("--exec=touch {}", marker.display());
    for (mode, target, reason) in [
        ("loop", "", "get-proxy timed out after 200 ms"),
        ("bad-url", exec.as_str(), "not a proxy yt-dlp can use"),
        (
            "bad-url",
            "file:///etc/passwd",
            "not a proxy yt-dlp can use",
        ),
        ("panic", "", "hostile plugin panics on purpose"),
    ] {
        let config = env.write_config(&format!(
            "backend = \"hostile\"\n[plugins.hostile.options]\nmode = \"{mode}\"\ntarget = \"{target}\"\n[plugins.hostile.limits]\ncall_timeout_ms = 200\n"
        ));
        let cfg = config.to_str().unwrap();
        // `direct` chosen explicitly (with a plugin of one's own the
        // default is `fail`).
        let direct = env.download(&[
            "--config",
            cfg,
            "--on-no-proxy",
            "direct",
            &media.url("/clip.mp4"),
        ]);
        assert!(direct.ok(), "{mode}: {}", direct.dump());
        let r = &direct.json_lines()[0];
        assert_eq!(attempts(r), [("direct".to_string(), None)], "{mode}: {r}");
        assert!(
            direct.stderr().contains(reason),
            "{mode}: {}",
            direct.dump()
        );

        let fail = env.download(&[
            "--config",
            cfg,
            "--on-no-proxy",
            "fail",
            &media.url("/clip.mp4"),
        ]);
        assert!(!fail.ok(), "{mode}: {}", fail.dump());
        let r = &fail.json_lines()[0];
        assert_eq!(r["status"], "failed");
        assert!(r["error"].as_str().unwrap().contains(reason), "{mode}: {r}");
        assert!(
            fail.stderr().contains("plugin `hostile`"),
            "{}",
            fail.dump()
        );
    }
    assert!(
        !marker.exists(),
        "a plugin's URL reached yt-dlp as an option"
    );
}
