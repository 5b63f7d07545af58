//! `scopedex export neuronpedia` end to end: a real SmolLM2 index (with its activation log)
//! exported as SAEDashboard batches and as Neuronpedia's bulk layout, checked against the
//! schema, the index, and a brute-force recomputation of the equal-width activation
//! histograms, Pearson partners and decoder-cosine neighbours; bad input refused with exit
//! code 2.
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use scopedex_export::batch::{round3, round5};
use scopedex_export::validate::validate;
use scopedex_store::{ActivationEntry, ExampleKind, IndexReader};
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
        "--keep-activations",
    ]);
    out
}

/// The activation log of `SAE` as dense per-feature vectors over the active counted positions
/// (position 0 is BOS, excluded): every other counted position is a zero of every feature.
fn dense_log(reader: &IndexReader) -> Vec<Vec<f64>> {
    let d_sae = reader.sae(SAE).unwrap().d_sae as usize;
    let entries: Vec<ActivationEntry> = reader
        .activations(SAE)
        .unwrap()
        .batches()
        .flat_map(|b| b.unwrap())
        .filter(|e| e.pos >= 1)
        .collect();
    assert!(!entries.is_empty(), "the index keeps its activation log");
    let mut slot: HashMap<(u64, u16), usize> = HashMap::new();
    for e in &entries {
        let n = slot.len();
        slot.entry((e.context_id, e.pos)).or_insert(n);
    }
    let mut dense = vec![vec![0f64; slot.len()]; d_sae];
    for e in &entries {
        dense[e.feature as usize][slot[&(e.context_id, e.pos)]] = f64::from(e.value);
    }
    dense
}

/// SAEDashboard's activation histogram (torch.histc, 50 bins over [min, max] of the positive
/// values; bars at the bin centres), brute force.
fn histc(values: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let pos: Vec<f64> = values.iter().copied().filter(|&v| v > 0.0).collect();
    if pos.is_empty() {
        return (vec![], vec![]);
    }
    let lo = pos.iter().copied().fold(f64::MAX, f64::min);
    let hi = pos.iter().copied().fold(f64::MIN, f64::max);
    let mut heights = vec![0u64; 50];
    if hi == lo {
        heights[25] = pos.len() as u64;
        return (vec![round5(lo); 50], heights);
    }
    for &v in &pos {
        heights[(((v - lo) * 50.0 / (hi - lo)).floor() as usize).min(49)] += 1;
    }
    let w = (hi - lo) / 50.0;
    let values = (0..50).map(|i| round5(lo + (i as f64 + 0.5) * w)).collect();
    (values, heights)
}

