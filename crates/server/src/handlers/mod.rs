//! Request handlers: extract and validate parameters, take one index snapshot, call a
//! [`crate::views`] builder, serialize. Nothing more.
pub(crate) mod activations;
pub(crate) mod features;
pub(crate) mod search;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::views;

/// `GET /api/health`
pub(crate) async fn health(State(state): State<AppState>) -> Json<views::Health> {
    let snap = state.index.snapshot();
    Json(views::Health {
        status: "ok",
        model_loaded: state.live.is_some(),
        format_version: snap.reader.manifest().format_version,
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

/// A response of already serialized JSON (the snapshot's response cache).
pub(crate) fn json_response(json: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}
