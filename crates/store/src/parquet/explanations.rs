//! `saes/{sae}/explanations.parquet`: one row per explained feature ([`ExplanationRecord`]).
//! Scores are flat columns `detection_*` / `fuzzing_*`; NaN where undefined or not scored
//! (the tables hold no nulls).
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Schema, SchemaRef, UInt32Type, UInt64Type};
use arrow::error::ArrowError;

use super::columns::{field, list_of, list_prim, prim, strings, Columns};
use super::Table;
use crate::error::Result;
use crate::records::{ExplanationRecord, ExplanationScores};

const SCORERS: [&str; 2] = ["detection", "fuzzing"];

fn score_columns(
    rows: &[ExplanationRecord],
    pick: fn(&ExplanationRecord) -> &ExplanationScores,
) -> Vec<ArrayRef> {
    let f = |g: fn(&ExplanationScores) -> f32| {
        prim::<Float32Type>(rows.iter().map(|r| g(pick(r))).collect())
    };
    vec![
        prim::<UInt32Type>(rows.iter().map(|r| pick(r).n).collect()),
        f(|s| s.precision),
        f(|s| s.recall),
        f(|s| s.f1),
        f(|s| s.balanced_accuracy),
        f(|s| s.auroc),
    ]
}

fn read_scores(c: &Columns<'_>, prefix: &str) -> Result<Vec<ExplanationScores>> {
    let n = c.prim::<UInt32Type>(&format!("{prefix}_n"))?;
    let col = |name: &str| c.prim::<Float32Type>(&format!("{prefix}_{name}"));
    let (p, r, f1, ba, auc) = (
        col("precision")?,
        col("recall")?,
        col("f1")?,
        col("balanced_accuracy")?,
        col("auroc")?,
    );
    Ok((0..n.len())
        .map(|i| ExplanationScores {
            n: n[i],
            precision: p[i],
            recall: r[i],
            f1: f1[i],
            balanced_accuracy: ba[i],
            auroc: auc[i],
        })
        .collect())
}

impl Table for ExplanationRecord {
    const NAME: &'static str = "explanations";
    const ROWS_PER_GROUP: usize = 8_192;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        S.get_or_init(|| {
            let mut fields: Vec<Field> = vec![
                field("feature", DataType::UInt32),
                field("text", DataType::Utf8),
                field("model", DataType::Utf8),
                field("prompt_version", DataType::Utf8),
                field("settings", DataType::Utf8),
                field("train_contexts", list_of(DataType::UInt64)),
                field("created", DataType::Utf8),
                field("scorer_model", DataType::Utf8),
                field("scored", DataType::Utf8),
            ];
            for s in SCORERS {
                fields.push(field(&format!("{s}_n"), DataType::UInt32));
                for m in ["precision", "recall", "f1", "balanced_accuracy", "auroc"] {
                    fields.push(field(&format!("{s}_{m}"), DataType::Float32));
                }
            }
            Arc::new(Schema::new(fields))
        })
        .clone()
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
            strings(rows.iter().map(|r| r.text.as_str())),
            strings(rows.iter().map(|r| r.model.as_str())),
            strings(rows.iter().map(|r| r.prompt_version.as_str())),
            strings(rows.iter().map(|r| r.settings.as_str())),
            list_prim::<UInt64Type>(rows.iter().map(|r| r.train_contexts.as_slice())),
            strings(rows.iter().map(|r| r.created.as_str())),
            strings(rows.iter().map(|r| r.scorer_model.as_str())),
            strings(rows.iter().map(|r| r.scored.as_str())),
        ];
        columns.extend(score_columns(rows, |r| &r.detection));
        columns.extend(score_columns(rows, |r| &r.fuzzing));
        RecordBatch::try_new(Self::schema(), columns)
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let text = c.strings("text")?;
        let model = c.strings("model")?;
        let prompt_version = c.strings("prompt_version")?;
        let settings = c.strings("settings")?;
        let train = c.list_prim::<UInt64Type>("train_contexts")?;
        let created = c.strings("created")?;
        let scorer_model = c.strings("scorer_model")?;
        let scored = c.strings("scored")?;
        let detection = read_scores(&c, "detection")?;
        let fuzzing = read_scores(&c, "fuzzing")?;
        Ok(train
            .into_iter()
            .zip(detection.into_iter().zip(fuzzing))
            .enumerate()
            .map(
                |(i, (train_contexts, (detection, fuzzing)))| ExplanationRecord {
                    feature: feature[i],
                    text: text.value(i).to_string(),
                    model: model.value(i).to_string(),
                    prompt_version: prompt_version.value(i).to_string(),
                    settings: settings.value(i).to_string(),
                    train_contexts,
                    created: created.value(i).to_string(),
                    scorer_model: scorer_model.value(i).to_string(),
                    scored: scored.value(i).to_string(),
                    detection,
                    fuzzing,
                },
            )
            .collect())
    }
}
