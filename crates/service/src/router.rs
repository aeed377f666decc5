//! The HTTP API: JSON over a [`Host`], documented by the handlers' types
//! (OpenAPI, [`openapi`]).
//!
//! - `POST /downloads` `{"url", "ytdlp_args"?, "backend_options"?}` -> 201
//!   `{"id"}`; 400 naming the field, option or key at fault; 413 for a body
//!   over the limit; 415 unless `Content-Type: application/json`; 503 with
//!   `Retry-After` when the queue is full or the service is stopping;
//! - `GET /downloads?state=&limit=&after=` -> a page, oldest first;
//!   `GET /downloads/{id}` -> a status, 404 if unknown or forgotten;
//! - `DELETE /downloads/{id}` -> 200 if it was cancelled, 409 (with its
//!   status) if it had ended or ended meanwhile, 404 if unknown;
//! - `GET /proxies/stats` (501 if the plugin keeps none), `GET /metrics`;
//! - `GET /healthz` and `GET /openapi.json` without a token.
//!
//! In front of every route (outermost first): the Host/Origin guard (403),
//! CORS when configured, the bearer token (401; 403 for a read-only token
//! writing), the body limit (413).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use ytdlp_contract::options::is_host_key;
use ytdlp_host_config::options_from_table;
use ytdlp_host_core::{CancelOutcome, DownloadRequest, Host, SubmitError};
use ytdlp_host_ytdlp::policy::RequestPolicy;

use crate::api::*;
use crate::auth::{Scope, TokenSet, bearer};
use crate::guard::Guard;
use crate::metrics::{self, Metrics};

/// Seconds a client is told to wait when the queue is full.
pub const RETRY_AFTER_SECS: u64 = 5;
/// Default request body limit.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// How long `/metrics` waits for the backend's stats.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Clone)]
pub struct Ctx {
    pub host: Host,
    pub backend_name: String,
    pub policy: Arc<RequestPolicy>,
    /// `backend_options` keys callers may set.
    pub client_backend_options: Arc<Vec<String>>,
    pub metrics: Arc<Metrics>,
}

/// Who may call, and from where.
#[derive(Clone)]
pub struct Access {
    pub tokens: Arc<TokenSet>,
    pub guard: Arc<Guard>,
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(ApiError { error: msg.into() })).into_response()
}

fn busy(msg: impl Into<String>) -> Response {
    let mut r = err(StatusCode::SERVICE_UNAVAILABLE, msg);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    r
}

/// `Json<T>` whose every rejection is a documented JSON error: 415 for a
/// missing or other content type, 413 over the body limit, 400 for bad
/// syntax and for bad data (axum says 422).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => {
                let status = match e.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    s => s,
                };
                Err(err(status, e.body_text()))
            }
        }
    }
}

