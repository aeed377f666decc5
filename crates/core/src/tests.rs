//! The downloader's retry policy and the queue's life cycle, driven by a
//! scripted proxy source and a scripted runner (no yt-dlp, no plugin, no
//! network; tokio's clock is paused, so delays cost nothing).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ytdlp_contract::{
    Failure, FailureDetail, FailureKind, Options, ProxyMeta, Request, Success, Wanted, proxy_url,
};
use ytdlp_host_config::NoProxyPolicy;
use ytdlp_host_plugin_host::{BackendError, ProxyChoice, StatsRow};
use ytdlp_host_ytdlp::{BoxFuture, Progress, RunOutcome, RunSpec, Runner};

use crate::{
    DownloadRequest, Downloader, Event, Host, Limits, ProxySource, Settings, State, Status,
};

// ---------------------------------------------------------------------------
// Fakes

/// One scripted answer of the source to `get-proxy`.
enum Answer {
    Proxy(&'static str),
    /// A proxy with metadata (`region=DE;tier=1` syntax).
    ProxyIn(&'static str, &'static str),
    NoProxy,
    /// No proxy free until this long from now (the backend's `retry-at`).
    NoProxyFor(Duration),
    /// Never answers (until the call is dropped).
    Hang,
    /// Its store is down (`backend-unavailable`).
    Unavailable,
    /// The plugin trapped.
    Trap,
}

/// A proxy source that answers from a script and records every report.
#[derive(Default)]
struct ScriptedSource {
    answers: Mutex<VecDeque<Answer>>,
    reports: Mutex<Vec<(String, Option<FailureKind>)>>,
    /// Every request get-proxy saw.
    requests: Mutex<Vec<Request>>,
    /// Set when a hanging call was dropped (cancelled).
    hang_dropped: Arc<AtomicBool>,
    /// `None`: "scripted".
    name: Option<&'static str>,
    /// The options of every call.
    options: Mutex<Vec<Options>>,
    /// What get-stats answers (`None`: it keeps none).
    stats: Option<Vec<StatsRow>>,
}

impl ScriptedSource {
    fn new(answers: Vec<Answer>) -> Arc<ScriptedSource> {
        Arc::new(ScriptedSource {
            answers: Mutex::new(answers.into()),
            ..ScriptedSource::default()
        })
    }

    /// A named one, for chains.
    fn named(name: &'static str, answers: Vec<Answer>) -> ScriptedSource {
        ScriptedSource {
            answers: Mutex::new(answers.into()),
            name: Some(name),
            ..ScriptedSource::default()
        }
    }

    fn reports(&self) -> Vec<(String, Option<FailureKind>)> {
        self.reports.lock().unwrap().clone()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn choice(url: &str, meta: &str) -> Arc<ProxyChoice> {
    let url = proxy_url::validate(url).unwrap();
    let meta = if meta.is_empty() {
        ProxyMeta::default()
    } else {
        ytdlp_contract::proxy_list::parse_entry(&format!("{};{meta}", url.expose()))
            .unwrap()
            .meta
    };
    Arc::new(ProxyChoice {
        id: url.id(),
        url,
        timeout_ms: 5000,
        meta,
        backend: String::new(),
    })
}

/// `c` as the scripted source `name` hands it out.
fn from(name: &str, c: Arc<ProxyChoice>) -> Arc<ProxyChoice> {
    Arc::new(ProxyChoice {
        backend: name.to_string(),
        ..(*c).clone()
    })
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl ProxySource for ScriptedSource {
    fn name(&self) -> &str {
        self.name.unwrap_or("scripted")
    }

    fn get_proxy<'a>(
        &'a self,
        req: &'a Request,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<ProxyChoice>, BackendError>> {
        self.requests.lock().unwrap().push(req.clone());
        self.options.lock().unwrap().push(options.clone());
        let answer = self.answers.lock().unwrap().pop_front();
        let dropped = self.hang_dropped.clone();
        let plugin = self.name().to_string();
        Box::pin(async move {
            match answer {
                Some(Answer::Proxy(url)) => Ok(from(&plugin, choice(url, ""))),
                Some(Answer::ProxyIn(url, meta)) => Ok(from(&plugin, choice(url, meta))),
                Some(Answer::Hang) => {
                    let _guard = SetOnDrop(dropped);
                    std::future::pending().await
                }
                Some(Answer::Unavailable) => Err(BackendError::Unavailable {
                    plugin,
                    message: "connection refused".into(),
                }),
                Some(Answer::Trap) => Err(BackendError::Trap {
                    plugin,
                    call: ytdlp_host_plugin_host::Call::GetProxy,
                    message: "unreachable".into(),
                }),
                Some(Answer::NoProxyFor(d)) => Err(BackendError::NoProxy {
                    plugin,
                    message: "all proxies are at their rate budget".into(),
                    retry_at_ms: Some(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis() as u64
                            + d.as_millis() as u64,
                    ),
                }),
                Some(Answer::NoProxy) | None => Err(BackendError::NoProxy {
                    plugin,
                    message: "all proxies are cooling down".into(),
                    retry_at_ms: None,
                }),
            }
        })
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        _req: &'a Request,
        _outcome: &'a Success,
        _options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.reports
            .lock()
            .unwrap()
            .push((proxy.url.expose().to_string(), None));
        Box::pin(async { Ok(()) })
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        _req: &'a Request,
        failure: &'a Failure,
        _elapsed_ms: u32,
        _options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.reports
            .lock()
            .unwrap()
            .push((proxy.url.expose().to_string(), Some(failure.kind)));
        Box::pin(async { Ok(()) })
    }

    fn get_stats<'a>(
        &'a self,
        _options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>> {
        let stats = self.stats.clone();
        Box::pin(async { Ok(stats) })
    }
}

/// One scripted run.
#[derive(Clone)]
enum Run {
    Ok,
    Fail(FailureKind),
    /// A geo restriction naming the allowed countries.
    Geo(&'static [&'static str]),
    /// Takes this long, then succeeds.
    Slow(Duration),
    Panic,
}

/// A runner that plays a script and records which proxy each run used.
#[derive(Default)]
struct ScriptedRunner {
    script: Mutex<VecDeque<Run>>,
    /// The proxy of each run (`None`: direct).
    proxies: Mutex<Vec<Option<String>>>,
    /// Runs whose future was dropped before the end (cancelled).
    dropped: Arc<AtomicUsize>,
}

impl ScriptedRunner {
    fn new(script: Vec<Run>) -> Arc<ScriptedRunner> {
        Arc::new(ScriptedRunner {
            script: Mutex::new(script.into()),
            ..ScriptedRunner::default()
        })
    }

