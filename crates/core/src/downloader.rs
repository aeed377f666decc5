//! One URL from start to end, where a proxy is chosen for it: ask the
//! proxy source for a proxy, check it, run yt-dlp with it, report the
//! outcome (with the failure's kind), and retry through another proxy while
//! the failure is one another proxy could fix.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ytdlp_contract::FailureKind;
use ytdlp_contract::options::{HOST_ATTEMPT, HOST_DOWNLOAD_ID, HOST_SITE, HOST_URL};
use ytdlp_host_config::{NoProxyPolicy, Options, merge_options};
use ytdlp_host_plugin_host::{FailureReport, ProxyChoice};
use ytdlp_host_ytdlp::{Progress, RunOutcome, RunSpec, Runner};

use crate::preflight::Preflight;
use crate::source::ProxySource;

/// How downloads run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub yt_dlp: PathBuf,
    pub max_attempts: u32,
    /// What to do when the source has no proxy.
    pub on_no_proxy: NoProxyPolicy,
    /// `direct` was chosen explicitly: only then may a URL go direct after
    /// a proxied attempt of it (its address was meant to stay hidden).
    pub direct_after_proxy: bool,
    pub output: Option<String>,
    /// yt-dlp arguments for every download (a download may add its own).
    pub extra_args: Vec<String>,
    pub run_timeout: Duration,
    /// Socket timeout for direct runs, seconds.
    pub direct_socket_timeout_secs: u64,
    /// Pre-flight check timeout; `None`: no check.
    pub preflight: Option<Duration>,
}

/// One download asked for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DownloadRequest {
    pub url: String,
    /// This download's backend options (they win over the config's).
    #[serde(default)]
    pub backend_options: Vec<(String, String)>,
    /// yt-dlp arguments for this download, after the configured ones.
    #[serde(default)]
    pub ytdlp_args: Vec<String>,
}

impl DownloadRequest {
    pub fn new(url: impl Into<String>) -> Self {
        DownloadRequest {
            url: url.into(),
            ..Default::default()
        }
    }

    /// This download's backend options.
    pub fn with_backend_options(mut self, options: Options) -> Self {
        self.backend_options = options;
        self
    }

    /// This download's yt-dlp arguments.
    pub fn with_ytdlp_args(mut self, args: Vec<String>) -> Self {
        self.ytdlp_args = args;
        self
    }
}

/// One attempt at a URL.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The proxy used, credentials masked; `null` for a direct run.
    pub proxy: Option<String>,
    /// Its id (two credentials on one proxy show alike, their ids differ).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_id: Option<String>,
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
#[non_exhaustive]
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

impl DownloadResult {
    /// The result of a download that never started because the host could
    /// not (its backend failed to start): a failure that says why.
    pub fn not_started(id: impl Into<String>, url: impl Into<String>, error: String) -> Self {
        DownloadResult {
            id: id.into(),
            url: url.into(),
            status: Status::Failed,
            file: None,
            attempts: Vec::new(),
            error: Some(error),
            kind: None,
        }
    }
}

/// What happens during a download, as it happens.
#[derive(Debug, Clone)]
pub enum AttemptEvent {
    /// An attempt starts through `proxy` (masked; `None`: direct).
    Started {
        attempt: u32,
        proxy: Option<String>,
    },
    Progress(Progress),
    /// An attempt failed and another one follows.
    Retrying {
        attempt: u32,
        kind: FailureKind,
        message: String,
    },
}

/// Runs downloads against one proxy source (or none, for
/// `--no-proxy-manager`) with one runner.
pub struct Downloader {
    source: RwLock<Option<Arc<dyn ProxySource>>>,
    base_options: Options,
    settings: Settings,
    runner: Arc<dyn Runner>,
    preflight: Option<Preflight>,
    next_id: AtomicU64,
}

impl Downloader {
    pub fn new(
        source: Option<Arc<dyn ProxySource>>,
        base_options: Options,
        settings: Settings,
        runner: Arc<dyn Runner>,
    ) -> Self {
        Downloader {
            source: RwLock::new(source),
            base_options,
            preflight: settings.preflight.map(Preflight::new),
            settings,
            runner,
            next_id: AtomicU64::new(1),
        }
    }

    /// The proxy source new downloads use.
    pub fn source(&self) -> Option<Arc<dyn ProxySource>> {
        self.source
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps the proxy source for new downloads; running ones keep theirs.
    pub fn set_source(&self, source: Option<Arc<dyn ProxySource>>) {
        *self.source.write().unwrap_or_else(|p| p.into_inner()) = source;
    }

    /// The runner's name (`process` or `worker`).
    pub fn runner_name(&self) -> &'static str {
        self.runner.name()
    }

