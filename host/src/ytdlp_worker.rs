//! The worker runner: a pool of warm Python processes that drive yt-dlp's
//! embedding API (`yt_dlp.YoutubeDL(params).download([url])`), one job at a
//! time each, so a download does not pay Python's start-up and yt-dlp's
//! import again.
//!
//! - The worker script (`ytdlp_worker.py`) ships inside the binary; it is
//!   written once to the cache directory, keyed by its hash.
//! - Protocol: JSON lines. The host writes one request per job on the
//!   worker's stdin; the worker answers with progress lines and one `done`
//!   line on a private copy of its stdout (anything yt-dlp prints goes to
//!   stderr, which the host keeps the end of to explain a crash).
//! - Options: the user's yt-dlp options must be in [`SUPPORTED_OPTIONS`];
//!   the worker turns them into `YoutubeDL` params with yt-dlp's own CLI
//!   parser (`yt_dlp.parse_options`), so defaults and value syntax are those
//!   of the process runner. Anything else is refused with a message that
//!   names the option and points at the process runner.
//! - Failures: the worker reports the exception chain (type names with their
//!   modules, HTTP status and reason, errno), [`classify_chain`] maps it to
//!   the same [`FailureKind`]s as [`crate::classify`] gives for the same
//!   faults; what the chain does not decide falls back to the same text rules.
//! - Isolation: a fresh `YoutubeDL` per job; a deadline per job (the worker
//!   is killed and replaced); a worker that dies or grows beyond a memory
//!   bound (RSS from `/proc`) is replaced; dropping a job's future kills its
//!   worker; workers are recycled after a number of jobs. A broken worker
//!   always yields an outcome (a `host` failure with the reason).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::classify::{self, FailureKind};
use crate::proxy_url::{self, ProxyUrl};
use crate::ytdlp_run::{Progress, RunOutcome, RunSpec, kill_group};

/// The worker script, embedded.
pub const SCRIPT: &str = include_str!("ytdlp_worker.py");
/// Overrides the Python the workers run (else config `worker.python`, else
/// found from yt-dlp).
pub const PYTHON_ENV_VAR: &str = "YTDLP_HOST_PYTHON";
pub const DEFAULT_MAX_JOBS: u32 = 100;
pub const DEFAULT_MAX_RSS_MIB: u64 = 1024;
/// How long a fresh worker may take to import yt-dlp before the pool gives
/// up on it at start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a busy worker's RSS is read.
const RSS_POLL: Duration = Duration::from_millis(500);
/// Lines of a worker's stderr kept to explain its death.
const STDERR_LINES: usize = 20;

/// `[worker]` in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The Python that runs the workers (default: yt-dlp's own, from its
    /// shebang; else python3 on PATH).
    pub python: Option<PathBuf>,
    /// Jobs a worker runs before it is replaced (default 100).
    pub max_jobs: Option<NonZeroU32>,
    /// A worker whose resident memory exceeds this is replaced, MiB
    /// (default 1024).
    pub max_rss_mib: Option<NonZeroU64>,
}

// ---------------------------------------------------------------------------
// Options

/// The yt-dlp options the worker runner accepts, with an example value for
/// those that take one (the tests pass every one of them through yt-dlp's
/// parser). Everything maps to `YoutubeDL` params alone; options that act
/// outside them (printing, post-processing, updating, batch files, ...) are
/// refused.
pub const SUPPORTED_OPTIONS: &[(&[&str], Option<&str>)] = &[
    // Format selection
    (&["-f", "--format"], Some("best")),
    (&["-S", "--format-sort"], Some("res,ext")),
    (&["--merge-output-format"], Some("mp4")),
    // Output
    (&["-o", "--output"], Some("%(id)s.%(ext)s")),
    (&["-P", "--paths"], Some("/tmp")),
    (&["--output-na-placeholder"], Some("NA")),
    (&["--restrict-filenames"], None),
    (&["--no-restrict-filenames"], None),
    (&["--windows-filenames"], None),
    (&["--no-windows-filenames"], None),
    (&["--trim-filenames"], Some("100")),
    (&["-w", "--no-overwrites"], None),
    (&["--force-overwrites"], None),
    (&["--no-force-overwrites"], None),
    (&["-c", "--continue"], None),
    (&["--no-continue"], None),
    (&["--part"], None),
    (&["--no-part"], None),
    (&["--mtime"], None),
    (&["--no-mtime"], None),
    // Playlists and filters
    (&["--no-playlist"], None),
    (&["--yes-playlist"], None),
    (&["-I", "--playlist-items"], Some("1:3")),
    (&["--max-filesize"], Some("50M")),
    (&["--min-filesize"], Some("1k")),
    (&["--download-archive"], Some("/tmp/archive.txt")),
    (&["--no-download-archive"], None),
    // Download
    (&["-r", "--limit-rate", "--rate-limit"], Some("4.2M")),
    (&["--throttled-rate"], Some("100K")),
    (&["-R", "--retries"], Some("3")),
    (&["--fragment-retries"], Some("infinite")),
    (&["--extractor-retries"], Some("2")),
    (&["--file-access-retries"], Some("2")),
    (&["--retry-sleep"], Some("linear=1::2")),
    (&["-N", "--concurrent-fragments"], Some("4")),
    (&["--http-chunk-size"], Some("10M")),
    (&["--buffer-size"], Some("16K")),
    (&["--socket-timeout"], Some("10")),
    (&["--sleep-requests"], Some("1")),
    (&["--sleep-interval", "--min-sleep-interval"], Some("1")),
    (&["--max-sleep-interval"], Some("2")),
    // Network and requests
    (&["-4", "--force-ipv4"], None),
    (&["-6", "--force-ipv6"], None),
    (&["--source-address"], Some("127.0.0.1")),
    (&["--no-check-certificates"], None),
    (&["--add-header"], Some("X-Test:1")),
    (&["--referer"], Some("http://127.0.0.1/")),
    (&["--user-agent"], Some("test-agent")),
    (&["--cookies"], Some("/tmp/cookies.txt")),
    (&["--no-cookies"], None),
    // Extractors
    (&["--use-extractors", "--ies"], Some("generic")),
    (&["--extractor-args"], Some("generic:impersonate")),
    (&["--cache-dir"], Some("/tmp/ytdlp-cache")),
    (&["--no-cache-dir"], None),
    // Verbosity and simulation (progress lines always come from hooks)
    (&["-q", "--quiet"], None),
    (&["--no-quiet"], None),
    (&["--no-warnings"], None),
    (&["-v", "--verbose"], None),
    (&["-s", "--simulate"], None),
    (&["--no-simulate"], None),
    (&["--skip-download", "--no-download"], None),
    (&["--newline"], None),
    (&["--progress"], None),
    (&["--no-progress"], None),
    (&["--ignore-config", "--no-config"], None),
    (&["--no-colors", "--no-color"], None),
];

