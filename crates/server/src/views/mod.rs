//! Response bodies of the API, and the functions that build them from a [`Snapshot`].
//!
//! The one place the JSON shapes of `schemas/openapi.yaml` are defined: the HTTP handlers and
//! the CLI's `--json` output both serialize these types, so the two never drift apart. Builders
//! validate their arguments (limits, kinds) and return [`ApiError`]s.
//!
//! [`Snapshot`]: crate::snapshot::Snapshot
//! [`ApiError`]: crate::error::ApiError
use std::sync::Arc;

use serde::Serialize;

mod explanations;
mod features;
mod search;

pub use explanations::{
    explanation_view, feature_search, feature_search_by_meaning, headline_score,
    short_explanations, ExplanationView, FeatureSearchHit, FeatureSearchResults, ScoresView,
    MAX_EXPLANATION_QUERY_CHARS,
};
pub use features::{
    cooccurrence, dashboard, examples, feature_list, index_info, random_feature, sae_summaries,
    sae_summary, FeatureListParams, DASHBOARD_COOC, DASHBOARD_PER_INTERVAL, DASHBOARD_TOP,
};
pub use search::{
    hit_saes, occurrences, search, search_listing, similar_to_context, similar_to_terms,
    MAX_HIT_SAES, MAX_QUERY_CHARS, MAX_QUERY_TERMS, SEARCH_FEATURES_PER_SAE,
    SIMILAR_SHARED_FEATURES,
};

/// Largest `limit` of any list.
pub const MAX_LIMIT: usize = 1000;
/// Default `limit` of lists.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest `offset` accepted (lists are far shorter; this bounds the work of a bad request).
pub const MAX_OFFSET: usize = 1 << 24;

/// Checks a `limit`/`offset` pair (1 ≤ limit ≤ [`MAX_LIMIT`], offset ≤ [`MAX_OFFSET`]).
pub fn check_page(limit: usize, offset: usize) -> crate::ApiResult<()> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(crate::ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    if offset > MAX_OFFSET {
        return Err(crate::ApiError::bad_request(
            "invalid_offset",
            format!("offset must be at most {MAX_OFFSET}, got {offset}"),
        ));
    }
    Ok(())
}

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Whether `/api/activate` is available.
    pub model_loaded: bool,
    /// Format version of the served index.
    pub format_version: u32,
    /// True when live activations come from a model whose sha256 differs from the index's
    /// (`serve --model … --force`).
    pub model_mismatch: bool,
}

/// `GET /api/index`.
#[derive(Debug, Clone, Serialize)]
pub struct IndexInfo {
    /// Format version.
    pub format_version: u32,
    /// The model.
    pub model: ModelBrief,
    /// The corpus.
    pub corpus: CorpusBrief,
    /// Context length in tokens (BOS included).
    pub ctx_len: u32,
    /// Number of contexts.
    pub n_contexts: u64,
    /// SAE ids in manifest order.
    pub saes: Vec<String>,
    /// Creation time (RFC 3339).
    pub created: String,
}

/// The model of [`IndexInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct ModelBrief {
    /// Model id.
    pub id: String,
    /// sha256 of the model file.
    pub sha256: String,
}

/// The corpus of [`IndexInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct CorpusBrief {
    /// Corpus files as given to the indexer.
    pub files: Vec<String>,
}

/// `GET /api/saes/{sae}` (and the items of `GET /api/saes`).
#[derive(Debug, Clone, Serialize)]
pub struct SaeSummaryView {
    /// SAE id.
    pub sae_id: String,
    /// Input width.
    pub d_in: u32,
    /// Number of features.
    pub d_sae: u32,
    /// Hook the SAE reads.
    pub hook_in: String,
    /// Hook it reconstructs.
    pub hook_out: String,
    /// Tokens the statistics are over.
    pub tokens_indexed: u64,
    /// Mean number of active features per token.
    pub mean_l0: f64,
    /// Features that never fired.
    pub dead_features: u32,
    /// Explained variance of the reconstruction.
    pub explained_variance: f64,
    /// Histogram of log10 feature densities.
    pub density_hist: Vec<u64>,
    /// Its bin edges (log10 density).
    pub density_hist_edges: Vec<f32>,
    /// Set when mean L0 is far from the SAE's k.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// `GET /api/saes`.
#[derive(Debug, Clone, Serialize)]
pub struct SaeList {
    /// Every SAE of the index.
    pub saes: Vec<SaeSummaryView>,
}

/// A row of `GET /api/saes/{sae}/features`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureBrief {
    /// Feature id.
    pub feature: u32,
    /// Fraction of tokens where it fired.
    pub density: f64,
    /// Max activation.
    pub max_act: f32,
    /// Mean activation over firing tokens.
    pub mean_act: f32,
    /// Its explanation (`null`: not explained).
    pub explanation: Option<String>,
    /// The explanation's headline score ([`ExplanationView::score`]).
    pub explanation_score: Option<f32>,
}

