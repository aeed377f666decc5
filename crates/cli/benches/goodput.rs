//! Goodput under a hostile pool (issue 15): every downloadable URL through a
//! proxy, as fast as the site allows, never from the user's own address.
//!
//! Real yt-dlp, real tinyproxies and microsocks with their own egress
//! addresses (127.0.0.N), dead ports, black holes, a slow link, and a site
//! that rate-limits per client address (tests/harness: `site`, `pool`,
//! `scenario`), all on loopback. Each contender runs in turn against the
//! same pool and URLs, with the site's counts reset and a fresh home of its
//! own; the order of contenders rotates from run to run.
//!
//!     cargo bench --bench goodput                               # every mix, one run each
//!     GOODPUT_MIX=issue GOODPUT_RUNS=3 cargo bench --bench goodput
//!     cargo bench --bench goodput -- --mix one-good --contenders worker-j4,shell --seed 7
//!
//! Options, as `GOODPUT_<NAME>` or `-- --<name> VALUE`:
//! - `seed` (1): run i lays the pool out and orders the URLs with seed + i;
//! - `mix` (all): comma-separated names from tests/harness/scenario.rs;
//! - `urls`: downloadable URLs per mix instead of the mix's own (404s scale);
//! - `contenders` (all): process-j1, process-j4, worker-j1, worker-j4, shell, ex;
//! - `runs` (1): runs per mix (median and spread over them);
//! - `timeout`: seconds per contender run before it is cut [default: 2x the
//!   mix's floor + 60 s, which the shell loop often needs more than]; a cut
//!   run reports what it had done;
//! - `json`: also write every measurement to this file;
//! - `keep` (0): 1 keeps each contender's home (outputs, logs, counts);
//! - `report`: print the tables of a `json` file again, running nothing.
//!
//! Measured per contender and run: files downloaded (complete) / expected;
//! wall time; yt-dlp runs (a wrapper first on PATH / passed as `--yt-dlp`
//! counts processes started for a URL; in a worker, a `sitecustomize` counts
//! `YoutubeDL.download` calls, one per job); requests the site got from
//! 127.0.0.1; `429` answers; good proxies (those the site delivers to)
//! benched at the end for longer than the site's Retry-After
//! (`ytdlp-host proxies stats --json` in the contender's home; the driver's
//! disabled list for `ex`; the shell loop keeps no state).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ytdlp_host_tests::pool::USER_ADDR;
use ytdlp_host_tests::scenario::{MIXES, Mix, Scenario, mix};
use ytdlp_host_tests::site::Answer;
use ytdlp_host_tests::{CLIP, require};

const SHELL_LOOP: &str = include_str!("goodput-scripts/shell_loop.sh");
const EX_MANAGER: &str = include_str!("goodput-scripts/ex_manager.sh");
const HOST: &str = env!("CARGO_BIN_EXE_ytdlp-host");

#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    Host { runner: &'static str, jobs: usize },
    Shell,
    Ex,
}

const CONTENDERS: [(&str, Contender); 6] = [
    (
        "process-j1",
        Contender::Host {
            runner: "process",
            jobs: 1,
        },
    ),
    (
        "process-j4",
        Contender::Host {
            runner: "process",
            jobs: 4,
        },
    ),
    (
        "worker-j1",
        Contender::Host {
            runner: "worker",
            jobs: 1,
        },
    ),
    (
        "worker-j4",
        Contender::Host {
            runner: "worker",
            jobs: 4,
        },
    ),
    ("shell", Contender::Shell),
    ("ex", Contender::Ex),
];