    fn proxies(&self) -> Vec<Option<String>> {
        self.proxies.lock().unwrap().clone()
    }
}

struct CountOnDrop {
    count: Arc<AtomicUsize>,
    armed: bool,
}

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Runner for ScriptedRunner {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn run<'a>(
        &'a self,
        spec: &'a RunSpec,
        on_progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> BoxFuture<'a, RunOutcome> {
        self.proxies
            .lock()
            .unwrap()
            .push(spec.proxy.as_ref().map(|p| p.expose().to_string()));
        let step = self.script.lock().unwrap().pop_front().unwrap_or(Run::Ok);
        let dropped = self.dropped.clone();
        Box::pin(async move {
            let mut guard = CountOnDrop {
                count: dropped,
                armed: true,
            };
            on_progress(Progress {
                status: Some("downloading".into()),
                ..Progress::default()
            });
            let outcome = match step {
                Run::Ok => ok(),
                Run::Slow(d) => {
                    tokio::time::sleep(d).await;
                    ok()
                }
                Run::Fail(kind) => {
                    RunOutcome::failed(kind, format!("scripted {kind}"), Duration::ZERO)
                }
                Run::Geo(countries) => {
                    let mut o = RunOutcome::failed(
                        FailureKind::GeoRestricted,
                        "scripted geo restriction".into(),
                        Duration::ZERO,
                    );
                    if let Some(f) = &mut o.failure {
                        f.detail = FailureDetail {
                            countries: countries.iter().map(|c| c.to_string()).collect(),
                            ..FailureDetail::default()
                        };
                    }
                    o
                }
                Run::Panic => panic!("scripted runner panics"),
            };
            guard.armed = false;
            outcome
        })
    }
}

fn ok() -> RunOutcome {
    RunOutcome {
        exit_code: Some(0),
        duration: Duration::ZERO,
        file: Some(PathBuf::from("/out/clip.mp4")),
        failure: None,
    }
}

fn settings(max_attempts: u32, policy: NoProxyPolicy) -> Settings {
    Settings {
        yt_dlp: "yt-dlp".into(),
        max_attempts,
        on_no_proxy: policy,
        // As if the policy had been chosen explicitly.
        direct_after_proxy: policy == NoProxyPolicy::Direct,
        output: None,
        extra_args: Vec::new(),
        run_timeout: Duration::from_secs(60),
        direct_socket_timeout_secs: 30,
        preflight: None,
        want: Wanted::default(),
        max_wait: Duration::from_secs(5),
    }
}

fn downloader(
    source: &Arc<ScriptedSource>,
    runner: &Arc<ScriptedRunner>,
    max_attempts: u32,
    policy: NoProxyPolicy,
) -> Downloader {
    Downloader::new(
        Some(source.clone()),
        Options::new(),
        settings(max_attempts, policy),
        runner.clone(),
    )
}

const A: &str = "http://127.0.0.1:3001";
const B: &str = "http://127.0.0.1:3002";
const C: &str = "http://127.0.0.1:3003";
const URL: &str = "http://127.0.0.1:9/v/1.mp4";

async fn download(d: &Downloader) -> crate::DownloadResult {
    d.run("id-1", &DownloadRequest::new(URL), |_| {}).await
}

// ---------------------------------------------------------------------------
// The downloader: retries and the no-proxy policy

#[tokio::test]
async fn a_proxy_fault_is_reported_and_retried_through_another_proxy() {
    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::Proxy(B)]);
    let runner = ScriptedRunner::new(vec![Run::Fail(FailureKind::ProxyConnect), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Done);
    assert_eq!(r.attempts.len(), 2);
    assert_eq!(r.attempts[0].kind, Some(FailureKind::ProxyConnect));
    assert!(r.attempts[1].ok);
    assert_eq!(runner.proxies(), [Some(A.into()), Some(B.into())]);
    assert_eq!(
        source.reports(),
        [
            (A.into(), Some(FailureKind::ProxyConnect)),
            (B.into(), None)
        ]
    );
}

