//! One URL from start to end, where a proxy is chosen for it: ask the
//! proxy source for a proxy that fits the request (region, tags, tier; not
//! one that already failed this URL), check it, run yt-dlp with it, report
//! the outcome (with the failure's kind and detail), and retry through
//! another proxy while the failure is one another proxy could fix: after a
//! geo restriction, one in a country the site allows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ytdlp_contract::{
    Failure, FailureDetail, FailureKind, Phase, ProxyMeta, Request, Site, Success, Wanted,
};
use ytdlp_host_config::{NoProxyPolicy, Options, merge_options};
use ytdlp_host_plugin_host::{BackendError, ProxyChoice};
use ytdlp_host_ytdlp::{Progress, RunOutcome, RunSpec, Runner};

use crate::preflight::Preflight;
use crate::source::ProxySource;
use crate::tiers::{TierChoice, Tiers};

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
    /// What every download wants of its proxy (config `region`, `tags`,
    /// `max_tier`); a download's own wishes replace these.
    pub want: Wanted,
    /// Under `wait`: the longest one URL waits, in all, for a free proxy.
    pub max_wait: Duration,
}

/// Pre-flight failures that do not use up one of a URL's attempts (each
/// costs no yt-dlp run); past this, they count, so that a backend that
/// keeps handing out dead proxies still ends.
const FREE_PREFLIGHT_FAILURES: u32 = 32;

/// `blocked` failures (a site refusing that proxy: a 429, a 403 of its
/// address range, a bot check) that do not use up an attempt: the URL is
/// not at fault, the (proxy, site) pair is, and the backend paces or bans
/// the pair. Past this they count, so that a URL every proxy is refused
/// for still ends.
const FREE_BLOCKED_FAILURES: u32 = 8;

/// Slack added to a backend's `retry-at`, so a wait does not wake a hair
/// before the proxy is free (clocks and rounding).
const WAIT_SLACK: Duration = Duration::from_millis(50);

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
    /// Only proxies in one of these regions (ISO 3166-1 codes); empty: the
    /// configured ones.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Only proxies with all of these tags; empty: the configured ones.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only proxies of this tier or a cheaper one.
    #[serde(default)]
    pub max_tier: Option<u8>,
    /// Attempts with the same key get the same proxy while it works.
    #[serde(default)]
    pub sticky_key: Option<String>,
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

    /// Only proxies in one of these regions.
    pub fn with_regions(mut self, regions: Vec<String>) -> Self {
        self.regions = regions;
        self
    }

    /// Checks what the request asks of its proxy (codes, tags), naming
    /// the bad value.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.regions {
            ytdlp_contract::parse_region(r)?;
        }
        for t in &self.tags {
            ytdlp_contract::parse_tag(t)?;
        }
        Ok(())
    }
}

/// One attempt at a URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    /// The proxy used, credentials masked; `null` for a direct run.
    pub proxy: Option<String>,
    /// Its id (two credentials on one proxy show alike, their ids differ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_id: Option<String>,
    /// Its region, tags and tier, when the backend says.
    #[serde(default, skip_serializing_if = "ProxyMeta::is_empty")]
    pub proxy_meta: ProxyMeta,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What else the host knows of the failure (HTTP status,
    /// `Retry-After`, allowed countries, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<FailureDetail>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
}