/// Queue a download.
#[utoipa::path(
    post, path = "/downloads", tag = "downloads",
    request_body(content = NewDownload, content_type = "application/json"),
    responses(
        (status = 201, description = "Queued; `Location` is its status", body = Created,
            headers(("Location" = String, description = "/downloads/{id}"))),
        (status = 400, description = "Bad body: the field, yt-dlp option or backend option at fault is named", body = ApiError),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A read-only token; or a Host or Origin not allowed", body = ApiError),
        (status = 413, description = "Body over the limit ([serve] max_body_bytes, 64 KiB by default)", body = ApiError),
        (status = 415, description = "Content-Type is not application/json", body = ApiError),
        (status = 503, description = "The queue is full, or the service is stopping",
            body = ApiError, headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
async fn create(State(ctx): State<Ctx>, ApiJson(req): ApiJson<NewDownload>) -> Response {
    let url = req.url;
    if url.chars().count() > MAX_URL_LEN {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "url: {} characters (at most {MAX_URL_LEN})",
                url.chars().count()
            ),
        );
    }
    if !URL_RE.is_match(&url) || url::Url::parse(&url).is_err() {
        return err(
            StatusCode::BAD_REQUEST,
            "url: not an http(s) URL with a host name or IPv4 address (see the pattern in /openapi.json)",
        );
    }
    if req.ytdlp_args.len() > MAX_YTDLP_ARGS {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "ytdlp_args: {} arguments (at most {MAX_YTDLP_ARGS})",
                req.ytdlp_args.len()
            ),
        );
    }
    let args: Vec<String> = req.ytdlp_args.into_iter().map(|a| a.0).collect();
    let args = match ctx.policy.check(&args) {
        Ok(a) => a,
        Err(refusal) => return err(StatusCode::BAD_REQUEST, format!("ytdlp_args: {refusal}")),
    };
    if req.backend_options.len() > MAX_BACKEND_OPTIONS {
        return err(
            StatusCode::BAD_REQUEST,
            format!(
                "backend_options: {} keys (at most {MAX_BACKEND_OPTIONS})",
                req.backend_options.len()
            ),
        );
    }
    for (k, v) in &req.backend_options {
        if is_host_key(k) {
            return err(
                StatusCode::BAD_REQUEST,
                format!(
                    "backend_options: `{k}`: keys starting with `host.` are reserved for the host"
                ),
            );
        }
        if !ctx.client_backend_options.contains(k) {
            return err(
                StatusCode::BAD_REQUEST,
                format!(
                    "backend_options: `{k}` may not be set by API callers (the operator lists the keys they may set in [serve] client_backend_options)"
                ),
            );
        }
        if let OptionValue::Many(l) = v
            && l.len() > 16
        {
            return err(
                StatusCode::BAD_REQUEST,
                format!("backend_options: `{k}`: {} values (at most 16)", l.len()),
            );
        }
    }
    let table = req
        .backend_options
        .iter()
        .map(|(k, v)| (k.clone(), v.to_config()))
        .collect();
    let submitted = ctx.host.submit(
        DownloadRequest::new(url)
            .with_backend_options(options_from_table(&table))
            .with_ytdlp_args(args),
    );
    match submitted {
        Ok(id) => {
            let mut r =
                (StatusCode::CREATED, axum::Json(Created { id: id.clone() })).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("/downloads/{id}")) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(e @ (SubmitError::BadUrl(_) | SubmitError::BadArgs(_))) => {
            err(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => busy(e.to_string()),
    }
}

/// A page of downloads, oldest first.
#[utoipa::path(
    get, path = "/downloads", tag = "downloads",
    params(ListParams),
    responses(
        (status = 200, description = "A page; `next` is the cursor of the next one", body = DownloadList),
        (status = 400, description = "Bad query (the parameter is named)", body = ApiError),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A Host or Origin not allowed", body = ApiError),
    )
)]
async fn list(State(ctx): State<Ctx>, q: Result<Query<ListParams>, QueryRejection>) -> Response {
    // Query's own rejection is text/plain: answer it as JSON.
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return err(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return err(
            StatusCode::BAD_REQUEST,
            format!("limit: {limit} is not in 1..=1000"),
        );
    }
    if let Some(a) = &q.after
        && !ID_RE.is_match(a)
    {
        return err(
            StatusCode::BAD_REQUEST,
            format!("after: `{a}` is not a download id"),
        );
    }
    let page = ctx
        .host
        .list_page(q.state.map(Into::into), q.after.as_deref(), limit as usize);
    axum::Json(DownloadList {
        downloads: page.items.into_iter().map(DownloadView::from).collect(),
        next: page.next,
    })
    .into_response()
}

/// One download's status.
#[utoipa::path(
    get, path = "/downloads/{id}", tag = "downloads",
    params(("id" = String, Path, description = "The download's id")),
    responses(
        (status = 200, description = "Its status", body = DownloadView),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A Host or Origin not allowed", body = ApiError),
        (status = 404, description = "Unknown, or finished and forgotten ([serve] keep_finished)", body = ApiError),
    )
)]
async fn show(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.host.status(&id) {
        Some(s) => axum::Json(DownloadView::from(s)).into_response(),
        None => err(StatusCode::NOT_FOUND, format!("no download `{id}`")),
    }
}

/// Cancel a download: its yt-dlp is killed, its partial file removed.
#[utoipa::path(
    delete, path = "/downloads/{id}", tag = "downloads",
    params(("id" = String, Path, description = "The download's id")),
    responses(
        (status = 200, description = "Cancelled", body = Cancelled),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A read-only token; or a Host or Origin not allowed", body = ApiError),
        (status = 404, description = "Unknown, or finished and forgotten", body = ApiError),
        (status = 409, description = "It had ended, or ended by itself before the cancel took effect: nothing was cancelled", body = NotCancelled),
    )
)]
async fn cancel(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.host.cancel_and_wait(&id).await {
        CancelOutcome::Unknown => err(StatusCode::NOT_FOUND, format!("no download `{id}`")),
        CancelOutcome::Cancelled(s) => axum::Json(Cancelled {
            id,
            cancelled: true,
            status: s.into(),
        })
        .into_response(),
        CancelOutcome::Elsewhere(s) => (
            StatusCode::CONFLICT,
            axum::Json(NotCancelled {
                error: format!(
                    "download `{id}` is running on another host of the fleet; cancel it there (cancelling across hosts is not supported)"
                ),
                status: s.into(),
            }),
        )
            .into_response(),
        CancelOutcome::Ended(s) => {
            let state = StateView::from(s.state);
            (
                StatusCode::CONFLICT,
                axum::Json(NotCancelled {
                    error: format!(
                        "download `{id}` already ended ({}); nothing was cancelled",
                        serde_json::to_value(state)
                            .unwrap_or_default()
                            .as_str()
                            .unwrap_or("")
                    ),
                    status: s.into(),
                }),
            )
                .into_response()
        }
    }
}

