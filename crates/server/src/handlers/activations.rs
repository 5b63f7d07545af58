//! Live activation (`POST /api/activate`).
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::admission::Admission;
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
    /// Also return this many contexts most like the text (0: none).
    #[serde(default)]
    similar: usize,
    /// Restrict `similar` to one SAE.
    similar_sae: Option<String>,
}

/// Live activations run one at a time (the model already uses every core); a few more wait, up
/// to [`ACTIVATION_MAX_WAIT`] each, and the rest get 503 with `Retry-After` at once.
pub(crate) static ACTIVATIONS: Admission = Admission::new(
    "live activation",
    1,
    ACTIVATION_MAX_QUEUED,
    ACTIVATION_MAX_WAIT,
);
/// Activation requests that may wait for the model.
pub const ACTIVATION_MAX_QUEUED: usize = 8;
/// Longest wait for the model.
pub const ACTIVATION_MAX_WAIT: Duration = Duration::from_secs(10);

/// `POST /api/activate` — 503 without a model or when [`ACTIVATIONS`] refuses; the forward
/// runs on a blocking thread.
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
    if req.similar > views::MAX_LIMIT {
        return Err(ApiError::unprocessable(
            "invalid_similar",
            format!(
                "similar must be between 0 and {}, got {}",
                views::MAX_LIMIT,
                req.similar
            ),
        ));
    }
    // "More like this" runs every SAE of the index (or `similar_sae`) over the text.
    let similar_saes = match (&req.similar_sae, req.similar) {
        (_, 0) => Vec::new(),
        (Some(s), _) => live.check(&req.text, Some(std::slice::from_ref(s)), req.top_n)?,
        (None, _) => live.check(&req.text, None, req.top_n)?,
    };
    let _permit = ACTIVATIONS.enter().await?;
    let snap = state.index.snapshot();
    let body = tokio::task::spawn_blocking(move || {
        let mut body = live.activate(&req.text, req.saes.as_deref(), req.top_n)?;
        if req.similar > 0 {
            let mut terms = Vec::new();
            for (sae, rec) in live.text_features(&req.text, &similar_saes)? {
                terms.extend(snap.reader.feature_terms(&sae, &rec)?);
            }
            body.similar = Some(views::similar_to_terms(
                &snap,
                &terms,
                req.similar_sae.as_deref(),
                req.similar,
            )?);
        }
        Ok::<_, ApiError>(body)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(body))
}
