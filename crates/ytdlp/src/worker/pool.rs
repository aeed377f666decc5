//! The pool of warm workers: Python processes that drive yt-dlp's embedding
//! API, one job at a time each (see the module doc in `mod.rs`).

use std::collections::VecDeque;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use ytdlp_contract::text::cap;
use ytdlp_contract::{Failure, FailureDetail, FailureKind};
use ytdlp_host_config::WorkerConfig;

use super::options::job_argv;
use super::protocol::{Done, Event, Request};
use super::python::PythonSpec;
use super::script::{SCRIPT, script_file};
use crate::classify::{self, Context, Verdict, classify_chain, failure_message};
use crate::run::{BoxFuture, Progress, RunOutcome, RunSpec, Runner, deadline_message};
use crate::spawn::{self, Group, read_line_bounded};

pub const DEFAULT_MAX_JOBS: u32 = 100;
pub const DEFAULT_MAX_RSS_MIB: u64 = 1024;
/// How long a fresh worker may take to import yt-dlp before the pool gives
/// up on it at start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a busy worker's RSS is read.
const RSS_POLL: Duration = Duration::from_millis(500);
/// Lines of a worker's stderr kept to explain its death.
const STDERR_LINES: usize = 20;
/// Longest line read from a worker (a done line carries an exception
/// chain, capped by the worker).
const MAX_LINE: usize = 256 * 1024;

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
    group: Group,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    ready: bool,
    jobs: u32,
}

