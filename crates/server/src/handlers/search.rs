//! Text search.
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::state::AppState;
use crate::views::{self, DEFAULT_LIMIT};

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/search?q=&limit=`
pub(crate) async fn search(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<views::SearchResults>> {
    let query =
        q.q.ok_or_else(|| ApiError::bad_request("missing_query", "parameter `q` is required"))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    views::check_page(limit, 0)?;
    let snap = state.index.snapshot();
    // tantivy search and the joins take up to milliseconds: off the async workers.
    let body = tokio::task::spawn_blocking(move || views::search(&snap, &query, limit))
        .await
        .map_err(ApiError::internal)??;
    Ok(Json(body))
}