    /// A fresh download id.
    pub fn next_id(&self) -> String {
        format!(
            "{:x}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Runs one download to its end, reporting events as they happen.
    pub async fn run(
        &self,
        id: &str,
        req: &DownloadRequest,
        mut on_event: impl FnMut(AttemptEvent) + Send,
    ) -> DownloadResult {
        let url = req.url.as_str();
        // The source at the start serves every attempt of this download,
        // even if a reload swaps it meanwhile.
        let backend = self.source();
        let site = site_of(url);
        let mut result = DownloadResult {
            id: id.to_string(),
            url: url.to_string(),
            status: Status::Failed,
            file: None,
            attempts: Vec::new(),
            error: None,
            kind: None,
        };
        let merged = merge_options(&self.base_options, &req.backend_options);
        for n in 1..=self.settings.max_attempts {
            let mut call_options = merged.clone();
            call_options.extend([
                (HOST_URL.to_string(), url.to_string()),
                (HOST_SITE.to_string(), site.clone()),
                (HOST_ATTEMPT.to_string(), n.to_string()),
                (HOST_DOWNLOAD_ID.to_string(), id.to_string()),
            ]);
            let proxy = match &backend {
                None => None,
                Some(backend) => {
                    let answer = backend.get_proxy(&call_options).await;
                    match answer {
                        Ok(choice) => Some(choice),
                        Err(e) => {
                            let proxied = result.attempts.iter().any(|a| a.proxy.is_some());
                            match self.settings.on_no_proxy {
                                NoProxyPolicy::Direct
                                    if !proxied || self.settings.direct_after_proxy =>
                                {
                                    tracing::warn!(
                                        "{e}; downloading {} without a proxy (policy `direct`)",
                                        ytdlp_host_text::clean(url)
                                    );
                                    None
                                }
                                NoProxyPolicy::Direct => {
                                    result.error = Some(format!(
                                        "{e} (no direct download after a proxied attempt unless on_no_proxy = \"direct\" is chosen)"
                                    ));
                                    return result;
                                }
                                NoProxyPolicy::Fail => {
                                    result.error = Some(format!("{e} (policy `fail`)"));
                                    return result;
                                }
                            }
                        }
                    }
                }
            };
            on_event(AttemptEvent::Started {
                attempt: n,
                proxy: proxy.as_ref().map(|p| p.url.to_string()),
            });
            let check_started = std::time::Instant::now();
            let checked = match (&self.preflight, &proxy) {
                (Some(pf), Some(choice)) => pf.check(&choice.url).await.err(),
                _ => None,
            };
            let outcome = match checked {
                // The proxy failed its pre-flight check: no yt-dlp run.
                Some((kind, message)) => RunOutcome {
                    exit_code: None,
                    duration: check_started.elapsed(),
                    file: None,
                    failure: Some((kind, message)),
                },
                None => {
                    self.run_once(req, proxy.as_ref(), &mut |p| {
                        on_event(AttemptEvent::Progress(p))
                    })
                    .await
                }
            };
            let (kind, message) = match &outcome.failure {
                None => (None, None),
                Some((k, m)) => (Some(*k), Some(m.clone())),
            };
            result.attempts.push(Attempt {
                proxy: proxy.as_ref().map(|p| p.url.to_string()),
                proxy_id: proxy.as_ref().map(|p| p.url.id()),
                ok: outcome.succeeded(),
                kind,
                message: message.clone(),
                duration_ms: outcome.duration.as_millis() as u64,
            });
            if let (Some(backend), Some(choice)) = (&backend, &proxy) {
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
                    result.error = Some(message.clone());
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
                        on_event(AttemptEvent::Retrying {
                            attempt: n,
                            kind,
                            message,
                        });
                    }
                }
            }
        }
        result
    }

    async fn run_once(
        &self,
        req: &DownloadRequest,
        proxy: Option<&ProxyChoice>,
        on_progress: &mut (dyn FnMut(Progress) + Send),
    ) -> RunOutcome {
        let mut extra_args = self.settings.extra_args.clone();
        extra_args.extend(req.ytdlp_args.iter().cloned());
        let spec = RunSpec {
            program: self.settings.yt_dlp.clone(),
            url: req.url.clone(),
            proxy: proxy.map(|p| p.url.clone()),
            socket_timeout_secs: proxy
                .map(|p| u64::from(p.timeout_ms).div_ceil(1000))
                .unwrap_or(self.settings.direct_socket_timeout_secs),
            output: self.settings.output.clone(),
            extra_args,
            deadline: self.settings.run_timeout,
        };
        self.runner.run(&spec, on_progress).await
    }
}

/// The host name of a URL, lower case (`host.site`); empty if none.
pub fn site_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}