struct Opts {
    seed: u64,
    mixes: Vec<Mix>,
    contenders: Vec<(&'static str, Contender)>,
    runs: usize,
    timeout: Option<Duration>,
    json: Option<PathBuf>,
    keep: bool,
    report: Option<PathBuf>,
}

fn opts() -> Opts {
    let mut given: BTreeMap<String, String> = BTreeMap::new();
    for key in [
        "seed",
        "mix",
        "urls",
        "contenders",
        "runs",
        "timeout",
        "json",
        "keep",
        "report",
    ] {
        if let Ok(v) = std::env::var(format!("GOODPUT_{}", key.to_uppercase())) {
            given.insert(key.to_string(), v);
        }
    }
    // `cargo bench` passes `--bench`; flags after `--` override the env.
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(a) = args.next() {
        let Some(key) = a.strip_prefix("--") else {
            panic!(
                "unexpected argument `{a}` (options: --seed, --mix, --urls, --contenders, --runs, --timeout, --json, --keep, --report)"
            );
        };
        let value = args
            .next()
            .unwrap_or_else(|| panic!("--{key} needs a value"));
        given.insert(key.to_string(), value);
    }
    let num = |k: &str| {
        given.get(k).map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{k}: `{v}` is not a number"))
        })
    };
    let list = |k: &str| -> Option<Vec<String>> {
        given
            .get(k)
            .filter(|v| *v != "all")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
    };
    let mut mixes: Vec<Mix> = match list("mix") {
        Some(names) => names
            .iter()
            .map(|n| {
                mix(n).cloned().unwrap_or_else(|| {
                    let all: Vec<&str> = MIXES.iter().map(|m| m.name).collect();
                    panic!("no mix `{n}` (mixes: {})", all.join(", "))
                })
            })
            .collect(),
        None => MIXES.to_vec(),
    };
    if let Some(n) = num("urls") {
        mixes = mixes.iter().map(|m| m.with_media(n as usize)).collect();
    }
    let contenders = match list("contenders") {
        Some(names) => names
            .iter()
            .map(|n| {
                *CONTENDERS.iter().find(|(c, _)| c == n).unwrap_or_else(|| {
                    let all: Vec<&str> = CONTENDERS.iter().map(|(c, _)| *c).collect();
                    panic!("no contender `{n}` (contenders: {})", all.join(", "))
                })
            })
            .collect(),
        None => CONTENDERS.to_vec(),
    };
    Opts {
        seed: num("seed").unwrap_or(1),
        mixes,
        contenders,
        runs: num("runs").unwrap_or(1).max(1) as usize,
        timeout: num("timeout").map(Duration::from_secs),
        json: given.get("json").map(PathBuf::from),
        keep: num("keep").unwrap_or(0) != 0,
        report: given.get("report").map(PathBuf::from),
    }
}

/// One contender's run on one scenario.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Measure {
    mix: String,
    seed: u64,
    contender: String,
    downloaded: usize,
    expected: usize,
    wall_s: f64,
    /// Stopped at the timeout; the numbers are what it had done by then.
    cut: bool,
    ytdlp_runs: usize,
    /// Site requests from the user's own address.
    direct_requests: usize,
    /// Site requests from proxies' egress addresses.
    proxied_requests: usize,
    too_many: usize,
    /// Good proxies (the site delivers to them) not usable for longer than
    /// the site's Retry-After at the end.
    good_benched: usize,
    good_total: usize,
    /// The host's own count of attempts (`None` for the scripts).
    attempts: Option<usize>,
    /// The host's failed URLs by kind.
    failed_by_kind: BTreeMap<String, usize>,
    /// Media the site served (two per download), by the kind of proxy it
    /// went through (`direct`: the user's address).
    served_via: BTreeMap<String, usize>,
}

/// What every contender shares: the real yt-dlp, its Python, a warm compile
/// cache for the host's bundled plugin.
struct Tools {
    yt_dlp: PathBuf,
    python: PathBuf,
    cache: PathBuf,
    base: PathBuf,
}

