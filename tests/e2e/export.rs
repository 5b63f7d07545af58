//! `scopedex export neuronpedia` end to end: a real SmolLM2 index exported as SAEDashboard
//! batches and as Neuronpedia's bulk layout, checked against the schema and the index; bad
//! input refused with exit code 2.
use std::path::Path;
use std::process::Command;

use scopedex_export::batch::{round3, round5};
use scopedex_export::validate::validate;
use scopedex_store::{ExampleKind, IndexReader};
use serde_json::Value;

use crate::assets::{default_model, scopedex_bin, workspace_root};
use crate::index::{fabricate_sae, run_ok, small_corpus};

const SAE: &str = "L2R-1x";

fn build_index(root: &Path) -> std::path::PathBuf {
    let corpus = small_corpus(root, 24);
    let sae = root.join("L2R");
    // d_sae 300: three batches of 100 at the default 128 per batch (np.array_split).
    fabricate_sae(&sae, 2, "hook_resid_post", 300, 8, 7);
    let out = root.join("index");
    run_ok(&[
        "index",
        "--model",
        default_model().to_str().unwrap(),
        "--sae",
        sae.to_str().unwrap(),
        "--corpus",
        corpus.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--ctx-len",
        "24",
        "--batch-size",
        "4",
        "--top-k",
        "5",
        "--intervals",
        "4",
        "--samples-per-interval",
        "3",
    ]);
    out
}

