//! The API against its own contract: schemathesis (from PyPI) generates
//! requests from `/openapi.json` for every operation and checks the
//! answers (documented status codes and bodies only, no 5xx, auth not
//! ignored, ...), with a token. The service runs a stub yt-dlp (a fake,
//! named so): generated URLs must never reach a real yt-dlp or the
//! network. Afterwards the service is still healthy and no generated
//! request got past the request policy.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Env, harness};
use crate::service::{Service, files_under};
use ytdlp_host_service::auth::{Scope, digest_line};

const TOKEN: &str = "schemathesis-token-0123456789";

/// schemathesis: `$YTDLP_HOST_SCHEMATHESIS`, else the venv `.ci/run`
/// installs it into.
fn schemathesis() -> PathBuf {
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/st-venv/bin/schemathesis");
    std::env::var_os("YTDLP_HOST_SCHEMATHESIS")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| venv.is_file().then_some(venv))
        .or_else(|| harness::find("schemathesis"))
        .expect("schemathesis is not installed; bash .ci/run installs it into target/st-venv")
}

/// The stub yt-dlp (tests/fixtures/stub-yt-dlp).
fn stub() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/stub-yt-dlp")
}

#[test]
#[ignore = "needs schemathesis (bash .ci/run installs it into target/st-venv)"]
fn service_passes_schemathesis_with_a_token() {
    let st = schemathesis();
    let env = Env::new();
    let tokens = env.path().join("tokens");
    std::fs::write(&tokens, digest_line(TOKEN, Scope::Write) + "\n").unwrap();
    let download_dir = env.out_dir();
    let cfg = env.write_config(&format!(
        "runner = \"process\"\npersist_health = false\n\n[serve]\ndownload_dir = \"{}\"\ntokens_file = \"{}\"\nkeep_finished = {{ count = 100000 }}\n",
        download_dir.display(),
        tokens.display()
    ));
    let stub_log = env.path().join("stub-argv.jsonl");
    let mut cmd = env.cmd();
    cmd.env("YTDLP_HOST_YT_DLP", stub())
        .env("STUB_YT_DLP_LOG", &stub_log)
        .arg("--config")
        .arg(&cfg);
    let svc = Service::spawn(&env, &mut cmd, &["--queue-limit", "100000"], Some(TOKEN));

    let report = env.path().join("schemathesis-report");
    let out = env.path().join("schemathesis.txt");
    let mut child = Command::new(&st)
        .current_dir(env.path())
        .env("YTDLP_HOST_TOKEN", TOKEN)
        .env("NO_COLOR", "1")
        .arg("--config-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/schemathesis.toml"
        ))
        .arg("run")
        .arg(format!("{}/openapi.json", svc.base))
        // Every check; use_after_free is off in the config file too (a
        // cancelled download stays readable), but `--checks all` would
        // turn it back on.
        .args(["--checks", "all", "--exclude-checks", "use_after_free"])
        .args(["--wait-for-schema", "10", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(env.path().join("schemathesis.err")).unwrap())
        .spawn()
        .expect("run schemathesis");
    // Bounded by --max-examples; this only guards against a hang.
    let until = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("schemathesis ran over 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let err = std::fs::read_to_string(env.path().join("schemathesis.err")).unwrap_or_default();
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{text}\n{err}\nservice log:\n{}",
        svc.log()
    );
    assert!(text.contains("No issues found"), "{text}");
    // The summary (cases generated, phases) for the test's log.
    let summary = text.find("SUMMARY").map_or("", |at| &text[at..]);
    eprintln!("{summary}");

    // Still healthy, and still answering.
    let (status, health) = svc.get("/healthz");
    assert_eq!(
        (status, health["status"].as_str()),
        (200, Some("ok")),
        "{health}"
    );
    assert_eq!(svc.get("/downloads?limit=1").0, 200);

    // Every run yt-dlp got went through the policy: after the host's own
    // options (the proxy on stdin, the download root), only what the
    // allowlist writes back, paths inside the root.
    let root = download_dir.canonicalize().unwrap().display().to_string();
    let runs: Vec<Value> = std::fs::read_to_string(&stub_log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    assert!(!runs.is_empty(), "no POST got a download started");
    for run in &runs {
        let argv: Vec<String> = run["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let proxy_given = run["stdin_config"]
            .as_str()
            .is_some_and(|c| c.starts_with("--proxy "))
            || argv.iter().any(|a| a == "--proxy");
        assert!(proxy_given, "the host's proxy option is missing: {run}");
        let start = argv
            .iter()
            .position(|a| a.starts_with("--paths=temp:"))
            .expect("the host's download root")
            + 1;
        let end = argv
            .iter()
            .position(|a| a == "--")
            .expect("the URL after --");
        let user = &argv[start..end];
        assert_eq!(
            ytdlp_host_ytdlp::args::check_user_args(user),
            Ok(()),
            "{argv:?}"
        );
        for a in user {
            assert!(
                a.starts_with("--"),
                "not the canonical form: {a} in {argv:?}"
            );
            assert!(
                ![
                    "--exec",
                    "--ppa",
                    "--postprocessor-args",
                    "--external-downloader",
                    "--cookies",
                    "--download-archive",
                    "--cache-dir",
                    "--batch-file",
                    "--load-info-json",
                    "--plugin-dirs",
                    "--ffmpeg-location",
                ]
                .iter()
                .any(|bad| a.starts_with(bad)),
                "{a} reached yt-dlp: {argv:?}"
            );
            if let Some(p) = a.strip_prefix("--paths=") {
                assert!(p.split_once(':').unwrap().1.starts_with(&root), "{a}");
            }
            if let Some(o) = a.strip_prefix("--output=") {
                let template = match o.split_once(':') {
                    Some((k, rest))
                        if k.chars()
                            .all(|c| c.is_ascii_lowercase() || "_,".contains(c)) =>
                    {
                        rest
                    }
                    _ => o,
                };
                assert!(!template.starts_with('/'), "{a}");
                assert!(template.split('/').all(|c| c != ".."), "{a}");
            }
        }
    }
    assert_eq!(files_under(&download_dir), Vec::<String>::new());
}
