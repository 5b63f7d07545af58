//! Neuronpedia's bulk-import layout, as `sae_dashboard/neuronpedia/neuronpedia_export.py`
//! converts `batch-*.json` into it:
//!
//! ```text
//! {out}/{model_id}/{source_id}/          source_id = "{layer}-{sae_set}[__{sae_id_suffix}]"
//!   release.jsonl  model.jsonl  sourceset.jsonl  source.jsonl      one row each
//!   features/batch-{i}.jsonl.gz          one Feature row per feature of batch i
//!   activations/batch-{i}.jsonl.gz       one Activation row per example of batch i
//!   scopedex-export.json, scopedex-extras/   scopedex's report and extras (crate::extras)
//! ```
//! Rows mirror the script's inlined `neuronpedia_utils.db_models` dataclasses, fields in
//! declaration order (the script dumps `row.__dict__` with orjson); gzip level 5. The two gzip
//! files of a batch are encoded at the same time (one on each side of a `rayon::join`).
#![allow(non_snake_case, missing_docs)]
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::atomic::write_atomic;
use crate::batch::{self, Extras, Num};
use crate::error::{Error, Result};
use crate::gz::GzWriter;

/// The script's fallback creator id (used when none is given).
pub const FALLBACK_CREATOR_ID: &str = "clkht01d40000jv08hvalcvly";

/// The model's sizes written to `model.jsonl`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelSizes {
    /// `layers`: transformer blocks.
    pub layers: u32,
    /// `neuronsPerLayer`: the exported SAE's `d_sae`.
    pub neurons_per_layer: u32,
    /// `dimension`: the residual width, when known.
    pub dimension: Option<u32>,
}

/// Release / creator metadata of a bulk export.
#[derive(Debug, Clone)]
pub struct BulkMeta {
    /// Neuronpedia creator id.
    pub creator_id: String,
    /// Creator name.
    pub creator_name: String,
    /// Release id (`SourceRelease.name`).
    pub release_id: String,
    /// Release title (`description`, `descriptionShort`).
    pub release_title: String,
    /// Release URL ("" for none).
    pub url: String,
    /// Source-set description.
    pub source_set_description: String,
    /// `hfRepoId` of the source.
    pub hf_repo_id: Option<String>,
    /// `hfFolderId` of the source.
    pub hf_folder_id: Option<String>,
    /// `hookName` of every feature (`blocks.{layer}.{hook_point}`).
    pub hook_name: String,
    /// Creation time written in every row.
    pub created_at: String,
}

#[derive(Serialize)]
pub struct SourceRelease<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub creatorName: &'a str,
    pub creatorId: &'a str,
    pub visibility: &'a str,
    pub isNewUi: bool,
    pub featured: bool,
    pub descriptionShort: Option<&'a str>,
    pub urls: Vec<&'a str>,
    pub creatorEmail: Option<&'a str>,
    pub creatorNameShort: Option<&'a str>,
    pub defaultSourceSetName: Option<&'a str>,
    pub defaultSourceId: Option<&'a str>,
    pub defaultUmapSourceIds: Vec<&'a str>,
    pub createdAt: &'a str,
}

#[derive(Serialize)]
pub struct Model<'a> {
    pub id: &'a str,
    pub instruct: bool,
    pub creatorId: &'a str,
    pub displayNameShort: &'a str,
    pub displayName: &'a str,
    pub tlensId: Option<&'a str>,
    pub dimension: Option<u32>,
    pub visibility: &'a str,
    pub defaultSourceSetName: Option<&'a str>,
    pub defaultSourceId: Option<&'a str>,
    pub inferenceEnabled: bool,
    pub layers: u32,
    pub neuronsPerLayer: u32,
    pub createdAt: &'a str,
    pub owner: &'a str,
    pub updatedAt: &'a str,
    pub website: Option<&'a str>,
}

#[derive(Serialize)]
pub struct SourceSet<'a> {
    pub modelId: &'a str,
    pub name: &'a str,
    pub creatorId: &'a str,
    pub hasDashboards: bool,
    pub visibility: &'a str,
    pub description: &'a str,
    pub r#type: &'a str,
    pub creatorName: &'a str,
    pub urls: Vec<&'a str>,
    pub creatorEmail: Option<&'a str>,
    pub releaseName: Option<&'a str>,
    pub defaultOfModelId: Option<&'a str>,
    pub defaultRange: u32,
    pub defaultShowBreaks: bool,
    pub showDfa: bool,
    pub showCorrelated: bool,
    pub showHeadAttribution: bool,
    pub showUmap: bool,
    pub createdAt: &'a str,
}

