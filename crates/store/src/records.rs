//! Record types shared by the indexer (which produces them), the store (which persists them) and
//! the server (which serves them). Defined once, here, in the lowest crate that needs them.
//!
//! Units: activations are the SAE's feature activations (f32, after TopK/JumpReLU/ReLU);
//! token positions index the context window, position 0 being the prepended BOS token.
use serde::{Deserialize, Serialize};

/// One context window of the corpus, as the model saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRecord {
    /// Dense id in corpus order (0, 1, 2, ...), stable across shards.
    pub context_id: u64,
    /// The document it came from: `{file name relative to the corpus root}:{record index}`.
    pub doc_id: String,
    /// Token ids, BOS first when one was prepended; length = number of positions.
    pub tokens: Vec<u32>,
    /// Byte range `[start, end)` of each token within `text`; BOS (and any token with no
    /// source text) is `(0, 0)`. Same length as `tokens`.
    pub token_starts: Vec<u32>,
    /// See `token_starts`.
    pub token_ends: Vec<u32>,
    /// The document text covered by this window (UTF-8).
    pub text: String,
}

/// Which list an example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ExampleKind {
    /// The top-k contexts by max activation.
    Top,
    /// Samples from interval `i` (0 = lowest activations) between 0 and the feature's max.
    Interval(u16),
}

impl ExampleKind {
    /// Stable string form used in Parquet and the API: `top`, `interval_3`.
    pub fn as_string(&self) -> String {
        match self {
            ExampleKind::Top => "top".to_string(),
            ExampleKind::Interval(i) => format!("interval_{i}"),
        }
    }

    /// Parses `top` or `interval_{i}`.
    pub fn parse(s: &str) -> Option<ExampleKind> {
        if s == "top" {
            return Some(ExampleKind::Top);
        }
        s.strip_prefix("interval_")
            .and_then(|i| i.parse().ok())
            .map(ExampleKind::Interval)
    }
}

/// One example context of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRecord {
    /// Feature index in the SAE.
    pub feature: u32,
    /// Top list or interval sample.
    pub kind: ExampleKind,
    /// Rank within its list (0 = first: highest max_act; ties by lower context_id).
    pub rank: u16,
    /// The context.
    pub context_id: u64,
    /// Position of the maximum activation in the context window.
    pub max_pos: u32,
    /// The feature's maximum activation in this context.
    pub max_act: f32,
    /// The feature's activation at every position of the window (zeros allowed).
    pub acts: Vec<f32>,
}

/// A token and how often something happened on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenCount {
    /// Token id.
    pub token: u32,
    /// Number of positions with that token where the feature fired.
    pub count: u64,
}

/// A token and a value (logit effect).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenValue {
    /// Token id.
    pub token: u32,
    /// The value, e.g. `W_dec[f] · W_U[:, token]`.
    pub value: f32,
}

/// Corpus-wide statistics of one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRecord {
    /// Feature index in the SAE.
    pub feature: u32,
    /// Number of counted positions (BOS excluded by default) where the activation was > 0.
    pub n_fired: u64,
    /// `n_fired / tokens counted`.
    pub density: f64,
    /// Maximum activation (0 for a dead feature).
    pub max_act: f32,
    /// Mean activation over the positions where it fired (0 for a dead feature).
    pub mean_act: f32,
    /// Counts per log-spaced activation bin; edges in [`SaeSummary::act_hist_edges`].
    pub act_hist: Vec<u64>,
    /// Tokens it fires on most, by count, descending (ties by token id).
    pub top_tokens: Vec<TokenCount>,
    /// Tokens whose logits it raises most (descending value).
    pub logit_pos: Vec<TokenValue>,
    /// Tokens whose logits it lowers most (ascending value).
    pub logit_neg: Vec<TokenValue>,
    /// Counts of its logit effects over the whole vocabulary in equal-width bins between
    /// `logit_hist_min` and `logit_hist_max` (empty in indexes written before it existed).
    pub logit_hist: Vec<u64>,
    /// Lower edge of the first logit bin (the smallest effect).
    pub logit_hist_min: f32,
    /// Upper edge of the last logit bin (the largest effect).
    pub logit_hist_max: f32,
}

/// A co-occurring partner of a feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CooccurrenceRecord {
    /// Feature index in the SAE.
    pub feature: u32,
    /// SAE id of the partner (equal to this SAE's id for same-SAE partners).
    pub other_sae: String,
    /// Partner feature index.
    pub other_feature: u32,
    /// Number of positions where both fired.
    pub n_both: u64,
    /// `n_both / (n_a + n_b - n_both)`.
    pub jaccard: f32,
    /// Normalised pointwise mutual information, in [-1, 1].
    pub npmi: f32,
}

/// A feature whose decoder direction is among the closest to another's (cosine similarity of
/// `W_dec` rows), in the same SAE or another SAE of the same width at the same layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourRecord {
    /// Feature index in the SAE.
    pub feature: u32,
    /// SAE id of the neighbour (this SAE's id for same-SAE neighbours).
    pub other_sae: String,
    /// The neighbour's feature index.
    pub other_feature: u32,
    /// Cosine similarity of the two decoder directions.
    pub cosine: f32,
}