/// The backend's per-proxy statistics.
#[utoipa::path(
    get, path = "/proxies/stats", tag = "proxies",
    responses(
        (status = 200, description = "One row per proxy", body = Vec<StatsRow>),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A Host or Origin not allowed", body = ApiError),
        (status = 501, description = "The plugin keeps no statistics", body = ApiError),
        (status = 503, description = "No backend is running, or it failed to answer", body = ApiError),
    )
)]
async fn stats(State(ctx): State<Ctx>) -> Response {
    let Some(backend) = ctx.host.downloader().source() else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "no proxy backend is running",
        );
    };
    match backend.get_stats(&Vec::new()).await {
        Ok(Some(rows)) => {
            ctx.metrics.set_proxy_states(&rows);
            let rows: Vec<StatsRow> = rows
                .into_iter()
                .map(|r| {
                    let id = Metrics::row_id(&r);
                    StatsRow::new(r.stats, id, r.backend)
                })
                .collect();
            axum::Json(rows).into_response()
        }
        Ok(None) => err(
            StatusCode::NOT_IMPLEMENTED,
            format!("plugin `{}` does not support stats", ctx.backend_name),
        ),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(
    get, path = "/metrics", tag = "meta",
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "No token, or not one of ours", body = ApiError),
        (status = 403, description = "A Host or Origin not allowed", body = ApiError),
    )
)]
async fn metrics_text(State(ctx): State<Ctx>) -> Response {
    // The proxy states are the backend's: read them now, briefly.
    if let Some(backend) = ctx.host.downloader().source()
        && let Ok(Ok(Some(rows))) =
            tokio::time::timeout(STATS_TIMEOUT, backend.get_stats(&Vec::new())).await
    {
        ctx.metrics.set_proxy_states(&rows);
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        ctx.metrics.render(&ctx.host),
    )
        .into_response()
}

/// Liveness, for a load balancer (no token needed).
#[utoipa::path(
    get, path = "/healthz", tag = "meta", security(()),
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 403, description = "A Host or Origin not allowed", body = ApiError),
    )
)]
async fn healthz(State(ctx): State<Ctx>) -> Response {
    axum::Json(Health {
        status: if ctx.host.accepting() {
            "ok"
        } else {
            "stopping"
        }
        .to_string(),
        backend: ctx.backend_name.clone(),
        backend_running: ctx.host.downloader().source().is_some(),
        store: ctx.host.in_fleet().then(|| {
            match ctx.host.store_unavailable() {
                None => "ok",
                Some(_) => "unavailable",
            }
            .to_string()
        }),
    })
    .into_response()
}

async fn fallback() -> Response {
    err(StatusCode::NOT_FOUND, "no such route (see /openapi.json)")
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A token from [serve] tokens_file or YTDLP_HOST_TOKEN; a `read` token may only GET",
                        ))
                        .build(),
                ),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ytdlp-host",
        description = "yt-dlp behind rotating proxies: a download queue. Every error is `{\"error\": \"...\"}` naming what is at fault."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "downloads", description = "The download queue"),
        (name = "proxies", description = "The proxy backend"),
        (name = "meta", description = "Health and metrics"),
    )
)]
struct ApiDoc;

fn api() -> (Router<Ctx>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create, list))
        .routes(routes!(show, cancel))
        .routes(routes!(stats))
        .routes(routes!(metrics_text))
        .routes(routes!(healthz))
        .split_for_parts()
}