#[derive(Serialize)]
pub struct Source<'a> {
    pub id: &'a str,
    pub modelId: &'a str,
    pub setName: &'a str,
    pub creatorId: &'a str,
    pub hasDashboards: bool,
    pub inferenceEnabled: bool,
    pub inferenceHosts: Vec<&'a str>,
    pub saelensConfig: Option<&'a str>,
    pub saelensRelease: Option<&'a str>,
    pub saelensSaeId: Option<&'a str>,
    pub hfRepoId: Option<&'a str>,
    pub hfFolderId: Option<&'a str>,
    pub visibility: &'a str,
    pub defaultOfModelId: Option<&'a str>,
    pub hasUmap: bool,
    pub hasUmapLogSparsity: bool,
    pub hasUmapClusters: bool,
    pub num_prompts: Option<u64>,
    pub num_tokens_in_prompt: Option<u32>,
    pub dataset: Option<&'a str>,
    pub notes: Option<&'a str>,
    pub createdAt: &'a str,
}

#[derive(Serialize)]
pub struct Feature<'a> {
    pub modelId: &'a str,
    pub layer: &'a str,
    pub index: u32,
    pub creatorId: Option<&'a str>,
    pub createdAt: &'a str,
    pub maxActApprox: f64,
    pub hasVector: bool,
    pub vector: &'a [f64],
    pub vectorLabel: Option<&'a str>,
    pub vectorDefaultSteerStrength: Num,
    pub hookName: Option<&'a str>,
    pub topkCosSimIndices: &'a [u32],
    pub topkCosSimValues: &'a [f64],
    pub neuron_alignment_indices: &'a [u32],
    pub neuron_alignment_values: &'a [f64],
    pub neuron_alignment_l1: &'a [f64],
    pub correlated_neurons_indices: &'a [u32],
    pub correlated_neurons_pearson: &'a [f64],
    pub correlated_neurons_l1: &'a [f64],
    pub correlated_features_indices: &'a [u32],
    pub correlated_features_pearson: &'a [f64],
    pub correlated_features_l1: &'a [f64],
    pub neg_str: &'a [&'a str],
    pub neg_values: &'a [f64],
    pub pos_str: &'a [&'a str],
    pub pos_values: &'a [f64],
    pub frac_nonzero: Num,
    pub freq_hist_data_bar_heights: &'a [u64],
    pub freq_hist_data_bar_values: &'a [f64],
    pub logits_hist_data_bar_heights: &'a [u64],
    pub logits_hist_data_bar_values: &'a [f64],
    pub decoder_weights_dist: &'a [f64],
    pub sourceSetName: Option<&'a str>,
}

#[derive(Serialize)]
pub struct Activation<'a> {
    pub id: String,
    pub tokens: &'a [&'a str],
    pub index: u32,
    pub layer: &'a str,
    pub modelId: &'a str,
    pub maxValue: f64,
    pub maxValueTokenIndex: usize,
    pub minValue: f64,
    pub values: &'a [f64],
    pub creatorId: &'a str,
    pub dataSource: Option<&'a str>,
    pub dataIndex: Option<&'a str>,
    pub dfaValues: Vec<f64>,
    pub dfaTargetIndex: Option<i64>,
    pub dfaMaxValue: Option<f64>,
    pub createdAt: &'a str,
    pub lossValues: Vec<f64>,
    pub logitContributions: Option<&'a str>,
    pub binMin: Num,
    pub binMax: Num,
    pub binContains: Num,
    pub qualifyingTokenIndex: i64,
    pub zIndices: Option<Vec<Vec<i64>>>,
    pub zValues: Option<Vec<f64>>,
}

/// `{layer}-{sae_set}` plus `__{suffix}` when there is one.
pub fn source_id(layer: u32, sae_set: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(s) if !s.is_empty() => format!("{layer}-{sae_set}__{s}"),
        _ => format!("{layer}-{sae_set}"),
    }
}

