//! `ytdlp-host download`: URLs and batch files, N at once, with progress
//! bars on a terminal, plain one-line events otherwise, or JSON events.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::broadcast::error::RecvError;

use super::{App, DownloadArgs, StartError};
use crate::config::NoProxyPolicy;
use crate::download::{DownloadRequest, DownloadResult, Downloader, Settings, Status};
use crate::host::{Event, Host, Limits, State};
use crate::ytdlp_locate;

/// What a command line may override when building a [`Downloader`].
#[derive(Debug, Default, Clone)]
pub(crate) struct RunOverrides {
    pub yt_dlp: Option<PathBuf>,
    pub no_proxy_manager: bool,
    pub max_attempts: Option<u32>,
    pub on_no_proxy: Option<NoProxyPolicy>,
    pub output: Option<String>,
    pub ytdlp_args: Vec<String>,
    /// `--runner`, and the concurrency (the worker pool's size).
    pub runner: Option<crate::runner::RunnerKind>,
    pub jobs: usize,
}

/// The backend, yt-dlp and settings for downloads, from the config and the
/// command line.
pub(crate) async fn build_downloader(ctx: &App, o: &RunOverrides) -> Result<Downloader> {
    let policy = o
        .on_no_proxy
        .or(ctx.config.on_no_proxy)
        .unwrap_or(NoProxyPolicy::Direct);
    let backend = if o.no_proxy_manager {
        None
    } else {
        match ctx.start_backend().await {
            Ok(b) => Some(Arc::new(tokio::sync::Mutex::new(b))),
            // A plugin that crashes or hangs at start falls under the
            // policy; a missing plugin or refused options are config errors.
            Err(StartError::Backend(e)) if e.is_fault() && policy == NoProxyPolicy::Direct => {
                tracing::warn!("{e}; downloading without a proxy (policy `direct`)");
                None
            }
            Err(e) => return Err(e.into_anyhow()),
        }
    };
    let (yt_dlp, origin) =
        ytdlp_locate::locate_or_install(o.yt_dlp.as_deref(), ctx.config.yt_dlp.as_deref())?;
    tracing::info!("yt-dlp: {} (from {origin})", yt_dlp.display());
    let runner = crate::runner::select(
        o.runner.or(ctx.config.runner),
        &yt_dlp,
        &ctx.config.worker,
        o.jobs.max(1),
        &o.ytdlp_args,
    )
    .await?;
    let settings = Settings {
        yt_dlp,
        max_attempts: o
            .max_attempts
            .or(ctx.config.max_attempts)
            .unwrap_or(3)
            .max(1),
        on_no_proxy: policy,
        output: o.output.clone().or_else(|| ctx.config.output.clone()),
        extra_args: o.ytdlp_args.clone(),
        run_timeout: Duration::from_secs(ctx.config.run_timeout_secs.unwrap_or(3600)),
        direct_socket_timeout_secs: 30,
        preflight: match ctx.config.preflight_timeout_ms.unwrap_or(1000) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        runner,
    };
    Ok(Downloader::new(backend, ctx.call_options(), settings))
}

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

pub(crate) async fn run(ctx: &App, args: DownloadArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let mut lines: Vec<Line> = args.urls.iter().cloned().map(Line::Url).collect();
    if let Some(batch) = &args.batch_file {
        lines.extend(read_batch(batch)?);
    }
    if lines.is_empty() {
        bail!("no URL given (pass URLs or -a FILE)");
    }
    let overrides = RunOverrides {
        yt_dlp: args.yt_dlp.clone(),
        no_proxy_manager: args.no_proxy_manager,
        max_attempts: args.max_attempts,
        on_no_proxy: args.on_no_proxy,
        output: args.output.clone(),
        ytdlp_args: args.ytdlp_args.clone(),
        runner: args.runner,
        jobs: args.jobs,
    };
    let downloader = build_downloader(ctx, &overrides).await?;
    let jobs = args.jobs.max(1);
    let host = Host::new(
        downloader,
        Limits {
            concurrency: jobs,
            queue: usize::MAX,
        },
    );
    let mut events = host.subscribe();
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
    let mut bad = Vec::new();
    let mut ids = Vec::new();
    for line in lines {
        match line {
            Line::Url(url) => match host.submit(DownloadRequest::new(url.clone())) {
                Ok(id) => ids.push(id),
                Err(e) => bad.push(format!("{url}: {e}")),
            },
            Line::Bad { line, text } => bad.push(format!(
                "{} line {line}: `{text}` is not a URL",
                args.batch_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )),
        }
    }
    for b in &bad {
        eprintln!("skipped: {b}");
        view.finished += 1;
    }
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
    // reaches only us: cancel everything (killing those groups) and report.
    let interrupt = super::shutdown_signal();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        tokio::select! {
            biased;
            signal = &mut interrupt, if !interrupted => {
                interrupted = true;
                eprintln!("{signal}: cancelling {} download(s)", host.pending());
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
    view.close();
    let failed: Vec<&DownloadResult> = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    for r in &failed {
        let kind = r.kind.map(|k| format!("{k}, ")).unwrap_or_default();
        eprintln!(
            "failed: {} ({kind}{} attempt{}): {}",
            r.url,
            r.attempts.len(),
            if r.attempts.len() == 1 { "" } else { "s" },
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    let summary = Summary::of(&results, bad.len(), cancelled, started.elapsed());
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &summary)?;
        writeln!(out)?;
    }
    if results.len() + bad.len() + cancelled > 1 || !failed.is_empty() || cancelled > 0 {
        eprintln!("{}", summary.line());
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
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, e)?;
                writeln!(out)?;
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
            ) => eprintln!(
                "started {id} {url} via {} (attempt {attempt})",
                proxy.as_deref().unwrap_or("no proxy")
            ),
            (
                Mode::Plain,
                Event::Retried {
                    id, attempt, kind, ..
                },
            ) => {
                eprintln!("retrying {id}: attempt {attempt} failed ({kind})")
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
                let mut out = std::io::stdout().lock();
                serde_json::to_writer(&mut out, &e)?;
                writeln!(out)?;
            }
            Mode::Bars(bars) => {
                bars.finish(&r.id, self.finished, self.total);
                if r.status == Status::Done {
                    bars.println(format!("done {} -> {}", r.url, file_of(r)));
                }
            }
            Mode::Plain => {
                if r.status == Status::Done {
                    println!("done {} -> {}", r.url, file_of(r));
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
                bar.set_message(format!(
                    "{url} via {}",
                    proxy.as_deref().unwrap_or("no proxy")
                ));
                bar.set_position(0);
            }
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
        let _ = self.multi.println(line);
    }
}