/// `GET /api/saes/{sae}/features`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureList {
    /// SAE id.
    pub sae: String,
    /// Features matching (before limit/offset).
    pub total: usize,
    /// The page.
    pub features: Vec<FeatureBrief>,
}

/// `GET /api/saes/{sae}/random`.
#[derive(Debug, Clone, Serialize)]
pub struct RandomFeature {
    /// SAE id.
    pub sae: String,
    /// A live feature.
    pub feature: u32,
}

/// A token and a count.
#[derive(Debug, Clone, Serialize)]
pub struct TokenCountView {
    /// Token id.
    pub token_id: u32,
    /// Its text.
    pub token: String,
    /// Count.
    pub count: u64,
}

/// A token and a value.
#[derive(Debug, Clone, Serialize)]
pub struct TokenValueView {
    /// Token id.
    pub token_id: u32,
    /// Its text.
    pub token: String,
    /// Value.
    pub value: f32,
}

/// One example context of a feature.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleView {
    /// `top` or `interval_{i}`.
    pub kind: String,
    /// Rank within its list.
    pub rank: u16,
    /// Context id.
    pub context_id: u64,
    /// Document id of the context.
    pub doc_id: String,
    /// Max activation in the context.
    pub max_act: f32,
    /// Position of the max.
    pub max_pos: u32,
    /// Token ids of the context.
    pub token_ids: Vec<u32>,
    /// Text of each token.
    pub tokens: Vec<String>,
    /// The feature's activation at each token (same length as `tokens`).
    pub acts: Vec<f32>,
}

/// `GET .../examples` and `scopedex top --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Examples {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Sorted by kind, then rank (top: max_act descending, ties by context id).
    pub examples: Vec<ExampleView>,
}

/// A co-occurring feature.
#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    /// Its SAE.
    pub other_sae: String,
    /// Its id.
    pub other_feature: u32,
    /// Tokens where both fired.
    pub n_both: u64,
    /// Jaccard index of the firing sets.
    pub jaccard: f32,
    /// Normalised PMI, in [-1, 1].
    pub npmi: f32,
}

/// A feature with a close decoder direction.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbour {
    /// Its SAE.
    pub other_sae: String,
    /// Its id.
    pub other_feature: u32,
    /// Cosine similarity of the two decoder directions.
    pub cosine: f32,
}

/// `GET .../cooccurrence` and `scopedex cooc --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Cooccurrence {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Partners, strongest (n_both) first.
    pub partners: Vec<Partner>,
}

/// One activation interval of the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// 0 = lowest.
    pub interval: u16,
    /// Lower bound of the max activation.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
    /// Sampled examples.
    pub examples: Vec<ExampleView>,
}

/// `GET /api/saes/{sae}/features/{feature}` and `scopedex stats SAE FEATURE --json`.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDashboard {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Number of features of the SAE.
    pub d_sae: u32,
    /// Fraction of tokens where it fired.
    pub density: f64,
    /// Tokens where it fired.
    pub n_fired: u64,
    /// Max activation.
    pub max_act: f32,
    /// Mean activation over firing tokens.
    pub mean_act: f32,
    /// Histogram of activations.
    pub act_hist: Vec<u64>,
    /// Its bin edges.
    pub act_hist_edges: Vec<f32>,
    /// Tokens it fires on most.
    pub top_tokens: Vec<TokenCountView>,
    /// Tokens whose logits it raises most.
    pub logit_pos: Vec<TokenValueView>,
    /// Tokens whose logits it lowers most.
    pub logit_neg: Vec<TokenValueView>,
    /// Counts of its logit effects over the whole vocabulary, equal-width bins between
    /// `logit_hist_range` (empty for an index written before it existed).
    pub logit_hist: Vec<u64>,
    /// `[lowest, highest]` logit effect: the histogram's range.
    pub logit_hist_range: [f32; 2],
    /// The first [`DASHBOARD_TOP`] top examples.
    pub top_examples: Vec<ExampleView>,
    /// Every interval with up to [`DASHBOARD_PER_INTERVAL`] examples.
    pub intervals: Vec<Interval>,
    /// The strongest [`DASHBOARD_COOC`] partners.
    pub cooccurrence: Vec<Partner>,
    /// Features with the closest decoder directions (same SAE first, then same-width SAEs at
    /// the same layer), closest first per SAE.
    pub decoder_neighbours: Vec<Neighbour>,
    /// Its explanation and scores (`null`: not explained).
    pub explanation: Option<ExplanationView>,
}

fn serialize_shared_str<S: serde::Serializer>(s: &Arc<str>, to: S) -> Result<S::Ok, S::Error> {
    to.serialize_str(s)
}

/// A feature of a search hit.
#[derive(Debug, Clone, Serialize)]
pub struct HitFeature {
    /// SAE id (shared by every hit's features of that SAE: a page lists hundreds).
    #[serde(serialize_with = "serialize_shared_str")]
    pub sae: Arc<str>,
    /// Feature id.
    pub feature: u32,
    /// Its max activation in the context.
    pub max_act: f32,
    /// Its explanation (`null`: not explained).
    pub explanation: Option<String>,
}

