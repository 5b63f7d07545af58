//! Exports of a `scopedex_store::fixture` index checked against the schema and the records.
use std::io::Read;
use std::path::Path;

use scopedex_store::fixture::{self, FixtureSpec};
use scopedex_store::{ExampleKind, IndexReader};
use serde_json::Value;

use super::*;
use crate::batch::{round3, round5, ACTIVATION_KEYS, BATCH_KEYS, FEATURE_KEYS};

fn index() -> (tempfile::TempDir, FixtureSpec, IndexReader) {
    let tmp = tempfile::tempdir().unwrap();
    let spec = FixtureSpec::default();
    fixture::write_index(&tmp.path().join("idx"), &spec).unwrap();
    let reader = IndexReader::open(tmp.path().join("idx")).unwrap();
    (tmp, spec, reader)
}

fn schema() -> Value {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/neuronpedia-batch.schema.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Asserts `keys` appear in this order in `text` starting at the first occurrence of the first.
fn assert_key_order(text: &str, keys: &[&str]) {
    let mut at = 0;
    for k in keys {
        let needle = format!("\"{k}\":");
        let i = text[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("key {k} missing or out of order"));
        at += i + needle.len();
    }
}

/// Every line of `scopedex-extras/*.jsonl` under `dir`, by feature.
fn read_extras(dir: &Path) -> std::collections::HashMap<u32, Value> {
    let mut out = std::collections::HashMap::new();
    for e in std::fs::read_dir(dir.join(extras::EXTRAS_DIR)).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.insert(v["feature_index"].as_u64().unwrap() as u32, v);
        }
    }
    out
}

fn export(reader: &IndexReader, opts: &ExportOptions) -> Result<ExportReport> {
    export_neuronpedia(
        reader,
        &Vocab::synthetic(1000),
        opts,
        &ProgressBar::hidden(),
    )
}

