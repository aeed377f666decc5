//! The HTTP API: JSON over a [`Host`].
//!
//! - `POST /downloads` `{"url", "ytdlp_args"?, "backend_options"?}` -> 201 `{"id"}`;
//!   400 for a bad body (unknown fields named), 503 when the queue is full
//!   or the service is shutting down;
//! - `GET /downloads` (all), `GET /downloads/{id}` -> status, 404 if unknown;
//! - `DELETE /downloads/{id}` -> cancels (yt-dlp's process group killed,
//!   partial file removed); 404 unknown, 409 already finished;
//! - `GET /proxies/stats` -> the backend's stats (501 if it has none);
//! - `GET /healthz`.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use ytdlp_contract::options::is_host_key;
use ytdlp_host_config::{OptionValue, options_from_table};
use ytdlp_host_core::{DownloadRequest, Host, SubmitError};

/// The body of `POST /downloads`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDownload {
    pub url: String,
    #[serde(default)]
    pub ytdlp_args: Vec<String>,
    /// Values may be strings, numbers, booleans, or lists (a repeated key).
    #[serde(default)]
    pub backend_options: BTreeMap<String, OptionValue>,
}

#[derive(Clone)]
struct Ctx {
    host: Host,
    backend_name: String,
}

/// The API's routes.
pub fn router(host: Host, backend_name: String) -> Router {
    Router::new()
        .route("/downloads", get(list).post(create))
        .route("/downloads/{id}", get(show).delete(cancel))
        .route("/proxies/stats", get(stats))
        .route("/healthz", get(healthz))
        .with_state(Ctx { host, backend_name })
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": msg.into() }))).into_response()
}

async fn create(State(ctx): State<Ctx>, body: Bytes) -> Response {
    let req: NewDownload = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    if let Some(k) = req.backend_options.keys().find(|k| is_host_key(k)) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("backend_options: `{k}`: keys starting with `host.` are reserved"),
        );
    }
    let submitted = ctx.host.submit(
        DownloadRequest::new(req.url)
            .with_backend_options(options_from_table(&req.backend_options))
            .with_ytdlp_args(req.ytdlp_args),
    );
    match submitted {
        Ok(id) => (StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response(),
        Err(e @ SubmitError::BadUrl(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn list(State(ctx): State<Ctx>) -> Response {
    axum::Json(ctx.host.list()).into_response()
}

async fn show(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.host.status(&id) {
        Some(s) => axum::Json(s).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no download `{id}`")),
    }
}

async fn cancel(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match ctx.host.status(&id) {
        None => error(StatusCode::NOT_FOUND, format!("no download `{id}`")),
        Some(s) if s.state.is_final() => error(
            StatusCode::CONFLICT,
            format!("download `{id}` already ended ({:?})", s.state),
        ),
        Some(_) => {
            ctx.host.cancel(&id);
            let s = ctx.host.wait(&id).await;
            axum::Json(json!({ "id": id, "cancelled": true, "status": s })).into_response()
        }
    }
}

async fn stats(State(ctx): State<Ctx>) -> Response {
    let Some(backend) = ctx.host.downloader().source() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no proxy backend is running",
        );
    };
    let answer = backend.get_stats(&Vec::new()).await;
    match answer {
        Ok(Some(rows)) => axum::Json(rows).into_response(),
        Ok(None) => error(
            StatusCode::NOT_IMPLEMENTED,
            format!("plugin `{}` does not support stats", ctx.backend_name),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn healthz(State(ctx): State<Ctx>) -> Response {
    axum::Json(json!({
        "status": "ok",
        "backend": ctx.backend_name,
        "backend_running": ctx.host.downloader().source().is_some(),
        "pending": ctx.host.pending(),
    }))
    .into_response()
}
