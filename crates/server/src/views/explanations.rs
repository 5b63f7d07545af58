//! Explanations in the API: the view of one explanation with its scores, the explanations of
//! many features at once (SAE table, search hits), and the feature search by explanation text
//! (`GET /api/features/search`).
use std::collections::HashMap;

use serde::Serialize;

use super::check_page;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::Snapshot;

/// Scores of one scorer; `null` where undefined.
#[derive(Debug, Clone, Serialize)]
pub struct ScoresView {
    /// Examples scored.
    pub n: u32,
    /// TP / (TP + FP).
    pub precision: Option<f32>,
    /// TP / (TP + FN).
    pub recall: Option<f32>,
    /// F1.
    pub f1: Option<f32>,
    /// (TPR + TNR) / 2.
    pub balanced_accuracy: Option<f32>,
    /// AUROC (only with log probabilities).
    pub auroc: Option<f32>,
}

/// A feature's explanation.
#[derive(Debug, Clone, Serialize)]
pub struct ExplanationView {
    /// The explanation.
    pub text: String,
    /// The model that wrote it.
    pub model: String,
    /// The prompt version.
    pub prompt_version: String,
    /// When (RFC 3339).
    pub created: String,
    /// The model that scored it (`null`: not scored).
    pub scorer_model: Option<String>,
    /// When it was scored.
    pub scored: Option<String>,
    /// Detection scores (`null`: not scored).
    pub detection: Option<ScoresView>,
    /// Fuzzing scores (`null`: not scored).
    pub fuzzing: Option<ScoresView>,
    /// The headline score: detection balanced accuracy, else fuzzing's (`null`: none).
    pub score: Option<f32>,
}

fn finite(x: f32) -> Option<f32> {
    x.is_finite().then_some(x)
}

fn scores(s: &scopedex_store::ExplanationScores) -> Option<ScoresView> {
    (s.n > 0).then(|| ScoresView {
        n: s.n,
        precision: finite(s.precision),
        recall: finite(s.recall),
        f1: finite(s.f1),
        balanced_accuracy: finite(s.balanced_accuracy),
        auroc: finite(s.auroc),
    })
}

/// The headline score of an explanation (see [`ExplanationView::score`]).
pub fn headline_score(r: &scopedex_store::ExplanationRecord) -> Option<f32> {
    [&r.detection, &r.fuzzing]
        .into_iter()
        .filter(|s| s.n > 0)
        .find_map(|s| finite(s.balanced_accuracy))
}

/// The view of a stored explanation.
pub fn explanation_view(r: scopedex_store::ExplanationRecord) -> ExplanationView {
    let score = headline_score(&r);
    let some = |s: String| (!s.is_empty()).then_some(s);
    ExplanationView {
        detection: scores(&r.detection),
        fuzzing: scores(&r.fuzzing),
        score,
        scorer_model: some(r.scorer_model),
        scored: some(r.scored),
        text: r.text,
        model: r.model,
        prompt_version: r.prompt_version,
        created: r.created,
    }
}

/// `(SAE, feature)` → `(explanation text, headline score)`.
pub type ShortExplanations = HashMap<(String, u32), (String, Option<f32>)>;

/// `(text, headline score)` of the explanations of `(sae, feature)` pairs, for lists that
/// show many features (one batched read per SAE).
pub fn short_explanations(
    snap: &Snapshot,
    pairs: impl IntoIterator<Item = (String, u32)>,
) -> ApiResult<ShortExplanations> {
    let mut by_sae: HashMap<String, Vec<u32>> = HashMap::new();
    for (s, f) in pairs {
        by_sae.entry(s).or_default().push(f);
    }
    let mut out = HashMap::new();
    for (sae, mut features) in by_sae {
        features.sort_unstable();
        features.dedup();
        let rows = snap.reader.explanations_many(&sae, &features)?;
        for (f, r) in features.into_iter().zip(rows) {
            if let Some(r) = r {
                let score = headline_score(&r);
                out.insert((sae.clone(), f), (r.text, score));
            }
        }
    }
    Ok(out)
}

/// One feature found by its explanation.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSearchHit {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Text relevance (BM25).
    pub score: f32,
    /// The explanation, with its scores.
    pub explanation: ExplanationView,
    /// Fraction of tokens where it fires (`null` without statistics).
    pub density: Option<f64>,
    /// Max activation (`null` without statistics).
    pub max_act: Option<f32>,
}

