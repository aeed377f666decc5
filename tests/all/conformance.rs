//! The conformance kit (`plugins test`) and `plugins install`, on the
//! bundled plugin and the fixture plugins.

use crate::common::{Env, Run, harness};
use harness::fixtures;

/// `plugins test ARGS... --json`, parsed.
fn kit(env: &Env, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["plugins", "test", "--json", "--repeat", "20"];
    all.extend_from_slice(args);
    let run = env.run(&all);
    let report = run.json();
    (run, report)
}

/// The status and detail of the check called `name`.
fn check(report: &serde_json::Value, name: &str) -> (String, String) {
    let row = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {report:#}"));
    (
        row["status"].as_str().unwrap().to_string(),
        row["detail"].as_str().unwrap().to_string(),
    )
}

fn failed(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| format!("{}: {}", c["name"], c["detail"]))
        .collect()
}

#[test]
fn the_bundled_plugin_passes() {
    let env = Env::new();
    let (run, report) = kit(
        &env,
        &[
            "memory",
            "--proxy",
            "http://127.0.0.1:3128",
            "--proxy",
            "socks5://u:pw@127.0.0.1:1080",
        ],
    );
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(report["passed"], true, "{:?}", failed(&report));
    assert_eq!(check(&report, "load").0, "pass");
    assert_eq!(check(&report, "init").0, "pass");
    let (status, detail) = check(&report, "repeat get-proxy x20");
    assert_eq!(status, "pass");
    assert!(
        detail.contains("20/20 valid") && detail.contains("2 distinct"),
        "{detail}"
    );
    for kind in [
        "proxy-connect",
        "proxy-timeout",
        "proxy-auth",
        "blocked",
        "content",
        "host",
        "unknown",
    ] {
        assert_eq!(check(&report, &format!("report-failure {kind}")).0, "pass");
    }
    assert_eq!(check(&report, "get-stats").0, "pass");
    assert_eq!(check(&report, "admin").0, "pass");
    let calls: Vec<&str> = report["timings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["call"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        ["get-proxy", "report-success", "report-failure", "get-stats"]
    );
    // Credentials never show.
    assert!(!run.stdout().contains("pw@"), "{}", run.stdout());

    // The table, for people.
    let run = env.run(&[
        "--proxy",
        "http://127.0.0.1:3128",
        "plugins",
        "test",
        "memory",
    ]);
    assert!(run.ok(), "{}", run.dump());
    let out = run.stdout();
    assert!(out.contains("get-proxy") && out.contains("MEDIAN"), "{out}");
    assert!(out.contains("PASS: "), "{out}");
}

#[test]
fn the_options_echo_fixture_passes_with_and_without_a_proxy() {
    let env = Env::new();
    let (run, report) = kit(
        &env,
        &[
            fixtures::OPTIONS_ECHO,
            "--backend-opt",
            "use_proxy=http://127.0.0.1:9",
        ],
    );
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(report["passed"], true, "{:?}", failed(&report));
    assert!(check(&report, "get-proxy").1.contains("http://127.0.0.1:9"));
    // No stats, no admin: cleanly unsupported, not a failure.
    assert_eq!(check(&report, "get-stats").0, "skip");
    assert_eq!(check(&report, "admin").0, "skip");

    // Without `use_proxy` it answers no-proxy-available: a legal answer.
    let (run, report) = kit(&env, &[fixtures::OPTIONS_ECHO]);
    assert!(run.ok(), "{}", run.dump());
    let (status, detail) = check(&report, "get-proxy");
    assert_eq!(status, "pass");
    assert!(detail.contains("no proxy available"), "{detail}");
}

#[test]
fn a_panicking_plugin_fails_with_the_panic_message() {
    let env = Env::new();
    let (run, report) = kit(&env, &[fixtures::HOSTILE, "--backend-opt", "mode=panic"]);
    assert!(!run.ok(), "a panicking plugin passed: {}", run.dump());
    assert_eq!(report["passed"], false);
    let (status, detail) = check(&report, "get-proxy");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("get-proxy trapped") && detail.contains("hostile plugin panics on purpose"),
        "{detail}"
    );
    // Each check tests the plugin itself: its reports work (the kit waits
    // out the restart backoff after the crash), so they pass.
    assert_eq!(check(&report, "report-success").0, "pass");
    assert_eq!(check(&report, "report-failure blocked").0, "pass");
    // The table says FAIL and exits non-zero too.
    let run = env.run(&[
        "plugins",
        "test",
        fixtures::HOSTILE,
        "--backend-opt",
        "mode=panic",
    ]);
    assert!(!run.ok());
    assert!(run.stdout().contains("FAIL"), "{}", run.dump());
}

