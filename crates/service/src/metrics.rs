//! `GET /metrics`: Prometheus metrics (OpenMetrics text, from the
//! `prometheus-client` crate), named as Prometheus asks (one `ytdlp_host_`
//! prefix, base units, counters ending `_total`). The `proxy` label is a
//! proxy's short id (the plugin's id, or a hash of it: [`metric_id`]): never a password, never a
//! video URL; every label has a bounded set of values.
//!
//! Counted from the queue's observer (every end, never dropped), from a
//! wrapper around the proxy source (every plugin call, timed, and every
//! failure reported, with the proxy's id), and at scrape time (queue
//! gauges, the backend's proxy states, each row with its proxy's id).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use ytdlp_contract::{Failure, FailureKind, Options, ProxyState, Request, Success};
use ytdlp_host_core::{DownloadStatus, Host, ProxySource, QueueObserver, State};
use ytdlp_host_plugin_host::{BackendError, ProxyChoice, StatsRow};
use ytdlp_host_ytdlp::BoxFuture;

/// A proxy id as a metrics label: a plugin's id (0.2 plugins choose their
/// own: printable ASCII, at most 128 bytes) is kept when it is short and
/// plain, else hashed, so labels stay bounded and never carry whatever a
/// careless plugin put in an id.
pub fn metric_id(id: &str) -> String {
    let plain = id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if plain { id.to_string() } else { hashed(id) }
}

