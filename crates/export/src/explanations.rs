//! Explanations in Neuronpedia's export layout, and back.
//!
//! Written beside the dashboards (the bulk layout's source directory, or the batch layout's
//! output directory), as Neuronpedia's `export-data.py` writes them
//! (`../shared/reference/neuronpedia-export.md`, `autointerp.md` 1d):
//! - `explanations/batch-{n}.jsonl.gz` (gzip level 5), 1,024 rows per batch ordered by feature,
//!   with the columns `id, modelId, layer, index, authorId, description, embedding, typeName,
//!   explanationModelName, umap_x, umap_y, umap_cluster, umap_log_feature_sparsity`
//!   (`layer` is the source id, `index` the feature as a string, `embedding` and the UMAP
//!   columns `null`);
//! - `explanation-scores/batch-{n}.jsonl.gz`: Neuronpedia's `ExplanationScore` rows (`id,
//!   initiatedByUserId, value, explanationId, explanationScoreTypeName,
//!   explanationScoreModelName, jsonDetails, createdAt`), which its export leaves out: the
//!   value is the balanced accuracy, under the score types Neuronpedia already has for
//!   delphi's scorers (`eleuther_recall` = detection, `eleuther_fuzz`), `jsonDetails` holds
//!   every metric;
//! - `config/{explanation_type, explanation_model_type, explanation_score_type,
//!   explanation_score_model}.jsonl`: the lookup rows that `typeName` and the model names are
//!   foreign keys to (Neuronpedia's import takes rows that exist as they are: `ON CONFLICT DO
//!   NOTHING`).
//!
//! [`import`] reads `explanations/*.jsonl.gz` (or `.jsonl`) files of any Neuronpedia export
//! back into explanation records.
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use scopedex_store::{now_rfc3339, ExplanationRecord, ExplanationScores};

use crate::atomic::write_atomic;
use crate::bulk::{gz, PseudoCuid};
use crate::error::{Error, Result};

/// Rows per explanation batch (Neuronpedia's export).
pub const ROWS_PER_BATCH: usize = 1024;
/// `typeName` of explanations scopedex writes (defined in `config/explanation_type.jsonl`).
pub const EXPLANATION_TYPE: &str = "scopedex_delphi-quantiles";
/// Neuronpedia's score type of delphi's detection scorer.
pub const DETECTION_SCORE_TYPE: &str = "eleuther_recall";
/// Neuronpedia's score type of delphi's fuzzing scorer.
pub const FUZZING_SCORE_TYPE: &str = "eleuther_fuzz";
/// The folders and files this module writes in an export directory.
pub const ENTRIES: [&str; 3] = ["explanations", "explanation-scores", "config"];

/// One row of `explanations/batch-{n}.jsonl.gz`.
#[allow(non_snake_case)]
#[derive(Serialize)]
struct ExplanationRow<'a> {
    id: String,
    modelId: &'a str,
    layer: &'a str,
    index: String,
    authorId: &'a str,
    description: &'a str,
    embedding: Option<Vec<f32>>,
    typeName: &'a str,
    explanationModelName: &'a str,
    umap_x: Option<f64>,
    umap_y: Option<f64>,
    umap_cluster: Option<i64>,
    umap_log_feature_sparsity: Option<f64>,
}

/// Where the explanations go and under which names.
pub struct ExplanationExport<'a> {
    /// The export directory (bulk: the source directory).
    pub dir: &'a Path,
    /// Neuronpedia model id.
    pub model_id: &'a str,
    /// Source id (`{layer}-{sae_set}`), Neuronpedia's `layer` column.
    pub source_id: &'a str,
    /// Creator id written as `authorId` / `initiatedByUserId`.
    pub creator_id: &'a str,
    /// Creator name of the config rows.
    pub creator_name: &'a str,
}

fn nan_null(x: f32) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn details(s: &ExplanationScores) -> String {
    json!({
        "n": s.n,
        "precision": nan_null(s.precision),
        "recall": nan_null(s.recall),
        "f1": nan_null(s.f1),
        "balanced_accuracy": nan_null(s.balanced_accuracy),
        "auroc": nan_null(s.auroc),
        "source": "scopedex score (delphi's definitions; held-out examples)",
    })
    .to_string()
}

