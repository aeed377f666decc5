//! One URL from start to end: ask the backend for a proxy, run yt-dlp with
//! it, report the outcome (with the failure's kind), and retry through
//! another proxy while the failure is one another proxy could fix.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::backend::{Backend, FailureReport, ProxyChoice};
use crate::classify::FailureKind;
use crate::config::{NoProxyPolicy, Options, merge_options};
use crate::preflight::Preflight;
use crate::runner::Runner;
use crate::ytdlp_run::{self, Progress, RunSpec};

/// A backend shared by concurrent downloads (calls are serialised).
pub type SharedBackend = Arc<tokio::sync::Mutex<Backend>>;

/// How downloads run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub yt_dlp: PathBuf,
    pub max_attempts: u32,
    pub on_no_proxy: NoProxyPolicy,
    pub output: Option<String>,
    pub extra_args: Vec<String>,
    pub run_timeout: Duration,
    /// Socket timeout for direct runs, seconds.
    pub direct_socket_timeout_secs: u64,
    /// Pre-flight check timeout; `None`: no check.
    pub preflight: Option<Duration>,
    /// How yt-dlp runs.
    pub runner: Runner,
}

/// One attempt at a URL.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The proxy used, credentials masked; `null` for a direct run.
    pub proxy: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

/// The end of one URL (`--json` prints one of these per URL).
#[derive(Debug, Clone, Serialize)]
pub struct DownloadResult {
    pub id: String,
    pub url: String,
    pub status: Status,
    pub file: Option<PathBuf>,
    pub attempts: Vec<Attempt>,
    /// Why it failed, for a failed URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
}

/// Runs downloads against one backend (or none, for `--no-proxy-manager`).
pub struct Downloader {
    backend: Option<SharedBackend>,
    base_options: Options,
    settings: Settings,
    preflight: Option<Preflight>,
    next_id: AtomicU64,
}

impl Downloader {
    pub fn new(backend: Option<SharedBackend>, base_options: Options, settings: Settings) -> Self {
        Downloader {
            backend,
            base_options,
            preflight: settings.preflight.map(Preflight::new),
            settings,
            next_id: AtomicU64::new(1),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Downloads `url`; `options` are this download's backend options (they
    /// win over the config's).
    pub async fn download(
        &self,
        url: &str,
        options: &Options,
        mut on_progress: impl FnMut(&Progress),
    ) -> DownloadResult {
        let id = format!(
            "{:x}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let site = site_of(url);
        let mut result = DownloadResult {
            id: id.clone(),
            url: url.to_string(),
            status: Status::Failed,
            file: None,
            attempts: Vec::new(),
            error: None,
            kind: None,
        };
        let merged = merge_options(&self.base_options, options);
        for n in 1..=self.settings.max_attempts {
            let mut call_options = merged.clone();
            call_options.extend([
                ("host.url".to_string(), url.to_string()),
                ("host.site".to_string(), site.clone()),
                ("host.attempt".to_string(), n.to_string()),
                ("host.download-id".to_string(), id.clone()),
            ]);
            let proxy = match &self.backend {
                None => None,
                Some(backend) => {
                    let answer = backend.lock().await.get_proxy(&call_options).await;
                    match answer {
                        Ok(choice) => Some(choice),
                        Err(e) => match self.settings.on_no_proxy {
                            NoProxyPolicy::Direct => {
                                tracing::warn!(
                                    "{e}; downloading {url} without a proxy (policy `direct`)"
                                );
                                None
                            }
                            NoProxyPolicy::Fail => {
                                result.error = Some(format!("{e} (policy `fail`)"));
                                return result;
                            }
                        },
                    }
                }
            };
            let checked = match (&self.preflight, &proxy) {
                (Some(pf), Some(choice)) => pf.check(&choice.url).await.err(),
                _ => None,
            };
            let outcome = match checked {
                // The proxy failed its pre-flight check: no yt-dlp run.
                Some((kind, message)) => ytdlp_run::RunOutcome {
                    exit_code: None,
                    duration: Duration::ZERO,
                    file: None,
                    failure: Some((kind, message)),
                },
                None => self.run_once(url, proxy.as_ref(), &mut on_progress).await,
            };
            let (kind, message) = match &outcome.failure {
                None => (None, None),
                Some((k, m)) => (Some(*k), Some(m.clone())),
            };
            result.attempts.push(Attempt {
                proxy: proxy.as_ref().map(|p| p.url.to_string()),
                ok: outcome.succeeded(),
                kind,
                message: message.clone(),
                duration_ms: outcome.duration.as_millis() as u64,
            });
            if let (Some(backend), Some(choice)) = (&self.backend, &proxy) {
                let mut backend = backend.lock().await;
                let delivered = match &outcome.failure {
                    None => backend.report_success(&choice.url, &call_options).await,
                    Some((kind, message)) => {
                        let report = FailureReport {
                            kind: *kind,
                            message: message.clone(),
                        };
                        backend
                            .report_failure(&choice.url, &report, &call_options)
                            .await
                    }
                };
                if let Err(e) = delivered {
                    tracing::warn!("report not delivered: {e}");
                }
            }
            match outcome.failure {
                None => {
                    result.status = Status::Done;
                    result.file = outcome.file;
                    result.error = None;
                    result.kind = None;
                    return result;
                }
                Some((kind, message)) => {
                    result.kind = Some(kind);
                    result.error = Some(message);
                    // A direct run is the policy's last resort; content and
                    // host failures would fail through any proxy.
                    if proxy.is_none() || !kind.retry_elsewhere() {
                        return result;
                    }
                    if n < self.settings.max_attempts {
                        tracing::info!(
                            "{url}: attempt {n} through {} failed ({kind}); trying another proxy",
                            proxy
                                .as_ref()
                                .map(|p| p.url.to_string())
                                .unwrap_or_default()
                        );
                    }
                }
            }
        }
        result
    }

    async fn run_once(
        &self,
        url: &str,
        proxy: Option<&ProxyChoice>,
        on_progress: &mut impl FnMut(&Progress),
    ) -> ytdlp_run::RunOutcome {
        let spec = RunSpec {
            program: self.settings.yt_dlp.clone(),
            url: url.to_string(),
            proxy: proxy.map(|p| p.url.clone()),
            socket_timeout_secs: proxy
                .map(|p| u64::from(p.timeout_ms).div_ceil(1000))
                .unwrap_or(self.settings.direct_socket_timeout_secs),
            output: self.settings.output.clone(),
            extra_args: self.settings.extra_args.clone(),
            deadline: self.settings.run_timeout,
        };
        self.settings.runner.run(&spec, |p| on_progress(&p)).await
    }
}

/// The host name of a URL, lower case (`host.site`); empty if none.
pub fn site_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}
