//! `ytdlp-host serve` attacked the way issue 12 found it open: each attack
//! is refused with the reason, no file appears outside the download
//! directory and no command runs. Real yt-dlp, real tinyproxy, a real media
//! server; every test also makes one legitimate request, so a policy that
//! refused everything would fail it.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Env, harness};
use crate::service::{Service, files_under};
use harness::{MediaServer, tinyproxy};
use ytdlp_host_service::auth::{Scope, digest_line};

const WRITE: &str = "write-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

/// A tokens file with a write and a read token (digests), and its
/// `[serve]` line.
fn tokens(env: &Env) -> String {
    let path = env.path().join("tokens");
    std::fs::write(
        &path,
        format!(
            "# test tokens\n{}\n{}\n",
            digest_line(WRITE, Scope::Write),
            digest_line(READ, Scope::Read)
        ),
    )
    .unwrap();
    format!("tokens_file = \"{}\"\n", path.display())
}

/// Every file under the env's directory but the download directory (and
/// the service's own log, config and state).
fn outside(env: &Env) -> Vec<String> {
    files_under(env.path())
        .into_iter()
        .filter(|f| {
            !f.starts_with("out/")
                && !f.starts_with("state/")
                && !f.starts_with("cache/")
                && f != "serve.log"
        })
        .collect()
}

fn post(svc: &Service, body: &Value) -> crate::service::Answer {
    svc.call(
        "POST",
        "/downloads",
        &[("content-type", "application/json")],
        Some(&body.to_string()),
    )
}

fn count_downloads(svc: &Service) -> usize {
    let (status, all) = svc.get("/downloads");
    assert_eq!(status, 200, "{all}");
    all["downloads"].as_array().unwrap().len()
}