/// `x` and 8 hex digits of a SHA-256 of `text`.
fn hashed(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    format!("x{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyKind {
    proxy: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyStateLabel {
    proxy: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCall {
    plugin: String,
    call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabel {
    method: &'static str,
    route: &'static str,
    status: u16,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn plugin_histogram() -> Histogram {
    // 50 µs .. 1.6 s: a wasm call is tens of microseconds, a deadline 500 ms.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric of one service.
pub struct Metrics {
    registry: Registry,
    downloads: Family<Outcome, Counter>,
    duration: Histogram,
    attempts: Family<KindLabel, Counter>,
    proxy_failures: Family<ProxyKind, Counter>,
    proxy_state: Family<ProxyStateLabel, Gauge>,
    plugin_calls: HistogramFamily<PluginCall>,
    http: Family<HttpLabel, Counter>,
    queue_depth: Gauge,
    workers_busy: Gauge,
    finished_kept: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ytdlp_host");
        let m = Metrics {
            downloads: Family::default(),
            // 0.1 s .. 819 s.
            duration: Histogram::new(exponential_buckets(0.1, 2.0, 14)),
            attempts: Family::default(),
            proxy_failures: Family::default(),
            proxy_state: Family::default(),
            plugin_calls: Family::new_with_constructor(plugin_histogram),
            http: Family::default(),
            queue_depth: Gauge::default(),
            workers_busy: Gauge::default(),
            finished_kept: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "downloads",
            "Downloads that ended, by outcome (done, failed, cancelled)",
            m.downloads.clone(),
        );
        registry.register(
            "download_duration_seconds",
            "Time a download ran, from its start to its end (done or failed)",
            m.duration.clone(),
        );
        registry.register(
            "attempts",
            "Attempts of ended downloads, by failure kind (`ok` for a success)",
            m.attempts.clone(),
        );
        registry.register(
            "proxy_failures",
            "Failures reported against a proxy (its id), by kind",
            m.proxy_failures.clone(),
        );
        registry.register(
            "proxy_state",
            "The backend's state of each proxy (1 for the current state), read at scrape time",
            m.proxy_state.clone(),
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Time of a call into the backend plugin, waiting for its instance included",
            m.plugin_calls.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route template and status",
            m.http.clone(),
        );
        registry.register(
            "queue_depth",
            "Downloads waiting for a worker",
            m.queue_depth.clone(),
        );
        registry.register(
            "workers_busy",
            "Downloads running now",
            m.workers_busy.clone(),
        );
        registry.register(
            "finished_kept",
            "Finished downloads still kept (see [serve] keep_finished)",
            m.finished_kept.clone(),
        );
        Metrics { registry, ..m }
    }

    /// One HTTP request's answer.
    pub fn http(&self, method: &'static str, route: &'static str, status: u16) {
        self.http
            .get_or_create(&HttpLabel {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The id of a stats row: the backend's (that of the proxy URL the
    /// row names), else a hash of what it shows (a backend's own name for
    /// a proxy): bounded, and never the text itself.
    pub fn row_id(row: &StatsRow) -> String {
        match &row.id {
            Some(id) => metric_id(id),
            None => hashed(&row.stats.url),
        }
    }

    /// Sets the proxy-state gauges from the backend's rows (every proxy's
    /// current state 1, the others 0; proxies gone from the list go).
    pub fn set_proxy_states(&self, rows: &[StatsRow]) {
        self.proxy_state.clear();
        for row in rows {
            let proxy = Metrics::row_id(row);
            let now = match row.stats.state {
                ProxyState::Active => "active",
                ProxyState::CoolingDown(_) => "cooling-down",
                ProxyState::Disabled => "disabled",
            };
            for state in ["active", "cooling-down", "disabled"] {
                self.proxy_state
                    .get_or_create(&ProxyStateLabel {
                        proxy: proxy.clone(),
                        state,
                    })
                    .set(i64::from(state == now));
            }
        }
    }

    /// The text to serve, with the queue's gauges as they are now.
    pub fn render(&self, host: &Host) -> String {
        let c = host.counts();
        self.queue_depth.set(c.queued as i64);
        self.workers_busy.set(c.running as i64);
        self.finished_kept.set(c.finished as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    fn time(&self, plugin: &str, call: &'static str, started: Instant) {
        self.plugin_calls
            .get_or_create(&PluginCall {
                plugin: plugin.to_string(),
                call,
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

impl QueueObserver for Metrics {
    fn finished(&self, status: &DownloadStatus, ran: Option<Duration>) {
        let outcome = match status.state {
            State::Done => "done",
            State::Failed => "failed",
            _ => "cancelled",
        };
        self.downloads.get_or_create(&Outcome { outcome }).inc();
        if let (Some(ran), "done" | "failed") = (ran, outcome) {
            self.duration.observe(ran.as_secs_f64());
        }
        for a in status.result.iter().flat_map(|r| &r.attempts) {
            let kind = a.kind.map_or("ok", FailureKind::name);
            self.attempts.get_or_create(&KindLabel { kind }).inc();
        }
    }
}

/// A proxy source that times every call into the one it wraps and counts
/// the failures reported.
pub struct Observed {
    inner: Arc<dyn ProxySource>,
    metrics: Arc<Metrics>,
}

impl Observed {
    pub fn wrap(inner: Arc<dyn ProxySource>, metrics: Arc<Metrics>) -> Arc<dyn ProxySource> {
        Arc::new(Observed { inner, metrics })
    }
}

impl ProxySource for Observed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn get_proxy<'a>(
        &'a self,
        req: &'a Request,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Arc<ProxyChoice>, BackendError>> {
        Box::pin(async move {
            let t = Instant::now();
            let answer = self.inner.get_proxy(req, options).await;
            self.metrics.time(self.inner.name(), "get_proxy", t);
            answer
        })
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        outcome: &'a Success,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let t = Instant::now();
            let answer = self
                .inner
                .report_success(proxy, req, outcome, options)
                .await;
            self.metrics.time(self.inner.name(), "report_success", t);
            answer
        })
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a Arc<ProxyChoice>,
        req: &'a Request,
        failure: &'a Failure,
        elapsed_ms: u32,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.metrics
                .proxy_failures
                .get_or_create(&ProxyKind {
                    proxy: metric_id(&proxy.id),
                    kind: failure.kind.name(),
                })
                .inc();
            let t = Instant::now();
            let answer = self
                .inner
                .report_failure(proxy, req, failure, elapsed_ms, options)
                .await;
            self.metrics.time(self.inner.name(), "report_failure", t);
            answer
        })
    }

    fn add_proxies<'a>(
        &'a self,
        entries: &'a [ytdlp_contract::proxy_list::ProxyEntry],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        self.inner.add_proxies(entries)
    }

    fn remove_proxies<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Option<u32>, BackendError>> {
        self.inner.remove_proxies(ids)
    }

    fn get_stats<'a>(
        &'a self,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<Option<Vec<StatsRow>>, BackendError>> {
        Box::pin(async move {
            let t = Instant::now();
            let answer = self.inner.get_stats(options).await;
            self.metrics.time(self.inner.name(), "get_stats", t);
            answer
        })
    }
}
