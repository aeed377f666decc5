//! `ytdlp-host serve` end to end with an HTTP client: the API, cancel, a
//! full queue, hot reload of the plugin, and SIGTERM with downloads in
//! flight. Real yt-dlp, real tinyproxy.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Env, harness};
use harness::{MediaServer, fixtures, tinyproxy};

/// A running `ytdlp-host serve`, killed on drop.
pub struct Service {
    child: Child,
    pub base: String,
    log: std::path::PathBuf,
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` on every request, if set.
    token: Option<String>,
}

/// An answer: status, headers, JSON body (`null` if not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl Service {
    /// `serve` with `config` (top-level keys and tables), downloads going to
    /// the env's out dir, no token (loopback only).
    pub fn start(env: &Env, config: &str, extra: &[&str]) -> Service {
        Service::start_with(env, config, "", extra, None)
    }

    /// `serve` with `config`, more `[serve]` keys, extra arguments, and the
    /// token to send.
    pub fn start_with(
        env: &Env,
        config: &str,
        serve: &str,
        extra: &[&str],
        token: Option<&str>,
    ) -> Service {
        let cfg = env.write_config(&format!(
            "output = \"%(id)s.%(ext)s\"\n{config}\n[serve]\ndownload_dir = \"{}\"\n{serve}\n",
            env.out_dir().display()
        ));
        Service::spawn(env, env.cmd().arg("--config").arg(&cfg), extra, token)
    }

    /// `serve` from a prepared command (config, environment), with `extra`
    /// arguments after `serve --listen 127.0.0.1:0`.
    pub fn spawn(env: &Env, cmd: &mut Command, extra: &[&str], token: Option<&str>) -> Service {
        let log = env.path().join("serve.log");
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start serve");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let base = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "serve did not start: {first:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Service {
            child,
            base,
            log,
            agent,
            token: token.map(str::to_string),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Any request: `headers` are added to (and may replace) the token's.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let uri = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some(t) = &self.token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.unwrap_or("").to_string()).unwrap();
        let mut r = self.agent.run(req).unwrap();
        let status = r.status().as_u16();
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let a = self.call("GET", path, &[], None);
        (a.status, a.body)
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let a = self.call(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body),
        );
        (a.status, a.body)
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        let a = self.call("DELETE", path, &[], None);
        (a.status, a.body)
    }

    pub fn submit(&self, url: &str) -> String {
        self.submit_with(&json!({ "url": url }))
    }

    pub fn submit_with(&self, body: &Value) -> String {
        let (status, body) = self.post("/downloads", &body.to_string());
        assert_eq!(status, 201, "{body}\n{}", self.log());
        body["id"].as_str().unwrap().to_string()
    }

    /// Polls a download until `pred` holds for its status.
    pub fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, s) = self.get(&format!("/downloads/{id}"));
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < until, "never {what}: {s}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_for(id, state, |s| s["state"] == state)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; its exit code.
    pub fn exit(&mut self, within: Duration) -> Option<i32> {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < until, "serve did not exit\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` (recursively), relative paths, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// yt-dlp processes whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

fn part_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".part"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn the_api_end_to_end() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let svc = Service::start(
        &env,
        &format!("proxies = [\"{}\"]\n", proxy.url("http")),
        &[],
    );

    let (status, health) = svc.get("/healthz");
    assert_eq!(status, 200);
    assert_eq!(health["backend"], "memory");
    assert_eq!(health["status"], "ok");