#[test]
fn batches_validate_and_match_the_index() {
    let (tmp, spec, reader) = index();
    let out = tmp.path().join("out");
    let mut opts = ExportOptions::new("L1R-8x", &out);
    opts.batch_size = 20;
    let report = export(&reader, &opts).unwrap();
    // array_split(48 features, ceil(48 / 20) = 3) → 16 + 16 + 16.
    assert_eq!(report.batch_ranges, vec![0..16, 16..32, 32..48]);
    assert_eq!(report.features, 48);
    let schema = schema();
    let summary = spec.summary("L1R-8x", 48);
    let extras = read_extras(&out);
    assert_eq!(extras.len(), 48);
    let prov = &report.provenance;
    assert!(
        prov.activation_histogram.starts_with("re-binned"),
        "{prov:?}"
    );
    assert!(prov.correlated_features.starts_with("missing"), "{prov:?}");
    assert!(prov.decoder_cosine.starts_with("missing"), "{prov:?}");
    assert!(prov.logit_histogram.contains("48 of 48"), "{prov:?}");
    let written: Value =
        serde_json::from_slice(&std::fs::read(out.join(extras::REPORT_FILE)).unwrap()).unwrap();
    assert_eq!(written["provenance"]["layers"], 4, "{written}");
    assert_eq!(written["provenance"]["neurons_per_layer"], 48);
    let mut seen = 0u32;
    for (i, r) in report.batch_ranges.iter().enumerate() {
        let text = std::fs::read_to_string(out.join(format!("batch-{i}.json"))).unwrap();
        assert_key_order(&text, &BATCH_KEYS[..4]);
        assert_key_order(&text, &FEATURE_KEYS);
        assert_key_order(&text, &ACTIVATION_KEYS);
        let v: Value = serde_json::from_str(&text).unwrap();
        let errors = validate::validate(&schema, &v);
        assert!(errors.is_empty(), "batch-{i}: {errors:#?}");
        assert_eq!(v["model_id"], "fixture");
        assert_eq!(v["layer"], 1);
        assert_eq!(v["sae_set"], "L1R-8x");
        assert!(v["sae_id_suffix"].is_null());
        let feats = v["features"].as_array().unwrap();
        assert_eq!(feats.len(), r.len());
        for (fv, f) in feats.iter().zip(r.clone()) {
            assert_eq!(fv["feature_index"], f);
            seen += 1;
            let rec = spec.feature("L1R-8x", f);
            assert_eq!(fv["frac_nonzero"].as_f64().unwrap(), round5(rec.density));
            assert_eq!(fv["n_prompts_total"], spec.contexts);
            assert_eq!(fv["n_tokens_in_prompt"], spec.ctx_len);
            assert_eq!(fv["dataset"], "fixture");
            // No activation log: the log-spaced histogram re-binned into 50 equal bars.
            let heights: Vec<u64> = fv["freq_hist_data_bar_heights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_u64().unwrap())
                .collect();
            assert_eq!(
                heights.iter().sum::<u64>(),
                rec.act_hist.iter().sum::<u64>()
            );
            assert!(heights.is_empty() || heights.len() == hist::DASHBOARD_BINS);
            let values = fv["freq_hist_data_bar_values"].as_array().unwrap();
            assert_eq!(values.len(), heights.len());
            if values.len() > 2 {
                let v: Vec<f64> = values.iter().map(|x| x.as_f64().unwrap()).collect();
                let w = v[1] - v[0];
                assert!(
                    v.windows(2).all(|p| (p[1] - p[0] - w).abs() < 2e-5),
                    "{v:?}"
                );
            }
            let pos: Vec<String> = rec
                .logit_pos
                .iter()
                .map(|t| format!("tok{}", t.token))
                .collect();
            assert_eq!(fv["pos_str"], serde_json::json!(pos));
            assert_eq!(
                fv["neg_values"][0].as_f64().unwrap(),
                round5(rec.logit_neg[0].value.into())
            );
            let (lh, lv) = hist::logit_hist(&rec);
            assert_eq!(fv["logits_hist_data_bar_heights"], serde_json::json!(lh));
            assert_eq!(fv["logits_hist_data_bar_values"], serde_json::json!(lv));
            // No activation log: no Pearson partners.
            assert_eq!(fv["correlated_features_indices"], serde_json::json!([]));
            // Co-occurrence partners by NPMI, in the extras file.
            let ex = &extras[&f];
            let mut partners: Vec<_> = spec
                .cooccurrence_of("L1R-8x", f)
                .into_iter()
                .filter(|c| c.other_sae == "L1R-8x" && c.other_feature != f)
                .collect();
            partners.sort_by(|a, b| b.npmi.total_cmp(&a.npmi));
            let idx: Vec<u32> = partners.iter().take(3).map(|c| c.other_feature).collect();
            assert_eq!(ex["cooccurrence_indices"], serde_json::json!(idx));
            if let Some(p) = partners.first() {
                assert_eq!(
                    ex["cooccurrence_npmi"][0].as_f64().unwrap(),
                    round5(p.npmi.into())
                );
                assert_eq!(
                    ex["cooccurrence_jaccard"][0].as_f64().unwrap(),
                    round5(p.jaccard.into())
                );
            }
            assert_eq!(ex["decoder_cosine_indices"], serde_json::json!([]));
            // Activations: the stored examples, top first, then intervals from the highest.
            let mut ex = spec.examples_of("L1R-8x", f);
            ex.sort_by_key(|e| match e.kind {
                ExampleKind::Top => (0, e.rank),
                ExampleKind::Interval(i) => (1 + u16::MAX as u32 - u32::from(i), e.rank),
            });
            let acts = fv["activations"].as_array().unwrap();
            assert_eq!(acts.len(), ex.len());
            let n = f64::from(spec.intervals);
            for (a, e) in acts.iter().zip(&ex) {
                let ctx = spec.context(e.context_id);
                let toks: Vec<String> = ctx.tokens[1..].iter().map(|t| format!("tok{t}")).collect();
                assert_eq!(a["tokens"], serde_json::json!(toks));
                let vals: Vec<f64> = e.acts[1..].iter().map(|&x| round5(x.into())).collect();
                assert_eq!(a["values"], serde_json::json!(vals));
                let q = a["qualifying_token_index"].as_i64().unwrap();
                assert_eq!(q, i64::from(e.max_pos) - 1);
                assert_eq!(
                    a["values"][q as usize].as_f64().unwrap(),
                    round5(e.max_act.into())
                );
                let max = f64::from(rec.max_act);
                match e.kind {
                    ExampleKind::Top => {
                        assert_eq!(a["bin_min"], -1);
                        assert_eq!(a["bin_contains"], -1);
                        assert_eq!(a["bin_max"].as_f64().unwrap(), round3(max));
                    }
                    ExampleKind::Interval(i) => {
                        let i = f64::from(i);
                        assert_eq!(a["bin_min"].as_f64().unwrap(), round3(i * max / n));
                        assert_eq!(a["bin_max"].as_f64().unwrap(), round3((i + 1.0) * max / n));
                        let c = a["bin_contains"].as_f64().unwrap();
                        let expect = hist::interval_fraction(
                            &rec,
                            &summary,
                            i * max / n,
                            (i + 1.0) * max / n,
                        );
                        assert_eq!(c, round5(expect));
                        assert!((0.0..=1.0).contains(&c));
                    }
                }
            }
        }
    }
    assert_eq!(seen, 48);
    let skipped: Value =
        serde_json::from_slice(&std::fs::read(out.join("skipped_indexes.json")).unwrap()).unwrap();
    assert_eq!(skipped["layer"], "1");
    assert_eq!(skipped["skipped_indexes"], serde_json::json!([]));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn range_options_and_default_batching() {
    let (tmp, _spec, reader) = index();
    let out = tmp.path().join("out");
    let mut opts = ExportOptions::new("L2R-8x", &out);
    opts.features = Some(5..13);
    opts.batch_size = 4;
    opts.model_id = Some("smollm2-135m".into());
    opts.sae_set = Some("res-sx".into());
    opts.sae_id_suffix = Some("v1".into());
    opts.dataset = Some("my/corpus".into());
    let report = export(&reader, &opts).unwrap();
    assert_eq!(report.batch_ranges, vec![5..9, 9..13]);
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("batch-1.json")).unwrap()).unwrap();
    assert_eq!(v["model_id"], "smollm2-135m");
    assert_eq!(v["sae_set"], "res-sx");
    assert_eq!(v["sae_id_suffix"], "v1");
    assert_eq!(v["features"][0]["feature_index"], 9);
    assert_eq!(v["features"][0]["dataset"], "my/corpus");
    assert!(!out.join("batch-2.json").exists());

    // Defaults: one batch of 40 for the whole SAE.
    let out2 = tmp.path().join("out2");
    let report = export(&reader, &ExportOptions::new("L2R-8x", &out2)).unwrap();
    assert_eq!(report.batch_ranges, vec![0..40]);
}