/// A feature of the query that fires in a hit, and where (for highlighting).
#[derive(Debug, Clone, Serialize)]
pub struct FeatureMatch {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Its max activation in the context.
    pub max_act: f32,
    /// Position of that max (the firing token).
    pub pos: u32,
    /// Byte range of that token in `text` (UTF-8 offsets; `0..0` for BOS).
    pub start: u32,
    /// See `start`.
    pub end: u32,
    /// Its explanation (`null`: not explained).
    pub explanation: Option<String>,
}

/// One search hit.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHitView {
    /// Context id.
    pub context_id: u64,
    /// Document id.
    pub doc_id: String,
    /// Score: BM25 of the words plus 1 per matched feature clause and strength bucket.
    pub score: f32,
    /// The context's text.
    pub text: String,
    /// Strongest features per SAE of `feature_saes` (index order, each strongest first).
    pub features: Vec<HitFeature>,
    /// The query's (non-negated) features that fire in this context, in query order.
    pub matches: Vec<FeatureMatch>,
    /// Features of the listed SAEs whose strongest token in this context is one of the query's
    /// matched words, strongest first (at most [`AT_WORDS_FEATURES`]): what the matched words
    /// mean to the SAEs, each with its explanation.
    pub at_words: Vec<HitFeature>,
}

/// Most features listed per hit in [`SearchHitView::at_words`].
pub const AT_WORDS_FEATURES: usize = 8;

/// A feature term of a query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryFeature {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Required strength: fraction of the feature's max activation (0 = any activation).
    pub min_strength: f32,
    /// Whether the term is negated (`-feat:...`).
    pub negated: bool,
}

/// `GET /api/search` and `scopedex search --json`.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    /// The query.
    pub query: String,
    /// The query's feature terms, in query order.
    pub features: Vec<QueryFeature>,
    /// The SAEs whose strongest features each hit lists, in index order
    /// ([`hit_saes`]).
    pub feature_saes: Vec<String>,
    /// Best first.
    pub hits: Vec<SearchHitView>,
}

/// A feature shared by a similar context and the source.
#[derive(Debug, Clone, Serialize)]
pub struct SharedFeature {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Summed weight of its shared terms (base term and strength buckets).
    pub weight: f32,
    /// Its max activation in the similar context.
    pub max_act: f32,
}

/// A context similar to the source.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarHit {
    /// Context id.
    pub context_id: u64,
    /// Document id.
    pub doc_id: String,
    /// Summed weights of the shared feature terms.
    pub score: f32,
    /// The context's text.
    pub text: String,
    /// The most heavily weighted shared features (at most [`SIMILAR_SHARED_FEATURES`]).
    pub shared: Vec<SharedFeature>,
}

/// `GET /api/contexts/{id}/similar`, `scopedex similar --json` and `similar` of
/// `POST /api/activate`.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarResults {
    /// The source context (absent for free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<u64>,
    /// The SAE the comparison was restricted to (absent: every SAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sae: Option<String>,
    /// Feature terms of the source searched with (at most 512, the rarest).
    pub terms: usize,
    /// Best first (ties by lower context id).
    pub hits: Vec<SimilarHit>,
}

/// One context where a feature fires.
#[derive(Debug, Clone, Serialize)]
pub struct OccurrenceView {
    /// Context id.
    pub context_id: u64,
    /// Document id.
    pub doc_id: String,
    /// Positions where the feature was active.
    pub n_positions: u32,
    /// Its max activation in the context (activation log precision).
    pub max_act: f32,
    /// Position of that max.
    pub max_pos: u32,
    /// The context's text.
    pub text: String,
    /// Byte range of the max token in `text` (`0..0` for BOS).
    pub start: u32,
    /// See `start`.
    pub end: u32,
}

/// `GET /api/saes/{sae}/features/{feature}/occurrences`.
#[derive(Debug, Clone, Serialize)]
pub struct Occurrences {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// By increasing context id.
    pub occurrences: Vec<OccurrenceView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A feature active at one token of a live activation.
#[derive(Debug, Clone, Serialize)]
pub struct TokenFeature {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Activation.
    pub act: f32,
}

/// One token of a live activation.
#[derive(Debug, Clone, Serialize)]
pub struct ActivatedToken {
    /// Position (0 = BOS when the model has one).
    pub pos: usize,
    /// Token id.
    pub token_id: u32,
    /// Its text.
    pub token: String,
    /// Strongest features, per SAE in request order, each strongest first.
    pub features: Vec<TokenFeature>,
}

/// `POST /api/activate` and `scopedex activate --json`.
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    /// One entry per token.
    pub tokens: Vec<ActivatedToken>,
    /// Contexts of the index most like the text (when `similar` was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similar: Option<SimilarResults>,
}