/// The script's `FastPseudoCuid`: `c{pid:04x}{unix seconds:08x}{counter:08x}`, 25 characters.
/// Shared by the threads writing batches (the counter is atomic).
#[derive(Debug)]
pub struct PseudoCuid {
    prefix: String,
    counter: AtomicU64,
}

impl Default for PseudoCuid {
    fn default() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PseudoCuid {
            prefix: format!("c{:04x}{secs:08x}", std::process::id()),
            counter: AtomicU64::new(0),
        }
    }
}

impl PseudoCuid {
    /// The next id.
    pub fn generate(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut s = format!("{}{n:08x}", self.prefix);
        s.truncate(25);
        s
    }
}

fn jsonl_row(w: &mut dyn Write, row: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, row)?;
    w.write_all(b"\n")
}

/// Writes `release.jsonl`, `model.jsonl`, `sourceset.jsonl`, `source.jsonl` into `dir`.
#[allow(clippy::too_many_arguments)]
pub fn write_metadata(
    dir: &Path,
    b: &batch::Batch<'_>,
    source_id: &str,
    meta: &BulkMeta,
    sizes: &ModelSizes,
    n_prompts: u64,
    n_tokens: u32,
    dataset: &str,
) -> Result<()> {
    let at = meta.created_at.as_str();
    let release = SourceRelease {
        name: &meta.release_id,
        description: &meta.release_title,
        creatorName: &meta.creator_name,
        creatorId: &meta.creator_id,
        visibility: "PUBLIC",
        isNewUi: false,
        featured: false,
        descriptionShort: Some(&meta.release_title),
        urls: if meta.url.is_empty() {
            vec![]
        } else {
            vec![meta.url.as_str()]
        },
        creatorEmail: None,
        creatorNameShort: Some(&meta.creator_name),
        defaultSourceSetName: None,
        defaultSourceId: None,
        defaultUmapSourceIds: vec![],
        createdAt: at,
    };
    write_atomic(&dir.join("release.jsonl"), |w| jsonl_row(w, &release))?;
    let model = Model {
        id: &b.model_id,
        instruct: b.model_id.ends_with("-it"),
        creatorId: &meta.creator_id,
        displayNameShort: &b.model_id,
        displayName: &b.model_id,
        tlensId: None,
        dimension: sizes.dimension,
        visibility: "PUBLIC",
        defaultSourceSetName: None,
        defaultSourceId: None,
        inferenceEnabled: false,
        layers: sizes.layers,
        neuronsPerLayer: sizes.neurons_per_layer,
        createdAt: at,
        owner: "",
        updatedAt: at,
        website: None,
    };
    write_atomic(&dir.join("model.jsonl"), |w| jsonl_row(w, &model))?;
    let set = SourceSet {
        modelId: &b.model_id,
        name: &b.sae_set,
        creatorId: &meta.creator_id,
        hasDashboards: true,
        visibility: "PUBLIC",
        description: &meta.source_set_description,
        r#type: "",
        creatorName: &meta.creator_name,
        urls: vec![],
        creatorEmail: None,
        releaseName: Some(&meta.release_id),
        defaultOfModelId: None,
        defaultRange: 1,
        defaultShowBreaks: true,
        showDfa: false,
        showCorrelated: false,
        showHeadAttribution: false,
        showUmap: false,
        createdAt: at,
    };
    write_atomic(&dir.join("sourceset.jsonl"), |w| jsonl_row(w, &set))?;
    let source = Source {
        id: source_id,
        modelId: &b.model_id,
        setName: &b.sae_set,
        creatorId: &meta.creator_id,
        hasDashboards: true,
        inferenceEnabled: false,
        inferenceHosts: vec![],
        saelensConfig: None,
        saelensRelease: None,
        saelensSaeId: None,
        hfRepoId: meta.hf_repo_id.as_deref(),
        hfFolderId: meta.hf_folder_id.as_deref(),
        visibility: "PUBLIC",
        defaultOfModelId: None,
        hasUmap: false,
        hasUmapLogSparsity: false,
        hasUmapClusters: false,
        num_prompts: Some(n_prompts),
        num_tokens_in_prompt: Some(n_tokens),
        dataset: Some(dataset),
        notes: None,
        createdAt: at,
    };
    write_atomic(&dir.join("source.jsonl"), |w| jsonl_row(w, &source))
}

