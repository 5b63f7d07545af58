//! Export an index's features as Neuronpedia dashboards, without re-running the model.
//!
//! Two layouts (see [`Format`]):
//! - **batch** — SAEDashboard's `batch-{i}.json` files (what `NeuronpediaRunner` writes and
//!   Neuronpedia's importer reads), plus `skipped_indexes.json` (always empty: every feature of
//!   the range is exported, dead ones included, as SAEDashboard does at HEAD).
//! - **bulk** — Neuronpedia's bulk-import layout that `neuronpedia_export.py` derives from those
//!   batches ([`bulk`]).
//!
//! Both also get `scopedex-export.json` (which source each statistic came from) and
//! `scopedex-extras/batch-{i}.jsonl` (statistics with no Neuronpedia field), see [`extras`].
//!
//! Features are split into batches as SAEDashboard's `get_feature_batches` does
//! (`np.array_split` into `ceil(n / batch_size)` near-equal chunks, numbered from 0 over the
//! exported range). Batches are built and written in parallel (rayon; features of a batch in
//! parallel too), at most two per thread in flight, so memory is bounded by the batch size
//! whatever `d_sae` is — plus, when the index has one, the activation log, read once and held
//! for the whole export ([`actlog`], 16 bytes per logged entry). Every file is written under a
//! temporary name, fsynced and renamed ([`atomic`]): a `batch-{i}` file is complete or absent,
//! even when the disk fills midway.
//!
//! ## How our statistics map onto SAEDashboard's fields
//! | field | from |
//! | --- | --- |
//! | `model_id`, `sae_set`, `sae_id_suffix` | options (default: the manifest's model id made a Neuronpedia id ([`names::default_model_id`]), the SAE id, `null`) |
//! | `layer` | `N` of the SAE's `hook_in` `blocks.N.…` (0 if none) |
//! | `frac_nonzero` | `FeatureRecord::density` (BOS excluded by default), 5 decimals |
//! | `pos_str`/`pos_values`, `neg_str`/`neg_values` | `logit_pos` / `logit_neg` (most negative first) |
//! | `freq_hist_data_bar_values` / `_heights` | 50 equal-width bins, exact from the activation log, else re-binned from the index's log-spaced histogram ([`hist`]) |
//! | `logits_hist_data_bar_*` | the index's equal-width `logit_hist` over the whole vocabulary (bar centres); `[]` for indexes without one |
//! | `correlated_features_indices` / `_pearson` | from the activation log: the 3 features with the highest Pearson correlation over all counted positions ([`actlog`]); `[]` without a log |
//! | `correlated_features_l1` | their activation cosine similarity (SAEDashboard's `cossim`, which it writes to `_l1`) |
//! | `neuron_alignment_*`, `correlated_neurons_*`, `decoder_weights_dist`, `vector` | `[]` (not computed; SAEDashboard's defaults) |
//! | `n_prompts_total` / `n_tokens_in_prompt` / `dataset` | contexts in the index / `ctx_len` / a short corpus name ([`names::default_dataset`]) or the `dataset` option |
//! | `activations` | stored examples: the top list (`bin_min` = -1, `bin_contains` = -1, `bin_max` = the feature's max act), then interval samples from the highest interval down, with `bin_min`/`bin_max` = `[i·max/N, (i+1)·max/N]` (3 decimals, as SAEDashboard's group titles) and `bin_contains` = the fraction of all counted positions in that interval, counted from the activation log or estimated from the histogram ([`batch::interval_bin`]) |
//! | `tokens` / `values` | the example's context window minus position 0 when it is BOS (SAEDashboard's full-prompt window starts at position 1) / the activation per token, 5 decimals |
//! | `qualifying_token_index` | the example's `max_pos` minus 1 (SAEDashboard's `-1`): an index into `tokens`; without a BOS nothing is dropped and it is `max_pos` |
//!
//! Bulk rows also carry `topkCosSimIndices` / `topkCosSimValues`: same-SAE decoder-cosine
//! neighbours, as the index stores them, or (older indexes) computed from the SAE's weights
//! ([`decoder`]); `model.jsonl` gets `layers` (manifest, else derived
//! from the hook names, [`names::model_layers`]), `neuronsPerLayer` (the SAE's `d_sae`) and
//! `dimension` (`d_model`).
//!
//! Token strings are the raw vocabulary pieces with SAEDashboard's replacements ([`vocab`]).
//! Our top list ranks *contexts* by their max activation (SAEDashboard ranks token positions,
//! so one prompt may repeat there) and our interval samples are contexts filed by their max
//! activation.
#![warn(missing_docs)]

