//! Builder of the search body: tantivy hits joined with their contexts and the strongest
//! features of each SAE in them (`context_features`, one point read per hit and SAE).
use super::*;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::Snapshot;

/// Strongest features listed per SAE in each hit.
pub const SEARCH_FEATURES_PER_SAE: usize = 5;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;

/// `GET /api/search?q=&limit=` and `scopedex search`.
pub fn search(snap: &Snapshot, query: &str, limit: usize) -> ApiResult<SearchResults> {
    check_page(limit, 0)?;
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("the query must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("empty_query", "the query is empty"));
    }
    let reader = &snap.reader;
    let hits = reader.search(query, limit)?;
    let ids: Vec<u64> = hits.iter().map(|h| h.context_id).collect();
    let contexts = reader.contexts(&ids)?;
    let saes = reader.sae_ids();
    let mut out = Vec::with_capacity(hits.len());
    for (hit, ctx) in hits.iter().zip(contexts) {
        let Some(ctx) = ctx else { continue };
        let mut features = Vec::new();
        for sae in &saes {
            if let Some(cf) = reader.context_features(sae, hit.context_id)? {
                features.extend(
                    cf.features
                        .iter()
                        .zip(&cf.max_acts)
                        .take(SEARCH_FEATURES_PER_SAE)
                        .map(|(&feature, &max_act)| HitFeature {
                            sae: sae.to_string(),
                            feature,
                            max_act,
                        }),
                );
            }
        }
        out.push(SearchHitView {
            context_id: hit.context_id,
            doc_id: ctx.doc_id,
            score: hit.score,
            text: ctx.text,
            features,
        });
    }
    Ok(SearchResults {
        query: query.to_string(),
        hits: out,
    })
}
