//! Finding, checking and listing plugins; stats support.

use crate::common::{Env, harness};
use harness::fixtures;

/// `plugins check FILE` on bytes; returns (exit ok, stderr).
fn check_bytes(env: &Env, name: &str, bytes: &[u8]) -> (bool, String) {
    let path = env.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let run = env.run(&["plugins", "check", path.to_str().unwrap()]);
    (run.ok(), run.stderr())
}

#[test]
fn malformed_files_are_refused_with_the_file_and_the_reason() {
    let env = Env::new();
    let echo = std::fs::read(fixtures::OPTIONS_ECHO).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.wasm", vec![], "empty file"),
        (
            "random.wasm",
            b"this is not wasm at all".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0".to_vec(),
            "core wasm module, not a component",
        ),
        (
            "truncated.wasm",
            echo[..echo.len() / 2].to_vec(),
            "not a valid component",
        ),
        (
            "other.wasm",
            std::fs::read(fixtures::OTHER_WORLD).unwrap(),
            "does not export `ytdlp:proxy/backend` (it exports: fixture:other/greeter@0.1.0)",
        ),
        (
            "future.wasm",
            std::fs::read(fixtures::FUTURE_CONTRACT).unwrap(),
            "built for contract 0.9.0; this host accepts 0.1.0, 0.2.0",
        ),
        (
            "foreign.wasm",
            std::fs::read(fixtures::FOREIGN_IMPORT).unwrap(),
            "imports that this host does not provide: fixture:foreign/secret-store@0.1.0",
        ),
    ];
    for (name, bytes, reason) in cases {
        let (ok, stderr) = check_bytes(&env, name, &bytes);
        assert!(!ok, "{name} passed the check");
        assert!(stderr.contains(name), "{name}: file not named: {stderr}");
        assert!(
            stderr.contains(reason),
            "{name}: want `{reason}`, got: {stderr}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{name}: not one line: {stderr}"
        );
    }
    let (ok, stderr) = check_bytes(&env, "echo.wasm", &echo);
    assert!(ok, "{stderr}");
}

#[test]
fn a_broken_file_is_listed_and_skipped_and_the_others_still_work() {
    let env = Env::new();
    std::fs::write(env.plugin_dir().join("broken.wasm"), b"garbage").unwrap();
    env.install_plugin(fixtures::OPTIONS_ECHO, "echo");
    env.install_plugin(fixtures::FUTURE_CONTRACT, "future");
    let run = env.run(&["plugins", "list", "--json"]);
    assert!(run.ok(), "{}", run.dump());
    let rows = run.json();
    let row = |name: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows}"))
            .clone()
    };
    assert_eq!(row("memory")["bundled"], true);
    assert_eq!(
        row("memory")["exports"],
        serde_json::json!(["backend", "stats", "admin", "describe"])
    );
    assert_eq!(row("echo")["error"], serde_json::Value::Null);
    assert_eq!(row("echo")["exports"], serde_json::json!(["backend"]));
    assert_eq!(row("echo")["contract_version"], "0.2.0");
    assert!(
        row("broken")["error"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file")
    );
    assert!(row("future")["error"].as_str().unwrap().contains("0.9.0"));

    // The broken file does not stop the echo plugin from being used.
    let run = env.run(&[
        "--backend",
        "echo",
        "--backend-opt",
        "use_proxy=http://127.0.0.1:9",
        "plugins",
        "list",
    ]);
    assert!(run.ok(), "{}", run.dump());
    assert!(run.stdout().contains("NOT LOADED"), "{}", run.dump());
}

#[test]
fn unknown_backend_names_the_known_ones() {
    let env = Env::new();
    env.install_plugin(fixtures::OPTIONS_ECHO, "echo");
    let run = env.run(&["--backend", "nope", "proxies", "stats"]);
    assert!(!run.ok());
    let err = run.stderr();
    assert!(
        err.contains("no plugin `nope`") && err.contains("memory, echo"),
        "{err}"
    );
}

#[test]
fn stats_of_the_bundled_plugin_and_a_plugin_without_stats() {
    let env = Env::new();
    let run = env.run(&[
        "--proxy",
        "http://127.0.0.1:3128",
        "--proxy",
        "socks5://u:pw@127.0.0.1:1080",
        "proxies",
        "stats",
        "--json",
    ]);
    assert!(run.ok(), "{}", run.dump());
    let rows = run.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["url"], "http://127.0.0.1:3128");
    assert_eq!(rows[1]["url"], "socks5://***@127.0.0.1:1080");
    // The id is that of the proxy's identity (scheme, host, port, user):
    // a rotated password keeps it.
    let id = ytdlp_contract::proxy_url::validate("socks5://u:pw@127.0.0.1:1080")
        .unwrap()
        .identity_id();
    assert_eq!(rows[1]["id"], id.as_str());
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[0]["successes"], 0);

    env.install_plugin(fixtures::OPTIONS_ECHO, "echo");
    let run = env.run(&["--backend", "echo", "proxies", "stats"]);
    assert!(!run.ok());
    assert!(
        run.stderr().contains("does not support stats"),
        "{}",
        run.dump()
    );
}

#[test]
fn init_can_refuse_options_with_a_message() {
    let env = Env::new();
    let config = env.write_config("[plugins.memory.options]\nstrategy = \"fastest\"\n");
    let run = env.run(&["--config", config.to_str().unwrap(), "proxies", "stats"]);
    assert!(!run.ok());
    let err = run.stderr();
    assert!(
        err.contains("plugin `memory`: init refused the options: option `strategy`: unknown strategy `fastest`"),
        "{err}"
    );
}

#[test]
fn a_bad_config_names_the_file_key_and_line_and_changes_nothing() {
    let env = Env::new();
    let config = env.write_config("proxies = [\"http://127.0.0.1:1\"]\nmax_atempts = 2\n");
    let run = env.run(&["--config", config.to_str().unwrap(), "plugins", "list"]);
    assert!(!run.ok());
    let err = run.stderr();
    assert!(err.contains("config.toml"), "{err}");
    assert!(
        err.contains("max_atempts") && err.contains("line 2"),
        "{err}"
    );
}
