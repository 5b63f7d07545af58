//! Export an index's features as Neuronpedia dashboards, without re-running the model.
//!
//! Two layouts (see [`Format`]):
//! - **batch** — SAEDashboard's `batch-{i}.json` files (what `NeuronpediaRunner` writes and
//!   Neuronpedia's importer reads), plus `skipped_indexes.json` (always empty: every feature of
//!   the range is exported, dead ones included, as SAEDashboard does at HEAD).
//! - **bulk** — Neuronpedia's bulk-import layout that `neuronpedia_export.py` derives from those
//!   batches ([`bulk`]).
//!
//! Features are split into batches as SAEDashboard's `get_feature_batches` does
//! (`np.array_split` into `ceil(n / batch_size)` near-equal chunks, numbered from 0 over the
//! exported range). Each feature is read, converted and dropped in turn; only one batch is held
//! at a time, so memory is bounded by `batch_size` whatever `d_sae` is. Every file is written
//! under a temporary name, fsynced and renamed ([`atomic`]): a `batch-{i}` file is complete
//! or absent, even when the disk fills midway.
//!
//! ## How our statistics map onto SAEDashboard's fields
//! | field | from |
//! | --- | --- |
//! | `model_id`, `sae_set`, `sae_id_suffix` | options (default: manifest model id, SAE id, `null`) |
//! | `layer` | `N` of the SAE's `hook_in` `blocks.N.…` (0 if none) |
//! | `frac_nonzero` | `FeatureRecord::density` (BOS excluded by default), 5 decimals |
//! | `pos_str`/`pos_values`, `neg_str`/`neg_values` | `logit_pos` / `logit_neg` (most negative first) |
//! | `freq_hist_data_bar_values` / `_heights` | our log-spaced `act_hist`: midpoints of the bin edges / counts, trimmed to the first..last non-empty bin |
//! | `logits_hist_data_bar_*` | `[]`: the index keeps only the extreme logit effects, not their distribution over the vocabulary (SAEDashboard's value without a logits histogram) |
//! | `correlated_features_indices` | same-SAE co-occurrence partners (self excluded), best 3 by NPMI |
//! | `correlated_features_pearson` | their NPMI (a correlation of firing, in [-1, 1]) |
//! | `correlated_features_l1` | their Jaccard index (SAEDashboard fills `_l1` with a similarity too: decoder cosine) |
//! | `neuron_alignment_*`, `correlated_neurons_*`, `decoder_weights_dist`, `vector` | `[]` (not computed; SAEDashboard's defaults) |
//! | `n_prompts_total` / `n_tokens_in_prompt` / `dataset` | contexts in the index / `ctx_len` / corpus file names (or `dataset` option) |
//! | `activations` | stored examples: the top list (`bin_min` = -1, `bin_contains` = -1, `bin_max` = the feature's max act), then interval samples from the highest interval down, with `bin_min`/`bin_max` = `[i·max/N, (i+1)·max/N]` (3 decimals, as SAEDashboard's group titles) and `bin_contains` = the fraction of all counted positions in that interval, estimated from the histogram ([`batch::interval_fraction`]) |
//! | `tokens` / `values` | the example's context window minus position 0 when it is BOS (SAEDashboard's full-prompt window starts at position 1) / the activation per token, 5 decimals |
//! | `qualifying_token_index` | the example's `max_pos` minus 1 (SAEDashboard's `-1`): an index into `tokens`; without a BOS nothing is dropped and it is `max_pos` |
//!
//! Token strings are the raw vocabulary pieces with SAEDashboard's replacements ([`vocab`]).
//! Our top list ranks *contexts* by their max activation (SAEDashboard ranks token positions,
//! so one prompt may repeat there) and our interval samples are contexts filed by their max
//! activation.
#![warn(missing_docs)]

pub mod atomic;
pub mod batch;
pub mod bulk;
mod error;
pub mod range;
pub mod validate;
pub mod vocab;

use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use scopedex_store::IndexReader;

pub use error::{Error, Result};
pub use vocab::Vocab;

/// Features per batch file by default (SAEDashboard's `n_features_at_a_time`).
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// Output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// SAEDashboard's `batch-{i}.json`.
    #[default]
    Batch,
    /// Neuronpedia's bulk-import layout under `{out}/{model_id}/{source_id}/`.
    Bulk,
}

