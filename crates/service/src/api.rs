//! The API's wire types: what callers send and get, with the schemas the
//! OpenAPI document is generated from. They are the service's own (built
//! from the core's types), so the contract changes only when these do; the
//! committed `docs/openapi.json` is checked against them by a test.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use ytdlp_contract::{FailureKind, ProxyState, ProxyStats};
use ytdlp_host_core::{Attempt, DownloadResult, DownloadStatus, State, Status};
use ytdlp_host_ytdlp::Progress;

/// The URLs the API takes: http(s), a host name (whose last label starts
/// with a letter, so it is never read as an IPv4 address) or an IPv4
/// address, an optional port, a path and query of URL characters. Written
/// out again in [`NewDownload`]'s schema (utoipa takes only a literal); a
/// test keeps the two equal. Every URL it matches is one `url::Url`
/// parses, so the documented rule is the enforced one both ways.
pub const URL_PATTERN: &str = r"^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z]([A-Za-z0-9]*(-[A-Za-z0-9]+)*)?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$";
pub static URL_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(URL_PATTERN).expect("URL_PATTERN compiles"));

/// Longest URL taken, characters.
pub const MAX_URL_LEN: usize = 4096;
/// Most yt-dlp arguments in one request.
pub const MAX_YTDLP_ARGS: usize = 64;
/// Most backend options in one request.
pub const MAX_BACKEND_OPTIONS: usize = 32;
/// The pattern of a download id (`PID-N`), also the `after` cursor.
pub const ID_PATTERN: &str = "^[0-9a-f]{1,16}-[0-9]{1,19}$";
pub static ID_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(ID_PATTERN).expect("ID_PATTERN compiles"));

/// The body of `POST /downloads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDownload {
    /// The page or media URL.
    #[schema(
        example = "https://example.com/watch?v=1",
        max_length = 4096,
        pattern = r"^https?://((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}|([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z]([A-Za-z0-9]*(-[A-Za-z0-9]+)*)?)(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$"
    )]
    pub url: String,
    /// yt-dlp options from the allowlist (format, rate limits, retries,
    /// subtitles, metadata files, `-o`/`-P` inside the download directory);
    /// anything else is refused with 400 naming the option.
    #[serde(default)]
    #[schema(max_items = 64, example = json!(["-f", "best[height<=720]"]))]
    pub ytdlp_args: Vec<YtdlpArg>,
    /// Backend options the operator lets callers set (`[serve]
    /// client_backend_options`, none by default); others are refused with
    /// 400 naming the key. At most 32 keys, 16 values per list.
    #[serde(default)]
    pub backend_options: BTreeMap<String, OptionValue>,
}

/// One yt-dlp argument.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct YtdlpArg(pub String);

impl PartialSchema for YtdlpArg {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(ytdlp_host_ytdlp::policy::MAX_VALUE_LEN))
            .into()
    }
}
impl ToSchema for YtdlpArg {}

/// An option's value: a scalar, or a list (the key repeated).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OptionValue {
    One(Scalar),
    Many(Vec<Scalar>),
}

/// A string, number or boolean. Its schema is written by hand: derived, an
/// untagged enum of integer and number is a `oneOf` that no integer
/// satisfies (it matches both).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl PartialSchema for Scalar {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Boolean,
            ]))
            .description(Some("A string, number or boolean"))
            .into()
    }
}
impl ToSchema for Scalar {}

impl OptionValue {
    /// As the config's type, which flattens options for the contract.
    pub fn to_config(&self) -> ytdlp_host_config::OptionValue {
        use ytdlp_host_config::{OptionValue as O, Scalar as S};
        let one = |s: &Scalar| match s {
            Scalar::Str(v) => S::Str(v.clone()),
            Scalar::Int(v) => S::Int(*v),
            Scalar::Float(v) => S::Float(*v),
            Scalar::Bool(v) => S::Bool(*v),
        };
        match self {
            OptionValue::One(s) => O::One(one(s)),
            OptionValue::Many(l) => O::Many(l.iter().map(one).collect()),
        }
    }
}

/// `GET /downloads` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only downloads in this state.
    pub state: Option<StateView>,
    /// At most this many (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only downloads submitted after this id (the `next` of the previous
    /// page).
    #[param(pattern = "^[0-9a-f]{1,16}-[0-9]{1,19}$")]
    pub after: Option<String>,
}

/// `201`: the download is queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: String,
}

/// Every error: what is wrong, naming the field, option or value at fault.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    pub error: String,
}

/// Where a download stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = State)]
pub enum StateView {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl From<State> for StateView {
    fn from(s: State) -> Self {
        match s {
            State::Queued => StateView::Queued,
            State::Running => StateView::Running,
            State::Done => StateView::Done,
            State::Failed => StateView::Failed,
            State::Cancelled => StateView::Cancelled,
        }
    }
}

impl From<StateView> for State {
    fn from(s: StateView) -> Self {
        match s {
            StateView::Queued => State::Queued,
            StateView::Running => State::Running,
            StateView::Done => State::Done,
            StateView::Failed => State::Failed,
            StateView::Cancelled => State::Cancelled,
        }
    }
}

/// A failure kind's name (`proxy-connect`, `blocked`, ...).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(transparent)]
pub struct Kind(pub FailureKind);

impl PartialSchema for Kind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(FailureKind::NAMES))
            .into()
    }
}
impl ToSchema for Kind {}