/// Writes `path` gzipped (level 5, as the script), streaming: `rows` writes JSON text through
/// a 256 KiB buffer into the encoder ([`crate::gz`]), which writes into the file's buffer.
///
/// The buffer in front of the encoder matters: serde_json writes each token separately, and an
/// encoder runs on every `write` it gets (flate2's also clears its 32 KiB output buffer each
/// time: unbuffered, the export spent most of its time in `memset`).
pub(crate) fn gz(
    path: &Path,
    rows: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    write_atomic(path, |w| {
        let mut enc = BufWriter::with_capacity(1 << 18, GzWriter::new(w, 5));
        rows(&mut enc)?;
        enc.into_inner().map_err(|e| e.into_error())?.finish()?;
        Ok(())
    })
}

/// Writes `features/{name}.jsonl.gz` and `activations/{name}.jsonl.gz` of one batch;
/// `extras[i]` belongs to `b.features[i]` (its decoder neighbours are `topkCosSim*`).
pub fn write_batch(
    dir: &Path,
    name: &str,
    b: &batch::Batch<'_>,
    extras: &[Extras],
    source_id: &str,
    meta: &BulkMeta,
    cuid: &PseudoCuid,
) -> Result<()> {
    let (acts, feats) = rayon::join(
        || write_activations(dir, name, b, source_id, meta, cuid),
        || write_features(dir, name, b, extras, source_id, meta),
    );
    acts.and(feats)
}

fn write_activations(
    dir: &Path,
    name: &str,
    b: &batch::Batch<'_>,
    source_id: &str,
    meta: &BulkMeta,
    cuid: &PseudoCuid,
) -> Result<()> {
    let at = meta.created_at.as_str();
    let creator = meta.creator_id.as_str();
    gz(
        &dir.join("activations").join(format!("{name}.jsonl.gz")),
        |w| {
            for f in &b.features {
                for a in &f.activations {
                    let (max_i, max_v) = argmax(&a.values);
                    let min_v = a.values.iter().copied().fold(f64::INFINITY, f64::min);
                    let row = Activation {
                        id: cuid.generate(),
                        tokens: &a.tokens,
                        index: f.feature_index,
                        layer: source_id,
                        modelId: &b.model_id,
                        maxValue: max_v,
                        maxValueTokenIndex: max_i,
                        minValue: if a.values.is_empty() { 0.0 } else { min_v },
                        values: &a.values,
                        creatorId: creator,
                        dataSource: None,
                        dataIndex: None,
                        dfaValues: vec![],
                        dfaTargetIndex: None,
                        dfaMaxValue: None,
                        createdAt: at,
                        lossValues: vec![],
                        logitContributions: None,
                        binMin: a.bin_min,
                        binMax: a.bin_max,
                        binContains: a.bin_contains,
                        qualifyingTokenIndex: a.qualifying_token_index,
                        zIndices: None,
                        zValues: None,
                    };
                    jsonl_row(w, &row)?;
                }
            }
            Ok(())
        },
    )
}

fn write_features(
    dir: &Path,
    name: &str,
    b: &batch::Batch<'_>,
    extras: &[Extras],
    source_id: &str,
    meta: &BulkMeta,
) -> Result<()> {
    let at = meta.created_at.as_str();
    let creator = meta.creator_id.as_str();
    let none = Extras::default();
    gz(
        &dir.join("features").join(format!("{name}.jsonl.gz")),
        |w| {
            for (i, f) in b.features.iter().enumerate() {
                let ex = extras.get(i).unwrap_or(&none);
                let max_act_approx = f
                    .activations
                    .iter()
                    .map(|a| argmax(&a.values).1)
                    .fold(0.0, f64::max);
                let row = Feature {
                    modelId: &b.model_id,
                    layer: source_id,
                    index: f.feature_index,
                    creatorId: Some(creator),
                    createdAt: at,
                    maxActApprox: max_act_approx,
                    hasVector: !f.vector.is_empty(),
                    vector: &f.vector,
                    vectorLabel: None,
                    vectorDefaultSteerStrength: Num::Int(10),
                    hookName: Some(&meta.hook_name),
                    topkCosSimIndices: &ex.decoder_cosine_indices,
                    topkCosSimValues: &ex.decoder_cosine_values,
                    neuron_alignment_indices: &f.neuron_alignment_indices,
                    neuron_alignment_values: &f.neuron_alignment_values,
                    neuron_alignment_l1: &f.neuron_alignment_l1,
                    correlated_neurons_indices: &f.correlated_neurons_indices,
                    correlated_neurons_pearson: &f.correlated_neurons_pearson,
                    correlated_neurons_l1: &f.correlated_neurons_l1,
                    correlated_features_indices: &f.correlated_features_indices,
                    correlated_features_pearson: &f.correlated_features_pearson,
                    correlated_features_l1: &f.correlated_features_l1,
                    neg_str: &f.neg_str,
                    neg_values: &f.neg_values,
                    pos_str: &f.pos_str,
                    pos_values: &f.pos_values,
                    frac_nonzero: f.frac_nonzero,
                    freq_hist_data_bar_heights: &f.freq_hist_data_bar_heights,
                    freq_hist_data_bar_values: &f.freq_hist_data_bar_values,
                    logits_hist_data_bar_heights: &f.logits_hist_data_bar_heights,
                    logits_hist_data_bar_values: &f.logits_hist_data_bar_values,
                    decoder_weights_dist: &f.decoder_weights_dist,
                    sourceSetName: None,
                };
                jsonl_row(w, &row)?;
            }
            Ok(())
        },
    )
}

