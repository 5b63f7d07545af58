//! Explanations in the Neuronpedia export (columns validated against
//! `schemas/neuronpedia-explanation.schema.json`, scores and config rows beside them), and
//! their import back into an index.
use std::path::Path;

use scopedex_export::{explanations, ExportOptions, Format, Vocab};
use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::{ExplanationRecord, ExplanationScores, IndexReader};

fn row(feature: u32, text: &str, scored: bool) -> ExplanationRecord {
    let s = ExplanationScores {
        n: 20,
        precision: 0.6,
        recall: 0.9,
        f1: 0.72,
        balanced_accuracy: 0.65,
        auroc: f32::NAN,
    };
    ExplanationRecord {
        feature,
        text: text.into(),
        model: "SmolLM2-135M-Instruct".into(),
        prompt_version: "scopedex-delphi-v1".into(),
        settings: "{\"sampling\":{}}".into(),
        train_contexts: vec![1],
        created: "2026-12-06T00:00:00Z".into(),
        scorer_model: if scored {
            "scorer".into()
        } else {
            String::new()
        },
        scored: String::new(),
        detection: if scored {
            s
        } else {
            ExplanationScores::default()
        },
        fuzzing: ExplanationScores::default(),
    }
}

#[test]
fn explanations_are_exported_in_neuronpedias_columns_and_imported_back() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("idx");
    let spec = FixtureSpec::default();
    fixture::write_index(&idx, &spec).unwrap();
    let sae = spec.saes[0].0.clone();
    scopedex_store::explanations::publish(
        &idx,
        &sae,
        vec![
            row(2, "legal documents", true),
            row(9, "days of the week", false),
        ],
    )
    .unwrap();
    let reader = IndexReader::open(&idx).unwrap();
    let mut opts = ExportOptions::new(&sae, tmp.path().join("out"));
    opts.format = Format::Bulk;
    opts.decoder_cosine = false;
    let report = scopedex_export::export_neuronpedia(
        &reader,
        &Vocab::synthetic(1000),
        &opts,
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    assert_eq!(report.explanations, 2);
    let dir = &report.dir;
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../schemas/neuronpedia-explanation.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let rows =
        scopedex_export::bulk::read_jsonl_gz(&dir.join("explanations/batch-0.jsonl.gz")).unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let errors = scopedex_export::validate::validate(&schema, r);
        assert!(errors.is_empty(), "{errors:?}");
    }
    // Export-data.py's column order, in the file's text.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(dir.join("explanations/batch-0.jsonl.gz")).unwrap(),
        ),
        &mut text,
    )
    .unwrap();
    let first = text.lines().next().unwrap();
    let at = |k: &str| first.find(&format!("\"{k}\":")).unwrap();
    let order = [
        "id",
        "modelId",
        "layer",
        "index",
        "authorId",
        "description",
        "embedding",
        "typeName",
        "explanationModelName",
        "umap_x",
    ];
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{first}");
    assert_eq!(rows[0]["index"], "2");
    assert_eq!(rows[0]["description"], "legal documents");
    assert_eq!(rows[0]["typeName"], explanations::EXPLANATION_TYPE);
    assert_eq!(rows[0]["layer"], dir.file_name().unwrap().to_str().unwrap());
    // Scores: only the scored explanation's detection, keyed to its explanation id.
    let scores =
        scopedex_export::bulk::read_jsonl_gz(&dir.join("explanation-scores/batch-0.jsonl.gz"))
            .unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0]["explanationId"], rows[0]["id"]);
    assert_eq!(scores[0]["explanationScoreTypeName"], "eleuther_recall");
    assert!((scores[0]["value"].as_f64().unwrap() - 0.65).abs() < 1e-6);
    // The config rows define every name the rows use.
    let config = |name: &str| std::fs::read_to_string(dir.join("config").join(name)).unwrap();
    assert!(config("explanation_type.jsonl").contains(explanations::EXPLANATION_TYPE));
    assert!(config("explanation_model_type.jsonl").contains("SmolLM2-135M-Instruct"));
    assert!(config("explanation_score_model.jsonl").contains("\"scorer\""));
    // A second export into the same folder with --force replaces it.
    opts.force = true;
    scopedex_export::export_neuronpedia(
        &reader,
        &Vocab::synthetic(1000),
        &opts,
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();

    // Import into the other SAE.
    let other = &spec.saes[1].0;
    let files = explanations::explanation_files(dir).unwrap();
    let source = rows[0]["layer"].as_str().unwrap().to_string();
    let imported = explanations::import(&files, Some(&source), spec.saes[1].1).unwrap();
    assert_eq!(imported.rows.len(), 2);
    assert_eq!(
        explanations::import(&files, Some("other-source"), 40)
            .unwrap()
            .other_sources,
        2
    );
    drop(reader);
    scopedex_store::explanations::publish(&idx, other, imported.rows).unwrap();
    let r = IndexReader::open(&idx).unwrap();
    let e = r.explanation(other, 9).unwrap().unwrap();
    assert_eq!(e.text, "days of the week");
    assert_eq!(
        e.prompt_version,
        format!("neuronpedia:{}", explanations::EXPLANATION_TYPE)
    );
    assert_eq!(e.model, "SmolLM2-135M-Instruct");
}

#[test]
fn bad_import_lines_name_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("batch-0.jsonl");
    let good = r#"{"index":"1","description":"x","layer":"6-res"}"#;
    for (bad, want) in [
        ("not json", "not JSON"),
        (
            r#"{"index":"a","description":"x"}"#,
            "`index` is not a feature number",
        ),
        (r#"{"index":"99","description":"x"}"#, "out of range"),
        (r#"{"index":"1"}"#, "`description` is missing"),
        (
            r#"{"index":"1","description":"  "}"#,
            "`description` is empty",
        ),
    ] {
        std::fs::write(&f, format!("{good}\n{bad}\n")).unwrap();
        let e = explanations::import(std::slice::from_ref(&f), None, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch-0.jsonl:2:") && e.contains(want), "{e}");
    }
    let e = explanations::explanation_files(tmp.path().join("empty").as_path());
    assert!(e.is_err());
}