fn lookup(name: &str) -> Option<bool> {
    SUPPORTED_OPTIONS
        .iter()
        .find(|(names, _)| names.contains(&name))
        .map(|(_, sample)| sample.is_some())
}

fn unsupported(what: &str) -> String {
    format!(
        "yt-dlp option `{what}` is not supported by the worker runner; use `runner = \"process\"` \
         (or `--runner process`), which passes every option to yt-dlp"
    )
}

/// Checks the user's yt-dlp arguments against [`SUPPORTED_OPTIONS`]
/// (optparse syntax: `--opt VALUE`, `--opt=VALUE`, `-fVALUE`, clustered
/// short flags). The error names the first unsupported option.
pub fn check_args(args: &[String]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        if a == "--" || a == "-" || !a.starts_with('-') {
            return Err(format!(
                "`{a}`: extra URLs or positional yt-dlp arguments are not supported by the worker \
                 runner; use `runner = \"process\"` (or `--runner process`)"
            ));
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (format!("--{n}"), true),
                None => (a.to_string(), false),
            };
            match lookup(&name) {
                None => return Err(unsupported(&name)),
                Some(false) if inline => {
                    return Err(format!("yt-dlp option `{name}` takes no value"));
                }
                Some(true) if !inline => {
                    if i >= args.len() {
                        return Err(format!("yt-dlp option `{name}` needs a value"));
                    }
                    i += 1;
                }
                Some(_) => {}
            }
            continue;
        }
        // Short options: flags may be clustered (`-qs`); one that takes a
        // value takes the rest of the word, or the next argument.
        for (at, c) in a.char_indices().skip(1) {
            let name = format!("-{c}");
            match lookup(&name) {
                None => return Err(unsupported(&name)),
                Some(false) => {}
                Some(true) => {
                    if at + c.len_utf8() == a.len() {
                        if i >= args.len() {
                            return Err(format!("yt-dlp option `{name}` needs a value"));
                        }
                        i += 1;
                    }
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The options a job hands to `yt_dlp.parse_options`: the process runner's
/// wrapper options (without its stdout printing, which the hooks replace),
/// then the user's.
pub fn job_argv(spec: &RunSpec) -> Result<Vec<String>, String> {
    check_args(&spec.extra_args)?;
    let mut a = vec![
        "--ignore-config".to_string(),
        "--proxy".to_string(),
        spec.proxy
            .as_ref()
            .map(ProxyUrl::expose)
            .unwrap_or("")
            .to_string(),
        "--socket-timeout".to_string(),
        spec.socket_timeout_secs.max(1).to_string(),
    ];
    if let Some(o) = &spec.output {
        a.push("-o".to_string());
        a.push(o.clone());
    }
    a.extend(spec.extra_args.iter().cloned());
    Ok(a)
}

// ---------------------------------------------------------------------------
// Failure classification

/// One exception of the chain the worker reports, outermost first.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExcInfo {
    /// The class and its bases, as `module.QualName`.
    pub types: Vec<String>,
    pub msg: String,
    /// yt-dlp's `HTTPError.status`.
    pub status: Option<i64>,
    /// urllib's `HTTPError.code`.
    pub code: Option<i64>,
    /// `OSError.errno` (SOCKS errors carry their reply code here).
    pub errno: Option<i64>,
    /// The HTTP reason phrase.
    pub reason: Option<String>,
}

impl ExcInfo {
    fn is(&self, qualname: &str) -> bool {
        self.types.iter().any(|t| t == qualname)
    }

    fn http_status(&self) -> Option<i64> {
        if self.is("yt_dlp.networking.exceptions.HTTPError") {
            self.status.or(self.code)
        } else if self.is("urllib.error.HTTPError") {
            self.code.or(self.status)
        } else {
            None
        }
    }
}

const SOCKS_ERROR: &str = "yt_dlp.socks.ProxyError";
const SOCKS5_GENERAL_FAILURE: i64 = 0x01;
const SOCKS5_BAD_CREDENTIALS: i64 = 0xFE;
const SOCKS5_NO_ACCEPTABLE_AUTH: i64 = 0xFF;

/// The failure kind of a chain, or `None` when the types say nothing
/// decisive (the caller then applies the text rules of [`classify`]).
/// Mirrors [`classify::classify`] fault for fault.
pub fn kind_from_chain(chain: &[ExcInfo], proxy_has_credentials: bool) -> Option<FailureKind> {
    // The proxy's or the site's HTTP answer: decided by the status.
    if let Some(e) = chain.iter().find(|e| e.http_status().is_some()) {
        let status = e.http_status().unwrap_or_default();
        let reason = e.reason.as_deref().unwrap_or("").to_ascii_lowercase();
        return Some(match status {
            407 => FailureKind::ProxyAuth,
            401 if proxy_has_credentials => FailureKind::ProxyAuth,
            403 | 429 => FailureKind::Blocked,
            // tinyproxy's "500 Unable to connect": the proxy is alive but
            // could not reach the target.
            500..=504 if reason.contains("unable to connect") => FailureKind::Unknown,
            _ => FailureKind::Content,
        });
    }
    // The SOCKS reply code.
    if let Some(e) = chain.iter().find(|e| e.is(SOCKS_ERROR)) {
        return Some(match e.errno {
            Some(SOCKS5_NO_ACCEPTABLE_AUTH | SOCKS5_BAD_CREDENTIALS) => FailureKind::ProxyAuth,
            Some(SOCKS5_GENERAL_FAILURE) if proxy_has_credentials => FailureKind::ProxyAuth,
            _ => FailureKind::ProxyConnect,
        });
    }
    // A socket timeout under the transport error (socket.timeout is
    // TimeoutError; urllib3's own TimeoutError is a different class that
    // also covers refused connections, so it does not count).
    if chain.iter().any(|e| e.is("builtins.TimeoutError")) {
        return Some(FailureKind::ProxyTimeout);
    }
    if chain.iter().any(|e| {
        e.is("yt_dlp.networking.exceptions.ProxyError")
            || e.is("builtins.ConnectionError")
            || e.is("yt_dlp.networking.exceptions.TransportError")
                && !e.is("yt_dlp.networking.exceptions.IncompleteRead")
                && !e.is("yt_dlp.networking.exceptions.SSLError")
    }) {
        return Some(FailureKind::ProxyConnect);
    }
    if chain.iter().any(|e| e.is("yt_dlp.utils.UnsupportedError")) {
        return Some(FailureKind::Content);
    }
    if chain
        .iter()
        .any(|e| e.is("yt_dlp.utils.GeoRestrictedError"))
    {
        return Some(FailureKind::Blocked);
    }
    None
}

/// The kind of a failed job: from the exception chain, else from the
/// `ERROR:` message with the process runner's rules.
pub fn classify_chain(
    chain: &[ExcInfo],
    error_line: &str,
    proxy_has_credentials: bool,
) -> FailureKind {
    kind_from_chain(chain, proxy_has_credentials)
        .unwrap_or_else(|| classify::classify(error_line, Some(1), proxy_has_credentials))
}

/// The failure message as the process runner words it: the `ERROR:` line
/// without yt-dlp's bug-report boilerplate, on one line, capped, masked.
fn failure_message(line: &str) -> String {
    let line = line
        .split("; please report this issue")
        .next()
        .unwrap_or_default()
        .trim();
    proxy_url::mask(&crate::backend::cap(&line.replace(['\r', '\n'], " "), 500))
}

// ---------------------------------------------------------------------------
// Finding Python

/// The Python that runs the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonSpec {
    pub python: PathBuf,
    /// Put first on `sys.path` (a zipapp yt-dlp: the module is inside it).
    pub sys_path: Option<PathBuf>,
    /// Where the choice came from, for logs.
    pub origin: String,
}

/// Finds the Python whose `yt_dlp` is the configured yt-dlp:
/// `$YTDLP_HOST_PYTHON`, config `worker.python`, the interpreter in
/// yt-dlp's shebang (a zipapp yt-dlp is put on `sys.path`), python3 on PATH
/// for a wrapper script (e.g. a pyenv shim), then the private venv's. A
/// standalone yt-dlp binary (no shebang) has no Python module: an error.
pub fn find_python(yt_dlp: &Path, configured: Option<&Path>) -> Result<PythonSpec, String> {
    if let Some(p) = std::env::var_os(PYTHON_ENV_VAR).filter(|v| !v.is_empty()) {
        return Ok(PythonSpec {
            python: PathBuf::from(p),
            sys_path: None,
            origin: PYTHON_ENV_VAR.to_string(),
        });
    }
    if let Some(p) = configured {
        return Ok(PythonSpec {
            python: p.to_path_buf(),
            sys_path: None,
            origin: "config `worker.python`".to_string(),
        });
    }
    let exe = if yt_dlp.components().count() == 1 {
        crate::ytdlp_locate::search_path(yt_dlp).unwrap_or_else(|| yt_dlp.to_path_buf())
    } else {
        yt_dlp.to_path_buf()
    };
    let head = read_head(&exe, 4096)
        .map_err(|e| format!("cannot read yt-dlp at {}: {e}", exe.display()))?;
    match shebang_python(&head) {
        Shebang::Python(interp) => {
            let python = if interp.components().count() == 1 {
                crate::ytdlp_locate::search_path(&interp).ok_or_else(|| {
                    format!("yt-dlp's interpreter `{}` is not on PATH", interp.display())
                })?
            } else {
                interp
            };
            Ok(PythonSpec {
                python,
                sys_path: is_zipapp(&head).then(|| exe.clone()),
                origin: format!("the shebang of {}", exe.display()),
            })
        }
        Shebang::Other => {
            let private = crate::ytdlp_locate::private_venv()
                .join("bin")
                .join("python");
            crate::ytdlp_locate::search_path("python3")
                .map(|p| PythonSpec {
                    python: p,
                    sys_path: None,
                    origin: format!("PATH ({} is a wrapper script)", exe.display()),
                })
                .or_else(|| {
                    private.is_file().then(|| PythonSpec {
                        python: private,
                        sys_path: None,
                        origin: "the private venv".to_string(),
                    })
                })
                .ok_or_else(|| "no python3 on PATH".to_string())
        }
        Shebang::None => Err(format!(
            "yt-dlp at {} is a standalone binary, not a Python script",
            exe.display()
        )),
    }
}

fn read_head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?
        .take(n as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum Shebang {
    /// A Python interpreter: a path, or a name to look up on PATH.
    Python(PathBuf),
    /// Some other interpreter (a shell wrapper).
    Other,
    /// No shebang (a binary).
    None,
}

fn shebang_python(head: &[u8]) -> Shebang {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Shebang::None;
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let Some(interp) = words.next() else {
        return Shebang::Other;
    };
    let interp = if Path::new(interp).file_name().is_some_and(|n| n == "env") {
        // `/usr/bin/env [-S] python3 [args]`
        match words.find(|w| !w.starts_with('-')) {
            Some(w) => w,
            None => return Shebang::Other,
        }
    } else {
        interp
    };
    let is_python = Path::new(interp)
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("python"));
    if is_python {
        Shebang::Python(PathBuf::from(interp))
    } else {
        Shebang::Other
    }
}

/// A zipapp: a shebang line, then a zip archive.
fn is_zipapp(head: &[u8]) -> bool {
    head.iter()
        .position(|&b| b == b'\n')
        .is_some_and(|nl| head[nl + 1..].starts_with(b"PK\x03\x04"))
}

/// The script, written once to the cache directory (by content hash); `None`
/// if that is not possible (the script is then passed with `-c`).
fn script_file() -> Option<PathBuf> {
    let hash = Sha256::digest(SCRIPT.as_bytes());
    let mut name = String::from("ytdlp_worker-");
    for b in &hash[..8] {
        let _ = write!(name, "{b:02x}");
    }
    name.push_str(".py");
    let dir = crate::config::cache_dir().join("worker");
    let path = dir.join(&name);
    if std::fs::read(&path).is_ok_and(|b| b == SCRIPT.as_bytes()) {
        return Some(path);
    }
    std::fs::create_dir_all(&dir).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, SCRIPT).ok()?;
    std::fs::rename(&tmp, &path).ok()?;
    Some(path)
}

