//! Test harness of ytdlp-host: real servers on loopback, started per test and
//! stopped (by PID) when dropped, and the fixture plugins' paths.
//!
//! Everything here listens on 127.0.0.1 only; proxies of a [`pool::Pool`]
//! connect out from their own 127.0.0.N.

pub mod pool;
pub mod scenario;
pub mod site;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// Paths of the fixture plugins (tests/test-components/) and first-party
// plugins (plugins/), built by build.rs: `fixtures::NAME`, `plugins::NAME`.
include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// For tests that start their own small HTTP servers (test doubles).
pub use tiny_http;

/// The small real media clip the media server serves.
pub const CLIP: &[u8] = include_bytes!("../fixtures/clip.mp4");

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// Waits until `port` accepts connections.
pub fn wait_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} never listened on 127.0.0.1:{port}");
}

/// `program` on PATH, if it is there.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `program` on PATH. Tests that need it are `#[ignore]`d with the tool
/// named (plain `cargo test` lists them as skipped); run with
/// `--include-ignored` (as `.ci/run` does) they fail with this message when
/// it is missing.
pub fn require(program: &str) -> PathBuf {
    find(program)
        .unwrap_or_else(|| panic!("`{program}` is not installed; bash .ci/run installs it"))
}

/// A child process killed (by PID) and reaped on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far (tinyproxy: one line per request).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Stops it now (SIGKILL), e.g. to make a proxy die mid-test.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The proxy URL for this daemon.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn spawn_logged(
    mut cmd: Command,
    port: u16,
    dir: tempfile::TempDir,
    what: &str,
) -> Daemon {
    let log = dir.path().join("log.txt");
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    wait_port(port, what);
    Daemon {
        child,
        port,
        log: Some(log),
        _dir: dir,
    }
}

/// A real tinyproxy on a free loopback port, optionally with BasicAuth.
pub fn tinyproxy(auth: Option<(&str, &str)>) -> Daemon {
    tinyproxy_on(free_port(), auth)
}

/// tinyproxy on a given port (to restart one where it was).
pub fn tinyproxy_on(port: u16, auth: Option<(&str, &str)>) -> Daemon {
    tinyproxy_with(port, auth, None)
}

/// tinyproxy on `port`; with `bind`, its outgoing connections come from
/// that address (`Bind`: a proxy with its own egress address on loopback).
pub fn tinyproxy_with(port: u16, auth: Option<(&str, &str)>, bind: Option<Ipv4Addr>) -> Daemon {
    let exe = require("tinyproxy");
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("tinyproxy.conf");
    let mut text = format!(
        "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nLogLevel Info\nMaxClients 64\nTimeout 30\n"
    );
    if let Some((u, p)) = auth {
        text.push_str(&format!("BasicAuth {u} {p}\n"));
    }
    if let Some(b) = bind {
        text.push_str(&format!("Bind {b}\n"));
    }
    std::fs::write(&conf, text).expect("tinyproxy.conf");
    let mut cmd = Command::new(exe);
    cmd.arg("-d").arg("-c").arg(&conf);
    spawn_logged(cmd, port, dir, "tinyproxy")
}

/// A real microsocks (SOCKS5) on a free loopback port, optionally with auth.
pub fn microsocks(auth: Option<(&str, &str)>) -> Daemon {
    let exe = require("microsocks");
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(exe);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    spawn_logged(cmd, port, dir, "microsocks")
}

/// A real redis-server on a free loopback port, no persistence.
pub fn redis() -> Daemon {
    redis_on(free_port())
}

pub fn redis_on(port: u16) -> Daemon {
    let exe = require("redis-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(exe);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path());
    spawn_logged(cmd, port, dir, "redis-server")
}

/// redis-server on `port` keeping its data in `dir` (append-only file,
/// fsync on every write): stopped with SIGKILL and started again there, it
/// has every write it acknowledged.
pub fn redis_durable(port: u16, dir: &std::path::Path) -> Daemon {
    let exe = require("redis-server");
    let logs = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(exe);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .arg("--dir")
        .arg(dir);
    spawn_logged(cmd, port, logs, "redis-server")
}

/// A TCP server that accepts connections and never answers: a proxy that
/// has gone into a black hole.
pub struct BlackHole {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        BlackHole {
            port,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A local HTTP media server:
/// - `/clip.mp4` (and `/v/<anything>.mp4`): the real clip;
/// - `/slow/<ms>/<anything>.mp4`: the clip, sent over about `ms`
///   milliseconds (for downloads that are still running when a test acts);
/// - `/status/<code>`: that status, empty body;
/// - `/page`: an HTML page without media;
/// - anything else: 404.
pub struct MediaServer {
    pub port: u16,
    server: Arc<tiny_http::Server>,
    requests: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl MediaServer {
    pub fn start() -> MediaServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("media server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (s, r, p) = (server.clone(), requests.clone(), paths.clone());
        let thread = std::thread::spawn(move || {
            for req in s.incoming_requests() {
                r.fetch_add(1, Ordering::Relaxed);
                let path = req.url().to_string();
                p.lock().unwrap().push(path.clone());
                let _ = std::thread::spawn(move || respond(req, &path));
            }
        });
        MediaServer {
            port,
            server,
            requests,
            paths,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn respond(req: tiny_http::Request, path: &str) {
    let header =
        |k: &str, v: &str| tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap();
    let path = path.split('?').next().unwrap_or("");
    if path == "/clip.mp4" || (path.starts_with("/v/") && path.ends_with(".mp4")) {
        let resp = tiny_http::Response::from_data(CLIP.to_vec())
            .with_header(header("Content-Type", "video/mp4"));
        let _ = req.respond(resp);
    } else if let Some(rest) = path.strip_prefix("/slow/") {
        let ms: u64 = rest
            .split('/')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(1000);
        let reader = SlowReader {
            pos: 0,
            chunk: CLIP.len().div_ceil(20),
            delay: std::time::Duration::from_millis(ms / 20),
        };
        let resp = tiny_http::Response::new(
            tiny_http::StatusCode(200),
            vec![header("Content-Type", "video/mp4")],
            reader,
            Some(CLIP.len()),
            None,
        );
        let _ = req.respond(resp);
    } else if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let _ = req.respond(tiny_http::Response::empty(code));
    } else if path == "/page" {
        let resp = tiny_http::Response::from_string("<html><body>no media here</body></html>")
            .with_header(header("Content-Type", "text/html"));
        let _ = req.respond(resp);
    } else {
        let _ = req.respond(tiny_http::Response::empty(404));
    }
}

/// The clip, a chunk at a time with a pause before each.
struct SlowReader {
    pos: usize,
    chunk: usize,
    delay: std::time::Duration,
}

impl std::io::Read for SlowReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= CLIP.len() {
            return Ok(0);
        }
        std::thread::sleep(self.delay);
        let n = self.chunk.min(buf.len()).min(CLIP.len() - self.pos);
        buf[..n].copy_from_slice(&CLIP[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for MediaServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts tinyproxy's `Request` log lines that mention `needle`.
pub fn proxied_requests(log: &str, needle: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("Request") && l.contains(needle))
        .count()
}
