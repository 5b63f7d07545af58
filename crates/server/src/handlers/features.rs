//! SAE and feature endpoints.
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use crate::blocking::Work;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::snapshot::FeatureSort;
use crate::state::AppState;
use crate::views::{self, DEFAULT_LIMIT};

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// `GET /api/saes`
pub(crate) async fn saes(State(state): State<AppState>) -> ApiResult<Json<views::SaeList>> {
    Ok(Json(views::sae_summaries(&state.index.snapshot())?))
}

/// `GET /api/saes/{sae}`
pub(crate) async fn sae(
    State(state): State<AppState>,
    ApiPath(sae): ApiPath<String>,
) -> ApiResult<Json<views::SaeSummaryView>> {
    Ok(Json(views::sae_summary(&state.index.snapshot(), &sae)?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    sort: Option<String>,
    order: Option<String>,
    #[serde(default)]
    live: bool,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

/// `GET /api/saes/{sae}/features?sort&order&live&limit&offset`
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiPath(sae): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<views::FeatureList>> {
    let sort = match q.sort.as_deref().unwrap_or("feature") {
        "feature" => FeatureSort::Feature,
        "density" => FeatureSort::Density,
        "max_act" => FeatureSort::MaxAct,
        other => {
            return Err(ApiError::bad_request(
                "invalid_sort",
                format!("sort must be feature, density or max_act, got {other:?}"),
            ))
        }
    };
    let descending = match q.order.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ApiError::bad_request(
                "invalid_order",
                format!("order must be asc or desc, got {other:?}"),
            ))
        }
    };
    let params = views::FeatureListParams {
        sort,
        descending,
        live: q.live,
        limit: q.limit,
        offset: q.offset,
    };
    views::check_page(q.limit, q.offset)?;
    let snap = state.index.snapshot();
    // The first call per SAE reads every feature row once: off the async workers.
    let body = crate::blocking::run(move || views::feature_list(&snap, &sae, params)).await?;
    Ok(Json(body))
}

/// `GET /api/saes/{sae}/random`
pub(crate) async fn random(
    State(state): State<AppState>,
    ApiPath(sae): ApiPath<String>,
) -> ApiResult<Json<views::RandomFeature>> {
    let snap = state.index.snapshot();
    let body = crate::blocking::run(move || views::random_feature(&snap, &sae)).await?;
    Ok(Json(body))
}

/// `GET /api/saes/{sae}/features/{feature}`
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    ApiPath((sae, feature)): ApiPath<(String, u32)>,
) -> ApiResult<Response> {
    // ~100 RocksDB reads per uncached dashboard.
    let key = format!("dashboard\0{sae}\0{feature}");
    super::cached(state.index.snapshot(), key, Work::Short, move |snap| {
        views::dashboard(snap, &sae, feature)
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct ExamplesQuery {
    kind: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

/// `GET /api/saes/{sae}/features/{feature}/examples?kind&limit&offset`
pub(crate) async fn examples(
    State(state): State<AppState>,
    ApiPath((sae, feature)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<ExamplesQuery>,
) -> ApiResult<Json<views::Examples>> {
    let kind = q.kind.as_deref().unwrap_or("top");
    Ok(Json(views::examples(
        &state.index.snapshot(),
        &sae,
        feature,
        kind,
        q.limit,
        q.offset,
    )?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CoocQuery {
    other_sae: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

/// `GET /api/saes/{sae}/features/{feature}/cooccurrence?other_sae&limit`
pub(crate) async fn cooccurrence(
    State(state): State<AppState>,
    ApiPath((sae, feature)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<CoocQuery>,
) -> ApiResult<Json<views::Cooccurrence>> {
    Ok(Json(views::cooccurrence(
        &state.index.snapshot(),
        &sae,
        feature,
        q.other_sae.as_deref(),
        q.limit,
    )?))
}