// ---------------------------------------------------------------------------
// The protocol

/// One line from a worker.
#[derive(Debug)]
enum Event {
    Ready {
        version: String,
        python: String,
    },
    Fatal(String),
    /// Progress of a job, in the process runner's shape (the worker sends
    /// the same fields as its progress template).
    Progress(u64, Progress),
    Done(Done),
    Other,
}

impl Event {
    fn parse(line: &str) -> Event {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            return Event::Other;
        };
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        match v["event"].as_str() {
            Some("ready") => Event::Ready {
                version: text("version"),
                python: text("python"),
            },
            Some("fatal") => Event::Fatal(text("error")),
            Some("progress") => match (v["job"].as_u64(), serde_json::from_value(v.clone())) {
                (Some(job), Ok(p)) => Event::Progress(job, p),
                _ => Event::Other,
            },
            Some("done") => serde_json::from_value(v).map_or(Event::Other, Event::Done),
            _ => Event::Other,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Done {
    job: u64,
    ok: bool,
    #[serde(default)]
    retcode: i32,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    chain: Vec<ExcInfo>,
    /// yt-dlp refused the options.
    #[serde(default)]
    options: bool,
}

// ---------------------------------------------------------------------------
// Workers

/// How the pool runs its workers.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub python: PythonSpec,
    /// Workers started ahead: the number of concurrent downloads. The pool
    /// grows to as many workers as jobs run at once (like the process
    /// runner, it does not queue); idle workers stay warm.
    pub size: usize,
    /// Jobs a worker runs before it is replaced.
    pub max_jobs: u32,
    /// Resident memory beyond which a worker is replaced, bytes.
    pub max_rss_bytes: u64,
}

impl PoolOptions {
    pub fn new(python: PythonSpec, size: usize, cfg: &WorkerConfig) -> PoolOptions {
        PoolOptions {
            python,
            size: size.max(1),
            max_jobs: cfg.max_jobs.map_or(DEFAULT_MAX_JOBS, NonZeroU32::get),
            max_rss_bytes: cfg.max_rss_mib.map_or(DEFAULT_MAX_RSS_MIB, NonZeroU64::get) << 20,
        }
    }
}

struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    ready: bool,
    jobs: u32,
}