#[tokio::test]
async fn content_and_host_failures_are_not_retried() {
    for kind in [FailureKind::Content, FailureKind::Host] {
        let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::Proxy(B)]);
        let runner = ScriptedRunner::new(vec![Run::Fail(kind), Run::Ok]);
        let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
        assert_eq!(r.status, Status::Failed, "{kind}");
        assert_eq!(r.kind, Some(kind));
        assert_eq!(r.attempts.len(), 1, "{kind}");
        // Still reported: the backend decides what counts.
        assert_eq!(source.reports(), [(A.into(), Some(kind))]);
    }
}

#[tokio::test]
async fn max_attempts_bounds_the_retries() {
    let source = ScriptedSource::new(vec![
        Answer::Proxy(A),
        Answer::Proxy(B),
        Answer::Proxy(C),
        Answer::Proxy(A),
    ]);
    let fail = Run::Fail(FailureKind::ProxyTimeout);
    let runner = ScriptedRunner::new(vec![fail.clone(), fail.clone(), fail.clone(), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.kind, Some(FailureKind::ProxyTimeout));
    assert_eq!(r.attempts.len(), 3);
    assert_eq!(runner.proxies().len(), 3);
    assert_eq!(source.reports().len(), 3);

    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::Proxy(B)]);
    let runner = ScriptedRunner::new(vec![fail.clone(), Run::Ok]);
    let r = download(&downloader(&source, &runner, 1, NoProxyPolicy::Fail)).await;
    assert_eq!((r.status, r.attempts.len()), (Status::Failed, 1));
}

#[tokio::test]
async fn no_proxy_on_the_first_attempt_follows_the_policy() {
    // direct: one run without a proxy, no report (there is no proxy).
    let source = ScriptedSource::new(vec![Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Direct)).await;
    assert_eq!(r.status, Status::Done);
    assert_eq!(runner.proxies(), [None]);
    assert!(r.attempts[0].proxy.is_none());
    assert!(source.reports().is_empty());

    // fail: no run at all, the backend's reason and the policy named.
    let source = ScriptedSource::new(vec![Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Failed);
    assert!(runner.proxies().is_empty());
    let err = r.error.unwrap();
    assert!(
        err.contains("all proxies are cooling down") && err.contains("policy `fail`"),
        "{err}"
    );
}

#[tokio::test]
async fn no_proxy_after_a_failed_proxied_attempt_follows_the_policy() {
    let blocked = Run::Fail(FailureKind::Blocked);
    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![blocked.clone(), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(runner.proxies(), [Some(A.into())]);
    assert!(r.error.unwrap().contains("policy `fail`"));

    // `direct` chosen explicitly: the second attempt goes without a proxy,
    // and a direct run is the last resort (no third attempt).
    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![blocked, Run::Fail(FailureKind::Blocked), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Direct)).await;
    assert_eq!(runner.proxies(), [Some(A.into()), None]);
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.attempts.len(), 2);
}

#[tokio::test]
async fn a_direct_default_never_goes_direct_after_a_proxied_attempt() {
    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![Run::Fail(FailureKind::Blocked), Run::Ok]);
    let mut s = settings(3, NoProxyPolicy::Direct);
    s.direct_after_proxy = false;
    let d = Downloader::new(Some(source.clone()), Options::new(), s, runner.clone());
    let r = download(&d).await;
    assert_eq!(runner.proxies(), [Some(A.into())], "no direct run");
    assert_eq!(r.status, Status::Failed);
    let err = r.error.unwrap();
    assert!(
        err.contains("no direct download after a proxied attempt"),
        "{err}"
    );
}

#[tokio::test]
async fn without_a_source_every_run_is_direct_and_nothing_is_reported() {
    let runner = ScriptedRunner::new(vec![Run::Fail(FailureKind::ProxyConnect)]);
    let d = Downloader::new(
        None,
        Options::new(),
        settings(3, NoProxyPolicy::Fail),
        runner.clone(),
    );
    let r = download(&d).await;
    assert_eq!(runner.proxies(), [None]);
    assert_eq!((r.status, r.attempts.len()), (Status::Failed, 1));
}

// ---------------------------------------------------------------------------
// The queue: order, cancellation, panics, shutdown

#[tokio::test(start_paused = true)]
async fn the_request_carries_the_site_and_avoids_proxies_that_failed_the_url() {
    let source = ScriptedSource::new(vec![Answer::Proxy(A), Answer::Proxy(B), Answer::Proxy(C)]);
    let runner = ScriptedRunner::new(vec![
        Run::Fail(FailureKind::ProxyConnect),
        Run::Fail(FailureKind::ProxyTimeout),
        Run::Ok,
    ]);
    let d = downloader(&source, &runner, 3, NoProxyPolicy::Fail);
    let r = d
        .run(
            "id-7",
            &DownloadRequest::new("https://www.bbc.co.uk/iplayer/x"),
            |_| {},
        )
        .await;
    assert_eq!(r.status, Status::Done);
    let reqs = source.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[0].site.host, "www.bbc.co.uk");
    assert_eq!(reqs[0].site.domain, "bbc.co.uk");
    assert_eq!(reqs[0].download_id, "id-7");
    assert_eq!(
        reqs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let id = |u: &str| proxy_url::validate(u).unwrap().id();
    assert!(reqs[0].avoid.is_empty());
    assert_eq!(reqs[1].avoid, [id(A)]);
    assert_eq!(reqs[2].avoid, [id(A), id(B)]);
}