pub mod actlog;
pub mod atomic;
pub mod batch;
pub mod bulk;
pub mod decoder;
mod error;
pub mod explanations;
pub mod extras;
pub mod gz;
pub mod hist;
pub mod names;
pub mod range;
pub mod validate;
pub mod vocab;

use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;
use scopedex_store::IndexReader;

pub use error::{Error, Result};
pub use extras::Provenance;
pub use names::default_model_id;
pub use vocab::Vocab;

use actlog::{ActivationLog, Scratch};
use batch::{Built, Extras, FeatureContext, Sources};
use hist::ActHistSource;

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

impl Format {
    /// The name used on the command line and in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Batch => "batch",
            Format::Bulk => "bulk",
        }
    }
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
    /// `dataset` (default: a short name of the corpus, see [`names::default_dataset`]).
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
    /// Load the SAE from the manifest's `source_path` for decoder-cosine neighbours
    /// (default true).
    pub decoder_cosine: bool,
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
            decoder_cosine: true,
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
    /// Explanations exported ([`explanations`]).
    pub explanations: usize,
    /// Which source each statistic came from (also in `scopedex-export.json`).
    pub provenance: Provenance,
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

/// Totals of one written batch.
struct BatchTotals {
    features: u64,
    activations: u64,
    with_logit_hist: u64,
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
    let mut prov = Provenance::default();
    let model_id = match &opts.model_id {
        Some(id) => {
            names::check_model_id(id)?;
            prov.model_id_source = "--model-id".into();
            id.clone()
        }
        None => {
            prov.model_id_source = format!(
                "derived from the manifest's model id {:?} (lowercase [a-z0-9-])",
                manifest.model.id
            );
            default_model_id(&manifest.model.id)
        }
    };
    let dataset = match &opts.dataset {
        Some(d) => {
            prov.dataset_source = "--dataset".into();
            d.clone()
        }
        None => {
            prov.dataset_source = format!(
                "derived from the {} corpus file(s) of the manifest",
                manifest.corpus.len()
            );
            names::default_dataset(manifest.corpus.iter().map(|c| c.path.as_str()))
        }
    };
    let (layers, layers_source) = names::model_layers(manifest);
    prov.model_id = model_id.clone();
    prov.dataset = dataset.clone();
    prov.layers = layers;
    prov.layers_source = layers_source.describe().into();
    prov.neurons_per_layer = entry.d_sae;
    let sae_set = opts.sae_set.clone().unwrap_or_else(|| entry.id.clone());
    let layer = batch::layer_of(&entry.hook_in);
    let n_prompts_total = if manifest.contexts > 0 {
        manifest.contexts
    } else {
        reader.num_contexts()
    };
    let cx = FeatureContext {
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
            extras::check_is_extras_dir(&opts.out.join(extras::EXTRAS_DIR))?;
            atomic::prepare_dir(&opts.out, opts.force, |n| {
                is_batch_file(n)
                    || n == "skipped_indexes.json"
                    || n == extras::REPORT_FILE
                    || n == extras::EXTRAS_DIR
                    || explanations::ENTRIES.contains(&n)
            })?;
            opts.out.clone()
        }
        Format::Bulk => {
            check_name("model id", &model_id)?;
            check_name("source id", &source_id)?;
            atomic::prepare_dir(&opts.out, opts.force, |_| false)?;
            let dir = opts.out.join(&model_id).join(&source_id);
            if dir.exists() {
                // Only reachable with `force`: replace this source, keep any other, and never
                // delete a folder this exporter did not write.
                bulk::check_is_source_dir(&dir)?;
                std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            }
            for sub in ["features", "activations"] {
                let p = dir.join(sub);
                std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
            dir
        }
    };
    let extras_dir = dir.join(extras::EXTRAS_DIR);
    std::fs::create_dir_all(&extras_dir).map_err(|e| Error::io(&extras_dir, e))?;