impl Worker {
    fn spawn(opts: &PoolOptions, script: Option<&Path>) -> std::io::Result<Worker> {
        let mut cmd = Command::new(&opts.python.python);
        match script {
            Some(path) => cmd.arg(path),
            None => cmd.arg("-c").arg(SCRIPT),
        };
        if let Some(p) = &opts.python.sys_path {
            cmd.arg("--sys-path").arg(p);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // With urllib, NO_PROXY covering the target bypasses the proxy.
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            // Its own group: a kill also ends what it started (ffmpeg).
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or_default();
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // yt-dlp may print a proxy URL with its credentials.
                let line = proxy_url::mask(&line);
                tracing::debug!("yt-dlp worker {pid}: {line}");
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Ok(Worker {
            child,
            pid,
            stdin,
            stdout,
            stderr_tail: tail,
            ready: false,
            jobs: 0,
        })
    }

    /// Waits for the `ready` line (yt-dlp imported).
    async fn await_ready(&mut self) -> Result<(String, String), String> {
        loop {
            match self.stdout.next_line().await {
                Ok(Some(line)) => match Event::parse(&line) {
                    Event::Ready { version, python } => {
                        self.ready = true;
                        return Ok((version, python));
                    }
                    Event::Fatal(error) => return Err(error),
                    _ => tracing::debug!("yt-dlp worker {}: unexpected line {line}", self.pid),
                },
                Ok(None) | Err(_) => return Err(self.death().await),
            }
        }
    }

    /// Why the worker is gone (after its stdout closed).
    async fn death(&mut self) -> String {
        let status = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        let how = match status {
            Ok(Ok(s)) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(c), _) => format!("exited with code {c}"),
                    (None, Some(sig)) => format!("was killed by signal {sig}"),
                    _ => "ended".to_string(),
                }
            }
            _ => "closed its output".to_string(),
        };
        // The last thing a Python that failed printed says why; after a
        // signal it is only whatever came before.
        let tail = if how.contains("signal") {
            String::new()
        } else {
            self.last_stderr_line()
        };
        if tail.is_empty() {
            format!("the yt-dlp worker (pid {}) {how}", self.pid)
        } else {
            format!("the yt-dlp worker (pid {}) {how}: {tail}", self.pid)
        }
    }

    fn last_stderr_line(&self) -> String {
        let t = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        t.iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| crate::backend::cap(l.trim(), 300))
            .unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn kill(&mut self) {
        kill_group(Some(self.pid));
        let _ = self.child.start_kill();
    }

    fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.pid)
    }
}