/// What to export and where.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// SAE id in the index.
    pub sae: String,
    /// Output directory (created; must be empty unless `force`).
    pub out: PathBuf,
    /// Neuronpedia model id (default: the manifest's model id, see [`default_model_id`]).
    pub model_id: Option<String>,
    /// Neuronpedia source-set name (default: the SAE id).
    pub sae_set: Option<String>,
    /// `sae_id_suffix` (default `null`).
    pub sae_id_suffix: Option<String>,
    /// `dataset` (default: the corpus files' paths, comma-separated).
    pub dataset: Option<String>,
    /// Features to export (default: all).
    pub features: Option<Range<u32>>,
    /// Features per batch file.
    pub batch_size: usize,
    /// Layout.
    pub format: Format,
    /// Write into a non-empty directory, replacing a previous export's files.
    pub force: bool,
    /// Bulk only: Neuronpedia creator id (default [`bulk::FALLBACK_CREATOR_ID`]).
    pub creator_id: Option<String>,
    /// Bulk only: creator name (default `scopedex`).
    pub creator_name: Option<String>,
}

impl ExportOptions {
    /// Options for `sae` into `out` with every default.
    pub fn new(sae: impl Into<String>, out: impl Into<PathBuf>) -> Self {
        ExportOptions {
            sae: sae.into(),
            out: out.into(),
            model_id: None,
            sae_set: None,
            sae_id_suffix: None,
            dataset: None,
            features: None,
            batch_size: DEFAULT_BATCH_SIZE,
            format: Format::Batch,
            force: false,
            creator_id: None,
            creator_name: None,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Directory holding the files (`out`, or `out/{model_id}/{source_id}` for bulk).
    pub dir: PathBuf,
    /// Number of batches written.
    pub batches: usize,
    /// The feature range of each batch, in order.
    pub batch_ranges: Vec<Range<u32>>,
    /// Features exported.
    pub features: u64,
    /// Example contexts exported.
    pub activations: u64,
}

/// The manifest's model id made into a Neuronpedia-style id: its last path component,
/// lowercased, anything outside `[a-z0-9._-]` replaced by `-` (e.g. `smollm2-135m`).
pub fn default_model_id(id: &str) -> String {
    let last = id.rsplit(['/', '\\']).next().unwrap_or(id);
    let s: String = last
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("model{s}")
    } else {
        s
    }
}

fn check_name(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\\', '\0']) {
        return Err(Error::Usage(format!(
            "{what} {s:?} cannot be used as a directory name"
        )));
    }
    Ok(())
}

fn is_batch_file(name: &str) -> bool {
    name.starts_with("batch-") && name.ends_with(".json")
}