fn main() {
    let o = opts();
    if let Some(path) = &o.report {
        report(path);
        return;
    }
    let yt_dlp = require("yt-dlp");
    require("tinyproxy");
    require("microsocks");
    let python = shebang_python(&yt_dlp);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let _tmp = if o.keep {
        println!("keeping every contender's home under {}", base.display());
        let _ = tmp.keep();
        None
    } else {
        Some(tmp)
    };
    let tools = Tools {
        yt_dlp,
        python,
        cache: base.join("cache"),
        base,
    };
    warm_compile_cache(&tools);
    let started = Instant::now();
    println!("# Goodput (issue 15)\n");
    println!(
        "yt-dlp {}; host {HOST}; load average {}\n",
        version(&tools.yt_dlp),
        load_average()
    );
    let mut all: Vec<Measure> = Vec::new();
    let mut tables = Vec::new();
    for m in &o.mixes {
        let timeout = o
            .timeout
            .unwrap_or(m.floor().saturating_mul(2) + Duration::from_secs(60));
        println!(
            "## mix `{}`: {}\n{}; site floor {} s (perfect pacing); each contender cut at {} s\n",
            m.name,
            m.about,
            m.describe(),
            m.floor().as_secs(),
            timeout.as_secs()
        );
        let mut measures = Vec::new();
        for run in 0..o.runs {
            let seed = o.seed + run as u64;
            let sc = Scenario::start(m, seed);
            let mut order = o.contenders.clone();
            let n = order.len().max(1);
            order.rotate_left(run % n);
            for (name, c) in order {
                sc.site.reset();
                let me = measure(&tools, &sc, name, c, timeout);
                println!("{}", raw_line(&me));
                measures.push(me);
            }
            println!();
        }
        let names: Vec<&str> = o.contenders.iter().map(|(c, _)| *c).collect();
        let table = table(m, &names, &measures);
        println!("{table}");
        tables.push(table);
        all.extend(measures);
    }
    if o.mixes.len() > 1 {
        println!("# All mixes\n");
        for t in &tables {
            println!("{t}");
        }
    }
    println!(
        "whole bench: {:.0} s; load average {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if let Some(path) = &o.json {
        std::fs::write(path, serde_json::to_string_pretty(&all).unwrap()).unwrap();
        println!("measurements written to {}", path.display());
    }
}

/// The interpreter of the yt-dlp script (the worker runner needs it to
/// import yt_dlp); `python3` when it is not a script.
fn shebang_python(yt_dlp: &Path) -> PathBuf {
    let head = std::fs::read(yt_dlp).unwrap_or_default();
    let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(first)
        .strip_prefix("#!")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.contains(' ') && s.contains("python"))
        .map(PathBuf::from)
        .unwrap_or_else(|| require("python3"))
}