/// The 3 best Pearson partners of feature `f` (over `n` counted positions), brute force over
/// the dense vectors: partners fire together with `f` at least once and have a variance.
fn pearson_partners(dense: &[Vec<f64>], n: f64, f: usize) -> Vec<(u32, f64, f64)> {
    let stats = |v: &[f64]| (v.iter().sum::<f64>(), v.iter().map(|a| a * a).sum::<f64>());
    let (sx, qx) = stats(&dense[f]);
    let mut out = Vec::new();
    for (j, y) in dense.iter().enumerate() {
        let (sy, qy) = stats(y);
        let xy: f64 = dense[f].iter().zip(y).map(|(a, b)| a * b).sum();
        let den = ((n * qx - sx * sx) * (n * qy - sy * sy)).sqrt();
        if j != f && xy != 0.0 && den > 0.0 {
            out.push((j as u32, (n * xy - sx * sy) / den, xy / (qx * qy).sqrt()));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(3);
    out
}

/// Every line of `{dir}/scopedex-extras/*.jsonl`, by feature.
fn read_extras(dir: &Path) -> HashMap<u32, Value> {
    let mut out = HashMap::new();
    for e in std::fs::read_dir(dir.join("scopedex-extras")).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.insert(v["feature_index"].as_u64().unwrap() as u32, v);
        }
    }
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
    let prov = &report["provenance"];
    for (key, start) in [
        ("activation_histogram", "exact"),
        ("bin_contains", "exact"),
        ("correlated_features", "Pearson"),
        (
            "decoder_cosine",
            "cosine of W_dec rows, same-SAE neighbours stored in the index",
        ),
        ("logit_histogram", "the index's"),
        ("layers_source", "manifest"),
    ] {
        let text = prov[key].as_str().unwrap();
        assert!(text.starts_with(start), "{key}: {text}");
    }
    let written: Value =
        serde_json::from_slice(&std::fs::read(out.join("scopedex-export.json")).unwrap()).unwrap();
    assert_eq!(&written["provenance"], prov);

    // Brute force from the activation log, independent of the exporter.
    let manifest = reader.manifest();
    assert!(manifest.parameters.exclude_bos);
    let dense = dense_log(&reader);
    let n_counted = reader.sae_summary(SAE).unwrap().unwrap().tokens_indexed as f64;
    let extras = read_extras(&out);
    assert_eq!(extras.len(), d_sae as usize);
    let mut with_partners = 0;
    let mut with_logit_hist = 0;
    let mut batch_features: HashMap<u32, Value> = HashMap::new();

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
            batch_features.insert(fv["feature_index"].as_u64().unwrap() as u32, fv.clone());
        }
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
            // Defaults: a Neuronpedia model id and a short dataset name.
            assert_eq!(v["model_id"], "smollm2-135m-instruct-q4-1");
            assert_eq!(fv["dataset"], "corpus");
            // The equal-width histogram, recomputed from the log.
            let (want_values, want_heights) = histc(&dense[f as usize]);
            let heights: Vec<u64> = fv["freq_hist_data_bar_heights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_u64().unwrap())
                .collect();
            assert_eq!(heights, want_heights, "feature {f}");
            assert_eq!(f64s(&fv["freq_hist_data_bar_values"]), want_values);
            assert_eq!(
                heights.iter().sum::<u64>(),
                rec.n_fired,
                "every firing counted"
            );
            // Pearson partners and their activation cosine, recomputed from the log.
            let want = pearson_partners(&dense, n_counted, f as usize);
            let got_idx: Vec<u32> = fv["correlated_features_indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u32)
                .collect();
            let (got_r, got_cos) = (
                f64s(&fv["correlated_features_pearson"]),
                f64s(&fv["correlated_features_l1"]),
            );
            assert_eq!(got_idx.len(), want.len(), "feature {f}");
            for (k, w) in want.iter().enumerate() {
                assert!(
                    (got_r[k] - round5(w.1)).abs() <= 1e-5,
                    "feature {f}: {got_r:?} {want:?}"
                );
                assert!((got_cos[k] - round5(w.2)).abs() <= 1e-5, "feature {f}");
                // Indices agree unless two partners tie (to rounding) at this rank.
                let tie = want.iter().any(|o| o.0 != w.0 && (o.1 - w.1).abs() < 1e-9);
                assert!(
                    tie || got_idx[k] == w.0,
                    "feature {f}: {got_idx:?} {want:?}"
                );
            }
            with_partners += usize::from(!want.is_empty());
            // Co-occurrence NPMI / Jaccard kept in the extras.
            let ex = &extras[&f];
            let cooc = reader.cooccurrence(SAE, f, Some(SAE), usize::MAX).unwrap();
            assert_eq!(
                ex["cooccurrence_indices"].as_array().unwrap().len(),
                cooc.iter().filter(|c| c.other_feature != f).count().min(3)
            );
            // The logit histogram over the whole vocabulary, as the index holds it.
            if !rec.logit_hist.is_empty() {
                with_logit_hist += 1;
                assert_eq!(
                    fv["logits_hist_data_bar_heights"],
                    serde_json::json!(rec.logit_hist)
                );
                let lv = f64s(&fv["logits_hist_data_bar_values"]);
                assert_eq!(lv.len(), rec.logit_hist.len());
                assert!(
                    lv[0] > f64::from(rec.logit_hist_min)
                        && lv[lv.len() - 1] < f64::from(rec.logit_hist_max)
                );
                assert_eq!(
                    rec.logit_hist.iter().sum::<u64>(),
                    u64::from(manifest.tokenizer.vocab_size),
                    "one count per vocabulary logit"
                );
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
    assert!(
        with_partners > 100,
        "{with_partners} features with Pearson partners"
    );
    assert_eq!(
        with_logit_hist, d_sae,
        "every feature has a logit histogram"
    );
    assert!(!out.join("batch-3.json").exists());

    // Decoder-cosine neighbours, recomputed from the SAE's weights for a few features.
    let sae = scopedex_sae::Sae::load(&tmp.path().join("L2R"), &candle_core::Device::Cpu).unwrap();
    let dirs: Vec<f32> = sae
        .decoder_directions()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let d = sae.d_out();
    let row = |f: usize| -> Vec<f64> {
        let r = &dirs[f * d..(f + 1) * d];
        let norm = r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        r.iter().map(|&x| f64::from(x) / norm).collect()
    };
    for f in [0usize, 57, 299] {
        let a = row(f);
        let mut all: Vec<(u32, f64)> = (0..d_sae as usize)
            .filter(|&j| j != f)
            .map(|j| (j as u32, a.iter().zip(row(j)).map(|(x, y)| x * y).sum()))
            .collect();
        all.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let ex = &extras[&(f as u32)];
        let got = f64s(&ex["decoder_cosine_values"]);
        assert_eq!(got.len(), 10);
        for (k, (j, c)) in all.iter().take(10).enumerate() {
            assert!((got[k] - c).abs() < 1e-4, "feature {f}: {got:?}");
            let tie = all.iter().any(|o| o.0 != *j && (o.1 - c).abs() < 1e-5);
            assert!(tie || ex["decoder_cosine_indices"][k] == *j, "feature {f}");
        }
    }

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
        "scopedex-export.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let model: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("model.jsonl"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(model["id"], "smollm2-135m");
    assert_eq!(model["layers"], 30, "SmolLM2-135M has 30 blocks");
    assert_eq!(model["layers"], manifest.model.n_layers);
    assert_eq!(model["neuronsPerLayer"], d_sae);
    assert_eq!(model["dimension"], 576);
    let source: Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("source.jsonl"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(source["dataset"], "corpus");
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
            assert_eq!(
                fv["topkCosSimIndices"],
                extras[&f]["decoder_cosine_indices"]
            );
            assert_eq!(fv["topkCosSimValues"], extras[&f]["decoder_cosine_values"]);
            for key in ["correlated_features_indices", "correlated_features_pearson"] {
                assert_eq!(fv[key], batch_features[&f][key], "{key}");
            }
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
    fails(
        &["--sae", "L1R-8x", "--model-id", "SmolLM2.Q4_1"],
        2,
        "--model-id",
    );
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

    // An output that cannot be created (a path below a regular file): the CLI counts a path
    // of the wrong kind as bad input (exit 2); the message names it and nothing is written.
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
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains(&*bad.to_string_lossy()), "{err}");
    assert!(file.is_file(), "the file is left alone");
}