/// Exports `opts.sae` of `reader` as Neuronpedia dashboards; `progress` advances by one per
/// feature (its length is set here).
pub fn export_neuronpedia(
    reader: &IndexReader,
    vocab: &Vocab,
    opts: &ExportOptions,
    progress: &ProgressBar,
) -> Result<ExportReport> {
    let manifest = reader.manifest();
    let entry = reader.sae(&opts.sae)?;
    if opts.batch_size == 0 {
        return Err(Error::Usage("--batch-size must be at least 1".into()));
    }
    let range = match &opts.features {
        Some(r) => range::check_range(u64::from(r.start)..u64::from(r.end), entry.d_sae)?,
        None => range::check_range(0..u64::from(entry.d_sae), entry.d_sae)?,
    };
    let model_id = opts
        .model_id
        .clone()
        .unwrap_or_else(|| default_model_id(&manifest.model.id));
    let sae_set = opts.sae_set.clone().unwrap_or_else(|| entry.id.clone());
    let layer = batch::layer_of(&entry.hook_in);
    let dataset = opts.dataset.clone().unwrap_or_else(|| {
        manifest
            .corpus
            .iter()
            .map(|c| c.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    });
    let n_prompts_total = if manifest.contexts > 0 {
        manifest.contexts
    } else {
        reader.num_contexts()
    };
    let cx = batch::FeatureContext {
        sae: entry.id.clone(),
        n_prompts_total,
        n_tokens_in_prompt: manifest.ctx_len,
        dataset: dataset.clone(),
        drop_first: manifest.tokenizer.bos_token_id.is_some(),
        intervals: manifest.parameters.intervals,
        summary: reader.sae_summary(&entry.id)?,
    };

    let source_id = bulk::source_id(layer, &sae_set, opts.sae_id_suffix.as_deref());
    let dir = match opts.format {
        Format::Batch => {
            atomic::prepare_dir(&opts.out, opts.force, |n| {
                is_batch_file(n) || n == "skipped_indexes.json"
            })?;
            opts.out.clone()
        }
        Format::Bulk => {
            check_name("model id", &model_id)?;
            check_name("source id", &source_id)?;
            atomic::prepare_dir(&opts.out, opts.force, |_| false)?;
            let dir = opts.out.join(&model_id).join(&source_id);
            if dir.exists() {
                // Only reachable with `force`: replace this source, keep any other.
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            for sub in ["features", "activations"] {
                let p = dir.join(sub);
                std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
            dir
        }
    };

    let created_at = scopedex_store::now_rfc3339();
    let meta = bulk::BulkMeta {
        creator_id: opts
            .creator_id
            .clone()
            .unwrap_or_else(|| bulk::FALLBACK_CREATOR_ID.to_string()),
        creator_name: opts
            .creator_name
            .clone()
            .unwrap_or_else(|| "scopedex".into()),
        release_id: sae_set.clone(),
        release_title: format!("{sae_set} ({model_id}, exported by scopedex)"),
        url: String::new(),
        source_set_description: format!(
            "SAE {} reading {} ({} features)",
            entry.id, entry.hook_in, entry.d_sae
        ),
        hf_repo_id: None,
        hf_folder_id: None,
        hook_name: entry.hook_in.clone(),
        created_at,
    };
    match opts.format {
        Format::Batch => write_skipped(&dir, &model_id, layer, &sae_set)?,
        Format::Bulk => {
            let header = batch::Batch {
                model_id: model_id.clone(),
                layer,
                sae_set: sae_set.clone(),
                sae_id_suffix: opts.sae_id_suffix.clone(),
                features: Vec::new(),
            };
            bulk::write_metadata(
                &dir,
                &header,
                &source_id,
                &meta,
                n_prompts_total,
                manifest.ctx_len,
                &dataset,
            )?;
        }
    }

    let batch_ranges = range::batches(range.clone(), opts.batch_size);
    progress.set_length(u64::from(range.end - range.start));
    let mut cuid = bulk::PseudoCuid::default();
    let mut report = ExportReport {
        dir: dir.clone(),
        batches: 0,
        batch_ranges: batch_ranges.clone(),
        features: 0,
        activations: 0,
    };
    for (i, r) in batch_ranges.iter().enumerate() {
        let mut b = batch::Batch {
            model_id: model_id.clone(),
            layer,
            sae_set: sae_set.clone(),
            sae_id_suffix: opts.sae_id_suffix.clone(),
            features: Vec::with_capacity(r.len()),
        };
        for f in r.clone() {
            let feat = batch::build_feature(reader, &cx, vocab, f)?;
            report.activations += feat.activations.len() as u64;
            b.features.push(feat);
            progress.inc(1);
        }
        let name = format!("batch-{i}");
        match opts.format {
            Format::Batch => {
                atomic::write_atomic(&dir.join(format!("{name}.json")), |w| {
                    serde_json::to_writer(&mut *w, &b).map_err(std::io::Error::from)
                })?;
            }
            Format::Bulk => bulk::write_batch(&dir, &name, &b, &source_id, &meta, &mut cuid)?,
        }
        report.batches += 1;
        report.features += b.features.len() as u64;
    }
    atomic::sync_dir(&dir);
    Ok(report)
}

/// SAEDashboard's `skipped_indexes.json` (`layer` as a string; nothing is skipped).
fn write_skipped(dir: &Path, model_id: &str, layer: u32, sae_set: &str) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Skipped<'a> {
        model_id: &'a str,
        layer: String,
        sae_set: &'a str,
        log_sparsity: i32,
        skipped_indexes: [u32; 0],
    }
    let s = Skipped {
        model_id,
        layer: layer.to_string(),
        sae_set,
        log_sparsity: -6,
        skipped_indexes: [],
    };
    atomic::write_atomic(&dir.join("skipped_indexes.json"), |w| {
        serde_json::to_writer(&mut *w, &s).map_err(std::io::Error::from)
    })
}

#[cfg(test)]
mod tests;