/// Resident memory of `pid`, from `/proc/PID/statm`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

struct Inner {
    opts: PoolOptions,
    script: Option<PathBuf>,
    idle: Mutex<Vec<Worker>>,
    /// PIDs of the workers running a job, by job.
    busy: Mutex<Vec<(u64, u32)>>,
    next_job: AtomicU64,
    spawned: AtomicU64,
    version: String,
}

impl Inner {
    fn spawn(&self) -> std::io::Result<Worker> {
        let w = Worker::spawn(&self.opts, self.script.as_deref())?;
        self.spawned.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("started yt-dlp worker {}", w.pid);
        Ok(w)
    }

    /// An idle live worker, or a new one.
    fn checkout(&self) -> std::io::Result<Worker> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match next {
                Some(mut w) => {
                    if w.alive() {
                        return Ok(w);
                    }
                    tracing::debug!("yt-dlp worker {} died while idle; replacing it", w.pid);
                    w.kill();
                }
                None => return self.spawn(),
            }
        }
    }

    fn give_back(&self, w: Worker) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
    }

    /// Kills `w` and starts its replacement (it imports yt-dlp while idle).
    fn replace(&self, mut w: Worker) {
        w.kill();
        drop(w);
        match self.spawn() {
            Ok(n) => self.give_back(n),
            Err(e) => tracing::warn!("cannot start a yt-dlp worker: {e}"),
        }
    }
}

/// A job's hold on a worker: dropping it before the job is over (the run
/// future was dropped) kills the worker.
struct Busy<'a> {
    inner: &'a Inner,
    job: u64,
    worker: Option<Worker>,
    /// The `.part` file being written, removed on cancel (as the process
    /// runner does).
    partial: Option<PathBuf>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(j, _)| *j != self.job);
        if let Some(mut w) = self.worker.take() {
            tracing::debug!(
                "job {} cancelled: killing yt-dlp worker {}",
                self.job,
                w.pid
            );
            w.kill();
            if let Some(p) = &self.partial {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

enum JobEnd {
    Done(Done),
    Died(String),
    TooBig(u64),
    Deadline,
}

/// The pool of warm workers; one per host, shared (it is `Send + Sync`).
pub struct WorkerPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("size", &self.inner.opts.size)
            .field("python", &self.inner.opts.python.python)
            .finish()
    }
}