    let id = svc.submit(&media.url("/clip.mp4"));
    let s = svc.wait_state(&id, "done");
    let file = s["result"]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), harness::CLIP);
    assert_eq!(s["result"]["attempts"][0]["proxy"], proxy.url("http"));

    assert!(
        std::path::Path::new(file).starts_with(env.out_dir()),
        "{file} is outside the download directory"
    );

    let (status, stats) = svc.get("/proxies/stats");
    assert_eq!(status, 200);
    assert_eq!(stats[0]["successes"], 1, "{stats}");
    let id_of = |u: &str| {
        ytdlp_contract::proxy_url::validate(u)
            .unwrap()
            .identity_id()
    };
    assert_eq!(stats[0]["id"], id_of(&proxy.url("http")), "{stats}");

    let (status, all) = svc.get("/downloads");
    assert_eq!(status, 200);
    assert_eq!(all["downloads"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["next"], Value::Null);

    // Bad input is refused with the reason.
    let (status, body) = svc.post(
        "/downloads",
        &json!({ "url": media.url("/clip.mp4"), "proxy": "x" }).to_string(),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `proxy`"),
        "{body}"
    );
    let (status, _) = svc.post("/downloads", "{not json");
    assert_eq!(status, 400);
    let (status, body) = svc.post("/downloads", &json!({ "url": "not a url" }).to_string());
    assert_eq!(status, 400, "{body}");
    let (status, body) = svc.post(
        "/downloads",
        &json!({ "url": media.url("/clip.mp4"), "backend_options": { "host.url": "x" } })
            .to_string(),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = svc.get("/downloads/nope");
    assert_eq!(status, 404);
    // DELETE says what really happened: nothing was cancelled.
    let (status, body) = svc.delete(&format!("/downloads/{id}"));
    assert_eq!(
        status, 409,
        "a finished download cannot be cancelled: {body}"
    );
    assert_eq!(body["status"]["state"], "done", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already ended (done)"),
        "{body}"
    );
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn cancel_kills_yt_dlp_and_removes_the_partial_file() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    // The process runner: its yt-dlp shows in the process table.
    let svc = Service::start(
        &env,
        &format!(
            "runner = \"process\"\nproxies = [\"{}\"]\n",
            proxy.url("http")
        ),
        &[],
    );
    let url = media.url("/slow/20000/cancel-me.mp4");
    let id = svc.submit(&url);
    svc.wait_for(&id, "downloading", |s| {
        s["progress"]["downloaded_bytes"].as_f64().unwrap_or(0.0) > 0.0
    });
    assert!(processes_with("cancel-me") > 0);
    let (status, body) = svc.delete(&format!("/downloads/{id}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["state"], "cancelled");
    // SIGKILL is sent before DELETE answers; the process may take a moment
    // to be gone from the process table.
    let until = Instant::now() + Duration::from_secs(5);
    while processes_with("cancel-me") > 0 {
        assert!(Instant::now() < until, "yt-dlp still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        part_files(&env.out_dir()).is_empty(),
        "{:?}",
        part_files(&env.out_dir())
    );
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn a_full_queue_answers_503() {
    let media = MediaServer::start();
    let env = Env::new();
    let svc = Service::start(&env, "", &["--max-concurrent", "1", "--queue-limit", "1"]);
    let first = svc.submit(&media.url("/slow/5000/busy.mp4"));
    let a = svc.call(
        "POST",
        "/downloads",
        &[("content-type", "application/json")],
        Some(&json!({ "url": media.url("/clip.mp4") }).to_string()),
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.error().contains("queue is full"), "{}", a.body);
    assert_eq!(a.header("retry-after"), Some("5"));
    svc.delete(&format!("/downloads/{first}"));
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_changed_plugin_is_swapped_in_and_a_broken_one_is_not() {
    let media = MediaServer::start();
    let a = tinyproxy(None);
    let env = Env::new();
    let plugin = env.install_plugin(fixtures::OPTIONS_ECHO, "live");
    // options-echo hands out `use_proxy`; the hostile fixture, given
    // `mode = "bad-url"`, hands out garbage, so the host downloads directly
    // (`direct` chosen): the two are told apart by the attempts.
    let svc = Service::start(
        &env,
        &format!(
            "backend = \"live\"\non_no_proxy = \"direct\"\n[plugins.live.options]\nuse_proxy = \"{}\"\nmode = \"bad-url\"\ntarget = \"file:///etc/passwd\"\n",
            a.url("http")
        ),
        &[],
    );
    let via = |id: &str| {
        svc.wait_for(id, "finished", |s| s["result"].is_object())["result"]["attempts"][0]["proxy"]
            .clone()
    };

    // A download in flight across the swaps keeps its plugin instance.
    let slow = svc.submit(&media.url("/slow/3000/inflight.mp4"));
    let id = svc.submit(&media.url("/clip.mp4"));
    assert_eq!(via(&id), a.url("http"));

    // A broken file: the old plugin keeps serving.
    std::fs::write(&plugin, b"not a plugin").unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !svc.log().contains("keeping the old one") {
        assert!(Instant::now() < until, "{}", svc.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        svc.log().contains("not a WebAssembly file"),
        "{}",
        svc.log()
    );
    let id = svc.submit(&media.url("/clip.mp4"));
    assert_eq!(via(&id), a.url("http"));

    // A working new file: swapped in for new downloads.
    std::fs::copy(fixtures::HOSTILE, &plugin).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !svc.log().contains("reloaded plugin `live`") {
        assert!(Instant::now() < until, "{}", svc.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let id = svc.submit(&media.url("/clip.mp4"));
    assert_eq!(via(&id), Value::Null, "the new plugin was not used");
    assert!(
        svc.log().contains("not a proxy yt-dlp can use"),
        "{}",
        svc.log()
    );

    let s = svc.wait_state(&slow, "done");
    assert_eq!(s["result"]["attempts"][0]["proxy"], a.url("http"));
}

#[test]
#[ignore = "needs yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn sigterm_lets_running_downloads_finish_within_the_grace_period() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let env = Env::new();
    let config = format!("proxies = [\"{}\"]\n", proxy.url("http"));
    let mut svc = Service::start(&env, &config, &["--grace-secs", "30"]);
    let id = svc.submit(&media.url("/slow/2000/graceful.mp4"));
    svc.wait_state(&id, "running");
    svc.signal(libc::SIGTERM);
    assert_eq!(svc.exit(Duration::from_secs(30)), Some(0), "{}", svc.log());
    assert!(
        env.out_dir().join("graceful.mp4").is_file(),
        "{}",
        svc.log()
    );
    // Its report reached the backend (and its saved state).
    let run = env.run(&["--proxy", &proxy.url("http"), "proxies", "stats", "--json"]);
    assert_eq!(run.json()[0]["successes"], 1, "{}", run.dump());
}

#[test]
#[ignore = "needs yt-dlp (bash .ci/run installs it)"]
fn sigterm_kills_what_outlives_the_grace_period_and_leaves_no_orphans() {
    let media = MediaServer::start();
    let env = Env::new();
    let mut svc = Service::start(&env, "runner = \"process\"\n", &["--grace-secs", "1"]);
    let id = svc.submit(&media.url("/slow/30000/orphan-check.mp4"));
    svc.wait_state(&id, "running");
    let until = Instant::now() + Duration::from_secs(10);
    while processes_with("orphan-check") == 0 {
        assert!(Instant::now() < until, "yt-dlp never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    svc.signal(libc::SIGTERM);
    assert_eq!(svc.exit(Duration::from_secs(15)), Some(0), "{}", svc.log());
    assert!(started.elapsed() < Duration::from_secs(10));
    let until = Instant::now() + Duration::from_secs(5);
    while processes_with("orphan-check") > 0 {
        assert!(Instant::now() < until, "orphan yt-dlp left");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(svc.log().contains("cancelled 1 download"), "{}", svc.log());
}
