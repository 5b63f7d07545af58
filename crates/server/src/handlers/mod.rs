//! Request handlers: extract and validate parameters, take one index snapshot, call a
//! [`crate::views`] builder, serialize. Nothing more.
pub(crate) mod activations;
pub(crate) mod features;
pub(crate) mod search;

use axum::extract::State;
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
