//! SAEDashboard's `batch-{i}.json` (NeuronpediaDashboardBatch / Feature / Activation `to_dict`
//! in `sae_dashboard/neuronpedia/neuronpedia_dashboard.py`), built from one index's records.
//!
//! Struct fields are declared in SAEDashboard's key order; serde keeps it.
use std::collections::HashMap;

use serde::Serialize;

use scopedex_store::{
    ContextRecord, CooccurrenceRecord, ExampleKind, ExampleRecord, FeatureRecord, IndexReader,
    SaeSummary,
};

use crate::actlog::{ActivationLog, Partner, Scratch};
use crate::error::{Error, Result};
use crate::hist;
use crate::vocab::Vocab;

/// Correlated features per feature (SAEDashboard's `FeatureTablesConfig(n_rows=3)`).
pub const CORRELATED_ROWS: usize = 3;

/// A JSON number written as an integer or a float, as Python writes `-1` vs `-1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Num {
    /// An integer (`-1` of the top group, `0` of an absent density).
    Int(i64),
    /// A float.
    Float(f64),
}

impl Num {
    /// The value as f64.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// Top-level object of `batch-{i}.json`; token strings borrow from the [`Vocab`] (`'v`).
#[derive(Debug, Clone, Serialize)]
pub struct Batch<'v> {
    /// Neuronpedia model id.
    pub model_id: String,
    /// Layer the SAE reads (parsed from its hook; 0 if none).
    pub layer: u32,
    /// Neuronpedia source-set name.
    pub sae_set: String,
    /// Suffix of the source id (`null` when none).
    pub sae_id_suffix: Option<String>,
    /// The features of the batch, ascending.
    pub features: Vec<Feature<'v>>,
}

/// One feature (NeuronpediaDashboardFeature.to_dict); fields as there, mapping in the crate doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize)]
pub struct Feature<'v> {
    pub feature_index: u32,
    pub neuron_alignment_indices: Vec<u32>,
    pub neuron_alignment_values: Vec<f64>,
    pub neuron_alignment_l1: Vec<f64>,
    pub correlated_neurons_indices: Vec<u32>,
    pub correlated_neurons_l1: Vec<f64>,
    pub correlated_neurons_pearson: Vec<f64>,
    pub correlated_features_indices: Vec<u32>,
    pub correlated_features_l1: Vec<f64>,
    pub correlated_features_pearson: Vec<f64>,
    pub neg_str: Vec<&'v str>,
    pub neg_values: Vec<f64>,
    pub pos_str: Vec<&'v str>,
    pub pos_values: Vec<f64>,
    pub frac_nonzero: Num,
    pub freq_hist_data_bar_values: Vec<f64>,
    pub freq_hist_data_bar_heights: Vec<u64>,
    pub logits_hist_data_bar_heights: Vec<u64>,
    pub logits_hist_data_bar_values: Vec<f64>,
    pub n_prompts_total: u64,
    pub n_tokens_in_prompt: u32,
    pub dataset: String,
    pub decoder_weights_dist: Vec<f64>,
    pub activations: Vec<Activation<'v>>,
    pub vector: Vec<f64>,
}

/// One example context (NeuronpediaDashboardActivation.to_dict, no DFA).
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize)]
pub struct Activation<'v> {
    pub bin_min: Num,
    pub bin_max: Num,
    pub bin_contains: Num,
    pub tokens: Vec<&'v str>,
    pub values: Vec<f64>,
    pub qualifying_token_index: i64,
}

/// Key order of a batch, a feature and an activation, as SAEDashboard writes them.
pub const BATCH_KEYS: [&str; 5] = ["model_id", "layer", "sae_set", "sae_id_suffix", "features"];
/// See [`BATCH_KEYS`].
pub const FEATURE_KEYS: [&str; 25] = [
    "feature_index",
    "neuron_alignment_indices",
    "neuron_alignment_values",
    "neuron_alignment_l1",
    "correlated_neurons_indices",
    "correlated_neurons_l1",
    "correlated_neurons_pearson",
    "correlated_features_indices",
    "correlated_features_l1",
    "correlated_features_pearson",
    "neg_str",
    "neg_values",
    "pos_str",
    "pos_values",
    "frac_nonzero",
    "freq_hist_data_bar_values",
    "freq_hist_data_bar_heights",
    "logits_hist_data_bar_heights",
    "logits_hist_data_bar_values",
    "n_prompts_total",
    "n_tokens_in_prompt",
    "dataset",
    "decoder_weights_dist",
    "activations",
    "vector",
];
/// See [`BATCH_KEYS`].
pub const ACTIVATION_KEYS: [&str; 6] = [
    "bin_min",
    "bin_max",
    "bin_contains",
    "tokens",
    "values",
    "qualifying_token_index",
];

