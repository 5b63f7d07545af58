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

use crate::error::{Error, Result};
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

/// Top-level object of `batch-{i}.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    /// Neuronpedia model id.
    pub model_id: String,
    /// Layer the SAE reads (parsed from its hook; 0 if none).
    pub layer: u32,
    /// Neuronpedia source-set name.
    pub sae_set: String,
    /// Suffix of the source id (`null` when none).
    pub sae_id_suffix: Option<String>,
    /// The features of the batch, ascending.
    pub features: Vec<Feature>,
}

/// One feature (NeuronpediaDashboardFeature.to_dict); fields as there, mapping in the crate doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize)]
pub struct Feature {
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
    pub neg_str: Vec<String>,
    pub neg_values: Vec<f64>,
    pub pos_str: Vec<String>,
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
    pub activations: Vec<Activation>,
    pub vector: Vec<f64>,
}

/// One example context (NeuronpediaDashboardActivation.to_dict, no DFA).
#[allow(missing_docs)]
#[derive(Debug, Clone, Serialize)]
pub struct Activation {
    pub bin_min: Num,
    pub bin_max: Num,
    pub bin_contains: Num,
    pub tokens: Vec<String>,
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

/// Builds one feature from the index.
pub fn build_feature(
    reader: &IndexReader,
    cx: &FeatureContext,
    vocab: &Vocab,
    f: u32,
) -> Result<Feature> {
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
    Ok(assemble_feature(
        cx,
        vocab,
        f,
        rec.as_ref(),
        &examples,
        &contexts,
        &cooc,
    ))
}

/// Builds one feature from its records (pure; [`build_feature`] reads them).
pub fn assemble_feature(
    cx: &FeatureContext,
    vocab: &Vocab,
    f: u32,
    rec: Option<&FeatureRecord>,
    examples: &[ExampleRecord],
    contexts: &HashMap<u64, ContextRecord>,
    cooc: &[CooccurrenceRecord],
) -> Feature {
    let strs = |ids: &mut dyn Iterator<Item = u32>| -> Vec<String> {
        ids.map(|t| vocab.token_str(t).to_string()).collect()
    };
    let (corr_idx, corr_jac, corr_npmi) = correlated(f, cooc);
    let (hist_values, hist_heights) = match (rec, &cx.summary) {
        (Some(r), Some(s)) => freq_hist(&r.act_hist, &s.act_hist_edges),
        _ => (Vec::new(), Vec::new()),
    };
    let max_act = rec.map_or(0.0, |r| r.max_act);
    let mut activations = Vec::with_capacity(examples.len());
    // Top group first, then the intervals from the highest down, as SAEDashboard orders them.
    let mut order: Vec<&ExampleRecord> = examples.iter().collect();
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
        let Some(ctx) = contexts.get(&e.context_id) else {
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
                .or_insert_with(|| interval_bin(cx, rec, i)),
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
    Feature {
        feature_index: f,
        neuron_alignment_indices: Vec::new(),
        neuron_alignment_values: Vec::new(),
        neuron_alignment_l1: Vec::new(),
        correlated_neurons_indices: Vec::new(),
        correlated_neurons_l1: Vec::new(),
        correlated_neurons_pearson: Vec::new(),
        correlated_features_indices: corr_idx,
        correlated_features_l1: corr_jac,
        correlated_features_pearson: corr_npmi,
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
        logits_hist_data_bar_heights: Vec::new(),
        logits_hist_data_bar_values: Vec::new(),
        n_prompts_total: cx.n_prompts_total,
        n_tokens_in_prompt: cx.n_tokens_in_prompt,
        dataset: cx.dataset.clone(),
        decoder_weights_dist: Vec::new(),
        activations,
        vector: Vec::new(),
    }
}

/// Same-SAE partners other than `f` itself, by NPMI descending (ties: Jaccard descending, then
/// lower index), the best [`CORRELATED_ROWS`]: (indices, Jaccard → `_l1`, NPMI → `_pearson`).
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

/// The activation histogram as bar centers and counts: the index's log-spaced bins, from the
/// first to the last non-empty one (empty bins outside that span are dropped), each at the
/// arithmetic midpoint of its edges (SAEDashboard's `bin_edges[:-1] + bin_size / 2`).
pub fn freq_hist(counts: &[u64], edges: &[f32]) -> (Vec<f64>, Vec<u64>) {
    let n = counts.len().min(edges.len().saturating_sub(1));
    let Some(first) = counts[..n].iter().position(|&c| c > 0) else {
        return (Vec::new(), Vec::new());
    };
    let last = counts[..n].iter().rposition(|&c| c > 0).unwrap_or(first);
    let values = (first..=last)
        .map(|j| round5((f64::from(edges[j]) + f64::from(edges[j + 1])) / 2.0))
        .collect();
    (values, counts[first..=last].to_vec())
}

/// Bounds and share of interval `i` of `N` equal-width intervals of `[0, max]`:
/// `bin_min = i·max/N`, `bin_max = (i+1)·max/N` (3 decimals, as SAEDashboard's titles), and
/// `bin_contains` = the estimated fraction of all counted positions whose activation lies in
/// the interval (zeros included in interval 0, as SAEDashboard counts them), see
/// [`interval_fraction`].
pub fn interval_bin(cx: &FeatureContext, rec: Option<&FeatureRecord>, i: u16) -> (Num, Num, Num) {
    let n = f64::from(cx.intervals.max(1));
    let max = f64::from(rec.map_or(0.0, |r| r.max_act));
    let (lo, hi) = (f64::from(i) * max / n, (f64::from(i) + 1.0) * max / n);
    let contains = match (rec, &cx.summary) {
        (Some(r), Some(s)) => interval_fraction(r, s, lo, hi),
        _ => 0.0,
    };
    (
        Num::Float(round3(lo)),
        Num::Float(round3(hi)),
        Num::Float(round5(contains)),
    )
}

/// Estimated fraction of the counted positions (`tokens_indexed`) with activation in
/// `[lo, hi]`, from the feature's log-binned histogram: each bin's count is spread
/// log-uniformly over its edges clipped to `[.., max_act]` (the last bin, which also holds
/// values above its upper edge, reaches `max_act`); positions where the feature did not fire
/// (`tokens_indexed - n_fired`) count as activation 0. Exact when interval edges fall on bin
/// edges; otherwise off by at most the two straddling bins' mass.
pub fn interval_fraction(rec: &FeatureRecord, summary: &SaeSummary, lo: f64, hi: f64) -> f64 {
    let total = summary.tokens_indexed;
    if total == 0 {
        return 0.0;
    }
    let max = f64::from(rec.max_act);
    let edges = &summary.act_hist_edges;
    let bins = rec.act_hist.len().min(edges.len().saturating_sub(1));
    let mut mass = 0.0;
    if lo <= 0.0 {
        mass += total.saturating_sub(rec.n_fired) as f64;
    }
    for (j, &c) in rec.act_hist[..bins].iter().enumerate() {
        if c == 0 {
            continue;
        }
        let a = f64::from(edges[j]).min(max);
        let b = if j + 1 == bins {
            max.max(a)
        } else {
            f64::from(edges[j + 1]).min(max)
        };
        let share = if b <= a || a <= 0.0 {
            // A degenerate bin (everything at `b`): all or nothing.
            if (lo..=hi).contains(&b) {
                1.0
            } else {
                0.0
            }
        } else {
            let (x, y) = (lo.max(a), hi.min(b));
            if y <= x {
                0.0
            } else {
                (y.ln() - x.ln()) / (b.ln() - a.ln())
            }
        };
        mass += c as f64 * share;
    }
    (mass / total as f64).clamp(0.0, 1.0)
}

/// Layer number of a hook name `blocks.{N}.…` (0 when it has none), as SAEDashboard's `layer`.
pub fn layer_of(hook: &str) -> u32 {
    hook.strip_prefix("blocks.")
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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

    #[test]
    fn hist_is_trimmed_to_non_empty_span() {
        let edges = [0.1f32, 1.0, 10.0, 100.0];
        assert_eq!(freq_hist(&[0, 4, 0], &edges), (vec![5.5], vec![4]));
        assert_eq!(freq_hist(&[1, 0, 2], &edges).1, vec![1, 0, 2]);
        assert_eq!(freq_hist(&[0, 0, 0], &edges), (vec![], vec![]));
    }

    #[test]
    fn interval_fractions_sum_to_one() {
        let summary = SaeSummary {
            sae_id: "s".into(),
            d_in: 1,
            d_sae: 1,
            tokens_indexed: 1000,
            mean_l0: 0.0,
            dead_features: 0,
            explained_variance: 0.0,
            act_hist_edges: (0..9).map(|i| 10f32.powi(i - 4)).collect(),
            density_hist_edges: vec![],
            density_hist: vec![],
        };
        let rec = FeatureRecord {
            feature: 0,
            n_fired: 100,
            density: 0.1,
            max_act: 7.5,
            mean_act: 1.0,
            act_hist: vec![0, 0, 10, 20, 70, 0, 0, 0],
            top_tokens: vec![],
            logit_pos: vec![],
            logit_neg: vec![],
        };
        let n = 5;
        let parts: Vec<f64> = (0..n)
            .map(|i| {
                let m = 7.5f64;
                interval_fraction(
                    &rec,
                    &summary,
                    i as f64 * m / n as f64,
                    (i + 1) as f64 * m / n as f64,
                )
            })
            .collect();
        let sum: f64 = parts.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "{parts:?}");
        // Interval 0 holds the 900 zeros and the 30 firings below 1 (and a share of [1, 7.5]).
        assert!(parts[0] > 0.93 && parts[0] < 0.96, "{parts:?}");
        // Bin [1, 10) holds 70 of 1000, spread log-uniformly over [1, 7.5].
        let expect = 0.07 * (7.5f64 / 6.0).ln() / 7.5f64.ln();
        assert!((parts[4] - expect).abs() < 1e-9, "{parts:?}");
    }
}
