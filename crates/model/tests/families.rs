//! Every model family against HF transformers: tiny random checkpoints written by
//! `scripts/make-family-fixtures.py` (norm gains away from identity, biases, soft-caps that bind,
//! a sliding window shorter than the sequences), every hook at every layer and the logits,
//! relative L2 ≤ 1e-4 on both f32 backends, ≤ 5e-2 in bf16 (candle's ops on the CPU: the path a
//! GPU runs, in the dtype it runs in).
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{rel_l2, root};
use scopedex_model::{Backend, CapturePlan, Error, Family, HookPoint, Model};

const TOLERANCE: f64 = 1e-4;
/// bf16 against the f32 reference. transformers' own bf16 forward is 2.1–2.7e-2 from its f32
/// forward on these fixtures (worst residual stream, eager attention); ours is as far.
const BF16_TOLERANCE: f64 = 5e-2;

fn fixture_dir(name: &str) -> PathBuf {
    root().join("tests/fixtures/families").join(name)
}

fn reference(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors")
}

/// Every hook kind at every layer.
fn all_hooks(n_layers: usize) -> Vec<HookPoint> {
    (0..n_layers)
        .flat_map(|l| {
            [
                HookPoint::ResidPre(l),
                HookPoint::ResidPost(l),
                HookPoint::AttnZ(l),
                HookPoint::AttnOut(l),
                HookPoint::Ln2Normalized(l),
                HookPoint::MlpIn(l),
                HookPoint::MlpOut(l),
            ]
        })
        .collect()
}

/// Runs both fixture sequences as one packed batch and compares every hook and the
/// last-position logits with transformers'.
fn check_family(name: &str, family: Family) {
    check_checkpoint(name, family, &fixture_dir(name));
}

/// [`check_family`] on the checkpoint at `path` (the HF directory or its GGUF file).
fn check_checkpoint(name: &str, family: Family, path: &Path) {
    let dir = fixture_dir(name);
    let reference = reference(&dir);
    let seqs: Vec<Vec<u32>> = (0..2)
        .map(|i| {
            reference[&format!("s{i}.tokens")]
                .to_vec1::<i64>()
                .unwrap()
                .into_iter()
                .map(|t| t as u32)
                .collect()
        })
        .collect();
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let bf16 = Backend::new(&Device::Cpu, DType::BF16).unwrap();
    for (backend, tolerance) in [
        (Backend::cpu(), TOLERANCE),
        (Backend::candle_ops(&Device::Cpu), TOLERANCE),
        (bf16, BF16_TOLERANCE),
    ] {
        let model = Model::load(path, &backend).unwrap();
        assert_eq!(model.family(), family);
        let n_layers = model.config().n_layers;
        let plan = CapturePlan::new(all_hooks(n_layers)).with_logits();
        let out = model.forward_capture(&refs, &plan).unwrap();
        let mut worst = (0f64, String::new());
        for hook in all_hooks(n_layers) {
            let rows = out.valid_rows(hook).unwrap();
            assert_eq!(
                rows.dim(1).unwrap(),
                model.hook_width(hook),
                "{name} {hook}"
            );
            let mut start = 0;
            for (i, s) in seqs.iter().enumerate() {
                let ours = rows.narrow(0, start, s.len()).unwrap();
                start += s.len();
                let theirs = &reference[&format!("s{i}.{hook}")];
                let rel = rel_l2(&ours, theirs);
                assert!(
                    rel <= tolerance,
                    "{name} ({}) s{i} {hook}: relative L2 {rel:e}",
                    backend.describe()
                );
                if rel > worst.0 {
                    worst = (rel, format!("s{i} {hook}"));
                }
            }
        }
        let logits = out.logits.unwrap();
        for (i, s) in seqs.iter().enumerate() {
            let theirs = reference[&format!("s{i}.logits")].get(s.len() - 1).unwrap();
            let ours = logits.get(i).unwrap();
            let rel = rel_l2(&ours, &theirs);
            assert!(
                rel <= tolerance,
                "{name} ({}) s{i} logits: relative L2 {rel:e}",
                backend.describe()
            );
        }
        eprintln!(
            "{name} ({}): worst hook {} at {:e}",
            backend.describe(),
            worst.1,
            worst.0
        );
    }
}

#[test]
fn qwen2_matches_transformers() {
    check_family("qwen2", Family::Qwen2);
}

#[test]
fn qwen3_matches_transformers() {
    check_family("qwen3", Family::Qwen3);
}

#[test]
fn gemma2_matches_transformers() {
    check_family("gemma2", Family::Gemma2);
}