#[test]
fn contract_violations_timeouts_and_refusals_fail_with_the_reason() {
    let env = Env::new();
    let (run, report) = kit(
        &env,
        &[
            fixtures::HOSTILE,
            "--backend-opt",
            "mode=bad-url",
            "--backend-opt",
            "target=ftp://127.0.0.1:21",
        ],
    );
    assert!(!run.ok());
    let (status, detail) = check(&report, "get-proxy");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("broke the contract") && detail.contains("not a proxy yt-dlp can use"),
        "{detail}"
    );

    let config = env.write_config("[plugins.hostile.limits]\ncall_timeout_ms = 100\n");
    let fixture = env.install_plugin(fixtures::HOSTILE, "hostile");
    let (run, report) = kit(
        &env,
        &[
            "--config",
            config.to_str().unwrap(),
            fixture.to_str().unwrap(),
            "--backend-opt",
            "mode=sleep",
        ],
    );
    assert!(!run.ok());
    let (status, detail) = check(&report, "report-failure proxy-connect");
    assert_eq!(status, "fail");
    assert!(
        detail.contains("report-failure timed out after 100 ms"),
        "{detail}"
    );

    let (run, report) = kit(&env, &[fixtures::OPTIONS_ECHO, "--backend-opt", "refuse=1"]);
    assert!(!run.ok());
    let (status, detail) = check(&report, "init");
    assert_eq!(status, "fail");
    assert!(detail.contains("refused by option `refuse`"), "{detail}");
}

#[test]
fn a_file_that_is_not_a_plugin_fails_at_load() {
    let env = Env::new();
    let path = env.path().join("garbage.wasm");
    std::fs::write(&path, b"not wasm").unwrap();
    let (run, report) = kit(&env, &[path.to_str().unwrap()]);
    assert!(!run.ok());
    let (status, detail) = check(&report, "load");
    assert_eq!(status, "fail");
    assert!(detail.contains("not a WebAssembly file"), "{detail}");
}

#[test]
fn install_checks_copies_and_compiles_ahead() {
    let env = Env::new();
    let src = env.path().join("echo.wasm");
    std::fs::copy(fixtures::OPTIONS_ECHO, &src).unwrap();
    let run = env.run(&["plugins", "install", src.to_str().unwrap()]);
    assert!(run.ok(), "{}", run.dump());
    let out = run.stdout();
    assert!(out.contains("installed plugin `echo`"), "{out}");
    assert!(out.contains("next load") && out.contains("(Hit)"), "{out}");
    let dest = env.plugin_dir().join("echo.wasm");
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(fixtures::OPTIONS_ECHO).unwrap()
    );
    // No temp file is left behind.
    let names: Vec<String> = std::fs::read_dir(env.plugin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["echo.wasm"]);
    // It is usable at once, from the cache.
    let run = env.run(&["plugins", "check", dest.to_str().unwrap()]);
    assert!(run.ok() && run.stdout().contains("(Hit)"), "{}", run.dump());
    // Again: replaced.
    let run = env.run(&["plugins", "install", src.to_str().unwrap()]);
    assert!(
        run.stdout().contains("replaced plugin `echo`"),
        "{}",
        run.dump()
    );

    // Refusals name the file and the reason, and install nothing.
    let bad = env.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x01\0\0\0").unwrap();
    let future = env.path().join("future.wasm");
    std::fs::copy(fixtures::FUTURE_CONTRACT, &future).unwrap();
    let memory = env.path().join("memory.wasm");
    std::fs::copy(fixtures::OPTIONS_ECHO, &memory).unwrap();
    for (file, reason) in [
        (&bad, "core wasm module, not a component"),
        (&future, "built for contract 0.9.0"),
        (&memory, "the bundled plugin's"),
    ] {
        let run = env.run(&["plugins", "install", file.to_str().unwrap()]);
        assert!(!run.ok(), "{}", run.dump());
        let err = run.stderr();
        assert!(
            err.contains(file.to_str().unwrap()) && err.contains("refused") && err.contains(reason),
            "{err}"
        );
    }
    let names: Vec<String> = std::fs::read_dir(env.plugin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["echo.wasm"]);
}