/// `np.round(x, 5)`: half to even on the scaled value, as numpy does.
pub fn round5(x: f64) -> f64 {
    round_to(x, 1e5)
}

/// Rounding to 3 decimals, as SAEDashboard's group titles (`{:.3f}`) carry the bin bounds.
pub fn round3(x: f64) -> f64 {
    round_to(x, 1e3)
}

fn round_to(x: f64, scale: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let r = (x * scale).round_ties_even() / scale;
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

fn round5_all(v: impl IntoIterator<Item = f32>) -> Vec<f64> {
    v.into_iter().map(|x| round5(f64::from(x))).collect()
}

/// What every feature of one export shares.
#[derive(Debug, Clone)]
pub struct FeatureContext {
    /// SAE id in the index.
    pub sae: String,
    /// `n_prompts_total`: contexts in the index.
    pub n_prompts_total: u64,
    /// `n_tokens_in_prompt`: the index's ctx_len (BOS included).
    pub n_tokens_in_prompt: u32,
    /// `dataset`.
    pub dataset: String,
    /// Whether position 0 of every context is BOS, dropped from `tokens`/`values` as
    /// SAEDashboard's full-prompt window drops it.
    pub drop_first: bool,
    /// Number of equal-width intervals the index sampled (`parameters.intervals`).
    pub intervals: u32,
    /// The SAE's summary (histogram edges, tokens counted), when the index has one.
    pub summary: Option<SaeSummary>,
}

/// Data of one export that is not in the per-feature records: the activation log and the
/// decoder neighbours, each absent when its source is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// The sparse activation log.
    pub log: Option<&'a ActivationLog>,
    /// Decoder-cosine neighbours of the features from `neighbours_from` on, computed from the
    /// SAE's weights.
    pub neighbours: Option<&'a [Vec<(u32, f32)>]>,
    /// First feature of `neighbours`.
    pub neighbours_from: u32,
    /// Read each feature's same-SAE decoder neighbours from the index (which stores them)
    /// instead.
    pub index_neighbours: bool,
}

/// scopedex's statistics kept beside a feature (they have no SAEDashboard field): written to
/// `scopedex-extras/batch-{i}.jsonl`, one line per feature (see [`crate::extras`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Extras {
    /// The feature.
    pub feature_index: u32,
    /// Same-SAE co-occurrence partners by NPMI, the best [`CORRELATED_ROWS`].
    pub cooccurrence_indices: Vec<u32>,
    /// Their NPMI.
    pub cooccurrence_npmi: Vec<f64>,
    /// Their Jaccard index.
    pub cooccurrence_jaccard: Vec<f64>,
    /// Features with the most similar decoder direction (empty without the SAE's weights).
    pub decoder_cosine_indices: Vec<u32>,
    /// Their decoder cosine similarity.
    pub decoder_cosine_values: Vec<f64>,
}

/// A feature and what is kept beside it.
#[derive(Debug, Clone)]
pub struct Built<'v> {
    /// The SAEDashboard feature.
    pub feature: Feature<'v>,
    /// scopedex's extra statistics.
    pub extras: Extras,
}

/// What one feature is built from ([`assemble_feature`]).
#[derive(Debug, Clone, Copy)]
pub struct FeatureInputs<'a> {
    /// Its record (`None`: never fired and never written).
    pub rec: Option<&'a FeatureRecord>,
    /// Its examples, any order.
    pub examples: &'a [ExampleRecord],
    /// The examples' contexts.
    pub contexts: &'a HashMap<u64, ContextRecord>,
    /// Its co-occurrence partners.
    pub cooc: &'a [CooccurrenceRecord],
    /// Its logged values (`None`: no activation log).
    pub log_values: Option<&'a [f32]>,
    /// Its Pearson partners (`None`: no activation log).
    pub partners: Option<&'a [Partner]>,
    /// Its decoder neighbours (`None`: no SAE weights).
    pub neighbours: Option<&'a [(u32, f32)]>,
}

