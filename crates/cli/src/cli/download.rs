//! `ytdlp-host download`: URLs and batch files, N at once, with progress
//! bars on a terminal, plain one-line events otherwise, or JSON events.

use super::output::{say, tell};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::broadcast::error::RecvError;
use ytdlp_host_core::{
    BuildError, DownloadRequest, DownloadResult, Event, HostBuilder, State, Status,
};

use super::DownloadArgs;

/// A URL to run, or a batch line that is not one.
enum Line {
    Url(String),
    Bad { line: usize, text: String },
}

fn read_batch(path: &Path) -> Result<Vec<Line>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read batch file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read batch file {}", path.display()))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if url::Url::parse(line).is_ok() {
            out.push(Line::Url(line.to_string()));
        } else {
            out.push(Line::Bad {
                line: n + 1,
                text: line.to_string(),
            });
        }
    }
    Ok(out)
}

pub(crate) async fn run(builder: HostBuilder, args: DownloadArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let mut lines: Vec<Line> = args.urls.iter().cloned().map(Line::Url).collect();
    if let Some(batch) = &args.batch_file {
        lines.extend(read_batch(batch)?);
    }
    if lines.is_empty() {
        bail!("no URL given (pass URLs or -a FILE)");
    }
    let mut builder = builder
        .no_proxy_manager(args.no_proxy_manager)
        .ytdlp_args(args.ytdlp_args.clone())
        .concurrency(args.jobs)
        .queue_limit(usize::MAX);
    if let Some(p) = &args.yt_dlp {
        builder = builder.yt_dlp(p);
    }
    if let Some(n) = args.max_attempts {
        builder = builder.max_attempts(n);
    }
    if let Some(secs) = args.max_wait {
        builder = builder.max_wait_secs(secs);
    }
    if let Some(p) = args.on_no_proxy {
        builder = builder.on_no_proxy(p);
    }
    if let Some(o) = &args.output {
        builder = builder.output(o);
    }
    if let Some(r) = args.runner {
        builder = builder.runner(r);
    }
    let mode = if args.json {
        Mode::Json
    } else if std::io::stderr().is_terminal() {
        Mode::Bars(Bars::new())
    } else {
        Mode::Plain
    };
    let mut view = View {
        mode,
        total: lines.len(),
        finished: 0,
    };
    let host = match builder.build().await {
        Ok(host) => host,
        // No backend, no download (never one from this machine's address
        // instead): every URL fails with the reason, and the batch ends as
        // any batch does.
        Err(BuildError::Backend(e)) => {
            let mut results = Vec::new();
            let mut bad = Vec::new();
            for (n, line) in lines.into_iter().enumerate() {
                match line {
                    Line::Url(url) => {
                        let r = DownloadResult::not_started(
                            format!("0-{}", n + 1),
                            url,
                            format!("{e}; nothing was downloaded"),
                        );
                        view.result(&r)?;
                        results.push(r);
                    }
                    Line::Bad { line, text } => bad.push(bad_line(&args, line, &text)),
                }
            }
            return finish(&args, &mut view, results, bad, 0, started, false);
        }
        Err(e) => return Err(e.into()),
    };
    let mut events = host.subscribe();
    let mut bad = Vec::new();
    let mut ids = Vec::new();
    for line in lines {
        match line {
            Line::Url(url) => match host.submit(DownloadRequest::new(url.clone())) {
                Ok(id) => ids.push(id),
                Err(e) => bad.push(format!("{url}: {e}")),
            },
            Line::Bad { line, text } => bad.push(bad_line(&args, line, &text)),
        }
    }
    for b in &bad {
        tell!("skipped: {b}");
    }
    view.finished += bad.len();
    // Results come from the host's table (never lost); the event stream
    // feeds the display and may drop progress under load.
    let mut waits = tokio::task::JoinSet::new();
    for id in &ids {
        let host = host.clone();
        let id = id.clone();
        waits.spawn(async move { host.wait(&id).await });
    }
    let mut results: Vec<DownloadResult> = Vec::new();
    let mut cancelled = 0;
    // yt-dlp runs in its own process group, so a Ctrl-C at the terminal
    // reaches only us: cancel everything (killing those groups) and report;
    // a second signal exits at once.
    let interrupt = super::stop_then_force(super::StopSignals::new()?);
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        tokio::select! {
            biased;
            signal = &mut interrupt, if !interrupted => {
                interrupted = true;
                tell!("{signal}: cancelling {} download(s)", host.pending());
                let h = host.clone();
                tokio::spawn(async move { h.shutdown(Duration::ZERO).await });
            }
            done = waits.join_next() => {
                let Some(done) = done else { break };
                let Ok(Some(status)) = done else { continue };
                match status.result {
                    Some(result) => {
                        view.result(&result)?;
                        results.push(result);
                    }
                    None if status.state == State::Cancelled => cancelled += 1,
                    None => {}
                }
            }
            event = events.recv() => match event {
                Ok(e) => view.event(&e)?,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
        }
    }
    finish(
        &args,
        &mut view,
        results,
        bad,
        cancelled,
        started,
        interrupted,
    )
}