#[test]
fn bad_input_is_refused() {
    let (tmp, _spec, reader) = index();
    let out = tmp.path().join("out");
    let err = export(&reader, &ExportOptions::new("nope", &out)).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("unknown SAE"),
        "{err}"
    );
    let mut opts = ExportOptions::new("L1R-8x", &out);
    opts.features = Some(7..7);
    let err = export(&reader, &opts).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("empty"),
        "{err}"
    );
    opts.features = Some(40..49);
    assert!(export(&reader, &opts).unwrap_err().is_user_error());
    opts.features = None;
    opts.batch_size = 0;
    assert!(export(&reader, &opts).unwrap_err().is_user_error());

    // Non-empty output: refused, then replaced with --force (stale batches removed).
    let mut opts = ExportOptions::new("L1R-8x", &out);
    opts.batch_size = 8;
    export(&reader, &opts).unwrap();
    assert!(out.join("batch-5.json").exists());
    let err = export(&reader, &opts).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("--force"),
        "{err}"
    );
    opts.batch_size = 24;
    opts.force = true;
    export(&reader, &opts).unwrap();
    assert!(out.join("batch-1.json").exists());
    assert!(!out.join("batch-2.json").exists());

    // An output path under a regular file cannot be created: an I/O error, nothing written.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = export(&reader, &ExportOptions::new("L1R-8x", file.join("out"))).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && !err.is_user_error(),
        "{err}"
    );
}