/// Builds one feature from the index (and the export's other sources).
pub fn build_feature<'v>(
    reader: &IndexReader,
    cx: &FeatureContext,
    src: &Sources<'_>,
    vocab: &'v Vocab,
    f: u32,
    scratch: &mut Scratch,
) -> Result<Built<'v>> {
    let rec = reader.feature(&cx.sae, f)?;
    let examples = reader.examples(&cx.sae, f, None, usize::MAX, 0)?;
    let cooc = reader.cooccurrence(&cx.sae, f, Some(&cx.sae), usize::MAX)?;
    let mut ids: Vec<u64> = examples.iter().map(|e| e.context_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let contexts: HashMap<u64, ContextRecord> = reader
        .contexts(&ids)?
        .into_iter()
        .zip(&ids)
        .map(|(c, &id)| {
            c.map(|c| (id, c)).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "context {id} of an example of feature {f} of {} is missing",
                    cx.sae
                ))
            })
        })
        .collect::<Result<_>>()?;
    let partners = src.log.map(|log| log.correlated(f, scratch));
    let stored: Option<Vec<(u32, f32)>> = if src.index_neighbours {
        Some(
            reader
                .neighbours(&cx.sae, f)?
                .into_iter()
                .filter(|n| n.other_sae == cx.sae && n.other_feature != f)
                .map(|n| (n.other_feature, n.cosine))
                .collect(),
        )
    } else {
        None
    };
    let neighbours = stored.as_deref().or_else(|| {
        src.neighbours.and_then(|n| {
            f.checked_sub(src.neighbours_from)
                .and_then(|i| n.get(i as usize))
                .map(Vec::as_slice)
        })
    });
    Ok(assemble_feature(
        cx,
        vocab,
        f,
        FeatureInputs {
            rec: rec.as_ref(),
            examples: &examples,
            contexts: &contexts,
            cooc: &cooc,
            log_values: src.log.map(|log| log.values(f)),
            partners: partners.as_deref(),
            neighbours,
        },
    ))
}

/// Builds one feature from its records (pure; [`build_feature`] reads them).
pub fn assemble_feature<'v>(
    cx: &FeatureContext,
    vocab: &'v Vocab,
    f: u32,
    inp: FeatureInputs<'_>,
) -> Built<'v> {
    let rec = inp.rec;
    let strs = |ids: &mut dyn Iterator<Item = u32>| -> Vec<&'v str> {
        ids.map(|t| vocab.token_str(t)).collect()
    };
    let (cooc_idx, cooc_jac, cooc_npmi) = correlated(f, inp.cooc);
    let (hist_values, hist_heights) = match (inp.log_values, rec, &cx.summary) {
        (Some(values), _, _) => {
            let pos: Vec<f64> = values
                .iter()
                .filter(|&&v| v > 0.0)
                .map(|&v| f64::from(v))
                .collect();
            hist::equal_width(&pos)
        }
        (None, Some(r), Some(s)) => hist::rebin_log_hist(r, &s.act_hist_edges),
        _ => (Vec::new(), Vec::new()),
    };
    let (logit_heights, logit_values) = rec.map_or_else(Default::default, hist::logit_hist);
    let max_act = rec.map_or(0.0, |r| r.max_act);
    let mut activations = Vec::with_capacity(inp.examples.len());
    // Top group first, then the intervals from the highest down, as SAEDashboard orders them.
    let mut order: Vec<&ExampleRecord> = inp.examples.iter().collect();
    order.sort_by_key(|e| {
        (
            match e.kind {
                ExampleKind::Top => 0i64,
                ExampleKind::Interval(i) => 1 + (u16::MAX - i) as i64,
            },
            e.rank,
        )
    });
    let mut interval_cache: HashMap<u16, (Num, Num, Num)> = HashMap::new();
    for e in order {
        let Some(ctx) = inp.contexts.get(&e.context_id) else {
            continue;
        };
        let (bin_min, bin_max, bin_contains) = match e.kind {
            ExampleKind::Top => (
                Num::Int(-1),
                Num::Float(round3(f64::from(max_act))),
                Num::Int(-1),
            ),
            ExampleKind::Interval(i) => *interval_cache
                .entry(i)
                .or_insert_with(|| interval_bin(cx, rec, inp.log_values, i)),
        };
        let n = ctx.tokens.len().min(e.acts.len());
        let start = usize::from(cx.drop_first).min(n);
        activations.push(Activation {
            bin_min,
            bin_max,
            bin_contains,
            tokens: strs(&mut ctx.tokens[start..n].iter().copied()),
            values: round5_all(e.acts[start..n].iter().copied()),
            qualifying_token_index: i64::from(e.max_pos) - start as i64,
        });
    }
    let partners = inp.partners.unwrap_or(&[]);
    let neighbours = inp.neighbours.unwrap_or(&[]);
    let feature = Feature {
        feature_index: f,
        neuron_alignment_indices: Vec::new(),
        neuron_alignment_values: Vec::new(),
        neuron_alignment_l1: Vec::new(),
        correlated_neurons_indices: Vec::new(),
        correlated_neurons_l1: Vec::new(),
        correlated_neurons_pearson: Vec::new(),
        correlated_features_indices: partners.iter().map(|p| p.feature).collect(),
        correlated_features_l1: partners.iter().map(|p| round5(p.cossim)).collect(),
        correlated_features_pearson: partners.iter().map(|p| round5(p.pearson)).collect(),
        neg_str: rec.map_or_else(Vec::new, |r| strs(&mut r.logit_neg.iter().map(|t| t.token))),
        neg_values: rec.map_or_else(Vec::new, |r| {
            round5_all(r.logit_neg.iter().map(|t| t.value))
        }),
        pos_str: rec.map_or_else(Vec::new, |r| strs(&mut r.logit_pos.iter().map(|t| t.token))),
        pos_values: rec.map_or_else(Vec::new, |r| {
            round5_all(r.logit_pos.iter().map(|t| t.value))
        }),
        frac_nonzero: match rec {
            Some(r) => Num::Float(round5(r.density)),
            None => Num::Int(0),
        },
        freq_hist_data_bar_values: hist_values,
        freq_hist_data_bar_heights: hist_heights,
        logits_hist_data_bar_heights: logit_heights,
        logits_hist_data_bar_values: logit_values,
        n_prompts_total: cx.n_prompts_total,
        n_tokens_in_prompt: cx.n_tokens_in_prompt,
        dataset: cx.dataset.clone(),
        decoder_weights_dist: Vec::new(),
        activations,
        vector: Vec::new(),
    };
    let extras = Extras {
        feature_index: f,
        cooccurrence_indices: cooc_idx,
        cooccurrence_npmi: cooc_npmi,
        cooccurrence_jaccard: cooc_jac,
        decoder_cosine_indices: neighbours.iter().map(|n| n.0).collect(),
        decoder_cosine_values: neighbours.iter().map(|n| round5(f64::from(n.1))).collect(),
    };
    Built { feature, extras }
}

