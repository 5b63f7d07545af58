//! Request handlers: extract and validate parameters, take one index snapshot, call a
//! [`crate::views`] builder, serialize. Nothing more.
pub(crate) mod activations;
pub(crate) mod features;
pub(crate) mod search;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::blocking::Work;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::Snapshot;
use crate::state::AppState;
use crate::views;

/// `GET /api/health`
pub(crate) async fn health(State(state): State<AppState>) -> Json<views::Health> {
    let snap = state.index.snapshot();
    Json(views::Health {
        status: "ok",
        model_loaded: state.live.is_some(),
        format_version: snap.reader.manifest().format_version,
        model_mismatch: state.live.as_ref().is_some_and(|l| l.model_source().1),
    })
}

/// `GET /api/index`
pub(crate) async fn index(State(state): State<AppState>) -> Json<views::IndexInfo> {
    Json(views::index_info(&state.index.snapshot()))
}

/// Any other `/api/...` path.
pub(crate) async fn api_not_found() -> ApiResult<()> {
    Err(ApiError::not_found("no_route", "no such API endpoint"))
}

/// The snapshot's cached JSON under `key`; on a miss, `build` runs where `work` says
/// ([`crate::blocking`]) and its body is serialized and cached (errors are not cached).
pub(crate) async fn cached<T: serde::Serialize>(
    snap: Arc<Snapshot>,
    key: String,
    work: Work,
    build: impl FnOnce(&Snapshot) -> ApiResult<T> + Send + 'static,
) -> ApiResult<Response> {
    let json = match snap.cached_response(&key) {
        Some(json) => json,
        None => {
            crate::blocking::dispatch(work, move || snap.cached_json(key, || build(&snap))).await?
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}
