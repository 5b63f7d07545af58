//! What an export writes beside Neuronpedia's files: `scopedex-export.json` (which source each
//! statistic came from, see [`Provenance`]) and `scopedex-extras/batch-{i}.jsonl` (per feature,
//! the statistics SAEDashboard has no field for: co-occurrence NPMI / Jaccard and decoder-cosine
//! neighbours, [`crate::batch::Extras`]).
//!
//! They are separate files, not extra keys in the batch or bulk rows, because Neuronpedia's
//! importers pass each row to the database as is (`prisma.….create({ data: line })` in
//! `apps/webapp/app/api/admin/import/route.ts`), which rejects unknown keys. Neither importer
//! looks at these names: the batch uploader globs `batch-*.json`, the bulk importer reads fixed
//! file names and the `features/` and `activations/` folders.
use std::path::Path;

use serde::Serialize;

use crate::atomic::write_atomic;
use crate::batch::Extras;
use crate::error::{Error, Result};

/// File name of the export report.
pub const REPORT_FILE: &str = "scopedex-export.json";
/// Folder of the per-batch extras.
pub const EXTRAS_DIR: &str = "scopedex-extras";

/// Which source each statistic of the export came from; every missing source is named with the
/// reason, and the fields it would fill are empty lists.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Provenance {
    /// `freq_hist_data_bar_*`: exact from the activation log, or re-binned.
    pub activation_histogram: String,
    /// `bin_contains` of the interval examples: counted from the log, or estimated.
    pub bin_contains: String,
    /// `logits_hist_data_bar_*`.
    pub logit_histogram: String,
    /// `correlated_features_*` (Pearson / activation cosine from the log).
    pub correlated_features: String,
    /// Decoder-cosine neighbours (`topkCosSim*` in bulk rows, extras files).
    pub decoder_cosine: String,
    /// Co-occurrence NPMI / Jaccard (extras files).
    pub cooccurrence: String,
    /// The Neuronpedia model id and where it came from.
    pub model_id: String,
    /// See `model_id`.
    pub model_id_source: String,
    /// `dataset` and where it came from.
    pub dataset: String,
    /// See `dataset`.
    pub dataset_source: String,
    /// Model layers written to `model.jsonl`.
    pub layers: u32,
    /// Where `layers` came from.
    pub layers_source: String,
    /// `neuronsPerLayer` written to `model.jsonl`: the exported SAE's `d_sae`.
    pub neurons_per_layer: u32,
}

/// `scopedex-export.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    /// The SAE exported.
    pub sae: &'a str,
    /// `batch` or `bulk`.
    pub format: &'a str,
    /// First exported feature.
    pub first_feature: u32,
    /// One past the last exported feature.
    pub end_feature: u32,
    /// Batch files written.
    pub batches: usize,
    /// Example contexts written.
    pub activations: u64,
    /// Sources of each statistic.
    pub provenance: &'a Provenance,
}

/// Writes `scopedex-export.json` into `dir`.
pub fn write_report(dir: &Path, report: &Report<'_>) -> Result<()> {
    write_atomic(&dir.join(REPORT_FILE), |w| {
        serde_json::to_writer_pretty(&mut *w, report)?;
        w.write_all(b"\n")
    })
}

/// Writes `scopedex-extras/{name}.jsonl` into `dir` (the folder must exist).
pub fn write_extras(dir: &Path, name: &str, extras: &[Extras]) -> Result<()> {
    let path = dir.join(EXTRAS_DIR).join(format!("{name}.jsonl"));
    write_atomic(&path, |w| {
        for e in extras {
            serde_json::to_writer(&mut *w, e)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })
}

/// Checks that `dir`, if it exists, holds only what an export writes there (`batch-*.jsonl`
/// and temporary files), so `--force` may replace it; a missing `dir` is fine.
pub fn check_is_extras_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(foreign(dir, dir)),
        // Nothing there (or a parent is not a directory: creating the output reports that).
        Err(_) => return Ok(()),
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("batch-") && name.ends_with(".jsonl"))
            || name.starts_with(crate::atomic::TMP_PREFIX);
        if !ours || !entry.path().is_file() {
            return Err(foreign(dir, &entry.path()));
        }
    }
    Ok(())
}

fn foreign(dir: &Path, p: &Path) -> Error {
    Error::Usage(format!(
        "{} is not a scopedex extras folder ({} was not written by an export); move it away \
         to export here, nothing was changed",
        dir.display(),
        p.display()
    ))
}