fn version(yt_dlp: &Path) -> String {
    Command::new(yt_dlp)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Compiles the bundled plugin once into the shared cache, so no
/// contender pays Cranelift (a user pays it once, not per batch).
fn warm_compile_cache(t: &Tools) {
    let home = t.base.join("warm");
    let o = host_command(t, &home)
        .args([
            "--proxy",
            "http://127.0.0.1:9",
            "proxies",
            "stats",
            "--json",
        ])
        .output()
        .expect("run ytdlp-host");
    assert!(
        o.status.success(),
        "ytdlp-host proxies stats: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The host binary with a home of its own under `home` (as
/// tests/all/common.rs's Env) and the shared compile cache.
fn host_command(t: &Tools, home: &Path) -> Command {
    let mut c = Command::new(HOST);
    isolate(&mut c, t, home);
    c.env("XDG_CACHE_HOME", &t.cache);
    c
}

/// A fresh HOME and XDG dirs, no proxy settings from the environment.
fn isolate(c: &mut Command, t: &Tools, home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    let bin = home.join("bin");
    let venv_bin = t.yt_dlp.parent().unwrap().to_path_buf();
    let path = std::env::join_paths([bin, venv_bin].into_iter().chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    c.current_dir(home)
        .env("PATH", path)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("YTDLP_HOST_LOG")
        .env_remove("YTDLP_HOST_YT_DLP")
        .env_remove("YTDLP_HOST_PYTHON");
    for v in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ] {
        c.env_remove(v);
    }
}

/// Counting stand-ins in `home/bin`: `yt-dlp` (one line per process started
/// for a URL) and, for the worker, a Python whose `sitecustomize` counts
/// jobs. Returns (yt-dlp wrapper, python wrapper, count files).
fn counters(t: &Tools, home: &Path) -> (PathBuf, PathBuf, [PathBuf; 2]) {
    let bin = home.join("bin");
    let site = home.join("pysite");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&site).unwrap();
    let runs = home.join("ytdlp-runs.txt");
    let jobs = home.join("worker-jobs.txt");
    let q = |p: &Path| format!("'{}'", p.display());
    let wrapper = bin.join("yt-dlp");
    // `--version` and other probes carry no URL: not a download run.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in *://*) echo run >> {} ;; esac\nexec {} \"$@\"\n",
            q(&runs),
            q(&t.yt_dlp)
        ),
    )
    .unwrap();
    let python = bin.join("python-counting");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\nPYTHONPATH={}${{PYTHONPATH:+:$PYTHONPATH}}\nexport PYTHONPATH\nexec {} \"$@\"\n",
            q(&site),
            q(&t.python)
        ),
    )
    .unwrap();
    std::fs::write(
        site.join("sitecustomize.py"),
        format!(
            "# The goodput bench's count of worker jobs: one YoutubeDL.download each.\n\
             import yt_dlp\n\
             _download = yt_dlp.YoutubeDL.download\n\
             def _counted(self, url_list):\n    \
                 with open({:?}, 'a') as f:\n        \
                     f.write('job\\n')\n    \
                 return _download(self, url_list)\n\
             yt_dlp.YoutubeDL.download = _counted\n",
            jobs.display().to_string()
        ),
    )
    .unwrap();
    for p in [&wrapper, &python] {
        chmod_x(p);
    }
    (wrapper, python, [runs, jobs])
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn measure(t: &Tools, sc: &Scenario, name: &str, c: Contender, timeout: Duration) -> Measure {
    let home = t.base.join(format!("{}-{}-{name}", sc.mix.name, sc.seed));
    let out = home.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (wrapper, python, counts) = counters(t, &home);
    let urls_file = home.join("urls.txt");
    std::fs::write(&urls_file, sc.urls.join("\n") + "\n").unwrap();
    let proxies_file = home.join("proxies.txt");
    let proxies = sc.pool.urls();
    std::fs::write(&proxies_file, proxies.join("\n") + "\n").unwrap();
    let template = out.join("%(id)s.%(ext)s");
    let disabled = home.join("disabled.txt");

    let mut cmd = match c {
        Contender::Host { runner, jobs } => {
            let mut cmd = host_command(t, &home);
            cmd.env("YTDLP_HOST_PYTHON", &python);
            for p in &proxies {
                cmd.arg("--proxy").arg(p);
            }
            cmd.args(["download", "--json", "--runner", runner])
                .args(["-j", &jobs.to_string()])
                .arg("--yt-dlp")
                .arg(&wrapper)
                .arg("-o")
                .arg(&template)
                .arg("-a")
                .arg(&urls_file);
            cmd
        }
        Contender::Shell | Contender::Ex => {
            let (script, text) = match c {
                Contender::Shell => ("shell_loop.sh", SHELL_LOOP),
                _ => ("ex_manager.sh", EX_MANAGER),
            };
            let path = home.join(script);
            std::fs::write(&path, text).unwrap();
            let mut cmd = Command::new("bash");
            isolate(&mut cmd, t, &home);
            cmd.arg(&path).arg(&urls_file).arg(&proxies_file).arg(&out);
            match c {
                Contender::Shell => cmd.arg(sc.seed.to_string()),
                _ => cmd.arg(&disabled),
            };
            cmd
        }
    };
    let stdout = home.join("stdout.txt");
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(home.join("stderr.txt")).unwrap())
        .process_group(0);
    let (wall, cut) = run_until(cmd, timeout);

    let downloaded = sc
        .media_ids
        .iter()
        .filter(|id| {
            std::fs::metadata(out.join(format!("{id}.mp4")))
                .is_ok_and(|m| m.len() == CLIP.len() as u64)
        })
        .count();
    let tally = sc.site.tally();
    let direct_requests = tally
        .get(&std::net::IpAddr::V4(USER_ADDR))
        .map_or(0, |t| t.requests);
    let proxied_requests = tally.values().map(|t| t.requests).sum::<usize>() - direct_requests;
    let mut served_via: BTreeMap<String, usize> = BTreeMap::new();
    for (ip, t) in &tally {
        let via = match ip {
            std::net::IpAddr::V4(v4) if *v4 == USER_ADDR => "direct",
            std::net::IpAddr::V4(v4) => sc.pool.by_egress(*v4).map_or("other", |m| m.kind.name()),
            _ => "other",
        };
        let n = t.count(Answer::Media);
        if n > 0 {
            *served_via.entry(via.to_string()).or_default() += n;
        }
    }
    let good_total = sc.pool.count(|k| k.delivers());
    let retry_after_ms = sc.mix.limit.retry_after.as_millis() as u64;
    let (good_benched, attempts, failed_by_kind) = match c {
        Contender::Host { .. } => {
            let (attempts, kinds) = host_outcomes(&stdout);
            (
                host_benched(t, &home, sc, &proxies, retry_after_ms),
                Some(attempts),
                kinds,
            )
        }
        Contender::Ex => {
            let gone = std::fs::read_to_string(&disabled).unwrap_or_default();
            let n = sc
                .pool
                .members
                .iter()
                .filter(|m| m.kind.delivers() && gone.lines().any(|l| l == m.url))
                .count();
            (n, None, BTreeMap::new())
        }
        Contender::Shell => (0, None, BTreeMap::new()),
    };
    Measure {
        mix: sc.mix.name.to_string(),
        seed: sc.seed,
        contender: name.to_string(),
        downloaded,
        expected: sc.media_ids.len(),
        wall_s: wall.as_secs_f64(),
        cut,
        ytdlp_runs: lines(&counts[0]) + lines(&counts[1]),
        direct_requests,
        proxied_requests,
        too_many: sc.site.answered(Answer::TooMany),
        good_benched,
        good_total,
        attempts,
        failed_by_kind,
        served_via,
    }
}