/// One token of the vocabulary that made the index (`vocab.parquet`), so tokens render with
/// no model at hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VocabRecord {
    /// Token id (rows are dense and in id order).
    pub token_id: u32,
    /// The vocabulary's own spelling (`Ġthe`, `▁the`, `<0x0A>`), as the tokenizer lists it.
    pub piece: String,
    /// The token decoded on its own (` the`); U+FFFD where it is part of a UTF-8 character.
    pub text: String,
    /// The bytes the token stands for in the text (byte-level and byte-fallback tokens
    /// resolved), so offsets and partial characters can be reconstructed exactly.
    pub bytes: Vec<u8>,
}

/// Corpus-wide statistics of one SAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeSummary {
    /// SAE id, e.g. `L15R-8x`.
    pub sae_id: String,
    /// Input width.
    pub d_in: u32,
    /// Number of features.
    pub d_sae: u32,
    /// Positions counted in the statistics (BOS excluded by default).
    pub tokens_indexed: u64,
    /// Mean number of active features per counted position.
    pub mean_l0: f64,
    /// Features that never fired.
    pub dead_features: u32,
    /// Reconstruction explained variance on the indexed positions (1 - SSE/SST).
    pub explained_variance: f64,
    /// Edges of the per-feature activation histogram bins (len = bins + 1), log-spaced.
    pub act_hist_edges: Vec<f32>,
    /// Edges of the density histogram (log10 density), len = bins + 1.
    pub density_hist_edges: Vec<f32>,
    /// Number of features per density bin (dead features excluded).
    pub density_hist: Vec<u64>,
}

/// One entry of the sparse activation log (`--keep-activations`): a feature that was active
/// (value != 0) at one position of one context.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActivationEntry {
    /// The context.
    pub context_id: u64,
    /// Position in the context window (0 = BOS).
    pub pos: u16,
    /// Feature index in the SAE.
    pub feature: u32,
    /// The activation. Stored rounded to the writer's precision (bf16's 7 mantissa bits by
    /// default, f32 range kept).
    pub value: f32,
}

/// Every active feature of one SAE in one context: the source of the text index's feature
/// terms (search, "more like this") and of the features listed with search hits.
///
/// A feature is active in a context when its activation is > 0 at one of the context's counted
/// positions (BOS excluded when the index excludes it). No cap: every active feature is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextFeaturesRecord {
    /// The context.
    pub context_id: u64,
    /// Feature ids, strongest first (by max activation over the counted positions; ties by
    /// lower id).
    pub features: Vec<u32>,
    /// Their max activation in the context (> 0), parallel to `features`.
    pub max_acts: Vec<f32>,
    /// Position of that max in the context window (the first one on ties), parallel to
    /// `features`.
    pub max_pos: Vec<u32>,
}

/// One context where a feature fires, from the activation log (feature → all occurrences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureOccurrence {
    /// The context.
    pub context_id: u64,
    /// Counted positions of the context where the feature's activation was > 0.
    pub n_positions: u32,
    /// The feature's max activation in the context (at the log's precision).
    pub max_act: f32,
    /// Position of that max (the first one on ties).
    pub max_pos: u32,
}

/// Scores of one scorer (detection or fuzzing) for one explanation; NaN where a ratio is
/// undefined or the explanation was not scored (Parquet columns hold no nulls).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExplanationScores {
    /// Examples scored (activating + non-activating); 0 = not scored.
    pub n: u32,
    /// TP / (TP + FP).
    pub precision: f32,
    /// TP / (TP + FN).
    pub recall: f32,
    /// Harmonic mean of precision and recall.
    pub f1: f32,
    /// (TPR + TNR) / 2.
    pub balanced_accuracy: f32,
    /// Area under the ROC curve of the answers' probabilities (NaN without log probabilities).
    pub auroc: f32,
}

impl Default for ExplanationScores {
    fn default() -> Self {
        ExplanationScores {
            n: 0,
            precision: f32::NAN,
            recall: f32::NAN,
            f1: f32::NAN,
            balanced_accuracy: f32::NAN,
            auroc: f32::NAN,
        }
    }
}

/// The explanation of one feature (`saes/{sae}/explanations.parquet`, one row per feature),
/// with the choices that made it and its scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplanationRecord {
    /// Feature index in the SAE.
    pub feature: u32,
    /// The explanation.
    pub text: String,
    /// The model that wrote it (as named to the endpoint, or the importer's model name).
    pub model: String,
    /// Version of the prompt that asked for it (`scopedex-delphi-v1`, `neuronpedia:{type}`).
    pub prompt_version: String,
    /// Every choice of sampling and prompting, as JSON (`{}` for imported explanations).
    pub settings: String,
    /// Contexts shown to the explainer: the scorers test on other contexts only.
    pub train_contexts: Vec<u64>,
    /// When it was written (RFC 3339, UTC).
    pub created: String,
    /// The model that scored it (empty: not scored).
    pub scorer_model: String,
    /// When it was scored (RFC 3339; empty: not scored).
    pub scored: String,
    /// Detection scores.
    pub detection: ExplanationScores,
    /// Fuzzing scores.
    pub fuzzing: ExplanationScores,
}
