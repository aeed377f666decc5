//! `GET /metrics`: Prometheus metrics (OpenMetrics text, from the
//! `prometheus-client` crate), named as Prometheus asks (one `ytdlp_host_`
//! prefix, base units, counters ending `_total`). The `proxy` label is a
//! proxy's short id (`ProxyUrl::id()`, a hash): never a password, never a
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

use ytdlp_contract::{FailureKind, Options, ProxyState, ProxyUrl};
use ytdlp_host_core::{DownloadStatus, Host, ProxySource, QueueObserver, State};
use ytdlp_host_plugin_host::{BackendError, FailureReport, ProxyChoice, StatsRow};
use ytdlp_host_ytdlp::BoxFuture;

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
        row.id.clone().unwrap_or_else(|| {
            use sha2::Digest;
            let d = sha2::Sha256::digest(row.stats.url.as_bytes());
            format!("x{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
        })
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
        options: &'a Options,
    ) -> BoxFuture<'a, Result<ProxyChoice, BackendError>> {
        Box::pin(async move {
            let t = Instant::now();
            let answer = self.inner.get_proxy(options).await;
            self.metrics.time(self.inner.name(), "get_proxy", t);
            answer
        })
    }

    fn report_success<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let t = Instant::now();
            let answer = self.inner.report_success(proxy, options).await;
            self.metrics.time(self.inner.name(), "report_success", t);
            answer
        })
    }

    fn report_failure<'a>(
        &'a self,
        proxy: &'a ProxyUrl,
        failure: &'a FailureReport,
        options: &'a Options,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.metrics
                .proxy_failures
                .get_or_create(&ProxyKind {
                    proxy: proxy.id(),
                    kind: failure.kind.name(),
                })
                .inc();
            let t = Instant::now();
            let answer = self.inner.report_failure(proxy, failure, options).await;
            self.metrics.time(self.inner.name(), "report_failure", t);
            answer
        })
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