/// Runs `cmd` (its own process group) until it exits or `timeout` passes;
/// then the whole group is stopped (TERM, then KILL).
fn run_until(mut cmd: Command, timeout: Duration) -> (Duration, bool) {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("start contender");
    let pgid = child.id() as i32;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return (started.elapsed(), false);
        }
        if started.elapsed() >= timeout {
            let wall = started.elapsed();
            // SAFETY: signals to the process group this bench started.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let grace = Instant::now();
            while child.try_wait().expect("wait").is_none()
                && grace.elapsed() < Duration::from_secs(3)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; what is left of the group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            let _ = child.wait();
            return (wall, true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The host's attempts and failed URLs by kind, from its JSON events (the
/// summary when it finished, else the results it had printed).
fn host_outcomes(stdout: &Path) -> (usize, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(stdout).unwrap_or_default();
    let mut attempts = 0;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["event"].as_str() {
            Some("done") | Some("failed") => {
                attempts += v["attempts"].as_array().map_or(0, |a| a.len());
                if v["status"] == "failed" {
                    // No kind: no attempt made (the summary's `no-proxy`).
                    let k = v["kind"].as_str().unwrap_or("no-proxy").to_string();
                    *kinds.entry(k).or_default() += 1;
                }
            }
            _ => {}
        }
    }
    (attempts, kinds)
}

/// Good proxies the host's backend will not hand out for the site until
/// later than the site's Retry-After from now: disabled, cooling down, or
/// banned for the site.
fn host_benched(
    t: &Tools,
    home: &Path,
    sc: &Scenario,
    proxies: &[String],
    retry_after_ms: u64,
) -> usize {
    let mut cmd = host_command(t, home);
    for p in proxies {
        cmd.arg("--proxy").arg(p);
    }
    let o = cmd
        .args(["proxies", "stats", "--json"])
        .output()
        .expect("ytdlp-host proxies stats");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let late = now_ms + retry_after_ms;
    let Ok(rows) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
        eprintln!(
            "proxies stats gave no JSON: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return 0;
    };
    let mut n = 0;
    for row in rows.as_array().into_iter().flatten() {
        let port = row["url"]
            .as_str()
            .and_then(|u| u.rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok());
        let Some(m) = port.and_then(|p| sc.pool.by_port(p)) else {
            continue;
        };
        if !m.kind.delivers() {
            continue;
        }
        let until = row["until_ms"].as_u64().unwrap_or(0);
        let benched = match row["state"].as_str() {
            Some("disabled") => true,
            Some("cooling-down") => until > late,
            _ => false,
        };
        let banned = row["extra"].as_array().into_iter().flatten().any(|kv| {
            kv[0].as_str().is_some_and(|k| k.starts_with("banned."))
                && kv[1]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|u| u > late)
        });
        if benched || banned {
            n += 1;
        }
    }
    n
}