/// The OpenAPI document of the API (also served at `/openapi.json`, and
/// committed as `docs/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The answer's route template, for the metrics (a bounded set).
fn route_of(path: Option<&MatchedPath>) -> &'static str {
    match path.map(MatchedPath::as_str) {
        Some("/downloads") => "/downloads",
        Some("/downloads/{id}") => "/downloads/{id}",
        Some("/proxies/stats") => "/proxies/stats",
        Some("/metrics") => "/metrics",
        Some("/healthz") => "/healthz",
        Some("/openapi.json") => "/openapi.json",
        _ => "other",
    }
}

fn method_of(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn count(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = route_of(req.extensions().get::<MatchedPath>());
    let method = method_of(req.method());
    let r = next.run(req).await;
    m.http(method, route, r.status().as_u16());
    r
}

async fn guard(State(a): State<Access>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(why) = a.guard.refuse_host(host.as_deref()) {
        return err(StatusCode::FORBIDDEN, why);
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("(not text)");
        if let Some(why) = a.guard.refuse_origin(origin, host.as_deref().unwrap_or("")) {
            return err(StatusCode::FORBIDDEN, why);
        }
    }
    next.run(req).await
}

async fn auth(State(a): State<Access>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/openapi.json") || a.tokens.is_empty() {
        return next.run(req).await;
    }
    let needs = if matches!(*req.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Write
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    let unauthorized = |msg: &str, challenge: &'static str| {
        let mut r = err(StatusCode::UNAUTHORIZED, msg);
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        r
    };
    match presented.map(|t| a.tokens.scope_of(t)) {
        None => unauthorized(
            "a bearer token is needed (Authorization: Bearer TOKEN)",
            "Bearer realm=\"ytdlp-host\"",
        ),
        Some(None) => unauthorized(
            "the bearer token is not one of this service's",
            "Bearer realm=\"ytdlp-host\", error=\"invalid_token\"",
        ),
        Some(Some(scope)) if scope < needs => {
            let mut r = err(
                StatusCode::FORBIDDEN,
                format!(
                    "a `{}` token may not {} {} (it needs a `{}` token)",
                    scope.name(),
                    req.method(),
                    req.uri().path(),
                    needs.name()
                ),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"ytdlp-host\", error=\"insufficient_scope\"",
                ),
            );
            r
        }
        Some(Some(_)) => next.run(req).await,
    }
}

/// The API's routes, with their guards.
pub fn router(ctx: Ctx, access: Access, body_limit: usize) -> Router {
    let (routes, doc) = api();
    let doc_json = doc.to_pretty_json().expect("the document serialises");
    let metrics = ctx.metrics.clone();
    let mut app = routes
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc_json) }),
        )
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(access.clone(), auth));
    if !access.guard.cors_origins().is_empty() {
        let origins: Vec<HeaderValue> = access
            .guard
            .cors_origins()
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::LOCATION, header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        );
    }
    app.layer(middleware::from_fn_with_state(access, guard))
        .layer(middleware::from_fn_with_state(metrics, count))
        .with_state(ctx)
}

#[cfg(test)]
mod tests {
    /// The pattern in the document is the one the server enforces.
    #[test]
    fn the_documented_url_pattern_is_the_enforced_one() {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        let p = &doc["components"]["schemas"]["NewDownload"]["properties"]["url"]["pattern"];
        assert_eq!(p.as_str(), Some(crate::api::URL_PATTERN));
    }

    #[test]
    fn the_url_pattern_accepts_only_what_url_parses() {
        use crate::api::URL_RE;
        for ok in [
            "https://example.com/watch?v=dQw4w9WgXcQ",
            "http://127.0.0.1:8080/clip.mp4",
            "http://www.my-site.co.uk/a/b.mp4?x=1&y=2",
            "https://Example.COM/",
            "http://a",
            "http://x1.y-z:65535/%20'(ok)",
        ] {
            assert!(URL_RE.is_match(ok), "{ok}");
            assert!(url::Url::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://example.com/",
            "http://a.b.p.6",
            "http://256.0.0.1/",
            "http://1.2.3/",
            "http://xn--zz.example/",
            "http://a:65536/",
            "http://a:0/",
            "http://u:p@example.com/",
            "http://example.com/#frag",
            "http://example.com/ space",
            "http://-a.example/",
            "javascript:alert(1)",
        ] {
            assert!(!URL_RE.is_match(bad), "{bad}");
        }
    }

    /// `docs/openapi.json` is the document the code generates;
    /// `UPDATE_OPENAPI=1 cargo test -p ytdlp-host-service` rewrites it.
    #[test]
    fn the_committed_openapi_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let fresh = super::openapi().to_pretty_json().unwrap() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p ytdlp-host-service"
        );
    }
}