/// Asserts a refusal with 400 naming `named`.
fn refused(svc: &Service, body: &Value, named: &str) {
    let a = post(svc, body);
    assert_eq!(a.status, 400, "{body} was not refused: {}", a.body);
    assert!(
        a.error().contains(&format!("`{named}`")),
        "{body}: the answer does not name `{named}`: {}",
        a.body
    );
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_refuses_options_that_run_commands_and_runs_none() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    // The process runner: it would pass --exec to yt-dlp, which would run
    // it after the (successful) download.
    let svc = Service::start_with(
        &env,
        &format!(
            "runner = \"process\"\nproxies = [\"{}\"]\n",
            proxy.url("http")
        ),
        &tokens(&env),
        &[],
        Some(WRITE),
    );
    let marker = env.path().join("pwned");
    let m = marker.display().to_string();
    let url = media.url("/clip.mp4");
    for (args, named) in [
        (json!(["--exec", format!("touch {m}")]), "--exec"),
        (json!([format!("--exec=touch {m}")]), "--exec"),
        (
            json!(["--exec-before-download", format!("touch {m}")]),
            "--exec-before-download",
        ),
        (json!(["--exe", format!("touch {m}")]), "--exe"),
        (
            json!(["--postprocessor-args", format!("ffmpeg:-y {m}")]),
            "--postprocessor-args",
        ),
        (json!(["--ppa", format!("ffmpeg:-y {m}")]), "--ppa"),
        (
            json!(["--external-downloader", "sh"]),
            "--external-downloader",
        ),
        (
            json!(["--external-downloader-args", format!("-c 'touch {m}'")]),
            "--external-downloader-args",
        ),
        (
            json!(["--config-locations", "/etc/passwd"]),
            "--config-locations",
        ),
        (
            json!(["--plugin-dirs", env.path().display().to_string()]),
            "--plugin-dirs",
        ),
        (json!(["--ffmpeg-location", "/bin/sh"]), "--ffmpeg-location"),
        (json!(["-wx", "--exec", format!("touch {m}")]), "-x"),
        (json!(["--", "--exec", format!("touch {m}")]), "--"),
    ] {
        refused(&svc, &json!({ "url": url, "ytdlp_args": args }), named);
    }
    assert_eq!(count_downloads(&svc), 0, "a refused request was queued");
    assert_eq!(media.requests(), 0, "yt-dlp ran for a refused request");
    assert!(!marker.exists(), "a command ran");

    // The legitimate request, through the same service: downloaded.
    let id = svc.submit_with(&json!({ "url": url, "ytdlp_args": ["-f", "best"] }));
    let s = svc.wait_state(&id, "done");
    assert!(
        s["result"]["file"]
            .as_str()
            .unwrap()
            .starts_with(&env.out_dir().display().to_string())
    );
    assert!(!marker.exists());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_refuses_outputs_outside_the_download_directory() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let victim = env.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::create_dir_all(env.out_dir()).unwrap();
    // An operator's symlink inside the download directory, leading out.
    std::os::unix::fs::symlink(&victim, env.out_dir().join("link")).unwrap();
    // The worker runner, whose own allowlist takes -o, -P, --cookies, ...
    let svc = Service::start_with(
        &env,
        &format!(
            "runner = \"worker\"\nproxies = [\"{}\"]\n",
            proxy.url("http")
        ),
        &tokens(&env),
        &[],
        Some(WRITE),
    );
    let before = outside(&env);
    let v = victim.display().to_string();
    let url = media.url("/clip.mp4");
    for (args, named) in [
        (json!(["-o", format!("{v}/authorized_keys")]), "-o"),
        (json!([format!("-o{v}/authorized_keys")]), "-o"),
        (json!([format!("--output={v}/x.%(ext)s")]), "--output"),
        (json!(["-o", "../victim/x.%(ext)s"]), "-o"),
        (json!(["-o", "%(title)s/%(title)s/x.%(ext)s"]), "-o"),
        (json!(["-o", "~/x.%(ext)s"]), "-o"),
        (json!(["-o", "$HOME/x.%(ext)s"]), "-o"),
        (json!(["-o", format!("infojson:{v}/x")]), "-o"),
        (json!(["-o", "link/x.%(ext)s"]), "-o"),
        (json!(["-P", v.clone()]), "-P"),
        (json!(["-P", "home:../victim"]), "-P"),
        (json!(["-P", format!("temp:{v}")]), "-P"),
        (json!(["-P", "link"]), "-P"),
        (
            json!(["--cookies", format!("{v}/cookies.txt")]),
            "--cookies",
        ),
        (
            json!(["--download-archive", format!("{v}/archive.txt")]),
            "--download-archive",
        ),
        (json!(["--cache-dir", format!("{v}/cache")]), "--cache-dir"),
        (json!(["--batch-file", "/etc/passwd"]), "--batch-file"),
        (
            json!(["--load-info-json", "/etc/passwd"]),
            "--load-info-json",
        ),
        (
            json!(["--print-to-file", "title", format!("{v}/t")]),
            "--print-to-file",
        ),
        (
            json!(["--output-na-placeholder", "../../x"]),
            "--output-na-placeholder",
        ),
    ] {
        refused(&svc, &json!({ "url": url, "ytdlp_args": args }), named);
    }
    assert_eq!(count_downloads(&svc), 0, "a refused request was queued");
    assert_eq!(media.requests(), 0, "yt-dlp ran for a refused request");
    assert_eq!(files_under(&victim), Vec::<String>::new());
    assert_eq!(
        outside(&env),
        before,
        "a file appeared outside the download directory"
    );

    // A template with a subdirectory inside the root is fine.
    let id = svc.submit_with(&json!({
        "url": url,
        "ytdlp_args": ["-o", "sub/%(id)s.%(ext)s", "--write-info-json"],
    }));
    let s = svc.wait_state(&id, "done");
    let file = PathBuf::from(s["result"]["file"].as_str().unwrap());
    assert_eq!(file, env.out_dir().join("sub/clip.mp4"), "{s}");
    assert_eq!(std::fs::read(&file).unwrap(), harness::CLIP);
    assert!(env.out_dir().join("sub/clip.info.json").is_file());
    assert_eq!(
        outside(&env),
        before,
        "a file appeared outside the download directory"
    );
    assert_eq!(files_under(&victim), Vec::<String>::new());
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn service_refuses_backend_options_the_operator_did_not_list() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        &format!("proxies = [\"{}\"]\n", proxy.url("http")),
        &format!(
            "{}client_backend_options = [\"sticky_key\"]\n",
            tokens(&env)
        ),
        &[],
        Some(WRITE),
    );
    let url = media.url("/clip.mp4");
    // The redis plugin's url/pool and the vendor plugin's base_url/token_env
    // are what an attacker would re-point.
    for key in ["url", "pool", "base_url", "token_env", "proxy", "strategy"] {
        refused(
            &svc,
            &json!({ "url": url, "backend_options": { key: "redis://127.0.0.1:1/evil" } }),
            key,
        );
    }
    refused(
        &svc,
        &json!({ "url": url, "backend_options": { "host.url": "http://x/" } }),
        "host.url",
    );
    assert_eq!(count_downloads(&svc), 0);
    assert_eq!(media.requests(), 0);
    // The key the operator listed is taken.
    let id = svc.submit_with(&json!({ "url": url, "backend_options": { "sticky_key": "a" } }));
    svc.wait_state(&id, "done");
    assert_eq!(count_downloads(&svc), 1);
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_refuses_what_a_web_page_can_send() {
    let media = MediaServer::start();
    let env = Env::new();
    // No token (loopback): what a page the user visits could reach.
    let svc = Service::start(&env, "", &[]);
    let body = json!({ "url": media.url("/clip.mp4") }).to_string();
    // Simple requests a browser sends cross-origin without a preflight.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.iter().map(|c| ("content-type", *c)).collect();
        let a = svc.call("POST", "/downloads", &headers, Some(&body));
        assert_eq!(a.status, 415, "{ct:?}: {}", a.body);
        assert!(a.error().contains("application/json"), "{}", a.body);
    }
    // A cross-origin request with the right type is refused for its origin.
    let a = svc.call(
        "POST",
        "/downloads",
        &[
            ("content-type", "application/json"),
            ("origin", "http://evil.example"),
        ],
        Some(&body),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.error().contains("Origin `http://evil.example`"),
        "{}",
        a.body
    );
    assert_eq!(
        a.header("access-control-allow-origin"),
        None,
        "no CORS unless configured"
    );
    let a = svc.call(
        "GET",
        "/downloads",
        &[("origin", "http://evil.example")],
        None,
    );
    assert_eq!(a.status, 403);
    assert_eq!(count_downloads(&svc), 0);
    assert_eq!(media.requests(), 0);
    // The same request from a program (no Origin): taken.
    let id = svc.submit(&media.url("/clip.mp4"));
    svc.wait_state(&id, "done");
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_answers_cors_only_for_configured_origins() {
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        "",
        &format!("{}cors_origins = [\"https://app.example\"]\n", tokens(&env)),
        &[],
        Some(WRITE),
    );
    let preflight = |origin: &str| {
        svc.call(
            "OPTIONS",
            "/downloads",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
                ("authorization", ""),
            ],
            None,
        )
    };
    let a = preflight("https://app.example");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        a.header("access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );
    let a = svc.call(
        "GET",
        "/downloads",
        &[("origin", "https://app.example")],
        None,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // Another origin: no preflight answer, no request.
    let a = preflight("https://evil.example");
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.header("access-control-allow-origin"), None);
    let a = svc.call(
        "GET",
        "/downloads",
        &[("origin", "https://evil.example")],
        None,
    );
    assert_eq!(a.status, 403);
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_refuses_a_host_header_naming_another_site() {
    let env = Env::new();
    let svc = Service::start_with(
        &env,
        "",
        &format!("{}allowed_hosts = [\"downloads.test\"]\n", tokens(&env)),
        &[],
        Some(WRITE),
    );
    let port = svc.base.rsplit(':').next().unwrap().to_string();
    // A DNS rebinding: the attacker's name now resolves to this machine.
    for host in [format!("evil.example:{port}"), "evil.example".to_string()] {
        let a = svc.call("GET", "/downloads", &[("host", &host)], None);
        assert_eq!(a.status, 403, "{host}: {}", a.body);
        assert!(a.error().contains("allowed_hosts"), "{}", a.body);
    }
    let a = svc.call("GET", "/healthz", &[("host", "evil.example")], None);
    assert_eq!(a.status, 403, "the guard is in front of every route");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "downloads.test".to_string(),
        format!("downloads.test:{port}"),
    ] {
        let a = svc.call("GET", "/downloads", &[("host", &host)], None);
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_needs_a_token_with_the_right_scope() {
    let env = Env::new();
    let svc = Service::start_with(&env, "", &tokens(&env), &[], None);
    let json_ct = ("content-type", "application/json");
    let body = json!({ "url": "http://127.0.0.1:9/x.mp4" }).to_string();
    let a = svc.call("GET", "/downloads", &[], None);
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.header("www-authenticate").unwrap().starts_with("Bearer"));
    let a = svc.call("POST", "/downloads", &[json_ct], Some(&body));
    assert_eq!(a.status, 401);
    let bad = format!("Bearer {WRITE}x");
    let a = svc.call("GET", "/metrics", &[("authorization", &bad)], None);
    assert_eq!(a.status, 401);
    assert!(
        a.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
    // The read token reads, metrics included, and may not write.
    let read = format!("Bearer {READ}");
    for path in ["/downloads", "/metrics", "/proxies/stats"] {
        let a = svc.call("GET", path, &[("authorization", &read)], None);
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let a = svc.call(
        "POST",
        "/downloads",
        &[("authorization", &read), json_ct],
        Some(&body),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.error().contains("`read` token may not POST"),
        "{}",
        a.body
    );
    let a = svc.call(
        "DELETE",
        "/downloads/1-1",
        &[("authorization", &read)],
        None,
    );
    assert_eq!(a.status, 403);
    assert_eq!(count_downloads_with(&svc, &read), 0);
    // The write token writes.
    let write = format!("Bearer {WRITE}");
    let a = svc.call(
        "POST",
        "/downloads",
        &[("authorization", &write), json_ct],
        Some(&body),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    // Health and the contract need none.
    assert_eq!(svc.call("GET", "/healthz", &[], None).status, 200);
    let a = svc.call("GET", "/openapi.json", &[], None);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["openapi"], "3.1.0");
    // No token ever shows in the log.
    assert!(
        !svc.log().contains(WRITE) && !svc.log().contains(READ),
        "{}",
        svc.log()
    );

    // YTDLP_HOST_TOKEN alone.
    let env2 = Env::new();
    let mut cmd = env2.cmd();
    cmd.env("YTDLP_HOST_TOKEN", WRITE);
    let svc = Service::spawn(&env2, &mut cmd, &[], Some(WRITE));
    assert_eq!(svc.get("/downloads").0, 200);
    let a = svc.call("GET", "/downloads", &[("authorization", &read)], None);
    assert_eq!(a.status, 401);
}

fn count_downloads_with(svc: &Service, auth: &str) -> usize {
    let a = svc.call("GET", "/downloads", &[("authorization", auth)], None);
    a.body["downloads"].as_array().map_or(usize::MAX, Vec::len)
}

#[test]
fn service_refuses_to_listen_beyond_loopback_without_a_token() {
    let env = Env::new();
    let started = std::time::Instant::now();
    // Refused before binding: nothing listens on 0.0.0.0.
    let run = env.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert!(!run.ok(), "{}", run.dump());
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = run.stderr();
    assert!(
        err.contains("refusing to serve on 0.0.0.0:0 without a token"),
        "{err}"
    );
    assert!(err.contains("ytdlp-host token new"), "{err}");
    assert!(err.contains("YTDLP_HOST_TOKEN"), "{err}");

    // `token new` makes one: printed once, stored as a digest only.
    let run = env.run(&["token", "new"]);
    assert!(run.ok(), "{}", run.dump());
    let token = run.stdout().trim().to_string();
    assert_eq!(token.len(), 43, "{}", run.dump());
    let file = env.path().join("config/ytdlp-host/tokens");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        stored.starts_with("sha256:") && !stored.contains(&token),
        "{stored}"
    );
    assert!(
        run.stderr().contains(&file.display().to_string()),
        "{}",
        run.dump()
    );
    // A short token in the environment is refused, naming it.
    let mut cmd = env.cmd();
    cmd.env("YTDLP_HOST_TOKEN", "short")
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let run = crate::common::Run::of(cmd);
    assert!(!run.ok());
    assert!(run.stderr().contains("YTDLP_HOST_TOKEN"), "{}", run.dump());
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_token_from_token_new_is_accepted() {
    let env = Env::new();
    let run = env.run(&["token", "new", "--read-only"]);
    assert!(run.ok(), "{}", run.dump());
    let token = run.stdout().trim().to_string();
    let mut cmd = env.cmd();
    let svc = Service::spawn(&env, &mut cmd, &[], Some(&token));
    assert_eq!(svc.get("/downloads").0, 200);
    let (status, body) = svc.post(
        "/downloads",
        &json!({ "url": "http://127.0.0.1:9/" }).to_string(),
    );
    assert_eq!(status, 403, "a read-only token: {body}");
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn service_bounds_bodies_urls_and_arguments() {
    let env = Env::new();
    let svc = Service::start_with(&env, "", &tokens(&env), &[], Some(WRITE));
    let big = json!({ "url": format!("http://127.0.0.1:9/{}", "a".repeat(70_000)) });
    let a = post(&svc, &big);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.body.is_object(), "a JSON error: {}", a.body);
    let long = json!({ "url": format!("http://127.0.0.1:9/{}", "a".repeat(5000)) });
    let a = post(&svc, &long);
    assert_eq!(a.status, 400);
    assert!(
        a.error().contains("url: 5019 characters (at most 4096)"),
        "{}",
        a.body
    );
    let many = json!({ "url": "http://127.0.0.1:9/", "ytdlp_args": vec!["--no-playlist"; 65] });
    let a = post(&svc, &many);
    assert_eq!(a.status, 400);
    assert!(a.error().contains("ytdlp_args: 65 arguments"), "{}", a.body);
    for (body, needle) in [
        (json!({ "url": "file:///etc/passwd" }), "url:"),
        (
            json!({ "url": "http://127.0.0.1:9/", "proxy": "x" }),
            "unknown field `proxy`",
        ),
        (
            json!({ "url": "http://127.0.0.1:9/", "backend_options": { "k": null } }),
            "backend_options",
        ),
        (json!({ "url": 5 }), "url"),
    ] {
        let a = post(&svc, &body);
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.error().contains(needle), "{body}: {}", a.body);
    }
    assert_eq!(count_downloads(&svc), 0);
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn cli_refuses_options_the_host_owns_in_both_runners() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let url = media.url("/clip.mp4");
    let p = proxy.url("http");
    for runner in ["process", "worker"] {
        for (extra, named) in [
            (&["--proxy", ""][..], "`--proxy`"),
            (&["--prox", ""], "`--prox` (yt-dlp reads it as `--proxy`)"),
            (&["--socket-timeout", "1"], "`--socket-timeout`"),
            (&["--print", "title"], "`--print`"),
            (&["--progress-template", "x"], "`--progress-template`"),
            (&["-q"], "`-q`"),
            (&["--ignore-config"], "`--ignore-config`"),
            (
                &["--config-locations", "/tmp/x.conf"],
                "`--config-locations`",
            ),
        ] {
            let mut args = vec!["--proxy", p.as_str(), "--runner", runner, &url, "--"];
            args.extend_from_slice(extra);
            let run = env.download(&args);
            assert!(!run.ok(), "{runner} {extra:?}: {}", run.dump());
            assert!(
                run.stderr().contains(named),
                "{runner} {extra:?}: {}",
                run.dump()
            );
            assert!(run.stderr().contains("set by the host"), "{}", run.dump());
        }
    }
    assert_eq!(media.requests(), 0, "a refused download ran");
    assert!(files_under(&env.out_dir()).is_empty());
    // The same download without the override goes through the proxy.
    let run = env.download(&["--proxy", &p, "--runner", "process", &url]);
    assert!(run.ok(), "{}", run.dump());
    assert!(
        harness::proxied_requests(&proxy.log(), "clip.mp4") >= 1,
        "{}",
        proxy.log()
    );
}