/// Writes `rows` (explanations of the exported features, any order) as the module docs say;
/// returns the number of explanation rows. Nothing is written when `rows` is empty.
pub fn write(x: &ExplanationExport<'_>, rows: &[ExplanationRecord]) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<&ExplanationRecord> = rows.iter().collect();
    rows.sort_by_key(|r| r.feature);
    for sub in ENTRIES {
        let p = x.dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    let cuid = PseudoCuid::default();
    let ids: Vec<String> = rows.iter().map(|_| cuid.generate()).collect();
    let mut models: Vec<&str> = Vec::new();
    let mut scorers: Vec<&str> = Vec::new();
    for (n, chunk) in rows.chunks(ROWS_PER_BATCH).enumerate() {
        let first = n * ROWS_PER_BATCH;
        let path = x
            .dir
            .join("explanations")
            .join(format!("batch-{n}.jsonl.gz"));
        gz(&path, |w| {
            for (i, r) in chunk.iter().enumerate() {
                let row = ExplanationRow {
                    id: ids[first + i].clone(),
                    modelId: x.model_id,
                    layer: x.source_id,
                    index: r.feature.to_string(),
                    authorId: x.creator_id,
                    description: &r.text,
                    embedding: None,
                    typeName: type_name(r),
                    explanationModelName: &r.model,
                    umap_x: None,
                    umap_y: None,
                    umap_cluster: None,
                    umap_log_feature_sparsity: None,
                };
                serde_json::to_writer(&mut *w, &row)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        let path = x
            .dir
            .join("explanation-scores")
            .join(format!("batch-{n}.jsonl.gz"));
        gz(&path, |w| {
            for (i, r) in chunk.iter().enumerate() {
                for (kind, s) in [
                    (DETECTION_SCORE_TYPE, &r.detection),
                    (FUZZING_SCORE_TYPE, &r.fuzzing),
                ] {
                    if s.n == 0 || !s.balanced_accuracy.is_finite() {
                        continue;
                    }
                    let row = json!({
                        "id": cuid.generate(),
                        "initiatedByUserId": x.creator_id,
                        "value": s.balanced_accuracy,
                        "explanationId": ids[first + i],
                        "explanationScoreTypeName": kind,
                        "explanationScoreModelName": r.scorer_model,
                        "jsonDetails": details(s),
                        "createdAt": if r.scored.is_empty() { &r.created } else { &r.scored },
                    });
                    serde_json::to_writer(&mut *w, &row)?;
                    w.write_all(b"\n")?;
                }
            }
            Ok(())
        })?;
        for r in chunk {
            if !models.contains(&r.model.as_str()) {
                models.push(&r.model);
            }
            if !r.scorer_model.is_empty() && !scorers.contains(&r.scorer_model.as_str()) {
                scorers.push(&r.scorer_model);
            }
        }
    }
    write_config(x, &rows, &models, &scorers)?;
    Ok(rows.len())
}

/// `typeName` of a row: ours, or the type an imported explanation came with.
fn type_name(r: &ExplanationRecord) -> &str {
    r.prompt_version
        .strip_prefix("neuronpedia:")
        .filter(|t| !t.is_empty())
        .unwrap_or(EXPLANATION_TYPE)
}

fn write_config(
    x: &ExplanationExport<'_>,
    rows: &[&ExplanationRecord],
    models: &[&str],
    scorers: &[&str],
) -> Result<()> {
    let dir = x.dir.join("config");
    let settings = rows
        .iter()
        .find(|r| type_name(r) == EXPLANATION_TYPE)
        .map(|r| r.settings.clone());
    let lines =
        |values: Vec<Value>| -> String { values.iter().map(|v| format!("{v}\n")).collect() };
    let types = vec![json!({
        "name": EXPLANATION_TYPE,
        "displayName": "scopedex (delphi-style, quantile examples)",
        "description": "delphi's default explainer prompt shape: examples drawn across the activation range, activating tokens marked << >> with 0-10 activations; written by scopedex explain",
        "featured": false,
        "isAttention": false,
        "settings": settings,
        "url": null,
        "creatorName": x.creator_name,
        "creatorId": x.creator_id,
    })];
    let model_rows = models
        .iter()
        .map(|m| json!({
            "name": m, "displayName": m, "description": "the model behind the OpenAI-compatible endpoint scopedex explain used",
            "featured": false, "openRouterModelId": null, "url": null, "creatorName": x.creator_name,
        }))
        .collect();
    let score_types = vec![
        json!({"name": DETECTION_SCORE_TYPE, "displayName": "Detection (delphi)", "description": "balanced accuracy of a model telling activating from non-activating contexts given the explanation",
               "scoreDescription": "balanced accuracy (TPR + TNR) / 2; jsonDetails has precision, recall, F1, AUROC",
               "featured": false, "creatorName": x.creator_name}),
        json!({"name": FUZZING_SCORE_TYPE, "displayName": "Fuzzing (delphi)", "description": "balanced accuracy of a model telling correctly from randomly marked tokens given the explanation",
               "scoreDescription": "balanced accuracy (TPR + TNR) / 2; jsonDetails has precision, recall, F1, AUROC",
               "featured": false, "creatorName": x.creator_name}),
    ];
    let score_models = scorers
        .iter()
        .map(|m| json!({"name": m, "displayName": m, "description": "the scorer model behind the endpoint scopedex score used",
                        "featured": false, "creatorName": x.creator_name}))
        .collect();
    for (name, values) in [
        ("explanation_type.jsonl", types),
        ("explanation_model_type.jsonl", model_rows),
        ("explanation_score_type.jsonl", score_types),
        ("explanation_score_model.jsonl", score_models),
    ] {
        let text = lines(values);
        write_atomic(&dir.join(name), |w| w.write_all(text.as_bytes()))?;
    }
    Ok(())
}

/// The explanation files under `path`: the file itself, or `*.jsonl(.gz)` files of the
/// folder (and of its `explanations/` subfolder), sorted by name.
pub fn explanation_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let dir = if path.join("explanations").is_dir() {
        path.join("explanations")
    } else {
        path.to_path_buf()
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let p = e.map_err(|e| Error::io(&dir, e))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".jsonl.gz") || name.ends_with(".jsonl") {
            out.push(p);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no explanations/*.jsonl.gz or *.jsonl files",
            path.display()
        )));
    }
    Ok(out)
}

/// What [`import`] read.
#[derive(Debug, Default)]
pub struct Imported {
    /// The explanations (the last one of a feature wins).
    pub rows: Vec<ExplanationRecord>,
    /// Rows of other sources (`layer` other than the one asked for), left out.
    pub other_sources: usize,
}

/// Reads Neuronpedia explanation rows from `files` (gzipped or plain JSONL). Rows whose `layer`
/// (source id) differs from `source` are left out when `source` is given; `index` (a string
/// or a number) must be below `d_sae`; `description` must be a string. A bad line is an error
/// naming the file and line.
pub fn import(files: &[PathBuf], source: Option<&str>, d_sae: u32) -> Result<Imported> {
    let mut out = Imported::default();
    for path in files {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for (i, line) in BufReader::new(reader).lines().enumerate() {
            let bad =
                |detail: String| Error::Usage(format!("{}:{}: {detail}", path.display(), i + 1));
            let line = line.map_err(|e| bad(format!("could not read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value =
                serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
            if let (Some(want), Some(layer)) = (source, v.get("layer").and_then(Value::as_str)) {
                if layer != want {
                    out.other_sources += 1;
                    continue;
                }
            }
            let feature = match v.get("index") {
                Some(Value::String(s)) => s.parse::<u32>().ok(),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                _ => None,
            }
            .ok_or_else(|| bad("`index` is not a feature number".into()))?;
            if feature >= d_sae {
                return Err(bad(format!(
                    "feature {feature} is out of range: the SAE has {d_sae}"
                )));
            }
            let text = v
                .get("description")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`description` is missing or not a string".into()))?;
            if text.trim().is_empty() {
                return Err(bad("`description` is empty".into()));
            }
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let type_name = s("typeName");
            let model = s("explanationModelName");
            out.rows.push(ExplanationRecord {
                feature,
                text: text.trim().to_string(),
                model: if model.is_empty() { "unknown".into() } else { model },
                prompt_version: format!("neuronpedia:{type_name}"),
                settings: json!({"imported_from": path.display().to_string(), "neuronpedia_id": v.get("id")}).to_string(),
                train_contexts: Vec::new(),
                created: v
                    .get("createdAt")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(now_rfc3339),
                scorer_model: String::new(),
                scored: String::new(),
                detection: ExplanationScores::default(),
                fuzzing: ExplanationScores::default(),
            });
        }
    }
    Ok(out)
}
