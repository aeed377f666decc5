//! The vendor-API plugin (`plugins/vendor-api`) against a small vendor API
//! started here on loopback (a test double): proxies from `GET /proxy`,
//! outcomes to `POST /report`, and every way the API can fail.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{Env, Run, attempts, harness};
use harness::tiny_http;
use harness::{MediaServer, plugins, tinyproxy};

const TOKEN: &str = "vendor-t0ken-123";

/// What the double answers to `GET /proxy`.
#[derive(Clone)]
enum Answer {
    Proxy {
        url: String,
        timeout_ms: u32,
    },
    Status {
        code: u16,
        retry_after: Option<u32>,
    },
    /// The proxy, but only after this long.
    Slow(Duration, String),
}

/// One request the double received.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

/// The vendor's API, on 127.0.0.1: checks the bearer token (401 without
/// it), answers `/proxy` as told, takes `/report`, records everything.
struct VendorApi {
    port: u16,
    answer: Arc<Mutex<Answer>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl VendorApi {
    fn start(answer: Answer) -> VendorApi {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("vendor API"));
        let port = server.server_addr().to_ip().unwrap().port();
        let answer = Arc::new(Mutex::new(answer));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (srv, ans, log) = (server.clone(), answer.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let authorization = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .map(|h| h.value.as_str().to_string());
                let seen = Seen {
                    method: req.method().as_str().to_string(),
                    path: req.url().to_string(),
                    authorization: authorization.clone(),
                    body,
                };
                log.lock().unwrap().push(seen.clone());
                let answer = ans.lock().unwrap().clone();
                std::thread::spawn(move || respond(req, &seen, authorization, answer));
            }
        });
        VendorApi {
            port,
            answer,
            seen,
            server,
            thread: Some(thread),
        }
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn reports(&self) -> Vec<serde_json::Value> {
        self.seen()
            .iter()
            .filter(|s| s.method == "POST" && s.path == "/v1/report")
            .map(|s| serde_json::from_str(&s.body).expect("report body is JSON"))
            .collect()
    }
}