#[test]
fn gemma3_matches_transformers() {
    check_family("gemma3", Family::Gemma3);
}

/// The same weights as llama.cpp's converter writes them (gguf-py's tensor names, Gemma's gains
/// stored as 1 + w, llama.cpp's metadata keys) give the same activations.
#[test]
fn gguf_files_of_qwen2_qwen3_gemma2_and_gpt2_match_transformers() {
    for (name, family) in [
        ("qwen2", Family::Qwen2),
        ("qwen3", Family::Qwen3),
        ("gemma2", Family::Gemma2),
        ("gpt2", Family::Gpt2),
    ] {
        let gguf = fixture_dir(name).join("model.gguf");
        let hf = Model::read_config(&fixture_dir(name)).unwrap();
        let from_gguf = Model::read_config(&gguf).unwrap();
        assert_eq!(from_gguf.family, family);
        assert_eq!(
            (
                from_gguf.n_heads,
                from_gguf.n_kv_heads,
                from_gguf.head_dim,
                from_gguf.tied_embeddings
            ),
            (hf.n_heads, hf.n_kv_heads, hf.head_dim, hf.tied_embeddings),
            "{name}"
        );
        check_checkpoint(name, family, &gguf);
    }
}

#[test]
fn gpt2_matches_transformers() {
    check_family("gpt2", Family::Gpt2);
}

/// A config of a family scopedex does not run names the field and lists those it does.
#[test]
fn an_unknown_family_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "mamba", "hidden_size": 8}"#,
    )
    .unwrap();
    let err = Model::load(dir.path(), &Backend::cpu()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let msg = err.to_string();
    for needed in [
        "model_type",
        "mamba",
        "llama",
        "gemma3",
        "gpt2",
        "config.json",
    ] {
        assert!(msg.contains(needed), "{msg}");
    }
}

/// Gemma 3's image-text checkpoints say what scopedex runs instead.
#[test]
fn a_multimodal_gemma3_config_says_which_checkpoints_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
            "text_config": {"hidden_size": 2560}}"#,
    )
    .unwrap();
    let msg = Model::load(dir.path(), &Backend::cpu())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("gemma3_text") && msg.contains("config.json"),
        "{msg}"
    );
}

/// A checkpoint missing a tensor its family needs names the file and the tensor.
#[test]
fn a_missing_tensor_names_the_file_and_tensor() {
    let src = fixture_dir("qwen3");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let kept: HashMap<String, Tensor> = tensors
        .into_iter()
        .filter(|(k, _)| k != "model.layers.1.self_attn.k_norm.weight")
        .collect();
    candle_core::safetensors::save(&kept, dir.path().join("model.safetensors")).unwrap();
    let err = Model::load(dir.path(), &Backend::cpu()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("model.layers.1.self_attn.k_norm.weight") && msg.contains("missing"),
        "{msg}"
    );
}

/// The fixtures make every Gemma branch matter: with the soft-cap, the window or the
/// `query_pre_attn_scalar` changed, the activations move far beyond the tolerance (so the
/// comparisons above would catch a family that ignored them).
#[test]
fn gemma_fixture_branches_all_matter() {
    let src = fixture_dir("gemma2");
    let reference = reference(&src);
    let tokens: Vec<u32> = reference["s0.tokens"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|t| t as u32)
        .collect();
    let hook = HookPoint::ResidPost(2);
    let theirs = &reference[&format!("s0.{hook}")];
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    for (key, value) in [
        ("attn_logit_softcapping", serde_json::Value::Null),
        ("sliding_window", serde_json::json!(64)),
        ("query_pre_attn_scalar", serde_json::json!(24)),
        ("final_logit_softcapping", serde_json::Value::Null),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut changed = config.clone();
        changed[key] = value;
        std::fs::write(dir.path().join("config.json"), changed.to_string()).unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let model = Model::load(dir.path(), &Backend::cpu()).unwrap();
        let out = model
            .forward_capture(&[&tokens], &CapturePlan::new([hook]).with_logits())
            .unwrap();
        let rel = if key == "final_logit_softcapping" {
            let theirs = reference["s0.logits"].get(tokens.len() - 1).unwrap();
            rel_l2(&out.logits.unwrap().get(0).unwrap(), &theirs)
        } else {
            rel_l2(&out.valid_rows(hook).unwrap(), theirs)
        };
        assert!(
            rel > 100.0 * TOLERANCE,
            "{key}: changing it moved {hook} by only {rel:e}"
        );
    }
}
