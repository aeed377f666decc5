//! The conformance kit (`ytdlp-host plugins test`): exercises any plugin
//! through the contract, without yt-dlp, and says what is wrong in one line
//! per check.
//!
//! What it checks, in order (each row of the report):
//! - `load`: every load-time check (header, component, contract version,
//!   exports, imports this host links), with the load time and whether the
//!   compiled code came from the cache;
//! - `init`: instantiation and `init` with the given options;
//! - `get-proxy`: a valid proxy (URL and timeout as the contract says), or a
//!   proper `no-proxy-available` / `backend-unavailable` answer;
//! - `repeat get-proxy`: N more calls, every answer valid (a trap, a timeout
//!   or an invalid URL at any of them fails the check);
//! - `report-success`, then `report-failure <kind>` for each failure kind
//!   (with a detail record: an HTTP status, a `Retry-After`, countries),
//!   through the proxy it handed out;
//! - 0.2 only: `avoid` (a proxy that failed the URL is not handed out
//!   again while others are left) and `want` (a region nobody has gets a
//!   `no-proxy-available`, never a proxy outside it); `describe` when
//!   exported;
//! - `reports of an unknown proxy`: a report for a URL the backend never
//!   handed out must be accepted (ignored), not trap;
//! - `get-proxy after reports`: still a valid answer;
//! - `get-stats`: the rows' shape, and that a proxy it handed out is listed
//!   (or "unsupported" when the plugin does not export `stats`);
//! - `admin`: add then remove a proxy, when the plugin exports `admin`;
//! - per-call timings (median, p99) of get-proxy, report-success,
//!   report-failure and get-stats.
//!
//! A check *fails* when the plugin traps, times out, exceeds a limit or
//! breaks the contract; it *warns* when the answer is legal but surprising
//! (e.g. stats that do not list a proxy it just handed out). Only failures
//! make the kit exit non-zero.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use ytdlp_contract::proxy_list::parse_entry;
use ytdlp_contract::{
    Failure, FailureDetail, FailureKind, Options, ProxyMeta, ProxyState, Request, Site, Success,
    Wanted, now_ms, proxy_url,
};
use ytdlp_host_config::PluginConfig;

use crate::backend::{Backend, BackendError, ProxyChoice};
use crate::loading::{Contract, Plugin, Source};
use crate::runtime::PluginRuntime;

/// The site the kit pretends to download from (never contacted).
pub const KIT_URL: &str = "https://conformance.invalid/watch?v=ytdlp-host-kit";
pub const KIT_SITE: &str = "conformance.invalid";
/// A proxy URL the kit reports on without having been handed it.
pub const UNKNOWN_PROXY: &str = "http://127.0.0.1:9";

/// What to run the kit on.
#[derive(Debug, Clone)]
pub struct KitSettings {
    /// The plugin's name: its config section and its name in messages.
    pub name: String,
    /// Limits and grants for the plugin.
    pub config: PluginConfig,
    /// Options for `init`.
    pub init_options: Options,
    /// Options for every other call (the kit passes a request, which a 0.1
    /// plugin hears as `host.*` keys).
    pub call_options: Options,
    /// get-proxy calls in the repeat check.
    pub repeat: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// Per-call timing, microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub call: String,
    pub calls: usize,
    pub median_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// The kit's findings on one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub plugin: String,
    pub source: String,
    pub passed: bool,
    pub load_ms: Option<f64>,
    /// `hit` or `compiled`.
    pub cache: Option<String>,
    pub init_ms: Option<f64>,
    pub checks: Vec<Check>,
    pub timings: Vec<Timing>,
}