fn raw_line(m: &Measure) -> String {
    format!(
        "  seed {} {:<10} {:>2}/{:<2} in {:>6.1} s{} | yt-dlp runs {:>3} | attempts {:>3} | direct {:>3} | via proxies {:>3} | 429s {:>3} | good benched {}/{} | failed {:?} | media via {:?}",
        m.seed,
        m.contender,
        m.downloaded,
        m.expected,
        m.wall_s,
        if m.cut { " (cut)" } else { "" },
        m.ytdlp_runs,
        m.attempts.map_or("-".to_string(), |a| a.to_string()),
        m.direct_requests,
        m.proxied_requests,
        m.too_many,
        m.good_benched,
        m.good_total,
        m.failed_by_kind,
        m.served_via
    )
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median<unit> (min-max)` over the runs, or the one value.
fn cell(values: Vec<f64>, decimals: usize, unit: &str) -> String {
    let mut v = values;
    let fmt = |x: f64| format!("{x:.decimals$}");
    if v.len() == 1 {
        return format!("{}{unit}", fmt(v[0]));
    }
    let m = median(&mut v);
    let (lo, hi) = (v[0], v[v.len() - 1]);
    if lo == hi {
        format!("{}{unit}", fmt(m))
    } else {
        format!("{}{unit} ({}-{})", fmt(m), fmt(lo), fmt(hi))
    }
}

/// The markdown table of one mix: a row per contender, median and spread
/// over the runs (seeds) in `measures`.
fn table(m: &Mix, contenders: &[&str], measures: &[Measure]) -> String {
    let mut seeds: Vec<u64> = measures.iter().map(|x| x.seed).collect();
    seeds.dedup();
    let runs = seeds.len();
    let seeds: Vec<String> = seeds.iter().map(u64::to_string).collect();
    let mut s = format!(
        "mix `{}` ({}), seeds {}; site floor {} s; median (min-max) over {} run{}\n\n",
        m.name,
        m.describe(),
        seeds.join(","),
        m.floor().as_secs(),
        runs,
        if runs == 1 { "" } else { "s" }
    );
    s.push_str(
        "| contender | downloaded | wall s | yt-dlp runs | direct requests | good benched | 429s |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|\n");
    for name in contenders {
        let rows: Vec<&Measure> = measures.iter().filter(|x| x.contender == *name).collect();
        if rows.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&Measure) -> f64, d, unit: &str| {
            cell(rows.iter().map(|r| f(r)).collect(), d, unit)
        };
        let cuts = rows.iter().filter(|r| r.cut).count();
        s.push_str(&format!(
            "| {name} | {} | {}{} | {} | {} | {} | {} |\n",
            col(
                &|r| r.downloaded as f64,
                0,
                &format!("/{}", rows[0].expected)
            ),
            col(&|r| r.wall_s, 1, ""),
            if cuts > 0 {
                format!(" (cut {cuts}/{})", rows.len())
            } else {
                String::new()
            },
            col(&|r| r.ytdlp_runs as f64, 0, ""),
            col(&|r| r.direct_requests as f64, 0, ""),
            col(
                &|r| r.good_benched as f64,
                0,
                &format!("/{}", rows[0].good_total)
            ),
            col(&|r| r.too_many as f64, 0, ""),
        ));
    }
    s
}

/// The tables of a `json` file written earlier, without running anything.
fn report(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: Vec<Measure> = serde_json::from_str(&text).expect("measurements");
    let mut names: Vec<&str> = all.iter().map(|m| m.mix.as_str()).collect();
    names.dedup();
    let contenders: Vec<&str> = CONTENDERS.iter().map(|(c, _)| *c).collect();
    for name in names {
        let measures: Vec<Measure> = all.iter().filter(|m| m.mix == name).cloned().collect();
        let base = mix(name).unwrap_or_else(|| panic!("no mix `{name}`"));
        let m = base.with_media(measures[0].expected);
        let m = if measures[0].expected == base.media {
            base.clone()
        } else {
            m
        };
        println!("{}", table(&m, &contenders, &measures));
    }
}