    // Sources beyond the per-feature records.
    let log = match &cx.summary {
        Some(s) => ActivationLog::load(
            &reader.activations(&entry.id)?,
            entry.d_sae,
            manifest.parameters.exclude_bos,
            s.tokens_indexed,
        )?,
        None => None,
    };
    let hist_source = match (&log, &cx.summary) {
        (Some(_), _) => ActHistSource::ActivationLog,
        (None, Some(_)) => ActHistSource::RebinnedLogHistogram,
        (None, None) => ActHistSource::Missing,
    };
    prov.activation_histogram = hist_source.describe().into();
    let no_log = if cx.summary.is_none() {
        "the index has no SAE summary (tokens counted)"
    } else {
        "the index has no activation log (index with --keep-activations)"
    };
    match &log {
        Some(log) => {
            tracing::info!(entries = log.entries(), "activation log loaded");
            prov.bin_contains = "exact: counted from the activation log".into();
            prov.correlated_features = "Pearson correlation (and, as _l1, cosine similarity) \
                of activations over all counted positions of the index, zeros included, from \
                the activation log; the 3 best partners that fire together with the feature"
                .into();
        }
        None => {
            prov.bin_contains =
                "estimated from the log-spaced histogram (log-uniform within a bin)".into();
            prov.correlated_features = format!("missing: {no_log}; lists left empty");
        }
    }
    // Decoder neighbours: the index's own (newer indexes store them), else from the weights.
    let probe = range.start..range.end.min(range.start.saturating_add(64));
    let mut index_neighbours = false;
    for f in probe {
        if !reader.neighbours(&entry.id, f)?.is_empty() {
            index_neighbours = true;
            break;
        }
    }
    let neighbours = if !opts.decoder_cosine {
        prov.decoder_cosine = "skipped (decoder cosine disabled)".into();
        index_neighbours = false;
        None
    } else if index_neighbours {
        prov.decoder_cosine = format!(
            "cosine of W_dec rows, same-SAE neighbours stored in the index (best {} per \
             feature)",
            decoder::DECODER_NEIGHBOURS
        );
        None
    } else {
        match decoder::Decoder::load(entry) {
            Ok(d) => {
                prov.decoder_cosine = format!(
                    "cosine of W_dec rows of the SAE at {:?} (the index stores none), best {} \
                     per feature",
                    entry.source_path,
                    decoder::DECODER_NEIGHBOURS
                );
                Some(d.neighbours(range.clone()))
            }
            Err(why) => {
                prov.decoder_cosine = format!(
                    "missing: the index stores no decoder neighbours and {why}; lists left empty"
                );
                None
            }
        }
    };
    prov.cooccurrence = format!(
        "NPMI and Jaccard of same-SAE co-firing (the index's co-occurrence table) in \
         {}/batch-{{i}}.jsonl",
        extras::EXTRAS_DIR
    );
    let src = Sources {
        log: log.as_ref(),
        neighbours: neighbours.as_deref(),
        neighbours_from: range.start,
        index_neighbours,
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
    let header = batch::Batch {
        model_id: model_id.clone(),
        layer,
        sae_set: sae_set.clone(),
        sae_id_suffix: opts.sae_id_suffix.clone(),
        features: Vec::new(),
    };
    match opts.format {
        Format::Batch => write_skipped(&dir, &model_id, layer, &sae_set)?,
        Format::Bulk => {
            let sizes = bulk::ModelSizes {
                layers,
                neurons_per_layer: entry.d_sae,
                dimension: (manifest.model.d_model > 0).then_some(manifest.model.d_model),
            };
            bulk::write_metadata(
                &dir,
                &header,
                &source_id,
                &meta,
                &sizes,
                n_prompts_total,
                manifest.ctx_len,
                &dataset,
            )?;
        }
    }

    let batch_ranges = range::batches(range.clone(), opts.batch_size);
    progress.set_length(u64::from(range.end - range.start));
    let cuid = bulk::PseudoCuid::default();
    let write_one = |i: usize, r: &Range<u32>| -> Result<BatchTotals> {
        let built: Vec<Built> = r
            .clone()
            .into_par_iter()
            .map_init(Scratch::default, |scratch, f| {
                let b = batch::build_feature(reader, &cx, &src, vocab, f, scratch);
                progress.inc(1);
                b
            })
            .collect::<Result<_>>()?;
        let (features, extras): (Vec<_>, Vec<Extras>) =
            built.into_iter().map(|b| (b.feature, b.extras)).unzip();
        let b = batch::Batch {
            features,
            ..header.clone()
        };
        let name = format!("batch-{i}");
        match opts.format {
            Format::Batch => {
                atomic::write_atomic(&dir.join(format!("{name}.json")), |w| {
                    serde_json::to_writer(&mut *w, &b).map_err(std::io::Error::from)
                })?;
            }
            Format::Bulk => bulk::write_batch(&dir, &name, &b, &extras, &source_id, &meta, &cuid)?,
        }
        extras::write_extras(&dir, &name, &extras)?;
        Ok(BatchTotals {
            features: b.features.len() as u64,
            activations: b.features.iter().map(|f| f.activations.len() as u64).sum(),
            with_logit_hist: b
                .features
                .iter()
                .filter(|f| !f.logits_hist_data_bar_heights.is_empty())
                .count() as u64,
        })
    };
    // At most two batches per thread in flight: memory stays bounded by the batch size.
    let indexed: Vec<(usize, &Range<u32>)> = batch_ranges.iter().enumerate().collect();
    let mut totals = BatchTotals {
        features: 0,
        activations: 0,
        with_logit_hist: 0,
    };
    for group in indexed.chunks(2 * rayon::current_num_threads().max(1)) {
        let done: Vec<BatchTotals> = group
            .par_iter()
            .map(|&(i, r)| write_one(i, r))
            .collect::<Result<_>>()?;
        for t in done {
            totals.features += t.features;
            totals.activations += t.activations;
            totals.with_logit_hist += t.with_logit_hist;
        }
    }
    prov.logit_histogram = if totals.with_logit_hist > 0 {
        format!(
            "the index's equal-width histogram of W_dec[f]·W_U over the vocabulary ({} of {} \
             features have one)",
            totals.with_logit_hist, totals.features
        )
    } else {
        "missing: the index has no logit histograms (written before they were recorded); \
         lists left empty"
            .into()
    };
    let explained: Vec<scopedex_store::ExplanationRecord> = reader
        .explanations(&entry.id)?
        .into_iter()
        .filter(|e| range.contains(&e.feature))
        .collect();
    let explanations = explanations::write(
        &explanations::ExplanationExport {
            dir: &dir,
            model_id: &model_id,
            source_id: &source_id,
            creator_id: &meta.creator_id,
            creator_name: &meta.creator_name,
        },
        &explained,
    )?;
    extras::write_report(
        &dir,
        &extras::Report {
            sae: &entry.id,
            format: opts.format.as_str(),
            first_feature: range.start,
            end_feature: range.end,
            batches: batch_ranges.len(),
            activations: totals.activations,
            provenance: &prov,
        },
    )?;
    atomic::sync_dir(&dir);
    Ok(ExportReport {
        dir,
        batches: batch_ranges.len(),
        batch_ranges,
        features: totals.features,
        activations: totals.activations,
        explanations,
        provenance: prov,
    })
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