/// `GET /api/features/search` and `scopedex features INDEX QUERY --json`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureSearchResults {
    /// The query.
    pub query: String,
    /// The SAE searched (`null`: all).
    pub sae: Option<String>,
    /// Best first.
    pub hits: Vec<FeatureSearchHit>,
}

/// Longest explanation query accepted, in characters.
pub const MAX_EXPLANATION_QUERY_CHARS: usize = 500;

/// Features whose explanation matches `query` (words, "phrases", AND/OR/-; every word must
/// match, else any may), best first.
pub fn feature_search(
    snap: &Snapshot,
    query: &str,
    sae: Option<&str>,
    limit: usize,
) -> ApiResult<FeatureSearchResults> {
    check_page(limit, 0)?;
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("empty_query", "the query is empty"));
    }
    if query.chars().count() > MAX_EXPLANATION_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("the query must be at most {MAX_EXPLANATION_QUERY_CHARS} characters"),
        ));
    }
    let reader = &snap.reader;
    let found = reader.search_explanations(query, sae, limit)?;
    let mut hits = Vec::with_capacity(found.len());
    for h in found {
        // The text index and RocksDB come from the same publish; a row missing from one is
        // skipped rather than reported half.
        let Some(r) = reader.explanation(&h.sae, h.feature)? else {
            continue;
        };
        let stats = reader.feature(&h.sae, h.feature)?;
        hits.push(FeatureSearchHit {
            explanation: explanation_view(r),
            density: stats.as_ref().map(|s| s.density),
            max_act: stats.as_ref().map(|s| s.max_act),
            sae: h.sae,
            feature: h.feature,
            score: h.score,
        });
    }
    Ok(FeatureSearchResults {
        query: query.to_string(),
        sae: sae.map(str::to_string),
        hits,
    })
}

/// [`feature_search`] ranked by meaning as well: every explanation of the SAE(s) embedded through
/// `embeddings` (cached beside the index) and ranked by cosine similarity to the query, fused
/// with the text ranking ([`scopedex_explain::semantic`]). Blocks on the endpoint.
pub fn feature_search_by_meaning(
    snap: &Snapshot,
    query: &str,
    sae: Option<&str>,
    limit: usize,
    embeddings: &scopedex_explain::ChatClient,
) -> ApiResult<FeatureSearchResults> {
    use scopedex_explain::semantic::{rank, Candidate};
    let text = feature_search(snap, query, sae, super::MAX_LIMIT)?;
    let reader = &snap.reader;
    let saes: Vec<String> = match sae {
        Some(s) => vec![s.to_string()],
        None => reader.sae_ids().into_iter().map(str::to_string).collect(),
    };
    let mut candidates = Vec::new();
    let mut records = Vec::new();
    for s in &saes {
        for r in reader.explanations(s)? {
            candidates.push(Candidate {
                sae: s.clone(),
                feature: r.feature,
                text: r.text.clone(),
            });
            records.push(r);
        }
    }
    let at: HashMap<(&str, u32), usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.sae.as_str(), c.feature), i))
        .collect();
    let text_ranking: Vec<usize> = text
        .hits
        .iter()
        .filter_map(|h| at.get(&(h.sae.as_str(), h.feature)).copied())
        .collect();
    let ranked = rank(
        reader.dir(),
        embeddings,
        query,
        &candidates,
        &text_ranking,
        limit,
    )
    .map_err(|e| match e {
        scopedex_explain::Error::Endpoint { .. } | scopedex_explain::Error::BadResponse { .. } => {
            ApiError::unavailable("embeddings_unavailable", e.to_string())
        }
        other => ApiError::internal(other),
    })?;
    let mut hits = Vec::with_capacity(ranked.len());
    for r in ranked {
        let i = at[&(r.candidate.sae.as_str(), r.candidate.feature)];
        let stats = reader.feature(&r.candidate.sae, r.candidate.feature)?;
        hits.push(FeatureSearchHit {
            explanation: explanation_view(records[i].clone()),
            density: stats.as_ref().map(|s| s.density),
            max_act: stats.as_ref().map(|s| s.max_act),
            sae: r.candidate.sae,
            feature: r.candidate.feature,
            score: r.score,
        });
    }
    Ok(FeatureSearchResults {
        query: query.to_string(),
        sae: sae.map(str::to_string),
        hits,
    })
}
