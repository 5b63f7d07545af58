//! Live activation (`POST /api/activate`).
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::live::DEFAULT_TOP_N;
use crate::state::AppState;
use crate::views;

fn default_top_n() -> usize {
    DEFAULT_TOP_N
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActivateRequest {
    text: String,
    saes: Option<Vec<String>>,
    #[serde(default = "default_top_n")]
    top_n: usize,
}

/// `POST /api/activate` — 503 without a model; the forward runs on a blocking thread, one
/// request at a time (the model already uses every core).
pub(crate) async fn activate(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ActivateRequest>,
) -> ApiResult<Json<views::Activation>> {
    let Some(live) = state.live.clone() else {
        return Err(ApiError::unavailable(
            "model_not_loaded",
            "this server was started without the model (--no-model, or it could not be loaded)",
        ));
    };
    live.check(&req.text, req.saes.as_deref(), req.top_n)?;
    static ONE_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    let _permit = ONE_AT_A_TIME.acquire().await.map_err(ApiError::internal)?;
    let body = tokio::task::spawn_blocking(move || {
        live.activate(&req.text, req.saes.as_deref(), req.top_n)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(body))
}