#[tokio::test(start_paused = true)]
async fn a_geo_restriction_routes_the_next_attempt_to_an_allowed_country() {
    let source = ScriptedSource::new(vec![
        Answer::ProxyIn(A, "region=US"),
        Answer::ProxyIn(B, "region=DE"),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Geo(&["DE", "FR"]), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Done, "{r:?}");
    assert_eq!(r.attempts[0].kind, Some(FailureKind::GeoRestricted));
    assert_eq!(
        r.attempts[0].detail.as_ref().unwrap().countries,
        ["DE", "FR"]
    );
    assert_eq!(r.attempts[1].proxy_meta.region.as_deref(), Some("DE"));
    let reqs = source.requests();
    assert!(reqs[0].want.regions.is_empty());
    assert_eq!(reqs[1].want.regions, ["DE", "FR"]);
    // The geo restriction is reported to the backend as what it is.
    assert_eq!(
        source.reports()[0],
        (A.into(), Some(FailureKind::GeoRestricted))
    );
}

#[tokio::test(start_paused = true)]
async fn a_geo_restriction_without_countries_avoids_the_refused_region() {
    let source = ScriptedSource::new(vec![
        Answer::ProxyIn(A, "region=US"),
        Answer::ProxyIn(B, "region=DE"),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Geo(&[]), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Done);
    assert_eq!(source.requests()[1].want.avoid_regions, ["US"]);
}

#[tokio::test(start_paused = true)]
async fn a_proxy_outside_what_was_asked_is_never_used() {
    // The user asked for DE; the plugin hands out a US proxy anyway.
    let source = ScriptedSource::new(vec![Answer::ProxyIn(A, "region=US")]);
    let runner = ScriptedRunner::new(vec![]);
    let d = downloader(&source, &runner, 3, NoProxyPolicy::Direct);
    let r = d
        .run(
            "id-1",
            &DownloadRequest::new(URL).with_regions(vec!["de".into()]),
            |_| {},
        )
        .await;
    assert_eq!(r.status, Status::Failed);
    assert!(
        runner.proxies().is_empty(),
        "no run at all, not even direct"
    );
    let e = r.error.unwrap();
    assert!(
        e.contains("broke the contract") && e.contains("in region DE"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_site_that_refuses_the_cheap_tier_gets_the_next_one() {
    let source = ScriptedSource::new(vec![
        Answer::ProxyIn(A, "tier=0"),
        Answer::ProxyIn(B, "tier=1"),
        Answer::ProxyIn(C, "tier=1"),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Fail(FailureKind::Blocked), Run::Ok, Run::Ok]);
    let d = downloader(&source, &runner, 3, NoProxyPolicy::Fail);
    assert_eq!(download(&d).await.status, Status::Done);
    // The next download of that site starts at tier 1.
    assert_eq!(download(&d).await.status, Status::Done);
    let reqs = source.requests();
    assert_eq!(
        reqs.iter().map(|r| r.want.min_tier).collect::<Vec<_>>(),
        [0, 1, 1]
    );
    assert_eq!(d.tiers().level("127.0.0.1"), 1);
}

#[tokio::test(start_paused = true)]
async fn no_proxy_of_the_sites_tier_falls_back_to_the_cheapest() {
    let source = ScriptedSource::new(vec![
        Answer::ProxyIn(A, "tier=0"),
        Answer::NoProxy,
        Answer::ProxyIn(B, "tier=0"),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Fail(FailureKind::Blocked), Run::Ok]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Fail)).await;
    assert_eq!(r.status, Status::Done);
    let tiers: Vec<u8> = source.requests().iter().map(|r| r.want.min_tier).collect();
    assert_eq!(tiers, [0, 1, 0]);
}

#[tokio::test(start_paused = true)]
async fn a_region_asked_for_never_falls_back_to_the_users_own_address() {
    let source = ScriptedSource::new(vec![Answer::NoProxy]);
    let runner = ScriptedRunner::new(vec![]);
    let d = downloader(&source, &runner, 3, NoProxyPolicy::Direct);
    let r = d
        .run(
            "id-1",
            &DownloadRequest::new(URL).with_regions(vec!["FR".into()]),
            |_| {},
        )
        .await;
    assert_eq!(r.status, Status::Failed);
    assert!(runner.proxies().is_empty());
    assert!(r.error.unwrap().contains("in region FR"));
}

fn host(source: &Arc<ScriptedSource>, runner: &Arc<ScriptedRunner>, concurrency: usize) -> Host {
    Host::new(
        downloader(source, runner, 3, NoProxyPolicy::Fail),
        Limits {
            concurrency,
            queue: 100,
        },
    )
}

fn proxies(n: usize) -> Vec<Answer> {
    (0..n).map(|_| Answer::Proxy(A)).collect()
}

#[tokio::test(start_paused = true)]
async fn downloads_start_in_submission_order_and_emit_their_events() {
    let source = ScriptedSource::new(proxies(3));
    let runner = ScriptedRunner::new(vec![Run::Ok, Run::Ok, Run::Ok]);
    let host = host(&source, &runner, 1);
    let mut events = host.subscribe();
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            host.submit(DownloadRequest::new(format!(
                "http://127.0.0.1:9/v/{i}.mp4"
            )))
        })
        .collect::<Result<_, _>>()
        .unwrap();
    for id in &ids {
        assert_eq!(host.wait(id).await.unwrap().state, State::Done);
    }
    let mut started = Vec::new();
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Started { id, .. } = &e {
            started.push(id.clone());
        }
        kinds.push(match e {
            Event::Queued { .. } => "queued",
            Event::Started { .. } => "started",
            Event::Progress { .. } => "progress",
            Event::Done { .. } => "done",
            _ => "other",
        });
    }
    assert_eq!(started, ids);
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 3);
    assert_eq!(kinds[..3], ["queued", "queued", "queued"]);
    assert!(kinds.contains(&"progress"));
}