/// First index of the maximum and the maximum (Python's `max(values)`, `values.index(max)`);
/// `(0, 0.0)` for no values.
fn argmax(values: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, &v) in values.iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    if values.is_empty() {
        (0, 0.0)
    } else {
        best
    }
}

/// Reads a `.jsonl.gz` file back as JSON rows (for checks and tools).
pub fn read_jsonl_gz(path: &Path) -> Result<Vec<serde_json::Value>> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| flate2::read::GzDecoder::new(f).read_to_string(&mut text))
        .map_err(|e| crate::Error::io(path, e))?;
    text.lines()
        .map(|l| {
            serde_json::from_str(l).map_err(|e| {
                crate::Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })
        })
        .collect()
}

/// Entries a bulk export writes in a source directory (`{model}/{source}/`).
const SOURCE_ENTRIES: [&str; 11] = [
    "explanations",
    "explanation-scores",
    "config",
    "features",
    "activations",
    "release.jsonl",
    "model.jsonl",
    "sourceset.jsonl",
    "source.jsonl",
    crate::extras::REPORT_FILE,
    crate::extras::EXTRAS_DIR,
];

/// Checks that `dir` holds only what a bulk export writes (the entries above, gzipped JSONL
/// files in the two subfolders, temporary files), so `--force` may replace it.
pub fn check_is_source_dir(dir: &Path) -> Result<()> {
    let foreign = |p: &Path| {
        Error::Usage(format!(
            "{} is not a scopedex bulk export ({} was not written by one); --force replaces \
             only earlier exports, so nothing was changed",
            dir.display(),
            p.display()
        ))
    };
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(crate::atomic::TMP_PREFIX) {
            continue;
        }
        if !SOURCE_ENTRIES.contains(&name.as_str()) {
            return Err(foreign(&path));
        }
        if name == crate::extras::EXTRAS_DIR {
            crate::extras::check_is_extras_dir(&path)?;
        } else if [
            "features",
            "activations",
            "explanations",
            "explanation-scores",
            "config",
        ]
        .contains(&name.as_str())
        {
            if !path.is_dir() {
                return Err(foreign(&path));
            }
            let ext = if name == "config" {
                ".jsonl"
            } else {
                ".jsonl.gz"
            };
            for inner in std::fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
                let inner = inner.map_err(|e| Error::io(&path, e))?;
                let n = inner.file_name().to_string_lossy().into_owned();
                if !(n.ends_with(ext) || n.starts_with(crate::atomic::TMP_PREFIX)) {
                    return Err(foreign(&inner.path()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_argmax() {
        assert_eq!(source_id(15, "res-jb", None), "15-res-jb");
        assert_eq!(source_id(3, "x", Some("v2")), "3-x__v2");
        let c = PseudoCuid::default();
        let (a, b) = (c.generate(), c.generate());
        assert_ne!(a, b);
        assert!(a.len() <= 25 && a.starts_with('c'));
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), (1, 3.0));
        assert_eq!(argmax(&[]), (0, 0.0));
    }
}