impl WorkerPool {
    /// Starts the pool: one worker must import yt-dlp (that is the check
    /// that the worker runner can work here); the others start beside it.
    pub async fn start(opts: PoolOptions) -> Result<WorkerPool, String> {
        let script = script_file();
        let spawn = |opts: &PoolOptions| {
            Worker::spawn(opts, script.as_deref())
                .map_err(|e| format!("cannot run Python at {}: {e}", opts.python.python.display()))
        };
        let mut first = spawn(&opts)?;
        let mut idle = Vec::with_capacity(opts.size);
        for _ in 1..opts.size {
            idle.push(spawn(&opts)?);
        }
        let ready = tokio::time::timeout(START_TIMEOUT, first.await_ready()).await;
        let (version, python) = match ready {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                first.kill();
                idle.iter_mut().for_each(Worker::kill);
                return Err(e);
            }
            Err(_) => {
                first.kill();
                idle.iter_mut().for_each(Worker::kill);
                return Err(format!(
                    "Python at {} did not import yt-dlp within {} s",
                    opts.python.python.display(),
                    START_TIMEOUT.as_secs()
                ));
            }
        };
        tracing::info!(
            "yt-dlp {version} in {} warm worker(s) (Python {python} at {}, from {})",
            opts.size,
            opts.python.python.display(),
            opts.python.origin
        );
        idle.push(first);
        let spawned = idle.len() as u64;
        Ok(WorkerPool {
            inner: Arc::new(Inner {
                opts,
                script,
                idle: Mutex::new(idle),
                busy: Mutex::new(Vec::new()),
                next_job: AtomicU64::new(1),
                spawned: AtomicU64::new(spawned),
                version,
            }),
        })
    }

    /// The yt-dlp version the workers import.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    pub fn size(&self) -> usize {
        self.inner.opts.size
    }

    /// Workers started so far (replacements included).
    pub fn spawned(&self) -> u64 {
        self.inner.spawned.load(Ordering::Relaxed)
    }

    /// PIDs of the workers running a job now.
    pub fn busy_pids(&self) -> Vec<u32> {
        let busy = self.inner.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.iter().map(|(_, pid)| *pid).collect()
    }

    /// PIDs of the idle workers.
    pub fn idle_pids(&self) -> Vec<u32> {
        let idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.iter().map(|w| w.pid).collect()
    }

    /// Runs one job on an idle worker. Dropping the future kills the worker.
    pub async fn run(&self, spec: &RunSpec, mut on_progress: impl FnMut(Progress)) -> RunOutcome {
        let started = Instant::now();
        let fail = |kind, message: String, exit_code| RunOutcome {
            exit_code,
            duration: started.elapsed(),
            file: None,
            failure: Some((kind, message)),
        };
        let argv = match job_argv(spec) {
            Ok(a) => a,
            Err(e) => return fail(FailureKind::Host, e, None),
        };
        let deadline = tokio::time::Instant::now() + spec.deadline;
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({ "job": job, "argv": argv, "url": spec.url }).to_string();
        let mut busy = Busy {
            inner: &self.inner,
            job,
            worker: None,
            partial: None,
        };
        // A worker that was idle may have died unseen: one more try on a
        // fresh one when the request cannot even be written.
        for attempt in 0..2 {
            let mut w = match self.inner.checkout() {
                Ok(w) => w,
                Err(e) => {
                    return fail(
                        FailureKind::Host,
                        format!(
                            "cannot start a yt-dlp worker (Python at {}): {e}",
                            self.inner.opts.python.python.display()
                        ),
                        None,
                    );
                }
            };
            let wrote = async {
                w.stdin.write_all(request.as_bytes()).await?;
                w.stdin.write_all(b"\n").await?;
                w.stdin.flush().await
            }
            .await;
            if wrote.is_ok() {
                self.inner
                    .busy
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((job, w.pid));
                busy.worker = Some(w);
                break;
            }
            let fresh = !w.ready;
            let why = w.death().await;
            w.kill();
            if fresh || attempt == 1 {
                return fail(FailureKind::Host, why, None);
            }
        }
        let Some(w) = busy.worker.as_mut() else {
            return fail(FailureKind::Host, "no yt-dlp worker".into(), None);
        };
        let partial = &mut busy.partial;

        let max_rss = self.inner.opts.max_rss_bytes;
        let end = async {
            if !w.ready
                && let Err(e) = w.await_ready().await
            {
                return JobEnd::Died(e);
            }
            let mut poll = tokio::time::interval(RSS_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    line = w.stdout.next_line() => match line {
                        Ok(Some(line)) => match Event::parse(&line) {
                            Event::Progress(j, p) if j == job => {
                                if let Some(tmp) = &p.tmpfilename {
                                    *partial = Some(PathBuf::from(tmp));
                                }
                                on_progress(p);
                            }
                            Event::Done(done) if done.job == job => return JobEnd::Done(done),
                            _ => tracing::debug!("yt-dlp worker {}: unexpected line {line}", w.pid),
                        },
                        Ok(None) | Err(_) => return JobEnd::Died(w.death().await),
                    },
                    _ = poll.tick() => {
                        if let Some(rss) = w.rss_bytes().filter(|r| *r > max_rss) {
                            return JobEnd::TooBig(rss);
                        }
                    }
                }
            }
        };
        let end = match tokio::time::timeout_at(deadline, end).await {
            Ok(end) => end,
            Err(_) => JobEnd::Deadline,
        };

        let mut w = busy.worker.take().expect("worker");
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(j, _)| *j != job);
        let has_creds = spec.proxy.as_ref().is_some_and(ProxyUrl::has_credentials);
        match end {
            JobEnd::Done(done) => {
                w.jobs += 1;
                let rss = w.rss_bytes().unwrap_or_default();
                if w.jobs >= self.inner.opts.max_jobs {
                    tracing::debug!("yt-dlp worker {} ran {} jobs: recycling it", w.pid, w.jobs);
                    self.inner.replace(w);
                } else if rss > max_rss {
                    tracing::info!(
                        "yt-dlp worker {} grew to {} MiB: replacing it",
                        w.pid,
                        rss >> 20
                    );
                    self.inner.replace(w);
                } else {
                    self.inner.give_back(w);
                }
                outcome_of(done, has_creds, started.elapsed())
            }
            JobEnd::Died(why) => {
                self.inner.replace(w);
                fail(FailureKind::Host, why, None)
            }
            JobEnd::TooBig(rss) => {
                let pid = w.pid;
                self.inner.replace(w);
                fail(
                    FailureKind::Host,
                    format!(
                        "the yt-dlp worker (pid {pid}) grew beyond {} MiB (RSS {} MiB) and was replaced",
                        max_rss >> 20,
                        rss >> 20
                    ),
                    None,
                )
            }
            JobEnd::Deadline => {
                self.inner.replace(w);
                // The same kind and words as the process runner's deadline.
                fail(
                    FailureKind::Unknown,
                    format!(
                        "yt-dlp ran longer than {} s and was killed",
                        spec.deadline.as_secs()
                    ),
                    None,
                )
            }
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        for w in idle.iter_mut() {
            w.kill();
        }
        idle.clear();
    }
}