fn respond(req: tiny_http::Request, seen: &Seen, authorization: Option<String>, answer: Answer) {
    let json = |code: u16, body: String| {
        tiny_http::Response::from_string(body)
            .with_status_code(code)
            .with_header(
                tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                    .unwrap(),
            )
    };
    if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let _ = req.respond(json(401, r#"{"error": "bad token"}"#.to_string()));
        return;
    }
    match (seen.method.as_str(), seen.path.as_str()) {
        ("GET", "/v1/proxy") => {}
        ("POST", "/v1/report") => {
            let _ = req.respond(json(200, r#"{"ok": true}"#.to_string()));
            return;
        }
        _ => {
            let _ = req.respond(json(404, "{}".to_string()));
            return;
        }
    }
    let proxy = |url: &str, timeout_ms: u32| {
        serde_json::json!({"url": url, "timeout_ms": timeout_ms}).to_string()
    };
    let _ = match answer {
        Answer::Proxy { url, timeout_ms } => req.respond(json(200, proxy(&url, timeout_ms))),
        Answer::Status { code, retry_after } => {
            let mut r = json(code, r#"{"error": "nope"}"#.to_string());
            if let Some(s) = retry_after {
                r = r.with_header(
                    tiny_http::Header::from_bytes(&b"Retry-After"[..], s.to_string().as_bytes())
                        .unwrap(),
                );
            }
            req.respond(r)
        }
        Answer::Slow(delay, url) => {
            std::thread::sleep(delay);
            req.respond(json(200, proxy(&url, 30_000)))
        }
    };
}

impl Drop for VendorApi {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The plugin installed as `vendor-api` with a config for `api`; the token
/// from the granted variable VENDOR_TOKEN unless `options` say otherwise.
struct Setup {
    env: Env,
    config: PathBuf,
}

impl Setup {
    fn new(api: &VendorApi, options: &str, grants: &str) -> Setup {
        let env = Env::new();
        env.install_plugin(plugins::VENDOR_API, "vendor-api");
        let config = env.write_config(&format!(
            "backend = \"vendor-api\"\n\
             [plugins.vendor-api.options]\n\
             base_url = \"{}/v1\"\n\
             {options}\n\
             [plugins.vendor-api.grants]\n\
             {grants}\n",
            api.origin()
        ));
        Setup { env, config }
    }

    /// The usual setup: token from the granted env var, API origin granted.
    fn granted(api: &VendorApi) -> Setup {
        Setup::new(
            api,
            "token_env = \"VENDOR_TOKEN\"",
            &format!("http = [\"{}\"]\nenv = [\"VENDOR_TOKEN\"]", api.origin()),
        )
    }

    fn host(&self, args: &[&str]) -> Run {
        let mut c = self.env.cmd();
        c.env("VENDOR_TOKEN", TOKEN)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        Run::of(c)
    }

    fn download(&self, args: &[&str]) -> Run {
        let mut c = self.env.cmd();
        c.env("VENDOR_TOKEN", TOKEN)
            .args(["download", "--json", "-o"])
            .arg(self.env.out_dir().join("%(id)s.%(ext)s"))
            .arg("--config")
            .arg(&self.config)
            .args(args);
        Run::of(c)
    }

    /// `proxies get`: the proxy line, or the error line.
    /// `proxies get`: the proxy and its timeout (the id, checked to be one,
    /// left out).
    fn get(&self) -> Result<String, String> {
        let run = self.host(&["proxies", "get"]);
        if run.ok() {
            let out = run.stdout().trim().to_string();
            let (url, rest) = out.split_once(" [p").expect("an id");
            let (id, timeout) = rest.split_once(']').expect("an id");
            assert!(
                id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{out}"
            );
            Ok(format!("{url}{timeout}"))
        } else {
            Err(run.stderr().trim().lines().last().unwrap_or("").to_string())
        }
    }
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn downloads_through_the_vendors_proxy_and_reports_back() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let api = VendorApi::start(Answer::Proxy {
        url: proxy.url("http"),
        timeout_ms: 7000,
    });
    let setup = Setup::granted(&api);
    let run = setup.download(&[&media.url("/clip.mp4"), &media.url("/missing.mp4")]);
    assert!(
        !run.ok(),
        "the missing URL must fail the run: {}",
        run.dump()
    );
    let results = run.json_lines();
    assert_eq!(results[0]["status"], "done", "{}", run.dump());
    assert_eq!(attempts(&results[0]), [(proxy.url("http"), None)]);
    let file = results[0]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), harness::CLIP);
    assert!(
        harness::proxied_requests(&proxy.log(), &format!("127.0.0.1:{}/clip.mp4", media.port)) >= 1,
        "{}",
        proxy.log()
    );
    assert_eq!(
        attempts(&results[1]),
        [(proxy.url("http"), Some("content".to_string()))]
    );
    // The API saw the bearer token on every request, and both outcomes.
    let seen = api.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"))),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|s| s.method == "GET" && s.path == "/v1/proxy")
            .count(),
        2
    );
    // Reports name the proxy by its id (the credentials-free identity)
    // and the site of the attempt.
    let id = ytdlp_contract::proxy_url::validate(&proxy.url("http"))
        .unwrap()
        .identity_id();
    let report = |outcome: &str, kind: Option<&str>| {
        serde_json::json!({
            "proxy_id": id, "proxy_url": proxy.url("http"), "site": "127.0.0.1",
            "outcome": outcome, "kind": kind,
        })
    };
    assert_eq!(
        api.reports(),
        [report("success", None), report("failure", Some("content"))]
    );
    // The API's timeout became yt-dlp's socket timeout.
    assert_eq!(
        setup.get(),
        Ok(format!("{} (timeout 7000 ms)", proxy.url("http")))
    );
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn rate_limits_and_server_errors_are_backend_unavailable() {
    let media = MediaServer::start();
    let api = VendorApi::start(Answer::Status {
        code: 429,
        retry_after: Some(30),
    });
    let setup = Setup::granted(&api);
    let origin = api.origin();
    assert_eq!(
        setup.get(),
        Err(format!(
            "plugin `vendor-api`: backend unavailable: rate limited by the vendor API at {origin} (HTTP 429); retry after 30 s"
        ))
    );
    // Under the `fail` policy the URL fails with that reason...
    let run = setup.download(&["--on-no-proxy", "fail", &media.url("/clip.mp4")]);
    let r = &run.json_lines()[0];
    assert_eq!(r["status"], "failed");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("rate limited by the vendor API"),
        "{r}"
    );
    // ...under `direct` (chosen: with a plugin of one's own the default is
    // `fail`) it is downloaded without a proxy, with a warning.
    let run = setup.download(&["--on-no-proxy", "direct", &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(
        attempts(&run.json_lines()[0]),
        [("direct".to_string(), None)]
    );
    assert!(
        run.stderr().contains("rate limited by the vendor API")
            && run.stderr().contains("policy `direct`"),
        "{}",
        run.dump()
    );

    api.set(Answer::Status {
        code: 500,
        retry_after: None,
    });
    assert_eq!(
        setup.get(),
        Err(format!(
            "plugin `vendor-api`: backend unavailable: the vendor API at {origin} failed: HTTP 500 {{\"error\": \"nope\"}}"
        ))
    );
    api.set(Answer::Status {
        code: 503,
        retry_after: None,
    });
    assert!(setup.get().unwrap_err().contains("failed: HTTP 503"));
}

#[test]
fn a_slow_api_times_out_inside_the_call_deadline() {
    let api = VendorApi::start(Answer::Slow(
        Duration::from_secs(3),
        "http://127.0.0.1:3128".to_string(),
    ));
    let setup = Setup::granted(&api);
    let started = Instant::now();
    let got = setup.get();
    let took = started.elapsed();
    assert_eq!(
        got,
        Err(format!(
            "plugin `vendor-api`: backend unavailable: the vendor API at {} did not answer within 400 ms",
            api.origin()
        ))
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn a_missing_token_refuses_init() {
    let api = VendorApi::start(Answer::Proxy {
        url: "http://127.0.0.1:3128".to_string(),
        timeout_ms: 1000,
    });
    let grants = format!("http = [\"{}\"]", api.origin());
    // No token at all.
    let setup = Setup::new(&api, "", &grants);
    let err = setup.get().unwrap_err();
    assert!(
        err.starts_with(
            "error: plugin `vendor-api`: init refused the options: option `token`: no API token"
        ),
        "{err}"
    );
    // The variable is set in the host's environment but not granted.
    let setup = Setup::new(&api, "token_env = \"VENDOR_TOKEN\"", &grants);
    let err = setup.get().unwrap_err();
    assert!(
        err.contains("the environment variable `VENDOR_TOKEN` is not set, or not granted"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    assert!(api.seen().is_empty(), "{:?}", api.seen());
    // A token straight in the options works too.
    let setup = Setup::new(&api, &format!("token = \"{TOKEN}\""), &grants);
    assert_eq!(
        setup.get(),
        Ok("http://127.0.0.1:3128 (timeout 1000 ms)".to_string())
    );
}

#[test]
fn requests_to_an_origin_that_is_not_granted_are_denied() {
    let granted = VendorApi::start(Answer::Proxy {
        url: "http://127.0.0.1:3128".to_string(),
        timeout_ms: 1000,
    });
    let other = VendorApi::start(Answer::Proxy {
        url: "http://127.0.0.1:3129".to_string(),
        timeout_ms: 1000,
    });
    let setup = Setup::granted(&granted);
    // The call's options point the plugin at another local server.
    let base = format!("base_url={}/v1", other.origin());
    let run = setup.host(&["--backend-opt", &base, "proxies", "get"]);
    assert!(!run.ok());
    assert!(
        run.stderr().contains(&format!(
            "plugin `vendor-api`: backend unavailable: request to the vendor API at {} denied by the host: that origin is not granted",
            other.origin()
        )),
        "{}",
        run.dump()
    );
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    // The granted one still works.
    assert_eq!(
        setup.get(),
        Ok("http://127.0.0.1:3128 (timeout 1000 ms)".to_string())
    );
}