impl Worker {
    fn spawn(opts: &PoolOptions, script: Option<&Path>) -> std::io::Result<Worker> {
        // SIGTERM when the host dies: the worker then kills its own group,
        // so what yt-dlp started (ffmpeg) goes too.
        let mut cmd = spawn::command_dying_with(&opts.python.python, libc::SIGTERM);
        match script {
            Some(path) => cmd.arg(path),
            None => cmd.arg("-c").arg(SCRIPT),
        };
        if let Some(p) = &opts.python.sys_path {
            cmd.arg("--sys-path").arg(p);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut group = Group::spawn(&mut cmd)?;
        let pid = group.pid();
        let child = group.child();
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let keep = tail.clone();
        tokio::spawn(async move {
            let mut stderr = BufReader::new(stderr);
            while let Ok(Some(line)) = read_line_bounded(&mut stderr, MAX_LINE).await {
                // yt-dlp may print a proxy URL with its credentials, and
                // a site's text.
                let line = ytdlp_host_text::clean(&line);
                tracing::debug!("yt-dlp worker {pid}: {line}");
                let mut t = keep.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == STDERR_LINES {
                    t.pop_front();
                }
                t.push_back(line);
            }
        });
        Ok(Worker {
            group,
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
            match read_line_bounded(&mut self.stdout, MAX_LINE).await {
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
        let status = tokio::time::timeout(Duration::from_secs(2), self.group.wait()).await;
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
            .map(|l| cap(l.trim(), 300))
            .unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        self.group.alive()
    }

    /// Kills the worker's group now (a reaped worker's group id may belong
    /// to someone else already: then nothing is signalled).
    fn kill(&mut self) {
        self.group.kill_now();
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
            // Dropped, its group is killed and the partial file removed.
            if let Some(p) = self.partial.take() {
                w.group.set_partial(p);
            }
            drop(w);
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

    /// Runs one job on an idle worker (the [`Runner`] interface, with any
    /// progress callback). Dropping the future kills the worker.
    pub async fn run(
        &self,
        spec: &RunSpec,
        mut on_progress: impl FnMut(Progress) + Send,
    ) -> RunOutcome {
        self.run_job(spec, &mut on_progress).await
    }

    async fn run_job(
        &self,
        spec: &RunSpec,
        on_progress: &mut (dyn FnMut(Progress) + Send),
    ) -> RunOutcome {
        let started = Instant::now();
        let fail = |kind, message: String, exit_code| RunOutcome {
            exit_code,
            duration: started.elapsed(),
            file: None,
            failure: Some(Failure::new(kind, message)),
        };
        let argv = match job_argv(spec) {
            Ok(a) => a,
            Err(e) => return fail(FailureKind::Host, e, None),
        };
        let deadline = tokio::time::Instant::now() + spec.deadline;
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::to_string(&Request {
            job,
            argv: &argv,
            url: &spec.url,
        })
        .expect("a request serializes");
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
                    line = read_line_bounded(&mut w.stdout, MAX_LINE) => match line {
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
        let ctx = Context::of(spec);
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
                outcome_of(done, &ctx, started.elapsed())
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
                // The same kind and words as the process runner's deadline:
                // the host's own limit, not retried through other proxies.
                fail(FailureKind::Host, deadline_message(spec.deadline), None)
            }
        }
    }
}

impl Runner for WorkerPool {
    fn name(&self) -> &'static str {
        "worker"
    }

    fn run<'a>(
        &'a self,
        spec: &'a RunSpec,
        on_progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> BoxFuture<'a, RunOutcome> {
        Box::pin(self.run_job(spec, on_progress))
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

fn outcome_of(done: Done, ctx: &Context, duration: Duration) -> RunOutcome {
    if done.ok {
        return RunOutcome {
            exit_code: Some(0),
            duration,
            file: done.file,
            failure: None,
        };
    }
    let line = done.error.clone().unwrap_or_default();
    let verdict = if done.options {
        Verdict {
            kind: FailureKind::Host,
            detail: FailureDetail::default(),
        }
    } else {
        let types: Vec<&str> = done
            .chain
            .iter()
            .filter_map(|e| e.types.first().map(String::as_str))
            .collect();
        let verdict = classify_chain(&done.chain, &line, done.retry_error.as_deref(), ctx);
        tracing::debug!(
            "job {}: {} {:?} (exception chain {types:?}{})",
            done.job,
            verdict.kind,
            verdict.detail,
            if classify::chain::signals(&done.chain) != classify::Signals::default() {
                ""
            } else {
                "; decided by the error text"
            }
        );
        verdict
    };
    let mut message = failure_message(&line);
    if message.is_empty() {
        message = format!("yt-dlp returned {} and reported no error", done.retcode);
    }
    RunOutcome {
        exit_code: Some(if done.retcode == 0 { 1 } else { done.retcode }),
        duration,
        file: None,
        failure: Some(verdict.failure(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_done_line_becomes_an_outcome() {
        let Event::Done(d) = Event::parse(
            r#"{"event":"done","job":3,"ok":false,"retcode":1,"error":"ERROR: x","chain":[{"types":["builtins.TimeoutError"],"msg":"timed out"}]}"#,
        ) else {
            panic!()
        };
        let o = outcome_of(
            d,
            &Context {
                proxied: true,
                ..Context::default()
            },
            Duration::ZERO,
        );
        assert_eq!(o.failure.unwrap().kind, FailureKind::ProxyTimeout);
    }

    fn recorded(name: &str) -> Done {
        let path = format!(
            "{}/fixtures/worker/site/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut line = serde_json::to_string(&v).unwrap();
        line.insert_str(1, "\"job\":1,");
        let Event::Done(d) = Event::parse(&line) else {
            panic!("{line}")
        };
        d
    }

    fn via(proxy: &str, url: &str) -> Context {
        Context::new(
            Some(&ytdlp_contract::proxy_url::validate(proxy).unwrap()),
            url,
        )
    }

    #[test]
    fn a_done_line_fills_the_failure_detail() {
        use ytdlp_contract::Phase;
        let tinyproxy = via("http://127.0.0.1:3128", "http://127.0.0.1:1/fx/x/y");
        let f = outcome_of(recorded("requests-media429"), &tinyproxy, Duration::ZERO)
            .failure
            .unwrap();
        assert_eq!(f.kind, FailureKind::Blocked);
        assert_eq!(
            f.detail,
            FailureDetail {
                http_status: Some(429),
                retry_after_ms: Some(30_000),
                phase: Some(Phase::Transfer),
                from_proxy: false,
                countries: Vec::new(),
            }
        );
        let f = outcome_of(recorded("urllib-geo"), &tinyproxy, Duration::ZERO)
            .failure
            .unwrap();
        assert_eq!(f.kind, FailureKind::GeoRestricted);
        assert_eq!(f.detail.countries, ["DE", "FR"]);
        assert!(f.message.ends_with("to workaround."), "{}", f.message);
        // The last retry's 403 behind "The downloaded file is empty".
        let f = outcome_of(recorded("urllib-hls403"), &tinyproxy, Duration::ZERO)
            .failure
            .unwrap();
        assert_eq!(
            (f.kind, f.detail.http_status),
            (FailureKind::Blocked, Some(403))
        );
        // The same refusal, direct and through a proxy.
        let f = outcome_of(
            recorded("urllib-direct-refused"),
            &Context::default(),
            Duration::ZERO,
        )
        .failure
        .unwrap();
        assert_eq!((f.kind, f.detail.from_proxy), (FailureKind::Unknown, false));
        let f = outcome_of(
            recorded("urllib-direct-refused"),
            &tinyproxy,
            Duration::ZERO,
        )
        .failure
        .unwrap();
        assert_eq!(
            (f.kind, f.detail.from_proxy),
            (FailureKind::ProxyConnect, true)
        );
        // Refused options are the host's, with no detail.
        let mut d = recorded("urllib-geo");
        d.options = true;
        let f = outcome_of(d, &tinyproxy, Duration::ZERO).failure.unwrap();
        assert_eq!(
            (f.kind, f.detail),
            (FailureKind::Host, FailureDetail::default())
        );
    }
}