impl Report {
    fn push(&mut self, name: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "plugin {} ({})", self.plugin, self.source);
        let width = self
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = writeln!(s, "  {:width$}  RESULT  DETAIL", "CHECK");
        for c in &self.checks {
            let _ = writeln!(
                s,
                "  {:width$}  {:6}  {}",
                c.name,
                c.status.as_str(),
                c.detail
            );
        }
        if !self.timings.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:16} {:>6} {:>11} {:>11} {:>11}",
                "CALL", "N", "MEDIAN", "P99", "MAX"
            );
            for t in &self.timings {
                let _ = writeln!(
                    s,
                    "  {:16} {:>6} {:>11} {:>11} {:>11}",
                    t.call,
                    t.calls,
                    micros(t.median_us),
                    micros(t.p99_us),
                    micros(t.max_us)
                );
            }
        }
        let _ = writeln!(
            s,
            "\n{}: {} passed, {} failed, {} warnings, {} skipped",
            if self.passed { "PASS" } else { "FAIL" },
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Skip)
        );
        s
    }
}

fn micros(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// The request of one kit call, as a download would make it.
fn request(attempt: u32) -> Request {
    Request {
        url: KIT_URL.into(),
        site: Site {
            host: KIT_SITE.into(),
            domain: KIT_SITE.into(),
        },
        attempt,
        download_id: format!("kit-{attempt}"),
        ..Request::default()
    }
}

/// The call options without reserved keys (the host never sends them).
fn call_options(base: &Options) -> Options {
    base.iter()
        .filter(|(k, _)| !k.starts_with("host."))
        .cloned()
        .collect()
}

/// A proxy the backend never handed out.
fn unknown_proxy() -> Arc<ProxyChoice> {
    let url = proxy_url::validate(UNKNOWN_PROXY).expect("valid constant");
    Arc::new(ProxyChoice {
        id: "kit-unknown-proxy".into(),
        url,
        timeout_ms: 1000,
        meta: ProxyMeta::default(),
        backend: String::new(),
    })
}

/// A failure of `kind` with the detail a real one would carry.
fn kit_failure(kind: FailureKind) -> Failure {
    let mut f = Failure::new(kind, format!("conformance kit: a {kind} failure"));
    f.detail = match kind {
        FailureKind::Blocked => FailureDetail {
            http_status: Some(429),
            retry_after_ms: Some(15_000),
            ..FailureDetail::default()
        },
        FailureKind::GeoRestricted => FailureDetail {
            countries: vec!["DE".into(), "FR".into()],
            ..FailureDetail::default()
        },
        FailureKind::ProxyAuth => FailureDetail {
            http_status: Some(407),
            from_proxy: true,
            ..FailureDetail::default()
        },
        _ => FailureDetail::default(),
    };
    f
}

/// How a get-proxy answer reads in the report; `Err` for a fault.
fn describe_answer(r: &Result<Arc<ProxyChoice>, BackendError>) -> Result<String, String> {
    match r {
        Ok(c) => {
            let meta = c.meta.to_string();
            Ok(format!(
                "[{}] {} (timeout {} ms{}{meta})",
                c.id,
                c.url,
                c.timeout_ms,
                if meta.is_empty() { "" } else { "; " }
            ))
        }
        Err(BackendError::NoProxy { message, .. }) => {
            Ok(format!("no proxy available (legal answer): {message}"))
        }
        Err(BackendError::Unavailable { message, .. }) => {
            Ok(format!("backend unavailable (legal answer): {message}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

struct Samples(Vec<Duration>);

impl Samples {
    fn timing(&self, call: &str) -> Option<Timing> {
        if self.0.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        Some(Timing {
            call: call.to_string(),
            calls: v.len(),
            median_us: at(0.5),
            p99_us: at(0.99),
            max_us: v[v.len() - 1],
        })
    }
}

/// Loads `file` and runs the kit on it.
pub async fn run_file(runtime: &PluginRuntime, file: &Path, settings: &KitSettings) -> Report {
    let loaded = runtime.load_file(&settings.name, file);
    run_loaded(
        loaded.map_err(|e| e.to_string()),
        file.display().to_string(),
        settings,
    )
    .await
}

/// Runs the kit on an already loaded plugin (or reports why it did not load).
pub async fn run_loaded(
    loaded: Result<Plugin, String>,
    source: String,
    settings: &KitSettings,
) -> Report {
    let mut r = Report {
        plugin: settings.name.clone(),
        source,
        passed: false,
        load_ms: None,
        cache: None,
        init_ms: None,
        checks: Vec::new(),
        timings: Vec::new(),
    };
    let plugin = match loaded {
        Ok(p) => p,
        Err(e) => {
            r.push("load", Status::Fail, e);
            return r;
        }
    };
    if let Source::File(p) = &plugin.source {
        r.source = p.display().to_string();
    } else {
        r.source = "(bundled)".to_string();
    }
    let exports = plugin.exports().join("+");
    let load_ms = plugin.load_time.as_secs_f64() * 1000.0;
    let cache = format!("{:?}", plugin.cache).to_lowercase();
    r.load_ms = Some(load_ms);
    r.cache = Some(cache.clone());
    r.push(
        "load",
        Status::Pass,
        format!(
            "contract {}, exports {exports}, {} imports, {load_ms:.1} ms ({cache})",
            plugin.version,
            plugin.imports.len()
        ),
    );

    let started = Instant::now();
    let mut backend = match Backend::start(
        plugin,
        settings.config.clone(),
        settings.init_options.clone(),
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            r.push("init", Status::Fail, e.to_string());
            return r;
        }
    };
    let init_ms = started.elapsed().as_secs_f64() * 1000.0;
    r.init_ms = Some(init_ms);
    r.push(
        "init",
        Status::Pass,
        format!(
            "instantiated and initialised in {init_ms:.1} ms with {} option(s)",
            settings.init_options.len()
        ),
    );

    exercise(&mut r, &mut backend, settings).await;
    r.passed = r.count(Status::Fail) == 0;
    r
}

/// Runs a backend call; if the backend is still waiting to restart the
/// plugin after a crash, waits for it (at most [`MAX_RESTART_WAIT`]) and
/// calls again, so that each check tests the plugin itself rather than the
/// aftermath of an earlier check's crash.
macro_rules! patiently {
    ($call:expr) => {{
        let mut r = $call;
        if let Err(BackendError::CoolingOff { wait_ms, .. }) = &r {
            let wait = Duration::from_millis(wait_ms.saturating_add(5)).min(MAX_RESTART_WAIT);
            tokio::time::sleep(wait).await;
            r = $call;
        }
        r
    }};
}

/// Longest the kit waits for a crashed plugin's restart backoff.
const MAX_RESTART_WAIT: Duration = Duration::from_secs(2);

async fn exercise(r: &mut Report, backend: &mut Backend, settings: &KitSettings) {
    let base = &call_options(&settings.call_options);
    let req = request(1);

    // get-proxy, once.
    let mut get_samples = Samples(Vec::new());
    let t = Instant::now();
    let first = backend.get_proxy(&req, base).await;
    get_samples.0.push(t.elapsed());
    let mut handed_out: Option<Arc<ProxyChoice>> = None;
    match describe_answer(&first) {
        Ok(d) => r.push("get-proxy", Status::Pass, d),
        Err(e) => r.push("get-proxy", Status::Fail, e),
    }
    if let Ok(c) = &first {
        handed_out = Some(c.clone());
    }

    // get-proxy, repeatedly: every answer valid.
    let n = settings.repeat;
    let mut distinct = std::collections::BTreeSet::new();
    if n > 0 {
        let mut no_proxy = 0u32;
        let mut fault = None;
        for i in 0..n {
            let t = Instant::now();
            let answer = backend.get_proxy(&request(1 + i % 3), base).await;
            get_samples.0.push(t.elapsed());
            match answer {
                Ok(c) => {
                    distinct.insert(c.id.clone());
                    if handed_out.is_none() {
                        handed_out = Some(c);
                    }
                }
                Err(e) if !e.is_fault() => no_proxy += 1,
                Err(e) => {
                    fault = Some((i + 1, e));
                    break;
                }
            }
        }
        let name = format!("repeat get-proxy x{n}");
        match fault {
            Some((i, e)) => r.push(name, Status::Fail, format!("call {i} of {n}: {e}")),
            None => r.push(
                name,
                Status::Pass,
                format!(
                    "{n}/{n} valid: {} proxy answer(s) over {} distinct prox{}, {no_proxy} legal no-proxy answer(s)",
                    n - no_proxy,
                    distinct.len(),
                    if distinct.len() == 1 { "y" } else { "ies" }
                ),
            ),
        }
    }

    // The proxy to report on: the one handed out, else a made-up one.
    let reported = handed_out.clone().unwrap_or_else(unknown_proxy);
    let about = if handed_out.is_some() {
        format!("through [{}] {}", reported.id, reported.url)
    } else {
        format!("through {} (no proxy was handed out)", reported.url)
    };
    let ok = Success {
        elapsed_ms: 1200,
        bytes: Some(1 << 20),
    };

    match patiently!(backend.report_success(&reported, &req, &ok, base).await) {
        Ok(()) => r.push("report-success", Status::Pass, format!("accepted {about}")),
        Err(e) => r.push("report-success", Status::Fail, e.to_string()),
    }
    for kind in FailureKind::ALL {
        let failure = kit_failure(kind);
        let name = format!("report-failure {kind}");
        match patiently!(
            backend
                .report_failure(&reported, &req, &failure, 800, base)
                .await
        ) {
            Ok(()) => r.push(name, Status::Pass, "accepted"),
            Err(e) => r.push(name, Status::Fail, e.to_string()),
        }
    }
    // Bring the proxy back (the reports above include three proxy faults).
    let _ = patiently!(backend.report_success(&reported, &req, &ok, base).await);

    if handed_out.is_some() {
        let unknown = unknown_proxy();
        let failure = Failure::new(
            FailureKind::ProxyConnect,
            "conformance kit: a proxy this backend never handed out",
        );
        let outcome = match patiently!(backend.report_success(&unknown, &req, &ok, base).await) {
            Ok(()) => patiently!(
                backend
                    .report_failure(&unknown, &req, &failure, 5, base)
                    .await
            ),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => r.push("reports of an unknown proxy", Status::Pass, "accepted"),
            Err(e) => r.push("reports of an unknown proxy", Status::Fail, e.to_string()),
        }
    }

    let after = patiently!(backend.get_proxy(&request(2), base).await);
    match describe_answer(&after) {
        Ok(d) => r.push("get-proxy after reports", Status::Pass, d),
        Err(e) => r.push("get-proxy after reports", Status::Fail, e),
    }

    if backend.plugin().contract >= Contract::V0_2 {
        avoid_and_want(r, backend, base, handed_out.as_deref(), distinct.len()).await;
        describe_check(r, backend).await;
    }
    stats_check(r, backend, base, handed_out.as_deref()).await;
    admin_check(r, backend, base).await;
    timings(r, backend, base, &reported, get_samples).await;
}

/// 0.2's request constraints: `avoid` and `want`.
async fn avoid_and_want(
    r: &mut Report,
    backend: &mut Backend,
    base: &Options,
    handed_out: Option<&ProxyChoice>,
    distinct: usize,
) {
    match handed_out {
        Some(p) if distinct > 1 => {
            let mut req = request(2);
            req.avoid = vec![p.id.clone()];
            match patiently!(backend.get_proxy(&req, base).await) {
                Ok(c) if c.id == p.id => r.push(
                    "avoid",
                    Status::Warn,
                    format!(
                        "handed out [{}] again although the request avoids it and it has {distinct} proxies",
                        p.id
                    ),
                ),
                Ok(c) => r.push(
                    "avoid",
                    Status::Pass,
                    format!("avoided [{}], handed out [{}]", p.id, c.id),
                ),
                Err(e) if !e.is_fault() => r.push(
                    "avoid",
                    Status::Pass,
                    format!("a legal answer: {e}"),
                ),
                Err(e) => r.push("avoid", Status::Fail, e.to_string()),
            }
        }
        _ => r.push(
            "avoid",
            Status::Skip,
            "needs a plugin that hands out two or more proxies",
        ),
    }
    // A region no proxy is in: ISO 3166's user-assigned `XZ`.
    let mut req = request(1);
    req.want = Wanted {
        regions: vec!["XZ".into()],
        ..Wanted::default()
    };
    match patiently!(backend.get_proxy(&req, base).await) {
        Ok(c) if !req.want.admits(&c.meta) => r.push(
            "want",
            Status::Fail,
            format!(
                "asked for region XZ, handed out [{}] with `{}`: a proxy outside `want` breaks the contract",
                c.id, c.meta
            ),
        ),
        Ok(c) => r.push(
            "want",
            Status::Pass,
            format!("handed out [{}] in region XZ", c.id),
        ),
        Err(e) if !e.is_fault() => r.push(
            "want",
            Status::Pass,
            format!("region XZ: {e}"),
        ),
        Err(e) => r.push("want", Status::Fail, e.to_string()),
    }
}

async fn describe_check(r: &mut Report, backend: &mut Backend) {
    match patiently!(backend.describe().await) {
        Ok(None) => r.push(
            "describe",
            Status::Skip,
            "the plugin does not export describe",
        ),
        Ok(Some(info)) => {
            let secret = info.options.iter().filter(|o| o.secret).count();
            let per_call = info.options.iter().filter(|o| o.per_call).count();
            r.push(
                "describe",
                Status::Pass,
                format!(
                    "{} {}: {} option(s), {per_call} per-call, {secret} secret",
                    info.name,
                    info.version,
                    info.options.len()
                ),
            )
        }
        Err(e) => r.push("describe", Status::Fail, e.to_string()),
    }
}

async fn stats_check(
    r: &mut Report,
    backend: &mut Backend,
    base: &Options,
    handed_out: Option<&ProxyChoice>,
) {
    let rows = match patiently!(backend.get_stats(base).await) {
        Ok(None) => {
            r.push(
                "get-stats",
                Status::Skip,
                "unsupported: the plugin does not export stats",
            );
            return;
        }
        Ok(Some(rows)) => rows,
        Err(e) if !e.is_fault() => {
            r.push(
                "get-stats",
                Status::Pass,
                format!("an error answer (legal): {e}"),
            );
            return;
        }
        Err(e) => {
            r.push("get-stats", Status::Fail, e.to_string());
            return;
        }
    };
    let mut problems = Vec::new();
    for row in &rows {
        if row.id.is_none() {
            problems.push(format!("`{}` is not a proxy URL", row.stats.url));
        }
        if u64::from(row.stats.consecutive_failures) > row.stats.failures {
            problems.push(format!(
                "{}: consecutive-failures {} > failures {}",
                row.stats.url, row.stats.consecutive_failures, row.stats.failures
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for row in &rows {
        if let Some(id) = &row.id
            && !seen.insert(id.as_str())
        {
            problems.push(format!("{} ({id}) is listed twice", row.stats.url));
        }
    }
    let listed = handed_out.map(|p| {
        rows.iter()
            .find(|row| row.id.as_deref() == Some(p.id.as_str()))
            .map(|row| &row.stats)
    });
    let summary = format!("{} row(s)", rows.len());
    if !problems.is_empty() {
        r.push(
            "get-stats",
            Status::Warn,
            format!("{summary}; {}", problems.join("; ")),
        );
        return;
    }
    match listed {
        Some(None) => r.push(
            "get-stats",
            Status::Warn,
            format!(
                "{summary}; the proxy it handed out ([{}] {}) is not listed",
                handed_out.expect("some").id,
                handed_out.expect("some").url
            ),
        ),
        Some(Some(row)) if row.successes == 0 || row.failures == 0 => r.push(
            "get-stats",
            Status::Warn,
            format!(
                "{summary}; {} shows {} successes and {} failures after the kit reported some of each",
                row.url, row.successes, row.failures
            ),
        ),
        Some(Some(row)) => r.push(
            "get-stats",
            Status::Pass,
            format!(
                "{summary}; {}: {} successes, {} failures, {}",
                row.url,
                row.successes,
                row.failures,
                describe_state(&row.state)
            ),
        ),
        None => r.push("get-stats", Status::Pass, summary),
    }
}

fn describe_state(state: &ProxyState) -> String {
    match state {
        ProxyState::Active => "active".to_string(),
        ProxyState::CoolingDown(until) => format!(
            "cooling down for {} s",
            until.saturating_sub(now_ms()).div_ceil(1000)
        ),
        ProxyState::Disabled => "disabled".to_string(),
    }
}

async fn admin_check(r: &mut Report, backend: &mut Backend, base: &Options) {
    if !backend.plugin().has_admin {
        r.push(
            "admin",
            Status::Skip,
            "unsupported: the plugin does not export admin",
        );
        return;
    }
    // A loopback URL no test or user would configure; never contacted.
    let entry = parse_entry("http://127.0.0.1:1;region=XZ").expect("valid constant");
    let url = vec![entry.url.expose().to_string()];
    let entries = [entry];
    let added = match patiently!(backend.add_proxies(&entries, base).await) {
        Ok(n) => n,
        Err(e) if !e.is_fault() => {
            r.push(
                "admin",
                Status::Pass,
                format!("add-proxies: an error answer (legal): {e}"),
            );
            return;
        }
        Err(e) => {
            r.push("admin", Status::Fail, e.to_string());
            return;
        }
    };
    match patiently!(backend.remove_proxies(&url, base).await) {
        Ok(removed) => {
            let status = if added == Some(1) && removed != Some(1) {
                Status::Warn
            } else {
                Status::Pass
            };
            r.push(
                "admin",
                status,
                format!(
                    "add-proxies answered {}, remove-proxies answered {}",
                    added.unwrap_or(0),
                    removed.unwrap_or(0)
                ),
            );
        }
        Err(e) if !e.is_fault() => r.push(
            "admin",
            Status::Pass,
            format!("remove-proxies: an error answer (legal): {e}"),
        ),
        Err(e) => r.push("admin", Status::Fail, e.to_string()),
    }
}

/// Per-call timings: the get-proxy calls made above, plus batches of the
/// other calls. `content` failures are used because no backend may count
/// them against the proxy, so the batch leaves the backend's state alone.
async fn timings(
    r: &mut Report,
    backend: &mut Backend,
    base: &Options,
    proxy: &ProxyChoice,
    get_samples: Samples,
) {
    const N: usize = 100;
    if r.count(Status::Fail) > 0 {
        // A faulty plugin's timings would measure restarts, not calls.
        if let Some(t) = get_samples.timing("get-proxy") {
            r.timings.push(t);
        }
        return;
    }
    let req = request(1);
    let mut ok = Samples(Vec::new());
    let mut fail = Samples(Vec::new());
    let mut stats = Samples(Vec::new());
    let failure = Failure::new(FailureKind::Content, "conformance kit: timing");
    let success = Success::default();
    for _ in 0..N {
        let t = Instant::now();
        if backend
            .report_success(proxy, &req, &success, base)
            .await
            .is_err()
        {
            break;
        }
        ok.0.push(t.elapsed());
        let t = Instant::now();
        if backend
            .report_failure(proxy, &req, &failure, 1, base)
            .await
            .is_err()
        {
            break;
        }
        fail.0.push(t.elapsed());
    }
    if backend.has_stats() {
        for _ in 0..N / 5 {
            let t = Instant::now();
            if backend.get_stats(base).await.is_err() {
                break;
            }
            stats.0.push(t.elapsed());
        }
    }
    r.timings.extend(
        [
            get_samples.timing("get-proxy"),
            ok.timing("report-success"),
            fail.timing("report-failure"),
            stats.timing("get-stats"),
        ]
        .into_iter()
        .flatten(),
    );
}
