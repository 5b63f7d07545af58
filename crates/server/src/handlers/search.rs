//! Text search.
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use crate::blocking::Work;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::{self, DEFAULT_LIMIT};

/// Queries of at most this many whitespace-separated parts run in place ([`Work::Short`]).
const SHORT_QUERY_WORDS: usize = 4;

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
    limit: Option<usize>,
    /// Comma-separated SAEs whose strongest features each hit lists.
    sae: Option<String>,
}

/// `GET /api/search?q=&limit=&sae=`
pub(crate) async fn search(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Response> {
    let query =
        q.q.ok_or_else(|| ApiError::bad_request("missing_query", "parameter `q` is required"))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    views::check_page(limit, 0)?;
    // A tantivy query of a few terms and ~2 reads per hit: under a millisecond on the demo
    // index, run in place. Longer queries (OR over many words, many features) cost more per
    // term and go to the bounded pool, so a flood of them cannot hold the workers.
    let work = if query.split_whitespace().count() <= SHORT_QUERY_WORDS {
        Work::Short
    } else {
        Work::Long
    };
    let sae = q.sae;
    let key = format!("search\0{limit}\0{sae:?}\0{query}");
    super::cached(state.index.snapshot(), key, work, move |snap| {
        views::search_listing(snap, &query, limit, sae.as_deref())
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct FeatureSearchQuery {
    q: Option<String>,
    limit: Option<usize>,
    sae: Option<String>,
    /// Rank by meaning too (default: when the server has an embeddings endpoint).
    meaning: Option<bool>,
}

/// `GET /api/features/search?q=&sae=&limit=&meaning=`: features by their explanation.
pub(crate) async fn feature_search(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FeatureSearchQuery>,
) -> ApiResult<Response> {
    let query =
        q.q.ok_or_else(|| ApiError::bad_request("missing_query", "parameter `q` is required"))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    views::check_page(limit, 0)?;
    let sae = q.sae;
    if q.meaning == Some(true) && state.embeddings.is_none() {
        // A request this server cannot answer as asked: the caller's to change, not a fault.
        return Err(ApiError::bad_request(
            "no_embeddings",
            "this server has no embeddings endpoint (scopedex serve --embeddings-endpoint)",
        ));
    }
    match state
        .embeddings
        .clone()
        .filter(|_| q.meaning != Some(false))
    {
        // A request to the embeddings endpoint: on the bounded pool, off the async workers.
        Some(client) => {
            let key = format!("features-meaning\0{limit}\0{sae:?}\0{query}");
            super::cached(state.index.snapshot(), key, Work::Long, move |snap| {
                views::feature_search_by_meaning(snap, &query, sae.as_deref(), limit, &client)
            })
            .await
        }
        None => {
            let key = format!("features\0{limit}\0{sae:?}\0{query}");
            super::cached(state.index.snapshot(), key, Work::Short, move |snap| {
                views::feature_search(snap, &query, sae.as_deref(), limit)
            })
            .await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SimilarQuery {
    sae: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/contexts/{id}/similar?sae=&limit=`
pub(crate) async fn similar(
    State(state): State<AppState>,
    ApiPath(context_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<SimilarQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    views::check_page(limit, 0)?;
    // One point get when the list was precomputed; a union over hundreds of postings if not
    // (milliseconds, and the first one builds the term statistics).
    let sae = q.sae;
    let snap = state.index.snapshot();
    let work = if snap
        .reader
        .similar_list_is_precomputed(sae.as_deref(), limit)
    {
        Work::Short
    } else {
        Work::Long
    };
    let key = format!("similar\0{context_id}\0{limit}\0{sae:?}");
    super::cached(snap, key, work, move |snap| {
        views::similar_to_context(snap, context_id, sae.as_deref(), limit)
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct OccurrencesQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/saes/{sae}/features/{feature}/occurrences?cursor=&limit=`
pub(crate) async fn occurrences(
    State(state): State<AppState>,
    ApiPath((sae, feature)): ApiPath<(String, u32)>,
    ApiQuery(q): ApiQuery<OccurrencesQuery>,
) -> ApiResult<Json<views::Occurrences>> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    views::check_page(limit, 0)?;
    let snap = state.index.snapshot();
    // Reads Parquet row groups of the activation log: off the async workers.
    let body = crate::blocking::run(move || {
        views::occurrences(&snap, &sae, feature, q.cursor.as_deref(), limit)
    })
    .await?;
    Ok(Json(body))
}
