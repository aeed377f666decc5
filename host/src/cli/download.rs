//! `ytdlp-host download`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{App, DownloadArgs, StartError};
use crate::config::{NoProxyPolicy, Options};
use crate::download::{Downloader, Settings, Status};
use crate::ytdlp_locate;

fn read_batch(path: &Path) -> Result<Vec<String>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read batch file {}", path.display()))?;
    let mut urls = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read batch file {}", path.display()))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            urls.push(line.to_string());
        }
    }
    Ok(urls)
}

pub(crate) async fn run(ctx: &App, args: DownloadArgs) -> Result<ExitCode> {
    let mut urls = args.urls.clone();
    if let Some(batch) = &args.batch_file {
        urls.extend(read_batch(batch)?);
    }
    if urls.is_empty() {
        bail!("no URL given (pass URLs or -a FILE)");
    }
    let policy = args
        .on_no_proxy
        .or(ctx.config.on_no_proxy)
        .unwrap_or(NoProxyPolicy::Direct);
    let backend = if args.no_proxy_manager {
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
        ytdlp_locate::locate_or_install(args.yt_dlp.as_deref(), ctx.config.yt_dlp.as_deref())?;
    tracing::info!("yt-dlp: {} (from {origin})", yt_dlp.display());
    let settings = Settings {
        yt_dlp,
        max_attempts: args
            .max_attempts
            .or(ctx.config.max_attempts)
            .unwrap_or(3)
            .max(1),
        on_no_proxy: policy,
        output: args.output.clone().or_else(|| ctx.config.output.clone()),
        extra_args: args.ytdlp_args.clone(),
        run_timeout: Duration::from_secs(ctx.config.run_timeout_secs.unwrap_or(3600)),
        direct_socket_timeout_secs: 30,
        preflight: match ctx.config.preflight_timeout_ms.unwrap_or(1000) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
        runner: crate::runner::Runner::Process,
    };
    let downloader = Downloader::new(backend, ctx.call_options(), settings);
    let progress = ProgressView::new(!args.json);
    let mut failed = Vec::new();
    for url in &urls {
        let bar = progress.start(url);
        let result = downloader
            .download(url, &Options::new(), |p| progress.update(&bar, p))
            .await;
        progress.finish(bar);
        if args.json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer(&mut out, &result)?;
            writeln!(out)?;
        } else if result.status == Status::Done {
            let file = result
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_default();
            println!("done {url} -> {file}");
        }
        if result.status == Status::Failed {
            failed.push(result);
        }
    }
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
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Progress bars on a terminal; nothing otherwise (the result lines say it).
struct ProgressView {
    enabled: bool,
}

impl ProgressView {
    fn new(enabled: bool) -> Self {
        ProgressView {
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }

    fn start(&self, url: &str) -> Option<indicatif::ProgressBar> {
        if !self.enabled {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:40!} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(url.to_string());
        Some(bar)
    }

    fn update(&self, bar: &Option<indicatif::ProgressBar>, p: &crate::ytdlp_run::Progress) {
        if let Some(bar) = bar {
            if let Some(t) = p.total_bytes {
                bar.set_length(t as u64);
            }
            if let Some(d) = p.downloaded_bytes {
                bar.set_position(d as u64);
            }
        }
    }

    fn finish(&self, bar: Option<indicatif::ProgressBar>) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
}