/// A download's status.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Download)]
pub struct DownloadView {
    pub id: String,
    pub url: String,
    pub state: StateView,
    /// The attempt running now, or the last one (0: not started).
    pub attempt: u32,
    /// The proxy of the running attempt, password masked.
    pub proxy: Option<String>,
    pub progress: Option<ProgressView>,
    /// The result, once the download ended (not for a cancelled one).
    pub result: Option<ResultView>,
}

impl From<DownloadStatus> for DownloadView {
    fn from(s: DownloadStatus) -> Self {
        DownloadView {
            id: s.id,
            url: s.url,
            state: s.state.into(),
            attempt: s.attempt,
            proxy: s.proxy,
            progress: s.progress.map(ProgressView::from),
            result: s.result.map(ResultView::from),
        }
    }
}

/// Progress, as yt-dlp reports it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Progress)]
pub struct ProgressView {
    pub status: Option<String>,
    pub downloaded_bytes: Option<f64>,
    pub total_bytes: Option<f64>,
    pub total_bytes_estimate: Option<f64>,
    pub speed: Option<f64>,
    pub eta: Option<f64>,
}

impl From<Progress> for ProgressView {
    fn from(p: Progress) -> Self {
        ProgressView {
            status: p.status,
            downloaded_bytes: p.downloaded_bytes,
            total_bytes: p.total_bytes,
            total_bytes_estimate: p.total_bytes_estimate,
            speed: p.speed,
            eta: p.eta,
        }
    }
}

/// How a download ended.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DownloadResult)]
pub struct ResultView {
    pub id: String,
    pub url: String,
    pub status: ResultStatus,
    /// The file written, inside the download directory.
    pub file: Option<String>,
    pub attempts: Vec<AttemptView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Done,
    Failed,
}

impl From<DownloadResult> for ResultView {
    fn from(r: DownloadResult) -> Self {
        ResultView {
            id: r.id,
            url: r.url,
            status: match r.status {
                Status::Done => ResultStatus::Done,
                Status::Failed => ResultStatus::Failed,
            },
            file: r.file.map(|f| f.display().to_string()),
            attempts: r.attempts.into_iter().map(AttemptView::from).collect(),
            error: r.error,
            kind: r.kind.map(Kind),
        }
    }
}

/// One attempt at a URL.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    /// The proxy, password masked; `null` for a direct run.
    pub proxy: Option<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub duration_ms: u64,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        AttemptView {
            proxy: a.proxy,
            ok: a.ok,
            kind: a.kind.map(Kind),
            message: a.message,
            duration_ms: a.duration_ms,
        }
    }
}

/// A page of downloads, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadList {
    pub downloads: Vec<DownloadView>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `DELETE` that cancelled the download.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cancelled {
    pub id: String,
    pub cancelled: bool,
    pub status: DownloadView,
}

/// `DELETE` of a download that had ended (or ended by itself meanwhile):
/// nothing was cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotCancelled {
    pub error: String,
    pub status: DownloadView,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `stopping` once a shutdown began.
    pub status: String,
    pub backend: String,
    /// False when the backend plugin is not running (downloads then follow
    /// `on_no_proxy`).
    pub backend_running: bool,
    /// In a fleet (a Redis store): `ok`, or `unavailable` while Redis
    /// cannot be reached (no new downloads are taken or accepted then;
    /// running ones go on). Absent for a single host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

/// One proxy's statistics, as the backend keeps them.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsRow {
    /// The backend that keeps this row, when several are chained
    /// (`backend = ["postgres", "memory"]`); absent with one backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The proxy URL, password masked.
    pub url: String,
    /// The id the metrics label this proxy with.
    pub id: String,
    pub successes: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub state: ProxyStateView,
    /// Until when a cooling-down proxy is out (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    pub last_used_ms: Option<u64>,
    /// Anything else the backend shows (a repeated key keeps its last
    /// value).
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = ProxyState)]
pub enum ProxyStateView {
    Active,
    CoolingDown,
    Disabled,
}

impl StatsRow {
    pub fn new(row: ProxyStats, id: String, backend: Option<String>) -> StatsRow {
        let (state, until_ms) = match row.state {
            ProxyState::Active => (ProxyStateView::Active, None),
            ProxyState::CoolingDown(t) => (ProxyStateView::CoolingDown, Some(t)),
            ProxyState::Disabled => (ProxyStateView::Disabled, None),
        };
        StatsRow {
            backend,
            url: row.url,
            id,
            successes: row.successes,
            failures: row.failures,
            consecutive_failures: row.consecutive_failures,
            state,
            until_ms,
            last_used_ms: row.last_used_ms,
            extra: row.extra.into_iter().collect(),
        }
    }
}
