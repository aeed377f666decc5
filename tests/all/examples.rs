//! The example plugins in other languages (examples/python, javascript, c),
//! built from source by `.ci/run`: each passes the conformance kit in the
//! default-deny sandbox, the Python one downloads a real file through a real
//! tinyproxy, and a Python or JavaScript plugin compiles once, not per run.
//!
//! The built files are found at `$YTDLP_HOST_EXAMPLE_{PYTHON,JAVASCRIPT,C}`,
//! else where each example's `build.sh` writes them
//! (`examples/LANG/plugin.wasm`). A missing one fails its test: run
//! `bash .ci/run` (or that example's `build.sh`) first.

use std::path::PathBuf;

use crate::common::{Env, Run, attempts, harness};
use harness::{MediaServer, free_port, proxied_requests, tinyproxy};

/// The built example for `lang`, or a failure that says how to build it.
fn example(lang: &str) -> PathBuf {
    let var = format!("YTDLP_HOST_EXAMPLE_{}", lang.to_uppercase());
    let path = match std::env::var_os(&var) {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(lang)
            .join("plugin.wasm"),
    };
    assert!(
        path.is_file(),
        "the {lang} example is not built ({} is missing): run `bash .ci/run`, which installs the \
         guest toolchains and builds every example, or `examples/{lang}/build.sh`; ${var} may \
         name a built file instead",
        path.display()
    );
    path
}

/// A compile cache shared by these tests: the Python and JavaScript
/// components take seconds to compile, once.
fn shared_cache(mut c: std::process::Command) -> std::process::Command {
    c.env(
        "XDG_CACHE_HOME",
        concat!(env!("CARGO_TARGET_TMPDIR"), "/example-plugins-cache"),
    );
    c
}

fn host(env: &Env, args: &[&str]) -> Run {
    let mut c = shared_cache(env.cmd());
    c.args(args);
    Run::of(c)
}

/// `plugins test FILE --json` plus `args`; asserts it passed.
fn passes_the_kit(env: &Env, file: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plugins", "test", "--json", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = host(env, &all);
    let report = run.json();
    assert!(run.ok() && report["passed"] == true, "{}", run.dump());
    let warned: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "warn")
        .collect();
    assert!(warned.is_empty(), "warnings: {warned:?}");
    report
}

fn detail(report: &serde_json::Value, name: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
        .to_string()
}

#[test]
#[ignore = "needs the example plugins built from source (bash .ci/run builds them)"]
fn python_example_passes_the_kit() {
    let env = Env::new();
    let report = passes_the_kit(
        &env,
        &example("python"),
        &[
            "--backend-opt",
            "proxy=http://127.0.0.1:3128",
            "--backend-opt",
            "weight=socks5://u:pw@127.0.0.1:1080=3",
            "--backend-opt",
            "seed=7",
        ],
    );
    assert!(detail(&report, "repeat get-proxy x100").contains("2 distinct"));
    assert!(detail(&report, "load").contains("exports backend+stats,"));
}

#[test]
#[ignore = "needs the example plugins built from source (bash .ci/run builds them)"]
fn rust_example_routes_by_site_and_passes_the_kit() {
    let env = Env::new();
    let report = passes_the_kit(
        &env,
        &example("rust"),
        &[
            "--backend-opt",
            "default=http://127.0.0.1:3128",
            "--backend-opt",
            "route=video.example=socks5://127.0.0.1:1080",
        ],
    );
    assert!(detail(&report, "load").contains("exports backend+stats+admin"));
    // The kit's calls carry no site: the default route.
    assert!(detail(&report, "get-proxy").contains("127.0.0.1:3128"));
    // Installed and asked for a proxy for a routed site: its own proxy.
    env.install_plugin(example("rust").to_str().unwrap(), "route");
    let config = env.write_config(
        "backend = \"route\"\n[plugins.route.options]\ndefault = \"http://127.0.0.1:3128\"\nroute = [\"video.example=socks5://127.0.0.1:1080\"]\n",
    );
    let get = |url: &str| {
        let run = host(
            &env,
            &[
                "--config",
                config.to_str().unwrap(),
                "proxies",
                "get",
                "--for-url",
                url,
            ],
        );
        assert!(run.ok(), "{}", run.dump());
        run.stdout()
    };
    assert!(get("https://video.example/watch?v=1").starts_with("socks5://127.0.0.1:1080"));
    assert!(get("https://other.example/v").starts_with("http://127.0.0.1:3128"));
}

#[test]
#[ignore = "needs the example plugins built from source (bash .ci/run builds them)"]
fn javascript_example_passes_the_kit() {
    let env = Env::new();
    let report = passes_the_kit(
        &env,
        &example("javascript"),
        &[
            "--backend-opt",
            "proxy=http://127.0.0.1:3128",
            "--backend-opt",
            "proxy=socks5://127.0.0.1:1080",
        ],
    );
    // Least used: 100 calls over two proxies alternate, so both are used.
    assert!(detail(&report, "repeat get-proxy x100").contains("2 distinct"));
    assert!(detail(&report, "load").contains("exports backend+stats+admin"));
    assert!(detail(&report, "admin").contains("add-proxies answered 1"));
}