/// The end of one URL (`--json` prints one of these per URL).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DownloadResult {
    pub id: String,
    pub url: String,
    pub status: Status,
    pub file: Option<PathBuf>,
    pub attempts: Vec<Attempt>,
    /// Why it failed, for a failed URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// An attempt has its run slot (the queue's concurrency) and is about
    /// to ask for its proxy: the download is running.
    Running,
    /// No proxy is free for the URL's site (policy `wait`): the download
    /// waits until `until_ms` (Unix ms), then asks again.
    Waiting {
        until_ms: u64,
        reason: String,
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
    /// The tier each site is at (shared by every download).
    tiers: Tiers,
    /// yt-dlp runs at once (a queue's concurrency), if limited: an attempt
    /// holds a slot from asking for its proxy to reporting on it, and a
    /// download that waits for a free proxy gives its slot up meanwhile, so
    /// it holds back no URL of another site.
    slots: std::sync::OnceLock<Arc<tokio::sync::Semaphore>>,
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
            tiers: Tiers::default(),
            slots: std::sync::OnceLock::new(),
        }
    }

    /// At most `n` attempts at once (the first call wins).
    pub fn limit_runs(&self, n: usize) {
        let _ = self
            .slots
            .set(Arc::new(tokio::sync::Semaphore::new(n.max(1))));
    }

    /// A run slot (none when runs are not limited). A queue takes one
    /// before it takes the next job, so jobs start in submission order.
    pub async fn slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match self.slots.get() {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }

    /// The tier each site is at.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
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

    /// Ids from now on end in a number above `seq` (downloads restored
    /// from the store keep theirs; the queue orders by that number).
    pub fn ids_after(&self, seq: u64) {
        self.next_id
            .fetch_max(seq.saturating_add(1), Ordering::Relaxed);
    }

    /// A fresh download id.
    pub fn next_id(&self) -> String {
        format!(
            "{:x}-{}",
            std::process::id(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// What a download wants of its proxy: its own wishes, else the
    /// configured ones.
    fn want_of(&self, req: &DownloadRequest) -> Wanted {
        let base = &self.settings.want;
        let canonical = |v: &[String]| {
            v.iter()
                .filter_map(|r| ytdlp_contract::parse_region(r).ok())
                .collect::<Vec<_>>()
        };
        Wanted {
            regions: if req.regions.is_empty() {
                base.regions.clone()
            } else {
                canonical(&req.regions)
            },
            avoid_regions: Vec::new(),
            tags: if req.tags.is_empty() {
                base.tags.clone()
            } else {
                req.tags.clone()
            },
            min_tier: 0,
            max_tier: req.max_tier.or(base.max_tier),
        }
    }

    /// Asks the source for a proxy that fits `request`; a proxy outside
    /// what was asked is the plugin's contract violation, never used. When
    /// the site's tier has no proxy left, asks again from the cheapest.
    async fn choose(
        &self,
        source: &dyn ProxySource,
        request: &mut Request,
        options: &Options,
        tier: &mut TierChoice,
    ) -> Result<Arc<ProxyChoice>, BackendError> {
        let mut answer = source.get_proxy(request, options).await;
        if matches!(answer, Err(BackendError::NoProxy { .. })) && request.want.min_tier > 0 {
            self.tiers.reset(&request.site.domain);
            request.want.min_tier = 0;
            *tier = TierChoice {
                min_tier: 0,
                probe: false,
            };
            answer = source.get_proxy(request, options).await;
        }
        let choice = answer?;
        if !request.want.admits(&choice.meta) {
            return Err(BackendError::ContractViolation {
                plugin: source.name().to_string(),
                call: ytdlp_host_plugin_host::Call::GetProxy,
                reason: format!(
                    "handed out [{}] ({}) for a request that wants {}",
                    choice.id,
                    if choice.meta.is_empty() {
                        "no region, tags or tier".to_string()
                    } else {
                        choice.meta.to_string()
                    },
                    describe_want(&request.want)
                ),
            });
        }
        Ok(choice)
    }

    /// Runs one download to its end, reporting events as they happen.
    pub async fn run(
        &self,
        id: &str,
        req: &DownloadRequest,
        on_event: impl FnMut(AttemptEvent) + Send,
    ) -> DownloadResult {
        self.run_in_slot(id, req, None, on_event).await
    }

    /// [`Downloader::run`], starting in a run slot already taken
    /// ([`Downloader::slot`]).
    pub async fn run_in_slot(
        &self,
        id: &str,
        req: &DownloadRequest,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
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
        let call_options = merge_options(&self.base_options, &req.backend_options);
        let mut request = Request {
            url: url.to_string(),
            site: site.clone(),
            attempt: 0,
            download_id: id.to_string(),
            sticky_key: req.sticky_key.clone(),
            avoid: Vec::new(),
            want: self.want_of(req),
        };
        // `n` counts yt-dlp runs (and pre-flight failures past the free
        // ones): the URL's attempts.
        let mut n = 0u32;
        let mut free_checks = 0u32;
        let mut free_blocks = 0u32;
        let mut waited = Duration::ZERO;
        // The run slot, held across this URL's attempts (a retry does not
        // go to the back of the queue) and given up only to wait.
        let mut has_slot = slot.is_some();
        let mut slot = slot;
        if has_slot {
            on_event(AttemptEvent::Running);
        }
        while n < self.settings.max_attempts {
            request.attempt = n + 1;
            if !has_slot {
                slot = self.slot().await;
                has_slot = true;
                on_event(AttemptEvent::Running);
            }
            let mut tier = self.tiers.choose(&site.domain, Instant::now());
            request.want.min_tier = tier.min_tier;
            let proxy = match &backend {
                None => None,
                Some(backend) => {
                    match self
                        .choose(backend.as_ref(), &mut request, &call_options, &mut tier)
                        .await
                    {
                        Ok(choice) => Some(choice),
                        Err(e) => {
                            let proxied = result.attempts.iter().any(|a| a.proxy.is_some());
                            // A constrained request (a region asked for, or
                            // routed after a geo restriction) never goes
                            // direct: the user's address is not in it.
                            let constrained = !request.want.is_any();
                            match self.settings.on_no_proxy {
                                NoProxyPolicy::Wait => {
                                    let retry_at = match &e {
                                        BackendError::NoProxy { retry_at_ms, .. } => *retry_at_ms,
                                        _ => None,
                                    };
                                    match wait_for(retry_at, waited, self.settings.max_wait) {
                                        Ok(pause) => {
                                            drop(slot.take());
                                            has_slot = false;
                                            let until_ms = now_ms() + pause.as_millis() as u64;
                                            tracing::info!(
                                                "{}: {e}; waiting {:.1} s (policy `wait`)",
                                                ytdlp_host_text::clean(url),
                                                pause.as_secs_f64()
                                            );
                                            on_event(AttemptEvent::Waiting {
                                                until_ms,
                                                reason: e.to_string(),
                                            });
                                            tokio::time::sleep(pause).await;
                                            waited += pause;
                                            continue;
                                        }
                                        Err(why) => {
                                            result.error =
                                                Some(format!("{e} (policy `wait`: {why})"));
                                            return result;
                                        }
                                    }
                                }
                                NoProxyPolicy::Direct
                                    if !constrained
                                        && (!proxied || self.settings.direct_after_proxy) =>
                                {
                                    tracing::warn!(
                                        "{e}; downloading {} without a proxy (policy `direct`)",
                                        ytdlp_host_text::clean(url)
                                    );
                                    None
                                }
                                NoProxyPolicy::Direct if constrained => {
                                    result.error = Some(format!(
                                        "{e} (no proxy {}; a direct download would not be one)",
                                        describe_want(&request.want)
                                    ));
                                    return result;
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
                attempt: n + 1,
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
                    failure: Some(Failure {
                        kind,
                        message,
                        detail: FailureDetail {
                            phase: Some(Phase::Preflight),
                            from_proxy: true,
                            ..FailureDetail::default()
                        },
                    }),
                },
                None => {
                    let mut out = self
                        .run_once(req, proxy.as_deref(), &mut |p| {
                            on_event(AttemptEvent::Progress(p))
                        })
                        .await;
                    // The proxy answered its greeting just now: a timeout
                    // or refusal later in the run is the target's doing
                    // (a site that hangs, a CDN that refuses), unless the
                    // error came from the proxy layer itself.
                    if self.preflight.is_some()
                        && proxy.is_some()
                        && let Some(f) = out.failure.as_mut()
                    {
                        attribute_after_preflight(f);
                    }
                    out
                }
            };
            let preflight_failed = outcome
                .failure
                .as_ref()
                .is_some_and(|f| f.detail.phase == Some(Phase::Preflight));
            let elapsed_ms = u32::try_from(outcome.duration.as_millis()).unwrap_or(u32::MAX);
            result.attempts.push(Attempt {
                proxy: proxy.as_ref().map(|p| p.url.to_string()),
                proxy_id: proxy.as_ref().map(|p| p.id.clone()),
                proxy_meta: proxy.as_ref().map(|p| p.meta.clone()).unwrap_or_default(),
                ok: outcome.succeeded(),
                kind: outcome.failure.as_ref().map(|f| f.kind),
                message: outcome.failure.as_ref().map(|f| f.message.clone()),
                detail: outcome
                    .failure
                    .as_ref()
                    .map(|f| f.detail.clone())
                    .filter(|d| *d != FailureDetail::default()),
                duration_ms: outcome.duration.as_millis() as u64,
            });
            if let (Some(backend), Some(choice)) = (&backend, &proxy) {
                let delivered = match &outcome.failure {
                    None => {
                        let bytes = outcome
                            .file
                            .as_ref()
                            .and_then(|f| std::fs::metadata(f).ok())
                            .map(|m| m.len());
                        let ok = Success { elapsed_ms, bytes };
                        backend
                            .report_success(choice, &request, &ok, &call_options)
                            .await
                    }
                    Some(f) => {
                        backend
                            .report_failure(choice, &request, f, elapsed_ms, &call_options)
                            .await
                    }
                };
                if let Err(e) = delivered {
                    tracing::warn!("report not delivered: {e}");
                }
                self.tiers.observe(
                    &site.domain,
                    tier,
                    choice.meta.tier,
                    outcome.failure.as_ref().map(|f| f.kind),
                    Instant::now(),
                );
            }
            // A pre-flight failure is certain and cost no yt-dlp run, and a
            // site refusing the proxy is the pair's matter, not the URL's:
            // neither uses up an attempt (up to a bound each), unless the
            // backend handed out a proxy this URL had already given up on
            // (it has nothing else left).
            let recycled = proxy
                .as_ref()
                .is_some_and(|c| request.avoid.contains(&c.id));
            let blocked = outcome
                .failure
                .as_ref()
                .is_some_and(|f| f.kind == FailureKind::Blocked);
            if preflight_failed && !recycled && free_checks < FREE_PREFLIGHT_FAILURES {
                free_checks += 1;
            } else if blocked && !recycled && free_blocks < FREE_BLOCKED_FAILURES {
                free_blocks += 1;
            } else {
                n += 1;
            }
            match outcome.failure {
                None => {
                    result.status = Status::Done;
                    result.file = outcome.file;
                    result.error = None;
                    result.kind = None;
                    return result;
                }
                Some(Failure {
                    kind,
                    message,
                    detail,
                }) => {
                    result.kind = Some(kind);
                    result.error = Some(message.clone());
                    // A direct run is the policy's last resort; content and
                    // host failures would fail through any proxy.
                    let Some(choice) = proxy.as_ref() else {
                        return result;
                    };
                    if !kind.retry_elsewhere() {
                        return result;
                    }
                    // Not that proxy again for this URL.
                    if !request.avoid.contains(&choice.id) {
                        request.avoid.push(choice.id.clone());
                    }
                    if kind == FailureKind::GeoRestricted {
                        route_after_geo(&mut request.want, &detail, &choice.meta);
                    }
                    if n < self.settings.max_attempts {
                        tracing::info!(
                            "{url}: attempt {} through {} failed ({kind}); trying another proxy{}",
                            request.attempt,
                            choice.url,
                            if kind == FailureKind::GeoRestricted {
                                format!(" ({})", describe_want(&request.want))
                            } else if request.attempt == n + 1 {
                                // The counter did not move: a free failure.
                                " (this one uses up no attempt)".to_string()
                            } else {
                                String::new()
                            }
                        );
                        on_event(AttemptEvent::Retrying {
                            attempt: request.attempt,
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

/// The site of a URL: its host name, lower case, and its registrable
/// domain (eTLD+1 by the public suffix list; for an IP address or a name
/// the list does not know, the host itself). Empty if the URL has no host.
pub fn site_of(url: &str) -> Site {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        })
        .unwrap_or_default();
    let is_ip = host.parse::<std::net::IpAddr>().is_ok();
    let domain = if is_ip {
        host.clone()
    } else {
        psl::domain_str(&host)
            .map(str::to_string)
            .unwrap_or_else(|| host.clone())
    };
    Site { host, domain }
}

/// The request of a first attempt at `url`, wanting `want` (what
/// `proxies get` asks with).
pub fn first_request(url: &str, download_id: &str, want: Wanted) -> Request {
    Request {
        url: url.to_string(),
        site: site_of(url),
        attempt: 1,
        download_id: download_id.to_string(),
        sticky_key: None,
        avoid: Vec::new(),
        want,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long to wait for the backend's `retry_at_ms` (Unix ms), having
/// waited `waited` already, within `max`; or why not.
fn wait_for(retry_at_ms: Option<u64>, waited: Duration, max: Duration) -> Result<Duration, String> {
    let Some(at) = retry_at_ms else {
        return Err("the backend did not say when a proxy is free again".into());
    };
    let pause = Duration::from_millis(at.saturating_sub(now_ms())) + WAIT_SLACK;
    if waited + pause > max {
        return Err(format!(
            "the next proxy is free in {:.0} s, past max_wait_secs = {} (waited {:.0} s)",
            pause.as_secs_f64(),
            max.as_secs(),
            waited.as_secs_f64()
        ));
    }
    Ok(pause)
}

/// A run's proxy fault after the proxy passed its pre-flight check: a
/// timeout or a refused connection that the proxy layer did not report
/// (no `ProxyError`, no tunnel or SOCKS error) is the target's, and a 401
/// without the proxy's own headers is the site's: neither counts against
/// the proxy.
pub(crate) fn attribute_after_preflight(f: &mut Failure) {
    if f.detail.from_proxy || !f.kind.is_proxy_fault() {
        return;
    }
    f.kind = match f.kind {
        FailureKind::ProxyAuth => FailureKind::Content,
        _ => FailureKind::Unknown,
    };
}

/// After a geo restriction: ask for a proxy in a country the site allows;
/// when it named none, for one outside the region that was refused.
fn route_after_geo(want: &mut Wanted, detail: &FailureDetail, refused: &ProxyMeta) {
    if !detail.countries.is_empty() {
        let allowed: Vec<String> = detail
            .countries
            .iter()
            .filter_map(|c| ytdlp_contract::parse_region(c).ok())
            .collect();
        // Within what the user asked for, if anything: the user's regions
        // that the site allows (or the site's, when the user asked none).
        want.regions = if want.regions.is_empty() {
            allowed
        } else {
            want.regions
                .iter()
                .filter(|r| allowed.iter().any(|a| ytdlp_contract::region_matches(r, a)))
                .cloned()
                .collect::<Vec<_>>()
        };
        if want.regions.is_empty() {
            // Nothing the user allows is allowed by the site: keep asking
            // for something impossible, so that no proxy and no direct run
            // is tried (`XZ` is user-assigned, never a real country).
            want.regions.push("XZ".into());
        }
    } else if let Some(r) = &refused.region
        && !want.avoid_regions.contains(r)
    {
        want.avoid_regions.push(r.clone());
    }
}

/// `in region DE or FR, tagged residential, tier 1-2`, for messages.
fn describe_want(w: &Wanted) -> String {
    let mut parts = Vec::new();
    if !w.regions.is_empty() {
        parts.push(format!("in region {}", w.regions.join(" or ")));
    }
    if !w.avoid_regions.is_empty() {
        parts.push(format!("outside {}", w.avoid_regions.join(", ")));
    }
    if !w.tags.is_empty() {
        parts.push(format!("tagged {}", w.tags.join(", ")));
    }
    match (w.min_tier, w.max_tier) {
        (0, None) => {}
        (min, None) => parts.push(format!("of tier {min} or dearer")),
        (min, Some(max)) => parts.push(format!("of tier {min}-{max}")),
    }
    if parts.is_empty() {
        "any proxy".to_string()
    } else {
        parts.join(", ")
    }
}