/// Same-SAE co-occurrence partners other than `f` itself, by NPMI descending (ties: Jaccard
/// descending, then lower index), the best [`CORRELATED_ROWS`]: (indices, Jaccard, NPMI).
pub fn correlated(f: u32, cooc: &[CooccurrenceRecord]) -> (Vec<u32>, Vec<f64>, Vec<f64>) {
    let mut rows: Vec<&CooccurrenceRecord> = cooc.iter().filter(|c| c.other_feature != f).collect();
    rows.sort_by(|a, b| {
        b.npmi
            .total_cmp(&a.npmi)
            .then(b.jaccard.total_cmp(&a.jaccard))
            .then(a.other_feature.cmp(&b.other_feature))
    });
    rows.truncate(CORRELATED_ROWS);
    (
        rows.iter().map(|c| c.other_feature).collect(),
        rows.iter().map(|c| round5(f64::from(c.jaccard))).collect(),
        rows.iter().map(|c| round5(f64::from(c.npmi))).collect(),
    )
}

/// Bounds and share of interval `i` of `N` equal-width intervals of `[0, max]`:
/// `bin_min = i·max/N`, `bin_max = (i+1)·max/N` (3 decimals, as SAEDashboard's titles), and
/// `bin_contains` = the fraction of all counted positions whose activation lies in the interval
/// (zeros included in interval 0, as SAEDashboard counts them): counted from the logged values
/// when there is a log ([`hist::interval_fraction_exact`]), else estimated from the histogram
/// ([`hist::interval_fraction`]).
pub fn interval_bin(
    cx: &FeatureContext,
    rec: Option<&FeatureRecord>,
    log_values: Option<&[f32]>,
    i: u16,
) -> (Num, Num, Num) {
    let n = f64::from(cx.intervals.max(1));
    let max = f64::from(rec.map_or(0.0, |r| r.max_act));
    let (lo, hi) = (f64::from(i) * max / n, (f64::from(i) + 1.0) * max / n);
    let contains = match (rec, &cx.summary, log_values) {
        (Some(r), Some(s), Some(v)) => {
            hist::interval_fraction_exact(v, r.n_fired, s.tokens_indexed, max, lo, hi)
        }
        (Some(r), Some(s), None) => hist::interval_fraction(r, s, lo, hi),
        _ => 0.0,
    };
    (
        Num::Float(round3(lo)),
        Num::Float(round3(hi)),
        Num::Float(round5(contains)),
    )
}

/// Layer number of a hook name `blocks.{N}.…` (0 when it has none), as SAEDashboard's `layer`.
pub fn layer_of(hook: &str) -> u32 {
    crate::names::hook_layer(hook).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_numpy() {
        assert_eq!(round5(0.123_456_7), 0.12346);
        assert_eq!(round5(-0.000_001), 0.0);
        assert_eq!(round5(2.5e-6), 0.0); // half to even
        assert_eq!(round3(1.234_5), 1.234);
        assert_eq!(serde_json::to_string(&round5(5.0)).unwrap(), "5.0");
    }

    #[test]
    fn layers_from_hooks() {
        assert_eq!(layer_of("blocks.15.hook_resid_post"), 15);
        assert_eq!(layer_of("blocks.3.attn.hook_z"), 3);
        assert_eq!(layer_of("hook_embed"), 0);
    }
}