fn gunzip_lines(p: &Path) -> Vec<Value> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bulk_layout_matches_the_batches() {
    let (tmp, spec, reader) = index();
    let out = tmp.path().join("bulk");
    let mut opts = ExportOptions::new("L1R-8x", &out);
    opts.format = Format::Bulk;
    opts.batch_size = 30;
    let report = export(&reader, &opts).unwrap();
    let dir = out.join("fixture").join("1-L1R-8x");
    assert_eq!(report.dir, dir);
    assert_eq!(report.batch_ranges, vec![0..24, 24..48]);
    for f in [
        "release.jsonl",
        "model.jsonl",
        "sourceset.jsonl",
        "source.jsonl",
    ] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(text.lines().count(), 1, "{f}");
    }
    let source: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("source.jsonl"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(source["id"], "1-L1R-8x");
    assert_eq!(source["num_prompts"], spec.contexts);
    assert_eq!(source["creatorId"], bulk::FALLBACK_CREATOR_ID);
    let mut n_feat = 0;
    let mut n_act = 0u64;
    let mut ids = std::collections::HashSet::new();
    for (i, r) in report.batch_ranges.iter().enumerate() {
        let feats = gunzip_lines(&dir.join("features").join(format!("batch-{i}.jsonl.gz")));
        assert_eq!(feats.len(), r.len());
        for (fv, f) in feats.iter().zip(r.clone()) {
            assert_eq!(fv["index"], f);
            assert_eq!(fv["layer"], "1-L1R-8x");
            assert_eq!(fv["modelId"], "fixture");
            assert_eq!(fv["hookName"], "blocks.1.hook_resid_post");
            assert_eq!(
                fv["frac_nonzero"].as_f64().unwrap(),
                round5(spec.feature("L1R-8x", f).density)
            );
        }
        n_feat += feats.len();
        let acts = gunzip_lines(&dir.join("activations").join(format!("batch-{i}.jsonl.gz")));
        for a in &acts {
            assert!(ids.insert(a["id"].as_str().unwrap().to_string()));
            let values: Vec<f64> = a["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            assert_eq!(a["maxValue"].as_f64().unwrap(), max);
            assert_eq!(
                values[a["maxValueTokenIndex"].as_u64().unwrap() as usize],
                max
            );
            assert_eq!(a["tokens"].as_array().unwrap().len(), values.len());
        }
        n_act += acts.len() as u64;
    }
    assert_eq!(n_feat, 48);
    assert_eq!(n_act, report.activations);
    let ex_per_feature =
        u64::from(spec.top_k) + u64::from(spec.intervals) * u64::from(spec.samples);
    assert_eq!(n_act, 48 * ex_per_feature);

    // Re-export with --force into the same directory replaces the source.
    assert!(export(&reader, &opts).unwrap_err().is_user_error());
    opts.force = true;
    opts.batch_size = 48;
    export(&reader, &opts).unwrap();
    assert!(!dir.join("features/batch-1.jsonl.gz").exists());
}

#[test]
fn model_ids_are_made_neuronpedia_like() {
    assert_eq!(
        default_model_id("HuggingFaceTB/SmolLM2-135M"),
        "smollm2-135m"
    );
    assert_eq!(
        default_model_id("SmolLM2-135M-Instruct.Q4_1"),
        "smollm2-135m-instruct-q4-1"
    );
    let (tmp, _spec, reader) = index();
    let mut opts = ExportOptions::new("L1R-8x", tmp.path().join("o"));
    opts.model_id = Some("SmolLM2.Q4".into());
    let err = export(&reader, &opts).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("--model-id"),
        "{err}"
    );
    assert!(!tmp.path().join("o").exists(), "nothing written on refusal");
}

#[test]
fn with_an_activation_log_histograms_and_partners_come_from_it() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = FixtureSpec {
        activation_l0: 6,
        ..FixtureSpec::default()
    };
    fixture::write_index(&tmp.path().join("idx"), &spec).unwrap();
    let reader = IndexReader::open(tmp.path().join("idx")).unwrap();
    let out = tmp.path().join("out");
    let report = export(&reader, &ExportOptions::new("L2R-8x", &out)).unwrap();
    let prov = &report.provenance;
    assert!(prov.activation_histogram.starts_with("exact"), "{prov:?}");
    assert!(prov.correlated_features.starts_with("Pearson"), "{prov:?}");
    let v: Value =
        serde_json::from_slice(&std::fs::read(out.join("batch-0.json")).unwrap()).unwrap();
    assert!(validate::validate(&schema(), &v).is_empty());
    let mut values: std::collections::HashMap<u32, Vec<f64>> = Default::default();
    for i in 0..spec.contexts {
        for e in spec.activations_of_context("L2R-8x", 40, i) {
            if e.pos > 0 && e.value > 0.0 {
                values.entry(e.feature).or_default().push(e.value.into());
            }
        }
    }
    let mut with_partners = 0;
    for fv in v["features"].as_array().unwrap() {
        let f = fv["feature_index"].as_u64().unwrap() as u32;
        // The log keeps bf16 precision: bin the rounded values.
        let vals: Vec<f64> = values.get(&f).map_or(Vec::new(), |v| {
            v.iter()
                .map(|&x| f64::from(scopedex_store::round_mantissa(x as f32, 7)))
                .collect()
        });
        let (want_v, want_h) = hist::equal_width(&vals);
        assert_eq!(fv["freq_hist_data_bar_heights"], serde_json::json!(want_h));
        assert_eq!(fv["freq_hist_data_bar_values"], serde_json::json!(want_v));
        let idx = fv["correlated_features_indices"].as_array().unwrap();
        with_partners += usize::from(!idx.is_empty());
        assert!(idx.iter().all(|j| j.as_u64().unwrap() as u32 != f));
    }
    assert!(with_partners > 30, "{with_partners}");
}
