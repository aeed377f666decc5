//! The Redis plugin (`plugins/redis`) against a real redis-server: several
//! host processes sharing one pool, outages, and real downloads through
//! tinyproxy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{Env, Run, attempts, harness};
use harness::tiny_http;
use harness::{Daemon, MediaServer, free_port, plugins, redis, redis_on, tinyproxy};

/// One Redis, the plugin installed as `redis`, a config granting exactly
/// that Redis. Every `host()` call is a separate host process.
struct Pool {
    env: Env,
    redis: Daemon,
    config: PathBuf,
}

impl Pool {
    /// `options`: extra lines for `[plugins.redis.options]`.
    fn new(options: &str) -> Pool {
        let redis = redis();
        let env = Env::new();
        env.install_plugin(plugins::REDIS, "redis");
        let port = redis.port;
        let config = env.write_config(&format!(
            "backend = \"redis\"\n\
             [plugins.redis.options]\n\
             url = \"redis://127.0.0.1:{port}\"\n\
             {options}\n\
             [plugins.redis.grants]\n\
             tcp = [\"127.0.0.1:{port}\"]\n"
        ));
        let pool = Pool { env, redis, config };
        // Compile the plugin once, before hosts run side by side.
        let warm = pool.host(&["plugins", "list"]);
        assert!(warm.ok(), "{}", warm.dump());
        pool
    }

    fn cfg(&self) -> &str {
        self.config.to_str().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = self.env.cmd();
        c.arg("--config").arg(&self.config).args(args);
        c
    }

    fn host(&self, args: &[&str]) -> Run {
        Run::of(self.command(args))
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ytdlp-host")
    }

    fn add(&self, urls: &[&str]) {
        let mut args = vec!["proxies", "add"];
        args.extend(urls);
        let run = self.host(&args);
        assert!(run.ok(), "{}", run.dump());
    }