#[test]
#[ignore = "needs the example plugins built from source (bash .ci/run builds them)"]
fn c_example_reads_its_granted_file_and_passes_the_kit() {
    let env = Env::new();
    let plugin = example("c");
    // Default deny: without the grant, init says what to grant.
    let run = host(&env, &["plugins", "test", plugin.to_str().unwrap()]);
    assert!(!run.ok(), "{}", run.dump());
    assert!(
        run.stdout().contains("cannot read /data/proxies.txt") && run.stdout().contains("grant"),
        "{}",
        run.dump()
    );

    let data = env.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("proxies.txt"),
        "# loopback test proxies\nhttp://127.0.0.1:3128\n\n  socks5://u:pw@127.0.0.1:1080  \n",
    )
    .unwrap();
    let config = env.write_config(&format!(
        "[plugins.plugin.grants]\ndirs = [{{ host = \"{}\", guest = \"/data\" }}]\n",
        data.display()
    ));
    let report = passes_the_kit(&env, &plugin, &["--config", config.to_str().unwrap()]);
    assert!(detail(&report, "repeat get-proxy x100").contains("2 distinct"));
    assert!(!report.to_string().contains("pw@"), "{report}");

    // A bad line refuses init, naming the file and line.
    std::fs::write(
        data.join("proxies.txt"),
        "http://127.0.0.1:3128\nftp://nope\n",
    )
    .unwrap();
    let run = host(
        &env,
        &[
            "--config",
            config.to_str().unwrap(),
            "plugins",
            "test",
            plugin.to_str().unwrap(),
        ],
    );
    assert!(!run.ok());
    assert!(
        run.stdout().contains("/data/proxies.txt line 2"),
        "{}",
        run.dump()
    );
}

#[test]
#[ignore = "needs the example plugins, yt-dlp and tinyproxy (bash .ci/run builds and installs them)"]
fn python_example_downloads_through_tinyproxy() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    std::fs::copy(example("python"), env.plugin_dir().join("weighted.wasm")).unwrap();
    // A dead proxy of weight 0 is never chosen; the live one takes it all.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = env.write_config(&format!(
        "backend = \"weighted\"\n[plugins.weighted.options]\nweight = [\"{}=5\", \"{dead}=0\"]\n",
        proxy.url("http")
    ));
    let mut c = shared_cache(env.cmd());
    c.args([
        "--config",
        config.to_str().unwrap(),
        "download",
        "--json",
        "-o",
    ])
    .arg(env.out_dir().join("%(id)s.%(ext)s"))
    .arg(media.url("/clip.mp4"));
    let run = Run::of(c);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(results[0]["status"], "done", "{}", run.dump());
    assert_eq!(attempts(&results[0]), [(proxy.url("http"), None)]);
    let file = results[0]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), harness::CLIP);
    assert!(
        proxied_requests(&proxy.log(), &format!("127.0.0.1:{}/clip.mp4", media.port)) >= 1,
        "tinyproxy saw no request:\n{}",
        proxy.log()
    );
}

/// A Python or JavaScript component takes seconds to compile; the user
/// waits for that once: `plugins install` compiles ahead, and every later
/// load comes from the cache in milliseconds.
#[test]
#[ignore = "needs the example plugins built from source (bash .ci/run builds them)"]
fn big_components_compile_once() {
    for lang in ["python", "javascript"] {
        let env = Env::new();
        let src = env.path().join(format!("{lang}-example.wasm"));
        std::fs::copy(example(lang), &src).unwrap();
        // The env's own (empty) cache: the install compiles.
        let install = env.run(&["plugins", "install", src.to_str().unwrap()]);
        assert!(install.ok(), "{}", install.dump());
        assert!(
            install.stdout().contains("(Compiled)") && install.stdout().contains("(Hit)"),
            "{}",
            install.dump()
        );
        // The Python component compiles for many seconds: the user is told
        // so, and where to do it ahead (a quick compile says nothing).
        if lang == "python" {
            assert!(
                install.stderr().contains("compiling plugin")
                    && install.stderr().contains("plugins install"),
                "{}",
                install.dump()
            );
        }
        let check = env.run(&[
            "plugins",
            "check",
            env.plugin_dir()
                .join(format!("{lang}-example.wasm"))
                .to_str()
                .unwrap(),
        ]);
        assert!(check.ok(), "{}", check.dump());
        assert!(!check.stderr().contains("compiling"), "{}", check.dump());
        let out = check.stdout();
        assert!(out.contains("(Hit)"), "{out}");
        let ms: f64 = out
            .split("loaded in ")
            .nth(1)
            .and_then(|s| s.split(" ms").next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no load time in {out}"));
        assert!(ms < 1000.0, "{lang}: a cached load took {ms} ms: {out}");
    }
}