fn bad_line(args: &DownloadArgs, line: usize, text: &str) -> String {
    format!(
        "{} line {line}: `{text}` is not a URL",
        args.batch_file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    )
}

/// The end of every batch, however it went: a line per failed URL, the
/// summary, the exit code.
fn finish(
    args: &DownloadArgs,
    view: &mut View,
    results: Vec<DownloadResult>,
    bad: Vec<String>,
    cancelled: usize,
    started: Instant,
    interrupted: bool,
) -> Result<ExitCode> {
    view.close();
    let failed: Vec<&DownloadResult> = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    for r in &failed {
        let kind = r.kind.map(|k| format!("{k}, ")).unwrap_or_default();
        tell!(
            "failed: {} ({kind}{} attempt{}): {}",
            r.url,
            r.attempts.len(),
            if r.attempts.len() == 1 { "" } else { "s" },
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    let summary = Summary::of(&results, bad.len(), cancelled, started.elapsed());
    if args.json {
        say!("{}", serde_json::to_string(&summary)?);
    }
    if results.len() + bad.len() + cancelled > 1 || !failed.is_empty() || cancelled > 0 {
        tell!("{}", summary.line());
    }
    if interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(if failed.is_empty() && bad.is_empty() && cancelled == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The end of a batch.
#[derive(serde::Serialize)]
struct Summary {
    event: &'static str,
    done: usize,
    failed: usize,
    failed_by_kind: BTreeMap<String, usize>,
    skipped: usize,
    cancelled: usize,
    attempts: usize,
    seconds: f64,
}

impl Summary {
    fn of(results: &[DownloadResult], skipped: usize, cancelled: usize, took: Duration) -> Self {
        let mut by_kind = BTreeMap::new();
        for r in results.iter().filter(|r| r.status == Status::Failed) {
            let k = r
                .kind
                .map(|k| k.to_string())
                .unwrap_or_else(|| "no-proxy".into());
            *by_kind.entry(k).or_insert(0) += 1;
        }
        Summary {
            event: "summary",
            done: results.iter().filter(|r| r.status == Status::Done).count(),
            failed: results
                .iter()
                .filter(|r| r.status == Status::Failed)
                .count(),
            failed_by_kind: by_kind,
            skipped,
            cancelled,
            attempts: results.iter().map(|r| r.attempts.len()).sum(),
            seconds: (took.as_secs_f64() * 10.0).round() / 10.0,
        }
    }

    fn line(&self) -> String {
        let kinds: Vec<String> = self
            .failed_by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let mut s = format!("summary: {} done, {} failed", self.done, self.failed);
        if !kinds.is_empty() {
            s.push_str(&format!(" ({})", kinds.join(", ")));
        }
        if self.skipped > 0 {
            s.push_str(&format!(", {} skipped", self.skipped));
        }
        if self.cancelled > 0 {
            s.push_str(&format!(", {} cancelled", self.cancelled));
        }
        s.push_str(&format!(
            ", {} attempts, {:.1} s",
            self.attempts, self.seconds
        ));
        s
    }
}

enum Mode {
    /// One JSON event per line on stdout.
    Json,
    /// Progress bars on the terminal (stderr).
    Bars(Bars),
    /// One line per event on stderr.
    Plain,
}

struct View {
    mode: Mode,
    total: usize,
    finished: usize,
}

impl View {
    fn event(&mut self, e: &Event) -> Result<()> {
        match (&mut self.mode, e) {
            // Results are printed from the host's table, not the stream.
            (_, Event::Done { .. } | Event::Failed { .. }) => {}
            (Mode::Json, e) => {
                say!("{}", serde_json::to_string(e)?);
            }
            (Mode::Bars(bars), e) => bars.event(e),
            (
                Mode::Plain,
                Event::Started {
                    id,
                    url,
                    attempt,
                    proxy,
                },
            ) => tell!(
                "started {id} {url} via {} (attempt {attempt})",
                proxy.as_deref().unwrap_or("no proxy")
            ),
            (
                Mode::Plain,
                Event::Retried {
                    id, attempt, kind, ..
                },
            ) => {
                tell!("retrying {id}: attempt {attempt} failed ({kind})")
            }
            (
                Mode::Plain,
                Event::Waiting {
                    id,
                    until_ms,
                    reason,
                },
            ) => {
                tell!("{}", waiting_line(id, *until_ms, reason))
            }
            (Mode::Plain, _) => {}
        }
        Ok(())
    }

    fn result(&mut self, r: &DownloadResult) -> Result<()> {
        self.finished += 1;
        match &mut self.mode {
            Mode::Json => {
                let e = if r.status == Status::Done {
                    Event::Done { result: r.clone() }
                } else {
                    Event::Failed { result: r.clone() }
                };
                say!("{}", serde_json::to_string(&e)?);
            }
            Mode::Bars(bars) => {
                bars.finish(&r.id, self.finished, self.total);
                if r.status == Status::Done {
                    bars.println(format!("done {} -> {}", r.url, file_of(r)));
                }
            }
            Mode::Plain => {
                if r.status == Status::Done {
                    say!("done {} -> {}", r.url, file_of(r));
                }
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if let Mode::Bars(b) = &mut self.mode {
            b.overall.finish_and_clear();
        }
    }
}

/// `waiting ID: REASON; next try in N s`.
fn waiting_line(id: &str, until_ms: u64, reason: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!(
        "waiting {id}: {reason}; next try in {:.0} s",
        until_ms.saturating_sub(now) as f64 / 1000.0
    )
}

fn file_of(r: &DownloadResult) -> String {
    r.file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_default()
}

/// indicatif bars: one per running download and an overall one.
struct Bars {
    multi: indicatif::MultiProgress,
    overall: indicatif::ProgressBar,
    running: HashMap<String, indicatif::ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        let multi = indicatif::MultiProgress::new();
        let overall = multi.add(indicatif::ProgressBar::new(0));
        overall.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        overall.set_prefix("overall");
        Bars {
            multi,
            overall,
            running: HashMap::new(),
        }
    }

    fn event(&mut self, e: &Event) {
        match e {
            Event::Queued { .. } => self.overall.inc_length(1),
            Event::Started { id, url, proxy, .. } => {
                let bar = self.running.entry(id.clone()).or_insert_with(|| {
                    let b = self.multi.add(indicatif::ProgressBar::new(0));
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{msg:50!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    b
                });
                bar.set_message(super::output::clean_line(&format!(
                    "{url} via {}",
                    proxy.as_deref().unwrap_or("no proxy")
                )));
                bar.set_position(0);
            }
            Event::Waiting {
                id,
                until_ms,
                reason,
            } => self.println(waiting_line(id, *until_ms, reason)),
            Event::Progress { id, progress, .. } => {
                if let Some(bar) = self.running.get(id) {
                    if let Some(t) = progress.total_bytes.or(progress.total_bytes_estimate) {
                        bar.set_length(t as u64);
                    }
                    if let Some(d) = progress.downloaded_bytes {
                        bar.set_position(d as u64);
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, id: &str, finished: usize, total: usize) {
        if let Some(bar) = self.running.remove(id) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.overall.set_length(total as u64);
        self.overall.set_position(finished as u64);
    }

    fn println(&self, line: String) {
        let _ = self.multi.println(super::output::clean_line(&line));
    }
}
