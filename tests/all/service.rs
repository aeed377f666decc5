//! `ytdlp-host serve` end to end with an HTTP client: the API, cancel, a
//! full queue, hot reload of the plugin, and SIGTERM with downloads in
//! flight. Real yt-dlp, real tinyproxy.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Env, harness};
use harness::{MediaServer, fixtures, tinyproxy};

/// A running `ytdlp-host serve`, killed on drop.
struct Service {
    child: Child,
    base: String,
    log: std::path::PathBuf,
    agent: ureq::Agent,
}

impl Service {
    fn start(env: &Env, config: &str, extra: &[&str]) -> Service {
        let cfg = env.write_config(&format!(
            "output = \"{}/%(id)s.%(ext)s\"\n{config}",
            env.out_dir().display()
        ));
        let log = env.path().join("serve.log");
        let mut cmd = env.cmd();
        cmd.arg("--config")
            .arg(&cfg)
            .args(["serve", "--listen", "127.0.0.1:0"])
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
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .send(body)
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().unwrap_or(Value::Null))
    }

    fn delete(&self, path: &str) -> (u16, Value) {
        let mut r = self
            .agent
            .delete(format!("{}{path}", self.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.body_mut().read_json().unwrap_or(Value::Null))
    }

    fn submit(&self, url: &str) -> String {
        let (status, body) = self.post("/downloads", &json!({ "url": url }).to_string());
        assert_eq!(status, 201, "{body}\n{}", self.log());
        body["id"].as_str().unwrap().to_string()
    }

    /// Polls a download until `pred` holds for its status.
    fn wait_for(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
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

    fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_for(id, state, |s| s["state"] == state)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit; its exit code.
    fn exit(&mut self, within: Duration) -> Option<i32> {
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

/// yt-dlp processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> usize {
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

    let id = svc.submit(&media.url("/clip.mp4"));
    let s = svc.wait_state(&id, "done");
    let file = s["result"]["file"].as_str().unwrap();
    assert_eq!(std::fs::read(file).unwrap(), harness::CLIP);
    assert_eq!(s["result"]["attempts"][0]["proxy"], proxy.url("http"));

    let (status, stats) = svc.get("/proxies/stats");
    assert_eq!(status, 200);
    assert_eq!(stats[0]["successes"], 1, "{stats}");

    let (status, all) = svc.get("/downloads");
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 1);

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
    let (status, _) = svc.delete(&format!("/downloads/{id}"));
    assert_eq!(status, 409, "a finished download cannot be cancelled");
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
    let (status, body) = svc.post(
        "/downloads",
        &json!({ "url": media.url("/clip.mp4") }).to_string(),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("queue is full"),
        "{body}"
    );
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
    assert!(svc.log().contains("invalid proxy URL"), "{}", svc.log());

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