fn schema() -> Value {
    let p = workspace_root().join("schemas/neuronpedia-batch.schema.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn scopedex(args: &[&str]) -> std::process::Output {
    Command::new(scopedex_bin()).args(args).output().unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn export_neuronpedia_batches_and_bulk_match_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let index = build_index(tmp.path());
    let reader = IndexReader::open(&index).unwrap();
    let d_sae = reader.sae(SAE).unwrap().d_sae;
    let n_intervals = reader.manifest().parameters.intervals as usize;
    let out = tmp.path().join("np");
    let o = run_ok(&[
        "export",
        "neuronpedia",
        index.to_str().unwrap(),
        "--sae",
        SAE,
        "--out",
        out.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["batches"], 3, "{report}");
    assert_eq!(report["features"], d_sae);

    let schema = schema();
    let mut next = 0u32;
    let mut checked_text = 0;
    let mut checked_contains = 0;
    for i in 0..3 {
        let v: Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("batch-{i}.json"))).unwrap())
                .unwrap();
        let errors = validate(&schema, &v);
        assert!(errors.is_empty(), "batch-{i}: {errors:#?}");
        assert_eq!(v["layer"], 2);
        assert_eq!(v["sae_set"], SAE);
        let feats = v["features"].as_array().unwrap();
        assert_eq!(feats.len(), 100);
        for fv in feats {
            let f = fv["feature_index"].as_u64().unwrap() as u32;
            assert_eq!(f, next, "features in order, no gaps");
            next += 1;
            assert_eq!(fv["n_tokens_in_prompt"], 24);
            assert_eq!(fv["n_prompts_total"], reader.manifest().contexts);
            let rec = reader.feature(SAE, f).unwrap().unwrap();
            assert_eq!(fv["frac_nonzero"].as_f64().unwrap(), round5(rec.density));
            assert_eq!(
                fv["pos_values"],
                serde_json::json!(rec
                    .logit_pos
                    .iter()
                    .map(|t| round5(t.value.into()))
                    .collect::<Vec<_>>())
            );
            let heights: u64 = fv["freq_hist_data_bar_heights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_u64().unwrap())
                .sum();
            assert_eq!(heights, rec.n_fired, "the histogram counts every firing");
            for c in fv["correlated_features_indices"].as_array().unwrap() {
                assert_ne!(c.as_u64().unwrap() as u32, f);
            }
            let examples = reader.examples(SAE, f, None, usize::MAX, 0).unwrap();
            let acts = fv["activations"].as_array().unwrap();
            assert_eq!(acts.len(), examples.len());
            let tops: Vec<_> = examples
                .iter()
                .filter(|e| e.kind == ExampleKind::Top)
                .collect();
            let mut intervals: Vec<_> = examples
                .iter()
                .filter(|e| e.kind != ExampleKind::Top)
                .collect();
            intervals.sort_by_key(|e| (std::cmp::Reverse(e.kind), e.rank));
            let mut contains = std::collections::BTreeMap::new();
            for (a, e) in acts.iter().zip(tops.iter().chain(&intervals)) {
                let ctx = reader.context(e.context_id).unwrap().unwrap();
                let values = f64s(&a["values"]);
                let expect: Vec<f64> = e.acts[1..].iter().map(|&x| round5(x.into())).collect();
                assert_eq!(
                    values, expect,
                    "feature {f} example {:?}/{}",
                    e.kind, e.rank
                );
                let tokens: Vec<String> = a["tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(tokens.len(), ctx.tokens.len() - 1);
                if ctx.text.is_ascii() && !ctx.text.contains('\r') {
                    assert_eq!(tokens.concat(), ctx.text, "token strings spell the context");
                    checked_text += 1;
                }
                let q = a["qualifying_token_index"].as_i64().unwrap();
                assert_eq!(q, i64::from(e.max_pos) - 1);
                assert_eq!(values[q as usize], round5(e.max_act.into()));
                match e.kind {
                    ExampleKind::Top => {
                        assert_eq!(a["bin_min"], -1);
                        assert_eq!(a["bin_contains"], -1);
                        assert_eq!(a["bin_max"].as_f64().unwrap(), round3(rec.max_act.into()));
                    }
                    ExampleKind::Interval(k) => {
                        let (lo, hi) = (
                            a["bin_min"].as_f64().unwrap(),
                            a["bin_max"].as_f64().unwrap(),
                        );
                        let m = f64::from(rec.max_act) / n_intervals as f64;
                        assert_eq!(lo, round3(f64::from(k) * m));
                        assert_eq!(hi, round3(f64::from(k + 1) * m));
                        // The sampled context's max lies in its interval.
                        assert!(
                            f64::from(e.max_act) >= lo - 1e-3 && f64::from(e.max_act) <= hi + 1e-3
                        );
                        contains.insert(k, a["bin_contains"].as_f64().unwrap());
                    }
                }
            }
            if contains.len() == n_intervals {
                let sum: f64 = contains.values().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-3,
                    "feature {f}: interval shares {contains:?}"
                );
                checked_contains += 1;
            }
        }
    }
    assert_eq!(next, d_sae);
    assert!(checked_text > 100, "{checked_text} examples spelled");
    assert!(checked_contains > 0);
    assert!(!out.join("batch-3.json").exists());

    // A sub-range in small batches: array_split(10, 3) = 4 + 3 + 3.
    let out2 = tmp.path().join("np2");
    let o = run_ok(&[
        "export",
        "neuronpedia",
        index.to_str().unwrap(),
        "--sae",
        SAE,
        "--out",
        out2.to_str().unwrap(),
        "--features",
        "10..20",
        "--batch-size",
        "4",
        "--model-id",
        "smollm2-135m",
        "--sae-set",
        "res-test",
    ]);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["batches"], 3);
    let mut got = Vec::new();
    for i in 0..3 {
        let v: Value =
            serde_json::from_slice(&std::fs::read(out2.join(format!("batch-{i}.json"))).unwrap())
                .unwrap();
        assert_eq!(v["model_id"], "smollm2-135m");
        assert_eq!(v["sae_set"], "res-test");
        got.push(
            v["features"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["feature_index"].as_u64().unwrap())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        got,
        vec![vec![10, 11, 12, 13], vec![14, 15, 16], vec![17, 18, 19]]
    );

    // Bulk layout of the same sub-range.
    let bulk = tmp.path().join("bulk");
    run_ok(&[
        "export",
        "neuronpedia",
        index.to_str().unwrap(),
        "--sae",
        SAE,
        "--out",
        bulk.to_str().unwrap(),
        "--features",
        "10..20",
        "--batch-size",
        "4",
        "--model-id",
        "smollm2-135m",
        "--sae-set",
        "res-test",
        "--format",
        "bulk",
    ]);
    let dir = bulk.join("smollm2-135m").join("2-res-test");
    for f in [
        "release.jsonl",
        "model.jsonl",
        "sourceset.jsonl",
        "source.jsonl",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let mut n = 0;
    for i in 0..3 {
        let feats =
            scopedex_export::bulk::read_jsonl_gz(&dir.join(format!("features/batch-{i}.jsonl.gz")))
                .unwrap();
        let acts = scopedex_export::bulk::read_jsonl_gz(
            &dir.join(format!("activations/batch-{i}.jsonl.gz")),
        )
        .unwrap();
        for fv in &feats {
            let f = fv["index"].as_u64().unwrap() as u32;
            let ex = reader.examples(SAE, f, None, usize::MAX, 0).unwrap();
            assert_eq!(acts.iter().filter(|a| a["index"] == f).count(), ex.len());
            assert_eq!(fv["layer"], "2-res-test");
        }
        n += feats.len();
    }
    assert_eq!(n, 10);
}

#[test]
fn export_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("idx");
    scopedex_store::fixture::write_index(&index, &scopedex_store::fixture::FixtureSpec::default())
        .unwrap();
    let model = default_model();
    let (idx, model) = (index.to_str().unwrap(), model.to_str().unwrap());
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let base = ["export", "neuronpedia", idx, "--model", model, "--out", o];
    let fails = |extra: &[&str], code: i32, needle: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let r = scopedex(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(&["--sae", "nope"], 2, "unknown SAE");
    fails(&["--sae", "L1R-8x", "--features", "5..5"], 2, "empty");
    fails(&["--sae", "L1R-8x", "--features", "0..49"], 2, "exceeds");
    fails(&["--sae", "L1R-8x", "--format", "csv"], 2, "--format");
    assert!(!out.exists(), "nothing written on refusal");

    let mut ok = base.to_vec();
    ok.extend_from_slice(&["--sae", "L1R-8x", "--batch-size", "16"]);
    run_ok(&ok);
    assert!(out.join("batch-2.json").is_file());
    fails(&["--sae", "L1R-8x"], 2, "--force");
    let mut forced = base.to_vec();
    forced.extend_from_slice(&["--sae", "L1R-8x", "--force"]);
    run_ok(&forced);
    assert!(out.join("batch-0.json").is_file());
    assert!(!out.join("batch-1.json").exists(), "stale batches removed");

    // An output that cannot be created (a path below a regular file): exit 1, no batch left.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let bad = file.join("out");
    let r = scopedex(&[
        "export",
        "neuronpedia",
        idx,
        "--model",
        model,
        "--sae",
        "L1R-8x",
        "--out",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
}