    /// `proxies stats --json`, by URL.
    fn stats(&self) -> HashMap<String, serde_json::Value> {
        let run = self.host(&["proxies", "stats", "--json"]);
        assert!(run.ok(), "{}", run.dump());
        run.json()
            .as_array()
            .expect("stats array")
            .iter()
            .map(|r| (r["url"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    }

    fn redis_cli(&self, args: &[&str]) -> String {
        let out = Command::new(harness::require("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The Redis key of a proxy's hash in the default pool: by its identity id
/// (scheme, host, port, user), so a rotated password keeps its health.
fn proxy_key(url: &str) -> String {
    let id = ytdlp_contract::proxy_url::validate(url)
        .unwrap()
        .identity_id();
    format!("ytdlp:{{default}}:proxy:{id}")
}

fn extra(row: &serde_json::Value, key: &str) -> Option<String> {
    row["extra"]
        .as_array()?
        .iter()
        .find_map(|kv| (kv[0] == key).then(|| kv[1].as_str().unwrap_or_default().to_string()))
}

fn finish(child: Child) -> Run {
    Run {
        output: child.wait_with_output().expect("wait for ytdlp-host"),
    }
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn four_hosts_lose_no_report() {
    let pool = Pool::new("failure_threshold = 3");
    let (a, b) = ("http://127.0.0.1:3128", "http://127.0.0.1:3129");
    pool.add(&[a, b]);
    // Four host processes at once, 1,000 reports each, all on proxy A:
    // two report successes, two failures that do not count against it.
    let jobs: [&[&str]; 4] = [
        &["--success"],
        &["--success"],
        &["--failure", "content"],
        &["--failure", "blocked"],
    ];
    let children: Vec<Child> = jobs
        .iter()
        .map(|job| {
            let mut args = vec!["proxies", "report", a, "--count", "1000"];
            args.extend(*job);
            pool.spawn(&args)
        })
        .collect();
    for child in children {
        let run = finish(child);
        assert!(run.ok(), "{}", run.dump());
    }
    // Then four at once on proxy B, all proxy faults: every one counted,
    // and the proxy taken out exactly once.
    let children: Vec<Child> = (0..4)
        .map(|_| {
            pool.spawn(&[
                "proxies",
                "report",
                b,
                "--count",
                "1000",
                "--failure",
                "proxy-timeout",
            ])
        })
        .collect();
    for child in children {
        let run = finish(child);
        assert!(run.ok(), "{}", run.dump());
    }
    let stats = pool.stats();
    let ra = &stats[a];
    assert_eq!(ra["successes"], 2000, "{ra}");
    assert_eq!(ra["failures"], 2000, "{ra}");
    assert_eq!(ra["consecutive_failures"], 0, "{ra}");
    assert_eq!(ra["state"], "active", "{ra}");
    assert_eq!(extra(ra, "failures.content").as_deref(), Some("1000"));
    assert_eq!(extra(ra, "failures.blocked").as_deref(), Some("1000"));
    let rb = &stats[b];
    assert_eq!(rb["failures"], 4000, "{rb}");
    assert_eq!(rb["consecutive_failures"], 4000, "{rb}");
    assert_eq!(rb["state"], "cooling-down", "{rb}");
    assert_eq!(extra(rb, "failures.proxy-timeout").as_deref(), Some("4000"));
    assert_eq!(extra(rb, "times-taken-out").as_deref(), Some("1"), "{rb}");
    // The same numbers straight from Redis.
    assert_eq!(
        pool.redis_cli(&["HGET", &proxy_key(a), "successes"]),
        "2000"
    );
}

#[test]
#[ignore = "needs redis-server, yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn a_disable_by_one_host_is_seen_by_every_other_host() {
    let media = MediaServer::start();
    let good = tinyproxy(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pool = Pool::new("cooldown_ms = 600000");
    pool.add(&[&dead, &good.url("http")]);
    // Host 1 reports three proxy faults: the threshold.
    let run = pool.host(&[
        "proxies",
        "report",
        &dead,
        "--failure",
        "proxy-connect",
        "--count",
        "3",
    ]);
    assert!(run.ok(), "{}", run.dump());
    // Hosts 2-4, started after that write, never get the dead proxy.
    let children: Vec<Child> = (0..3).map(|_| pool.spawn(&["proxies", "get"])).collect();
    for child in children {
        let run = finish(child);
        assert!(run.ok(), "{}", run.dump());
        assert!(
            run.stdout().starts_with(&good.url("http")),
            "{}",
            run.dump()
        );
    }
    let row = &pool.stats()[&dead];
    assert_eq!(row["state"], "cooling-down", "{row}");
    let until = row["until_ms"].as_u64().expect("until_ms");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        until > now + 500_000 && until <= now + 600_000,
        "{until} vs {now}"
    );
    // And a real download from yet another host goes through the good one
    // at its first attempt.
    let run = pool
        .env
        .download(&["--config", pool.cfg(), &media.url("/clip.mp4")]);
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(attempts(&run.json_lines()[0]), [(good.url("http"), None)]);
}

#[test]
#[ignore = "needs redis-server, yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn downloads_through_tinyproxy_and_the_pool_learns_in_redis() {
    let media = MediaServer::start();
    let good = tinyproxy(None);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pool = Pool::new("failure_threshold = 1\ncooldown_ms = 600000");
    pool.add(&[&dead, &good.url("http")]);
    let run = pool.env.download(&[
        "--config",
        pool.cfg(),
        &media.url("/v/a.mp4"),
        &media.url("/v/b.mp4"),
    ]);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    // Round robin starts at the dead proxy; its one fault takes it out.
    assert_eq!(
        attempts(&results[0]),
        [
            (dead.clone(), Some("proxy-connect".to_string())),
            (good.url("http"), None)
        ]
    );
    assert_eq!(attempts(&results[1]), [(good.url("http"), None)]);
    for r in &results {
        let file = r["file"].as_str().unwrap();
        assert_eq!(std::fs::read(file).unwrap(), harness::CLIP, "{file}");
    }
    assert!(
        harness::proxied_requests(&good.log(), &format!("127.0.0.1:{}/v/", media.port)) >= 2,
        "{}",
        good.log()
    );
    let key = proxy_key;
    assert_eq!(
        pool.redis_cli(&["HGET", &key(&good.url("http")), "successes"]),
        "2"
    );
    assert_eq!(
        pool.redis_cli(&["HGET", &key(&dead), "f:proxy-connect"]),
        "1"
    );
}

/// A media server whose `/gate/NAME.mp4` holds its first request until the
/// test releases NAME, and tells whether that request came through a proxy
/// (tinyproxy adds `Via`). Later requests are served at once.
struct Gate {
    port: u16,
    server: Arc<tiny_http::Server>,
    state: Arc<(Mutex<GateState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct GateState {
    arrived: HashMap<String, bool>,
    released: Vec<String>,
}

impl Gate {
    fn start() -> Gate {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("gate server"));
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new((Mutex::new(GateState::default()), Condvar::new()));
        let (srv, st) = (server.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            for req in srv.incoming_requests() {
                let st = st.clone();
                std::thread::spawn(move || {
                    let name = req
                        .url()
                        .trim_start_matches("/gate/")
                        .trim_end_matches(".mp4")
                        .to_string();
                    let via = req
                        .headers()
                        .iter()
                        .any(|h| h.field.equiv("Via") && h.value.as_str().contains("tinyproxy"));
                    let (lock, cv) = &*st;
                    let mut g = lock.lock().unwrap();
                    if !g.arrived.contains_key(&name) {
                        g.arrived.insert(name.clone(), via);
                        cv.notify_all();
                        let until = Instant::now() + Duration::from_secs(30);
                        while !g.released.contains(&name) && Instant::now() < until {
                            g = cv.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
                        }
                    }
                    drop(g);
                    let _ = req.respond(tiny_http::Response::from_data(harness::CLIP.to_vec()));
                });
            }
        });
        Gate {
            port,
            server,
            state,
            thread: Some(thread),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/gate/{name}.mp4", self.port)
    }

    /// Waits for the first request for `name`; true if it came via tinyproxy.
    fn arrival(&self, name: &str) -> bool {
        let (lock, cv) = &*self.state;
        let until = Instant::now() + Duration::from_secs(30);
        let mut g = lock.lock().unwrap();
        loop {
            if let Some(via) = g.arrived.get(name) {
                return *via;
            }
            assert!(Instant::now() < until, "no request for {name}");
            g = cv.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
        }
    }

    fn release(&self, name: &str) {
        let (lock, cv) = &*self.state;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .released
            .push(name.to_string());
        cv.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let names: Vec<String> = self
            .state
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .arrived
            .keys()
            .cloned()
            .collect();
        for name in names {
            self.release(&name);
        }
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
#[ignore = "needs redis-server, yt-dlp and tinyproxy (bash .ci/run installs them)"]
fn redis_down_falls_under_the_policy_and_the_same_host_recovers() {
    let media = MediaServer::start();
    let proxy = tinyproxy(None);
    let gate = Gate::start();
    let mut pool = Pool::new("");
    let port = pool.redis.port;
    pool.add(&[&proxy.url("http")]);
    // One host process, three URLs; Redis dies during the first and is
    // back (same port, empty: no persistence) during the second.
    let child = {
        let mut c = pool.env.cmd();
        // `direct` chosen explicitly: with a plugin of one's own the
        // default is `fail`.
        c.args(["download", "--json", "--on-no-proxy", "direct", "-o"])
            .arg(pool.env.out_dir().join("%(id)s.%(ext)s"))
            .args(["--config", pool.cfg()])
            .args([gate.url("one"), gate.url("two"), media.url("/clip.mp4")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().expect("spawn ytdlp-host")
    };
    assert!(
        gate.arrival("one"),
        "URL one did not come through the proxy"
    );
    pool.redis.stop();
    gate.release("one");
    // With Redis down, get-proxy fails and the policy (`direct`) downloads
    // without a proxy.
    assert!(!gate.arrival("two"), "URL two came through a proxy");
    pool.redis = redis_on(port);
    pool.add(&[&proxy.url("http")]);
    gate.release("two");
    let run = finish(child);
    assert!(run.ok(), "{}", run.dump());
    let results = run.json_lines();
    assert_eq!(attempts(&results[0]), [(proxy.url("http"), None)]);
    assert_eq!(attempts(&results[1]), [("direct".to_string(), None)]);
    // The same host process uses the Redis that came back.
    assert_eq!(attempts(&results[2]), [(proxy.url("http"), None)]);
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "plugin `redis`: backend unavailable: Redis at redis://127.0.0.1:{port} is unreachable: connection refused"
        )) && err.contains("without a proxy (policy `direct`)"),
        "{err}"
    );
    // Its report after the recovery reached the new Redis.
    assert_eq!(pool.stats()[&proxy.url("http")]["successes"], 1);
}

#[test]
#[ignore = "needs redis-server and yt-dlp (bash .ci/run installs them)"]
fn redis_down_or_hung_is_a_typed_backend_unavailable_error() {
    let media = MediaServer::start();
    let mut pool = Pool::new("");
    let port = pool.redis.port;
    pool.add(&["http://127.0.0.1:3128"]);
    // Hung (SIGSTOP): a bounded wait, well inside the host's call deadline.
    let pid = pool.redis.pid().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let started = Instant::now();
    let run = pool.host(&["proxies", "get"]);
    let took = started.elapsed();
    signal("-CONT");
    assert!(!run.ok());
    assert!(
        run.stderr().contains(&format!(
            "plugin `redis`: backend unavailable: Redis at redis://127.0.0.1:{port}: no answer within 200 ms"
        )),
        "{}",
        run.dump()
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Down: the policy `fail` fails the URL with the reason.
    pool.redis.stop();
    let run = pool.env.download(&[
        "--config",
        pool.cfg(),
        "--on-no-proxy",
        "fail",
        &media.url("/clip.mp4"),
    ]);
    assert!(!run.ok());
    let r = &run.json_lines()[0];
    assert_eq!(r["status"], "failed");
    assert_eq!(
        r["error"],
        format!(
            "plugin `redis`: backend unavailable: Redis at redis://127.0.0.1:{port} is unreachable: connection refused (policy `fail`)"
        )
    );
    assert_eq!(attempts(r), []);
    assert_eq!(media.requests(), 0);
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn the_pool_can_be_seeded_with_redis_cli_and_pools_are_separate() {
    let pool = Pool::new("");
    // The documented recipe: RPUSH onto the pool's list.
    pool.redis_cli(&["RPUSH", "ytdlp:{default}:proxies", "http://127.0.0.1:3128"]);
    pool.redis_cli(&["RPUSH", "ytdlp:{eu}:proxies", "socks5://127.0.0.1:1080"]);
    let run = pool.host(&["proxies", "get"]);
    let id = ytdlp_contract::proxy_url::validate("http://127.0.0.1:3128")
        .unwrap()
        .identity_id();
    assert_eq!(
        run.stdout().trim(),
        format!("http://127.0.0.1:3128 [{id}] (timeout 30000 ms)")
    );
    let run = pool.host(&[
        "--backend-opt",
        "pool=eu",
        "--backend-opt",
        "timeout_ms=5000",
        "proxies",
        "get",
    ]);
    let id = ytdlp_contract::proxy_url::validate("socks5://127.0.0.1:1080")
        .unwrap()
        .identity_id();
    assert_eq!(
        run.stdout().trim(),
        format!("socks5://127.0.0.1:1080 [{id}] (timeout 5000 ms)"),
        "{}",
        run.dump()
    );
    let run = pool.host(&["proxies", "remove", "http://127.0.0.1:3128"]);
    assert!(run.ok(), "{}", run.dump());
    assert_eq!(pool.redis_cli(&["LLEN", "ytdlp:{default}:proxies"]), "0");
    let run = pool.host(&["proxies", "get"]);
    assert!(
        run.stderr()
            .contains("no proxy available: pool `default` in Redis has no proxies"),
        "{}",
        run.dump()
    );
}

#[test]
#[ignore = "needs redis-server (bash .ci/run installs it)"]
fn only_the_granted_redis_is_reachable_and_bad_options_are_refused() {
    let pool = Pool::new("");
    let other = redis();
    let url = format!("url=redis://127.0.0.1:{}", other.port);
    let run = pool.host(&["--backend-opt", &url, "proxies", "get"]);
    assert!(!run.ok());
    assert!(
        run.stderr().contains(&format!(
            "the host denied the connection to 127.0.0.1:{}",
            other.port
        )),
        "{}",
        run.dump()
    );
    let config = pool.env.write_config(&format!(
        "backend = \"redis\"\n[plugins.redis.options]\nurl = \"redis://127.0.0.1:{}\"\nstrategy = \"fastest\"\n",
        pool.redis.port
    ));
    let run = pool
        .env
        .run(&["--config", config.to_str().unwrap(), "proxies", "get"]);
    assert!(!run.ok());
    assert!(
        run.stderr()
            .contains("plugin `redis`: init refused the options: option `strategy`: unknown strategy `fastest`"),
        "{}",
        run.dump()
    );
}