#[tokio::test(start_paused = true)]
async fn cancelling_mid_call_stops_the_download_and_the_next_one_runs() {
    let source = ScriptedSource::new(vec![Answer::Hang, Answer::Proxy(B)]);
    let runner = ScriptedRunner::new(vec![Run::Ok]);
    let host = host(&source, &runner, 1);
    let first = host.submit(DownloadRequest::new(URL)).unwrap();
    // Let the first download reach its (hanging) get-proxy call.
    while host.status(&first).unwrap().state != State::Running {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(host.cancel(&first));
    assert_eq!(host.wait(&first).await.unwrap().state, State::Cancelled);
    assert!(source.hang_dropped.load(Ordering::SeqCst));
    assert!(
        !host.cancel(&first),
        "a finished download cannot be cancelled"
    );
    let second = host.submit(DownloadRequest::new(URL)).unwrap();
    assert_eq!(host.wait(&second).await.unwrap().state, State::Done);
    assert_eq!(runner.proxies(), [Some(B.into())]);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_download_drops_its_run() {
    let source = ScriptedSource::new(proxies(1));
    let runner = ScriptedRunner::new(vec![Run::Slow(Duration::from_secs(60))]);
    let host = host(&source, &runner, 1);
    let id = host.submit(DownloadRequest::new(URL)).unwrap();
    while runner.proxies().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(host.cancel(&id));
    assert_eq!(host.wait(&id).await.unwrap().state, State::Cancelled);
    assert_eq!(runner.dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_download_is_a_host_failure_and_the_queue_goes_on() {
    let source = ScriptedSource::new(proxies(3));
    let runner = ScriptedRunner::new(vec![Run::Panic, Run::Ok, Run::Ok]);
    let host = host(&source, &runner, 1);
    let a = host.submit(DownloadRequest::new(URL)).unwrap();
    let b = host.submit(DownloadRequest::new(URL)).unwrap();
    let sa = host.wait(&a).await.unwrap();
    assert_eq!(sa.state, State::Failed);
    let ra = sa.result.unwrap();
    assert_eq!(ra.kind, Some(FailureKind::Host));
    assert!(ra.error.unwrap().contains("scripted runner panics"));
    assert_eq!(host.wait(&b).await.unwrap().state, State::Done);
    // The single queue worker survived: a third download still runs.
    let c = host.submit(DownloadRequest::new(URL)).unwrap();
    assert_eq!(host.wait(&c).await.unwrap().state, State::Done);
    assert_eq!(host.shutdown(Duration::ZERO).await, 0);
}

#[tokio::test(start_paused = true)]
async fn shutdown_without_grace_cancels_running_and_queued_downloads() {
    let source = ScriptedSource::new(proxies(3));
    let slow = Run::Slow(Duration::from_secs(600));
    let runner = ScriptedRunner::new(vec![slow.clone(), slow.clone(), slow]);
    let host = host(&source, &runner, 1);
    let ids: Vec<String> = (0..3)
        .map(|_| host.submit(DownloadRequest::new(URL)).unwrap())
        .collect();
    while runner.proxies().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(host.shutdown(Duration::ZERO).await, 3);
    for id in &ids {
        assert_eq!(host.status(id).unwrap().state, State::Cancelled);
    }
    assert_eq!(runner.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(
        host.submit(DownloadRequest::new(URL)),
        Err(crate::SubmitError::ShuttingDown)
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_with_grace_lets_a_running_download_finish() {
    let source = ScriptedSource::new(proxies(1));
    let runner = ScriptedRunner::new(vec![Run::Slow(Duration::from_secs(2))]);
    let host = host(&source, &runner, 1);
    let id = host.submit(DownloadRequest::new(URL)).unwrap();
    while runner.proxies().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(host.shutdown(Duration::from_secs(30)).await, 0);
    assert_eq!(host.status(&id).unwrap().state, State::Done);
    // A grace too long for the clock is not a panic.
    assert_eq!(host.shutdown(Duration::MAX).await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_grace_shorter_than_the_download_cancels_it_at_its_end() {
    let source = ScriptedSource::new(proxies(1));
    let runner = ScriptedRunner::new(vec![Run::Slow(Duration::from_secs(60))]);
    let host = host(&source, &runner, 1);
    let id = host.submit(DownloadRequest::new(URL)).unwrap();
    while runner.proxies().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let started = tokio::time::Instant::now();
    assert_eq!(host.shutdown(Duration::from_secs(5)).await, 1);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(host.status(&id).unwrap().state, State::Cancelled);
}

#[tokio::test]
async fn a_full_queue_and_a_bad_url_are_refused() {
    let source = ScriptedSource::new(vec![Answer::Hang]);
    let runner = ScriptedRunner::new(vec![]);
    let host = Host::new(
        downloader(&source, &runner, 3, NoProxyPolicy::Fail),
        Limits {
            concurrency: 1,
            queue: 2,
        },
    );
    host.submit(DownloadRequest::new(URL)).unwrap();
    host.submit(DownloadRequest::new(URL)).unwrap();
    assert_eq!(
        host.submit(DownloadRequest::new(URL)),
        Err(crate::SubmitError::QueueFull(2))
    );
    assert!(matches!(
        host.submit(DownloadRequest::new("not a url")),
        Err(crate::SubmitError::BadUrl(_))
    ));
    host.shutdown(Duration::ZERO).await;
}

// ---------------------------------------------------------------------------
// The builder: a backend that refuses its options is a config error, never
// a reason to download without a proxy.

#[tokio::test]
async fn a_backend_that_refuses_its_options_stops_the_build_whatever_the_policy() {
    use ytdlp_host_plugin_host::CompileCache;

    let config = ytdlp_host_config::Config::from_toml(
        "persist_health = false\non_no_proxy = \"direct\"\n[plugins.memory.options]\nstrategy = \"fastest\"\n",
    )
    .unwrap();
    let builder = crate::HostBuilder::new()
        .config(config)
        .compile_cache(CompileCache::disabled())
        .proxy(A);
    match builder.downloader().await {
        Err(crate::BuildError::Backend(BackendError::InitRefused { message, .. })) => {
            assert!(message.contains("unknown strategy `fastest`"), "{message}")
        }
        Err(e) => panic!("want init refused, got: {e}"),
        Ok(_) => panic!("a backend that refused its options was accepted"),
    }
}

#[test]
fn the_no_proxy_policy_fails_closed_unless_nothing_is_configured() {
    use ytdlp_host_config::Config;
    let with = |cfg: &str| crate::HostBuilder::new().config(Config::from_toml(cfg).unwrap());
    // Nothing configured: direct, but not chosen (so never after a proxy).
    assert_eq!(with("").no_proxy_policy(), (NoProxyPolicy::Direct, false));
    // Any proxy, or a plugin of one's own: wait (for a free proxy, and
    // fail when the backend cannot say when).
    assert_eq!(
        with("").proxy(A).no_proxy_policy(),
        (NoProxyPolicy::Wait, false)
    );
    assert_eq!(
        with("proxies = [\"http://127.0.0.1:3128\"]").no_proxy_policy(),
        (NoProxyPolicy::Wait, false)
    );
    assert_eq!(
        with("backend = \"redis\"").no_proxy_policy(),
        (NoProxyPolicy::Wait, false)
    );
    // Chosen explicitly, in the config or on the command line.
    assert_eq!(
        with("on_no_proxy = \"direct\"").proxy(A).no_proxy_policy(),
        (NoProxyPolicy::Direct, true)
    );
    assert_eq!(
        with("")
            .proxy(A)
            .on_no_proxy(NoProxyPolicy::Direct)
            .no_proxy_policy(),
        (NoProxyPolicy::Direct, true)
    );
}

#[test]
fn bad_settings_are_refused_before_anything_starts() {
    let e = crate::HostBuilder::new()
        .proxy("http://u:s3cret@h:1/path")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("--proxy #1") && !e.contains("s3cret"), "{e}");
    let e = crate::HostBuilder::new()
        .backend("redis")
        .proxy(A)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--proxy feeds the bundled `memory` backend"),
        "{e}"
    );
    let e = crate::HostBuilder::new()
        .backend_option("host.url", "x")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("reserved"), "{e}");
}

// ---------------------------------------------------------------------------
// Policy `wait`, and pre-flight failures that cost no attempt

#[tokio::test(start_paused = true)]
async fn wait_waits_for_the_backends_retry_at_then_downloads() {
    let source = ScriptedSource::new(vec![
        Answer::NoProxyFor(Duration::from_secs(2)),
        Answer::Proxy(A),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Ok]);
    let d = downloader(&source, &runner, 1, NoProxyPolicy::Wait);
    let mut waits = Vec::new();
    let r = d
        .run("id-1", &DownloadRequest::new(URL), |e| {
            if let crate::AttemptEvent::Waiting { until_ms, reason } = e {
                waits.push((until_ms, reason));
            }
        })
        .await;
    assert_eq!(r.status, Status::Done, "{r:?}");
    // The wait used no attempt: one run, through the proxy.
    assert_eq!(runner.proxies(), [Some(A.into())]);
    assert_eq!(waits.len(), 1);
    assert!(waits[0].1.contains("rate budget"), "{waits:?}");
}

#[tokio::test(start_paused = true)]
async fn wait_fails_with_the_reason_past_max_wait_or_without_a_retry_at() {
    // settings() gives max_wait 5 s.
    let source = ScriptedSource::new(vec![
        Answer::NoProxyFor(Duration::from_secs(3)),
        Answer::NoProxyFor(Duration::from_secs(3)),
    ]);
    let runner = ScriptedRunner::new(vec![]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Wait)).await;
    assert_eq!(r.status, Status::Failed);
    let err = r.error.unwrap();
    assert!(err.contains("past max_wait_secs = 5"), "{err}");
    assert!(runner.proxies().is_empty(), "never direct");

    let source = ScriptedSource::new(vec![Answer::NoProxy]);
    let r = download(&downloader(&source, &runner, 3, NoProxyPolicy::Wait)).await;
    let err = r.error.unwrap();
    assert!(err.contains("did not say when"), "{err}");
    assert!(runner.proxies().is_empty(), "never direct");
}

#[tokio::test]
async fn preflight_failures_use_no_attempt_and_are_reported() {
    // Ports nothing listens on: the pre-flight check is refused at once.
    let dead1 = "http://127.0.0.1:1";
    let dead2 = "http://127.0.0.1:2";
    let source = ScriptedSource::new(vec![
        Answer::Proxy(dead1),
        Answer::Proxy(dead2),
        Answer::Proxy(dead1),
    ]);
    let runner = ScriptedRunner::new(vec![]);
    let mut s = settings(1, NoProxyPolicy::Fail);
    s.preflight = Some(Duration::from_millis(500));
    let d = Downloader::new(Some(source.clone()), Options::new(), s, runner.clone());
    let r = download(&d).await;
    assert_eq!(r.status, Status::Failed);
    // One attempt allowed, yet both dead proxies were checked and a third
    // answer asked for: the two failed checks were free. The third is a
    // proxy this URL already gave up on (the backend has nothing else), so
    // it counts and the URL ends.
    assert_eq!(source.requests().len(), 3);
    assert_eq!(r.attempts.len(), 3);
    assert!(
        r.attempts
            .iter()
            .all(|a| a.detail.as_ref().and_then(|d| d.phase)
                == Some(ytdlp_contract::Phase::Preflight)),
        "{r:?}"
    );
    assert!(
        runner.proxies().is_empty(),
        "no yt-dlp run for a dead proxy"
    );
    // Each failed check reached the backend (it benches the proxy).
    assert_eq!(
        source.reports(),
        [
            (dead1.into(), Some(FailureKind::ProxyConnect)),
            (dead2.into(), Some(FailureKind::ProxyConnect)),
            (dead1.into(), Some(FailureKind::ProxyConnect)),
        ]
    );
}

#[tokio::test]
async fn a_timeout_after_a_passed_preflight_is_the_targets() {
    let mut f = Failure::new(FailureKind::ProxyTimeout, "timed out");
    crate::downloader::attribute_after_preflight(&mut f);
    assert_eq!(f.kind, FailureKind::Unknown);
    // The proxy layer's own error stays the proxy's.
    let mut f = Failure::new(FailureKind::ProxyConnect, "ProxyError");
    f.detail.from_proxy = true;
    crate::downloader::attribute_after_preflight(&mut f);
    assert_eq!(f.kind, FailureKind::ProxyConnect);
    let mut f = Failure::new(FailureKind::ProxyAuth, "HTTP Error 401");
    crate::downloader::attribute_after_preflight(&mut f);
    assert_eq!(f.kind, FailureKind::Content);
}

#[tokio::test(start_paused = true)]
async fn a_url_waiting_for_its_site_does_not_hold_back_another() {
    // One run at a time. The first URL's site has no free proxy for 3 s;
    // the second URL (another site) gets one at once.
    let source = ScriptedSource::new(vec![
        Answer::NoProxyFor(Duration::from_secs(3)),
        Answer::Proxy(B),
        Answer::Proxy(A),
    ]);
    let runner = ScriptedRunner::new(vec![Run::Ok, Run::Ok]);
    let host = Host::new(
        downloader(&source, &runner, 3, NoProxyPolicy::Wait),
        Limits {
            concurrency: 1,
            queue: 100,
        },
    );
    let first = host.submit(DownloadRequest::new(URL)).unwrap();
    let second = host
        .submit(DownloadRequest::new("http://127.0.0.2:9/v/2.mp4"))
        .unwrap();
    assert_eq!(host.wait(&second).await.unwrap().state, State::Done);
    // The second ran while the first waited, which then ran too.
    assert_eq!(host.status(&first).unwrap().state, State::Running);
    assert_eq!(host.wait(&first).await.unwrap().state, State::Done);
    assert_eq!(runner.proxies(), [Some(B.into()), Some(A.into())]);
}

// ---------------------------------------------------------------------------
// Several backends chained

mod chain {
    use super::*;
    use crate::{ChainSource, Link};
    use ytdlp_contract::ProxyStats;

    fn chain_of(sources: &[&Arc<ScriptedSource>]) -> Arc<ChainSource> {
        Arc::new(ChainSource::new(
            sources
                .iter()
                .map(|s| Link {
                    source: (*s).clone(),
                    options: vec![("own".to_string(), s.name().to_string())],
                })
                .collect(),
        ))
    }

    fn chained(chain: &Arc<ChainSource>, runner: &Arc<ScriptedRunner>) -> Downloader {
        Downloader::new(
            Some(chain.clone()),
            Options::new(),
            settings(3, NoProxyPolicy::Fail),
            runner.clone(),
        )
    }

    fn get(chain: &ChainSource) -> Result<Arc<ProxyChoice>, BackendError> {
        let req = crate::first_request(URL, "id-1", Wanted::default());
        block_on(chain.get_proxy(&req, &Options::new()))
    }

    /// Runs a ready future on a throwaway runtime.
    fn block_on<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_first_backend_that_hands_out_a_proxy_serves_and_the_name_joins_them() {
        let pg = Arc::new(ScriptedSource::named("postgres", vec![Answer::Proxy(A)]));
        let mem = Arc::new(ScriptedSource::named("memory", vec![Answer::Proxy(B)]));
        let chain = chain_of(&[&pg, &mem]);
        assert_eq!(chain.name(), "postgres+memory");
        assert_eq!(get(&chain).unwrap().url.expose(), A);
        assert!(mem.requests().is_empty(), "memory was not asked");
        // Each backend hears its own options.
        assert_eq!(
            pg.options.lock().unwrap()[0],
            [("own".to_string(), "postgres".to_string())]
        );
    }

    #[test]
    fn unavailable_no_proxy_and_a_trap_pass_the_request_on() {
        for answer in [Answer::Unavailable, Answer::NoProxy, Answer::Trap] {
            let pg = Arc::new(ScriptedSource::named("postgres", vec![answer]));
            let mem = Arc::new(ScriptedSource::named("memory", vec![Answer::Proxy(B)]));
            let chain = chain_of(&[&pg, &mem]);
            assert_eq!(get(&chain).unwrap().url.expose(), B);
            assert_eq!(pg.requests().len(), 1);
        }
    }

    #[tokio::test]
    async fn reports_go_to_the_backend_that_handed_the_proxy_out() {
        let pg = Arc::new(ScriptedSource::named(
            "postgres",
            vec![Answer::Unavailable, Answer::Proxy(A)],
        ));
        let mem = Arc::new(ScriptedSource::named("memory", vec![Answer::Proxy(B)]));
        let chain = chain_of(&[&pg, &mem]);
        let runner = ScriptedRunner::new(vec![Run::Ok, Run::Fail(FailureKind::Blocked)]);
        let d = chained(&chain, &runner);
        // The first download goes through memory (PostgreSQL down), the
        // second through PostgreSQL (back), refused there; then neither has
        // another proxy.
        let r = download(&d).await;
        assert_eq!(r.status, Status::Done);
        assert_eq!(mem.reports(), [(B.to_string(), None)]);
        assert!(pg.reports().is_empty(), "{:?}", pg.reports());
        let r = download(&d).await;
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert_eq!(pg.reports()[0], (A.to_string(), Some(FailureKind::Blocked)));
        assert_eq!(mem.reports().len(), 1, "memory heard nothing of A");
    }

    #[test]
    fn when_no_backend_serves_the_error_names_each_and_keeps_the_earliest_retry() {
        let pg = Arc::new(ScriptedSource::named("postgres", vec![Answer::Unavailable]));
        let mem = Arc::new(ScriptedSource::named("memory", vec![Answer::NoProxy]));
        let e = get(&chain_of(&[&pg, &mem])).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BackendError::Unavailable { .. }), "{text}");
        assert!(
            text.contains("plugin `postgres+memory`")
                && text.contains("plugin `postgres`: backend unavailable: connection refused")
                && text.contains("plugin `memory`: no proxy available"),
            "{text}"
        );
        let later = Arc::new(ScriptedSource::named(
            "a",
            vec![Answer::NoProxyFor(Duration::from_secs(60))],
        ));
        let sooner = Arc::new(ScriptedSource::named(
            "b",
            vec![Answer::NoProxyFor(Duration::from_secs(5))],
        ));
        let down = Arc::new(ScriptedSource::named("c", vec![Answer::Unavailable]));
        match get(&chain_of(&[&later, &down, &sooner])).unwrap_err() {
            BackendError::NoProxy {
                retry_at_ms: Some(at),
                ..
            } => {
                let left = at.saturating_sub(ytdlp_contract::now_ms());
                assert!(left <= 5_000, "the earliest: {left} ms");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn stats_come_from_each_backend_labelled_with_its_name() {
        let row = |url: &str| StatsRow {
            backend: None,
            id: Some(url.to_string()),
            stats: ProxyStats {
                url: url.to_string(),
                meta: ProxyMeta::default(),
                successes: 0,
                failures: 0,
                consecutive_failures: 0,
                state: ytdlp_contract::ProxyState::Active,
                last_used_ms: None,
                extra: Vec::new(),
            },
        };
        let pg = Arc::new(ScriptedSource {
            stats: Some(vec![row(A)]),
            ..ScriptedSource::named("postgres", vec![])
        });
        let none = Arc::new(ScriptedSource::named("vendor", vec![]));
        let mem = Arc::new(ScriptedSource {
            stats: Some(vec![row(B), row(C)]),
            ..ScriptedSource::named("memory", vec![])
        });
        let chain = chain_of(&[&pg, &none, &mem]);
        let rows = block_on(chain.get_stats(&Options::new())).unwrap().unwrap();
        let got: Vec<(Option<&str>, &str)> = rows
            .iter()
            .map(|r| (r.backend.as_deref(), r.stats.url.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some("postgres"), A),
                (Some("memory"), B),
                (Some("memory"), C)
            ]
        );
    }

    #[test]
    fn a_prefixed_option_goes_to_its_backend_only() {
        let opts = vec![
            ("postgres.table".to_string(), "t".to_string()),
            ("memory.seed".to_string(), "1".to_string()),
            ("shared".to_string(), "x".to_string()),
            ("host.site".to_string(), "s".to_string()),
        ];
        let names = ["postgres", "memory"];
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            crate::chain::route_options(&opts, "postgres", &names),
            [kv("table", "t"), kv("shared", "x"), kv("host.site", "s")]
        );
        assert_eq!(
            crate::chain::route_options(&opts, "memory", &names),
            [kv("seed", "1"), kv("shared", "x"), kv("host.site", "s")]
        );
    }

    #[test]
    fn a_backend_list_is_checked_before_anything_starts() {
        for (names, needle) in [
            (
                vec!["memory", "memory"],
                "--backend: `memory` is listed twice",
            ),
            (
                vec!["memory", "../x"],
                "--backend: `../x` is not a plugin name",
            ),
        ] {
            let e = crate::HostBuilder::new()
                .backends(names.iter().map(|n| n.to_string()).collect())
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
        // `--proxy` feeds memory: fine when memory is in the chain.
        let b = crate::HostBuilder::new()
            .backends(vec!["postgres".into(), "memory".into()])
            .proxy(A);
        b.validate().unwrap();
        assert_eq!(b.backend_name(), "postgres+memory");
    }
}