fn outcome_of(done: Done, has_creds: bool, duration: Duration) -> RunOutcome {
    if done.ok {
        return RunOutcome {
            exit_code: Some(0),
            duration,
            file: done.file,
            failure: None,
        };
    }
    let line = done.error.clone().unwrap_or_default();
    let kind = if done.options {
        FailureKind::Host
    } else {
        let types: Vec<&str> = done
            .chain
            .iter()
            .filter_map(|e| e.types.first().map(String::as_str))
            .collect();
        let kind = classify_chain(&done.chain, &line, has_creds);
        tracing::debug!(
            "job {}: {kind} (exception chain {types:?}{})",
            done.job,
            if kind_from_chain(&done.chain, has_creds).is_some() {
                ""
            } else {
                "; decided by the error text"
            }
        );
        kind
    };
    let mut message = failure_message(&line);
    if message.is_empty() {
        message = format!("yt-dlp returned {} and reported no error", done.retcode);
    }
    RunOutcome {
        exit_code: Some(if done.retcode == 0 { 1 } else { done.retcode }),
        duration,
        file: None,
        failure: Some((kind, message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureKind::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn supported_options_pass_in_every_syntax() {
        for ok in [
            &["-f", "best", "--no-playlist", "-q"][..],
            &["--format=bestvideo+bestaudio", "--limit-rate", "50K"],
            &["-fbest", "-qs", "-R", "infinite", "--rate-limit=1M"],
            &["-o", "%(title)s.%(ext)s", "--yes-playlist", "--simulate"],
            &["-qf", "best"],
            &["-qfbest"],
            &[],
        ] {
            assert_eq!(check_args(&args(ok)), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn unsupported_options_are_named_and_point_at_the_process_runner() {
        for (bad, name) in [
            (&["--embed-subs"][..], "--embed-subs"),
            (&["-f", "best", "-x"], "-x"),
            (&["--print=title"], "--print"),
            (&["-qj"], "-j"),
            (&["--no-play"], "--no-play"),
        ] {
            let e = check_args(&args(bad)).unwrap_err();
            assert!(e.contains(&format!("`{name}`")), "{e}");
            assert!(e.contains("runner = \"process\""), "{e}");
        }
        let e = check_args(&args(&["http://example.com/other"])).unwrap_err();
        assert!(e.contains("positional"), "{e}");
        assert!(
            check_args(&args(&["-f"]))
                .unwrap_err()
                .contains("needs a value")
        );
        assert!(
            check_args(&args(&["--no-playlist=1"]))
                .unwrap_err()
                .contains("takes no value")
        );
    }

    #[test]
    fn the_job_argv_has_the_wrapper_options_then_the_users() {
        let spec = RunSpec {
            program: "yt-dlp".into(),
            url: "http://x/".into(),
            proxy: Some(proxy_url::validate("socks5://u:p@127.0.0.1:1080").unwrap()),
            socket_timeout_secs: 0,
            output: Some("%(id)s.%(ext)s".into()),
            extra_args: args(&["-f", "best"]),
            deadline: Duration::from_secs(5),
        };
        assert_eq!(
            job_argv(&spec).unwrap(),
            args(&[
                "--ignore-config",
                "--proxy",
                "socks5://u:p@127.0.0.1:1080",
                "--socket-timeout",
                "1",
                "-o",
                "%(id)s.%(ext)s",
                "-f",
                "best"
            ])
        );
        let direct = RunSpec {
            proxy: None,
            ..spec
        };
        assert_eq!(job_argv(&direct).unwrap()[2], "");
    }

    fn exc(types: &[&str]) -> ExcInfo {
        ExcInfo {
            types: types.iter().map(|s| s.to_string()).collect(),
            ..ExcInfo::default()
        }
    }

    const EXTRACTOR: &[&str] = &["yt_dlp.utils.ExtractorError", "yt_dlp.utils.YoutubeDLError"];
    const YT_HTTP: &[&str] = &[
        "yt_dlp.networking.exceptions.HTTPError",
        "yt_dlp.networking.exceptions.RequestError",
    ];
    const YT_PROXY: &[&str] = &[
        "yt_dlp.networking.exceptions.ProxyError",
        "yt_dlp.networking.exceptions.TransportError",
        "yt_dlp.networking.exceptions.RequestError",
    ];
    const YT_TRANSPORT: &[&str] = &[
        "yt_dlp.networking.exceptions.TransportError",
        "yt_dlp.networking.exceptions.RequestError",
    ];
    const SOCKS5: &[&str] = &[
        "yt_dlp.socks.Socks5Error",
        "yt_dlp.socks.ProxyError",
        "builtins.OSError",
    ];

    fn http(status: i64, reason: &str) -> Vec<ExcInfo> {
        vec![
            exc(EXTRACTOR),
            ExcInfo {
                status: Some(status),
                reason: Some(reason.into()),
                ..exc(YT_HTTP)
            },
        ]
    }

    fn socks(errno: i64) -> Vec<ExcInfo> {
        vec![
            exc(EXTRACTOR),
            exc(YT_PROXY),
            exc(&["urllib.error.URLError", "builtins.OSError"]),
            ExcInfo {
                errno: Some(errno),
                ..exc(SOCKS5)
            },
        ]
    }

    /// The chains real yt-dlp 2026.10.26 reports for the fault matrix
    /// (both HTTP stacks give these types), and the kinds `classify.rs`
    /// gives for the same faults.
    #[test]
    fn the_fault_matrix_maps_like_the_stderr_classifier() {
        let refused_urllib = vec![
            exc(EXTRACTOR),
            exc(YT_TRANSPORT),
            ExcInfo {
                errno: Some(111),
                ..exc(&[
                    "builtins.ConnectionRefusedError",
                    "builtins.ConnectionError",
                    "builtins.OSError",
                ])
            },
        ];
        // requests: urllib3's NewConnectionError derives from urllib3's own
        // TimeoutError, which must not read as a timeout.
        let refused_requests = vec![
            exc(EXTRACTOR),
            exc(YT_PROXY),
            exc(&[
                "requests.exceptions.ProxyError",
                "requests.exceptions.ConnectionError",
            ]),
            exc(&[
                "urllib3.exceptions.NewConnectionError",
                "urllib3.exceptions.ConnectTimeoutError",
                "urllib3.exceptions.TimeoutError",
                "urllib3.exceptions.HTTPError",
            ]),
            exc(&[
                "builtins.ConnectionRefusedError",
                "builtins.ConnectionError",
                "builtins.OSError",
            ]),
        ];
        let blackhole = vec![
            exc(EXTRACTOR),
            exc(YT_TRANSPORT),
            exc(&[
                "urllib3.exceptions.ReadTimeoutError",
                "urllib3.exceptions.TimeoutError",
            ]),
            exc(&["builtins.TimeoutError", "builtins.OSError"]),
        ];
        let urllib_404 = vec![
            exc(EXTRACTOR),
            ExcInfo {
                code: Some(404),
                ..exc(&["urllib.error.HTTPError", "urllib.error.URLError"])
            },
        ];
        let unsupported = vec![exc(&[
            "yt_dlp.utils.UnsupportedError",
            "yt_dlp.utils.ExtractorError",
        ])];
        let cases: Vec<(&str, Vec<ExcInfo>, bool, FailureKind)> = vec![
            ("dead port, urllib", refused_urllib, false, ProxyConnect),
            ("dead port, requests", refused_requests, false, ProxyConnect),
            ("black hole", blackhole, false, ProxyTimeout),
            (
                "407",
                http(407, "Proxy Authentication Required"),
                false,
                ProxyAuth,
            ),
            (
                "tinyproxy wrong password",
                http(401, "Unauthorized"),
                true,
                ProxyAuth,
            ),
            ("site 401", http(401, "Unauthorized"), false, Content),
            ("socks auth refused", socks(0xFF), false, ProxyAuth),
            ("socks wrong password", socks(0x01), true, ProxyAuth),
            ("socks target refused", socks(0x05), false, ProxyConnect),
            ("404", http(404, "Not Found"), false, Content),
            ("urllib HTTPError 404", urllib_404, false, Content),
            ("429", http(429, "Too Many Requests"), false, Blocked),
            ("403", http(403, "Forbidden"), false, Blocked),
            (
                "site 500",
                http(500, "Internal Server Error"),
                false,
                Content,
            ),
            ("unsupported URL", unsupported, false, Content),
            (
                "target down behind tinyproxy",
                http(500, "Unable to connect"),
                false,
                Unknown,
            ),
        ];
        for (name, chain, creds, want) in cases {
            assert_eq!(kind_from_chain(&chain, creds), Some(want), "{name}");
        }
    }

    #[test]
    fn undecided_chains_fall_back_to_the_text_rules() {
        let not_a_url = "ERROR: [generic] 'not-a-url' is not a valid URL";
        assert_eq!(kind_from_chain(&[exc(EXTRACTOR)], false), None);
        assert_eq!(classify_chain(&[exc(EXTRACTOR)], not_a_url, false), Content);
        let bad_type = "ERROR: Unable to handle request: Unsupported proxy type: \"ftp\" (urllib)";
        let nsh = exc(&["yt_dlp.networking.exceptions.NoSupportingHandlers"]);
        assert_eq!(classify_chain(&[nsh], bad_type, false), ProxyConnect);
        let bot = "ERROR: [youtube] x: Sign in to confirm you're not a bot";
        assert_eq!(classify_chain(&[exc(EXTRACTOR)], bot, false), Blocked);
        assert_eq!(classify_chain(&[], "", false), Unknown);
        // A short read is not a proxy fault by type: the text decides.
        let short = vec![exc(&[
            "yt_dlp.networking.exceptions.IncompleteRead",
            "yt_dlp.networking.exceptions.TransportError",
        ])];
        assert_eq!(kind_from_chain(&short, false), None);
    }

    #[test]
    fn messages_read_like_the_process_runners() {
        let m = failure_message(
            "ERROR: [generic] x: boom (caused by ProxyError('http://u:secret@h:1')); please report this issue on https://...",
        );
        assert_eq!(
            m,
            "ERROR: [generic] x: boom (caused by ProxyError('http://u:***@h:1'))"
        );
        assert_eq!(failure_message("ERROR: a\rb\nc"), "ERROR: a b c");
    }

    #[test]
    fn shebangs() {
        assert_eq!(
            shebang_python(b"#!/venv/bin/python3\nimport re\n"),
            Shebang::Python("/venv/bin/python3".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env python3\nPK\x03\x04..."),
            Shebang::Python("python3".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env -S python3.12 -E\n"),
            Shebang::Python("python3.12".into())
        );
        assert_eq!(
            shebang_python(b"#!/usr/bin/env bash\nexec ..."),
            Shebang::Other
        );
        assert_eq!(shebang_python(b"\x7fELF\x02\x01"), Shebang::None);
        assert!(is_zipapp(b"#!/usr/bin/env python3\nPK\x03\x04rest"));
        assert!(!is_zipapp(b"#!/usr/bin/python3\nimport sys\n"));
    }

    #[test]
    fn progress_and_done_lines_parse() {
        let p = Event::parse(
            r#"{"event":"progress","job":3,"status":"downloading","downloaded_bytes":1024,"total_bytes":null,"speed":1.5,"eta":2}"#,
        );
        assert!(
            matches!(&p, Event::Progress(3, p) if p.downloaded_bytes == Some(1024.0) && p.status.as_deref() == Some("downloading")),
            "{p:?}"
        );
        assert!(matches!(Event::parse("not json"), Event::Other));
        let d = Event::parse(
            r#"{"event":"done","job":3,"ok":false,"retcode":1,"error":"ERROR: x","chain":[{"types":["builtins.TimeoutError"],"msg":"timed out"}]}"#,
        );
        let Event::Done(d) = d else { panic!() };
        let o = outcome_of(d, false, Duration::ZERO);
        assert_eq!(o.failure.unwrap().0, ProxyTimeout);
    }
}
