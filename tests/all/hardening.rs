//! The hardening issue's holes, one test each: resource limits that are
//! real, text from plugins that cannot reach the terminal raw, secrets that
//! never show, fail-closed policies, a backend that survives a cancelled
//! caller, the sandbox's edges, and processes that never outlive the host.

use base64::Engine as _;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ytdlp_contract::proxy_url;
use ytdlp_host_config::{Grants, LimitsConfig, PluginConfig};
use ytdlp_host_core::{PluginSource, ProxySource};
use ytdlp_host_plugin_host::{Backend, BackendError, CompileCache, PluginRuntime, ProxyChoice};

use crate::common::{Env, Run, harness};
use harness::{MediaServer, fixtures, free_port, tinyproxy, wat_fixtures};

fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn start(
    file: &str,
    init: &[(&str, &str)],
    limits: LimitsConfig,
) -> Result<Backend, BackendError> {
    let runtime = PluginRuntime::new(CompileCache::disabled()).unwrap();
    let plugin = runtime.load_file("hostile", Path::new(file)).unwrap();
    let config = PluginConfig {
        limits,
        grants: Grants::default(),
        ..PluginConfig::default()
    };
    Backend::start(plugin, config, opts(init)).await
}

fn short_limits() -> LimitsConfig {
    LimitsConfig {
        call_timeout_ms: 2_000,
        ..LimitsConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Resource limits

#[tokio::test(flavor = "multi_thread")]
async fn a_table_grow_flood_is_refused_before_it_allocates() {
    let err = start(wat_fixtures::TABLE_FLOOD, &[], short_limits())
        .await
        .err()
        .expect("init must fail");
    assert!(
        matches!(&err, BackendError::ResourceLimit { what, .. } if what.contains("table elements")),
        "{err}"
    );
    // The host is alive and its memory is not 8 GiB bigger.
    let rss = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = rss.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(pages * 4096 < 2 << 30, "RSS {} MiB", (pages * 4096) >> 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_small_memories_count_against_one_budget() {
    let err = start(wat_fixtures::MANY_MEMORIES, &[], short_limits())
        .await
        .err()
        .expect("instantiation must fail");
    assert!(
        matches!(&err, BackendError::OutOfMemory { limit_mib: 64, .. }),
        "{err}"
    );
    // With room for all twelve, the same component runs.
    let roomy = LimitsConfig {
        memory_mib: 128,
        ..short_limits()
    };
    assert!(start(wat_fixtures::MANY_MEMORIES, &[], roomy).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_wasi_resources_is_cut_and_the_next_call_works() {
    let mut b = start(fixtures::HOSTILE, &[], short_limits()).await.unwrap();
    let err = b
        .get_proxy(
            &ytdlp_contract::Request::default(),
            &opts(&[("mode", "pollables")]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::ResourceLimit { what, .. } if what.contains("open WASI resources")),
        "{err}"
    );
    assert!(
        b.get_proxy(
            &ytdlp_contract::Request::default(),
            &opts(&[("mode", "ok")])
        )
        .await
        .is_ok()
    );
}

#[test]
fn a_stderr_flood_is_rate_limited_in_the_log() {
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    let cfg = env.write_config("[plugins.hostile.limits]\ncall_timeout_ms = 20000\n");
    let run = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--backend",
        "hostile",
        "--backend-opt",
        "mode=stderr-flood",
        "proxies",
        "get",
    ]);
    let err = run.stderr();
    let logged = err.matches("hostile plugin stderr line").count();
    assert!(run.ok(), "{}", run.dump());
    // 20,000 lines written, at most a few seconds. worth logged.
    assert!((1..=200).contains(&logged), "{logged} lines logged");
    assert!(err.contains("more stderr line(s) not logged"), "{err}");
}

// ---------------------------------------------------------------------------
// Text from plugins never reaches the terminal raw

/// No terminal control, no NUL, no forged line of the host's output.
fn assert_clean(what: &str, text: &str) {
    for bad in ['\u{1b}', '\u{0}', '\u{7}'] {
        assert!(!text.contains(bad), "{what}: raw {bad:?} in:\n{text}");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("done http://127.0.0.1/forged")),
        "{what}: a forged line:\n{text}"
    );
}

#[test]
fn escape_sequences_from_a_plugin_are_escaped_everywhere() {
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    let base = ["--backend", "hostile", "--backend-opt", "mode=escape"];
    let run = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(extra);
        env.run(&a)
    };
    let get = run(&["proxies", "get"]);
    assert!(!get.ok());
    assert!(
        get.stderr().contains("no proxy: \\u{1b}[31mred"),
        "{}",
        get.dump()
    );
    assert_clean("proxies get", &get.stderr());
    let table = run(&["proxies", "stats"]);
    assert_clean("proxies stats", &table.stdout());
    assert_eq!(
        table.stdout().lines().count(),
        2,
        "one header, one row:\n{}",
        table.stdout()
    );
    let json = run(&["proxies", "stats", "--json"]);
    assert_clean("proxies stats --json", &json.stdout());
    let kit = env.run(&["plugins", "test", "hostile", "--backend-opt", "mode=escape"]);
    assert_clean("plugins test", &kit.stdout());
    // A download that fails with the plugin's message, in both output modes.
    let media = MediaServer::start();
    let url = media.url("/clip.mp4");
    for json in [false, true] {
        let mut a: Vec<&str> = base.to_vec();
        a.extend(["-v", "download", "--on-no-proxy", "fail", "-o"]);
        let out = env.out_dir().join("%(id)s.%(ext)s");
        let out = out.to_str().unwrap();
        a.push(out);
        if json {
            a.push("--json");
        }
        a.push(&url);
        let d = env.run(&a);
        assert!(!d.ok());
        assert_clean("download stdout", &d.stdout());
        assert_clean("download stderr", &d.stderr());
        assert!(d.stderr().contains("failed: "), "{}", d.dump());
    }
    assert_eq!(media.requests(), 0, "nothing went out");
    // A refusal at init and an invalid URL with a newline: same.
    let cfg = env.write_config("[plugins.hostile.options]\nrefuse = \"escape\"\n");
    let init = env.run(&[
        "--config",
        cfg.to_str().unwrap(),
        "--backend",
        "hostile",
        "proxies",
        "get",
    ]);
    assert!(
        init.stderr().contains("init refused the options"),
        "{}",
        init.dump()
    );
    assert_clean("init refusal", &init.stderr());
    let bad = env.run(&[
        "--backend",
        "hostile",
        "--backend-opt",
        "mode=bad-url",
        "--backend-opt",
        "target=http://127.0.0.1:1\ndone http://127.0.0.1/forged.mp4 -> /etc/passwd",
        "proxies",
        "get",
    ]);
    assert!(
        bad.stderr().contains("not a proxy yt-dlp can use"),
        "{}",
        bad.dump()
    );
    assert_clean("invalid URL", &bad.stderr());
}

// ---------------------------------------------------------------------------
// Secrets

/// Every output of a run, both streams.
fn all_output(run: &Run) -> String {
    format!("{}\n{}", run.stdout(), run.stderr())
}

#[test]
#[ignore = "needs yt-dlp and microsocks (bash .ci/run installs them)"]
fn credentials_with_any_characters_never_show_in_any_output() {
    let media = MediaServer::start();
    // Characters a generated password has and the old masking stopped at
    // (tinyproxy takes only letters and digits; microsocks takes these).
    let (user, pass) = ("APIKEYuser", "pa),s,s'w]d/x");
    let proxy = harness::microsocks(Some((user, pass)));
    let env = Env::new();
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let url = format!("socks5://{user}:{}@127.0.0.1:{}", enc(pass), proxy.port);
    let mut outputs = Vec::new();
    for runner in ["process", "worker"] {
        outputs.push(env.download(&[
            "-v",
            "--runner",
            runner,
            "--proxy",
            &url,
            &media.url("/clip.mp4"),
        ]));
        outputs.push(env.download(&[
            "-vv",
            "--runner",
            runner,
            "--proxy",
            &url,
            &media.url("/missing.mp4"),
        ]));
    }
    outputs.push(env.run(&["--proxy", &url, "proxies", "stats"]));
    outputs.push(env.run(&["--proxy", &url, "proxies", "stats", "--json"]));
    outputs.push(env.run(&["-vv", "--proxy", &url, "proxies", "get"]));
    outputs.push(env.run(&["--proxy", &url, "plugins", "test", "memory"]));
    // A URL that does not even parse, and one of a plugin's.
    outputs.push(env.run(&[
        "--proxy",
        &format!("http://{user}:s3cret/x@127.0.0.1:{}", proxy.port),
        "proxies",
        "get",
    ]));
    outputs.push(env.run(&[
        "--proxy",
        &format!("{user}:s3cret@127.0.0.1:{}", proxy.port),
        "proxies",
        "get",
    ]));
    assert!(outputs[0].ok(), "{}", outputs[0].dump());
    for run in &outputs {
        let text = all_output(run);
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        for secret in [
            pass,
            &enc(pass),
            &b64(pass),
            &b64(&format!("{user}:{pass}")),
            user,
            "s3cret",
        ] {
            assert!(!text.contains(secret), "`{secret}` shows in:\n{text}");
        }
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn the_proxy_password_is_never_in_a_command_line() {
    let media = MediaServer::start();
    let proxy = tinyproxy(Some(("bob", "cmdlinesecret")));
    let env = Env::new();
    // From a config file (0600 is the user's business), so that no command
    // line, the host's included, needs the secret.
    let cfg = env.write_config(&format!(
        "proxies = [\"http://bob:cmdlinesecret@127.0.0.1:{}\"]\n",
        proxy.port
    ));
    let mut child = env
        .cmd()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "download",
            "--runner",
            "process",
            "-o",
        ])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .arg(media.url("/slow/3000/cmdline.mp4"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen_ytdlp = false;
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < until {
        for cmdline in cmdlines() {
            assert!(
                !cmdline.contains("cmdlinesecret"),
                "in a command line: {cmdline}"
            );
            seen_ytdlp |=
                cmdline.contains("/slow/3000/cmdline.mp4") && !cmdline.contains("ytdlp-host");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(seen_ytdlp, "yt-dlp was never seen running");
}

/// Every process's command line, its arguments joined by spaces.
fn cmdlines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .collect()
}

// ---------------------------------------------------------------------------
// Fail closed

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn a_refused_init_or_a_hung_one_never_downloads_direct() {
    let media = MediaServer::start();
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    let urls = [media.url("/clip.mp4"), media.url("/v/two.mp4")];
    // A typo in the bundled plugin's options, with a proxy configured.
    let typo = env.write_config("[plugins.memory.options]\nstrategy = \"fastest\"\n");
    let run = env.download(&[
        "--config",
        typo.to_str().unwrap(),
        "--proxy",
        "http://127.0.0.1:9",
        &urls[0],
        &urls[1],
    ]);
    // A plugin whose init never returns, with `fail` chosen.
    let hang = env.write_config("[plugins.hostile.options]\ninit = \"loop\"\n[plugins.hostile.limits]\ninit_timeout_ms = 300\n");
    let hung = env.download(&[
        "--config",
        hang.to_str().unwrap(),
        "--backend",
        "hostile",
        "--on-no-proxy",
        "fail",
        &urls[0],
        &urls[1],
    ]);
    for (what, run, reason) in [
        ("typo", &run, "unknown strategy `fastest`"),
        ("hung init", &hung, "init timed out"),
    ] {
        assert!(!run.ok(), "{what}: {}", run.dump());
        // Every URL ends with its line, and the batch with its summary.
        let failed = run.json_lines();
        assert_eq!(failed.len(), 2, "{what}: {}", run.dump());
        for f in &failed {
            assert_eq!(f["status"], "failed");
            assert!(f["error"].as_str().unwrap().contains(reason), "{what}: {f}");
        }
        assert!(
            run.stdout().contains("\"event\":\"summary\""),
            "{what}: {}",
            run.dump()
        );
        assert!(
            run.stderr().contains("summary: 0 done, 2 failed"),
            "{what}: {}",
            run.dump()
        );
    }
    assert_eq!(
        media.requests(),
        0,
        "a URL was downloaded from this machine's address"
    );
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn with_proxies_configured_the_default_is_wait_and_without_any_it_says_direct() {
    let media = MediaServer::start();
    let env = Env::new();
    // One dead proxy: its pre-flight fails, it is benched, then there is
    // no proxy; the default policy (`wait`, here for at most a second)
    // must not go direct, and ends with the reason.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let cfg = env.write_config("[plugins.memory.options]\nfailure_threshold = 1\n");
    let run = env.download(&[
        "--config",
        cfg.to_str().unwrap(),
        "--max-wait",
        "1",
        "--proxy",
        &dead,
        &media.url("/clip.mp4"),
    ]);
    assert!(!run.ok(), "{}", run.dump());
    assert_eq!(media.requests(), 0, "went direct: {}", run.dump());
    let error = run.json_lines()[0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("policy `wait`"), "{error}");
    let attempts = crate::common::attempts(&run.json_lines()[0]);
    assert!(attempts.iter().all(|(p, _)| p != "direct"), "{attempts:?}");
    // Nothing configured at all: direct, and said so.
    let env = Env::new();
    let run = env.download(&[&media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    assert!(
        run.stderr().contains("no proxy is configured"),
        "{}",
        run.dump()
    );
}

// ---------------------------------------------------------------------------
// A backend you can cancel around

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_that_goes_away_mid_call_neither_poisons_the_instance_nor_loses_the_report() {
    let b = start(fixtures::HOSTILE, &[], short_limits()).await.unwrap();
    let source = std::sync::Arc::new(PluginSource::new(b));
    let proxy = ProxyChoice::for_url(proxy_url::validate("http://127.0.0.1:9").unwrap());
    let failure = ytdlp_contract::Failure::new(
        ytdlp_contract::FailureKind::ProxyConnect,
        "cancelled mid-call",
    );
    let during = opts(&[("mode", "sleep-short")]);
    // The caller (a download being cancelled) gives up 100 ms into a call
    // that sleeps 300 ms in a host call.
    let s = source.clone();
    let call = tokio::spawn(async move {
        let req = ytdlp_contract::Request::default();
        let _ = s.report_failure(&proxy, &req, &failure, 0, &during).await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    call.abort();
    let _ = call.await;
    // The next call is served by the same instance (no trap, no restart),
    // and the report was made.
    let answer = source
        .get_proxy(
            &ytdlp_contract::Request::default(),
            &opts(&[("mode", "count")]),
        )
        .await;
    match answer {
        Err(BackendError::Unavailable { message, .. }) => assert_eq!(message, "reports: 1"),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The sandbox's edges

#[test]
fn a_grant_into_the_hosts_own_directories_is_refused() {
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    for dir in [
        env.path().join("cache"),
        env.path().join("config"),
        env.path().to_path_buf(),
    ] {
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = env.write_config(&format!(
            "[plugins.hostile.grants]\ndirs = [{{ host = \"{}\", guest = \"/host\", rw = true }}]\n",
            dir.display()
        ));
        let run = env.run(&[
            "--config",
            cfg.to_str().unwrap(),
            "--backend",
            "hostile",
            "proxies",
            "get",
        ]);
        assert!(!run.ok());
        assert!(
            run.stderr().contains("keeps to itself"),
            "{}: {}",
            dir.display(),
            run.dump()
        );
    }
}

#[test]
fn a_compile_cache_others_can_write_is_not_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    env.install_plugin(fixtures::OPTIONS_ECHO, "echo");
    let check = || {
        let wasm = env.plugin_dir().join("echo.wasm");
        env.run(&[
            "--backend",
            "echo",
            "plugins",
            "check",
            wasm.to_str().unwrap(),
        ])
    };
    let first = check();
    assert!(first.ok(), "{}", first.dump());
    let cache = env.path().join("cache/ytdlp-host/compiled");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the cache is private: {mode:o}");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let second = check();
    assert!(second.ok(), "{}", second.dump());
    assert!(
        second
            .stderr()
            .contains("not using the compiled plugin cache"),
        "{}",
        second.dump()
    );
    assert!(second.stdout().contains("(Compiled)"), "{}", second.dump());
}

#[test]
fn a_name_in_a_tcp_grant_allows_looking_up_that_name_only() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::new();
    env.install_plugin(fixtures::HOSTILE, "hostile");
    let connect = |grant: &str, target: &str| {
        let cfg = env.write_config(&format!("[plugins.hostile.grants]\ntcp = [\"{grant}\"]\n"));
        let run = env.run(&[
            "--config",
            cfg.to_str().unwrap(),
            "--backend",
            "hostile",
            "--backend-opt",
            "mode=tcp",
            "--backend-opt",
            &format!("target={target}"),
            "proxies",
            "get",
        ]);
        run.stderr()
    };
    assert!(
        connect(&format!("localhost:{port}"), &format!("localhost:{port}")).contains("connect ok")
    );
    // The same address, by a name the grant does not name: no look-up.
    let other = connect(
        &format!("localhost:{port}"),
        &format!("ip6-localhost.invalid:{port}"),
    );
    assert!(other.contains("connect denied"), "{other}");
    // A grant by address allows no look-up at all.
    let by_ip = connect(&format!("127.0.0.1:{port}"), &format!("localhost:{port}"));
    assert!(by_ip.contains("connect denied"), "{by_ip}");
}

#[test]
fn a_config_file_in_the_current_directory_is_ignored() {
    let env = Env::new();
    // Env::cmd runs in env.path(): the file would be ./ytdlp-host.toml.
    std::fs::write(
        env.path().join("ytdlp-host.toml"),
        "proxies = [\"http://127.0.0.1:4444\"]\nyt_dlp = \"./evil\"\n",
    )
    .unwrap();
    let run = env.run(&["proxies", "stats"]);
    assert!(run.ok(), "{}", run.dump());
    assert!(run.stdout().contains("no proxies"), "{}", run.dump());
}

// ---------------------------------------------------------------------------
// Processes never outlive the host

fn spawn_download(env: &Env, runner: &str, urls: &[String], jobs: &str) -> Child {
    env.cmd()
        .args(["download", "--runner", runner, "-j", jobs, "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .args(urls)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn running_with(needle: &str) -> usize {
    cmdlines().iter().filter(|c| c.contains(needle)).count()
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn killing_the_host_kills_yt_dlp_and_the_workers_too() {
    let media = MediaServer::start();
    for (runner, jobs, signal) in [
        ("process", "1", libc::SIGKILL),
        ("process", "2", libc::SIGKILL),
        ("worker", "2", libc::SIGKILL),
        ("process", "2", libc::SIGHUP),
    ] {
        let env = Env::new();
        let tag = format!("orphan-{runner}-{jobs}-{signal}");
        let urls: Vec<String> = (0..2)
            .map(|i| media.url(&format!("/slow/30000/{tag}-{i}.mp4")))
            .collect();
        let mut host = spawn_download(&env, runner, &urls, jobs);
        let out = env.out_dir();
        let out = out.to_str().unwrap().to_string();
        // yt-dlp (or a worker) at work for this host's output directory.
        wait_until(&format!("{tag}: nothing started"), 30, || {
            media.paths().iter().any(|p| p.contains(&tag))
        });
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(host.id() as i32, signal) };
        let _ = host.wait();
        wait_until(&format!("{tag}: a process outlived the host"), 10, || {
            running_with(&out) == 0 && running_with(&tag) == 0
        });
        assert_eq!(running_with("ffmpeg"), 0);
    }
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn a_second_signal_stops_a_slow_graceful_shutdown_at_once() {
    let media = MediaServer::start();
    let env = Env::new();
    let mut host = spawn_download(&env, "process", &[media.url("/slow/60000/twice.mp4")], "1");
    wait_until("yt-dlp never started", 30, || {
        running_with("/slow/60000/twice.mp4") >= 2
    });
    // SAFETY: signals to our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGINT) };
    std::thread::sleep(Duration::from_millis(50));
    unsafe { libc::kill(host.id() as i32, libc::SIGINT) };
    let status = host.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    wait_until("yt-dlp outlived the host", 10, || {
        running_with("/slow/60000/twice.mp4") == 0
    });
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_run_past_its_deadline_is_not_retried_through_other_proxies() {
    let media = MediaServer::start();
    let (a, b) = (tinyproxy(None), tinyproxy(None));
    let env = Env::new();
    let cfg = env.write_config("run_timeout_secs = 2\n");
    for runner in ["process", "worker"] {
        let run = env.download(&[
            "--config",
            cfg.to_str().unwrap(),
            "--runner",
            runner,
            "--proxy",
            &a.url("http"),
            "--proxy",
            &b.url("http"),
            &media.url(&format!("/slow/20000/deadline-{runner}.mp4")),
        ]);
        let r = &run.json_lines()[0];
        let attempts = crate::common::attempts(r);
        assert_eq!(attempts.len(), 1, "{runner}: {}", run.dump());
        assert_eq!(
            attempts[0].1.as_deref(),
            Some("host"),
            "{runner}: {}",
            run.dump()
        );
    }
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn a_forged_progress_line_cannot_make_the_host_delete_a_file() {
    let media = MediaServer::start();
    let env = Env::new();
    let victim = env.path().join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    // `--print` after `--` is refused now (the host owns what yt-dlp
    // prints); a command yt-dlp runs writes to the same stdout. (A field in
    // the command, here in a shell comment, stops yt-dlp from appending the
    // file path to the line.)
    let forged = format!(
        "before_dl:echo '[progress] {{\"status\":\"downloading\",\"tmpfilename\":\"{}\"}}' # %(id)q",
        victim.display()
    );
    let mut host = env
        .cmd()
        .args(["download", "--runner", "process", "-o"])
        .arg(env.out_dir().join("%(id)s.%(ext)s"))
        .arg(media.url("/slow/30000/forge.mp4"))
        .args(["--", "--exec", &forged])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("yt-dlp never started", 30, || {
        media.paths().iter().any(|p| p.contains("forge.mp4"))
    });
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(host.id() as i32, libc::SIGINT) };
    let _ = host.wait();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
}

// ---------------------------------------------------------------------------
// The bundled plugin's files, and small things

#[test]
fn queries_write_no_state_and_do_not_rotate() {
    let env = Env::new();
    let (a, b) = ("http://127.0.0.1:3001", "http://127.0.0.1:3002");
    let first = env.run(&["--proxy", a, "--proxy", b, "proxies", "get"]);
    let state = env.path().join("state/ytdlp-host/memory");
    let before = snapshot_of(&state);
    let second = env.run(&["--proxy", a, "--proxy", b, "proxies", "get"]);
    let stats = env.run(&["--proxy", a, "--proxy", b, "proxies", "stats"]);
    assert!(first.ok() && second.ok() && stats.ok(), "{}", second.dump());
    assert_eq!(
        first.stdout(),
        second.stdout(),
        "a query advanced the rotation"
    );
    assert_eq!(before, snapshot_of(&state), "a query wrote state");
}

fn snapshot_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn proxy_urls_need_a_port_and_one_at_sign() {
    let env = Env::new();
    for (bad, why) in [
        ("http://127.0.0.1", "no port"),
        ("http://u:p@127.0.0.1:3128@x", "more than one `@`"),
    ] {
        let run = env.run(&["--proxy", bad, "proxies", "stats"]);
        assert!(!run.ok());
        assert!(run.stderr().contains(why), "{bad}: {}", run.dump());
        assert!(!run.stderr().contains("u:p"), "{}", run.dump());
    }
}

#[test]
fn a_report_by_hand_says_what_it_did() {
    let env = Env::new();
    let run = env.run(&[
        "--proxy",
        "http://u:pw@127.0.0.1:3001",
        "proxies",
        "report",
        "http://u:pw@127.0.0.1:3001",
        "--failure",
        "proxy-auth",
        "--count",
        "2",
    ]);
    assert!(run.ok(), "{}", run.dump());
    let out = run.stdout();
    assert!(
        out.contains("reported 2 proxy-auth failures for http://***@127.0.0.1:3001 [p"),
        "{out}"
    );
}
