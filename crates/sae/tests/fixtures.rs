//! Codes, reconstructions and metrics against the numpy reference of
//! `scripts/make-sae-fixtures.py` (tests/fixtures/sae/), for both on-disk layouts.
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use scopedex_sae::{
    reconstruction_metrics, Activation, Position, Sae, SaeFormat, SaeId, SparseCodes, ThresholdKind,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sae")
}

struct Expected {
    x: Tensor,
    acts: Vec<Vec<f32>>,
    recon: Vec<Vec<f32>>,
    target: Tensor,
    json: serde_json::Value,
}

fn expected(name: &str) -> Expected {
    let dir = root().join("expected");
    let t = candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu)
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    Expected {
        x: t["x"].clone(),
        acts: t["acts"].to_vec2().unwrap(),
        recon: t["recon"].to_vec2().unwrap(),
        target: t["target"].clone(),
        json,
    }
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-4 * b.abs().max(scale)
}

/// Identical active sets, values within 1e-4 relative; reconstruction within 1e-4 of the row's
/// largest component; metrics within 1e-4 relative.
fn check(sae: &Sae, name: &str) {
    let e = expected(name);
    let codes = sae.encode(&e.x).unwrap();
    assert_eq!(codes.n_rows(), e.acts.len(), "{name}");
    for (r, want) in e.acts.iter().enumerate() {
        let (feats, vals) = codes.row(r);
        let want_feats: Vec<u32> = (0..want.len() as u32)
            .filter(|&j| want[j as usize] > 0.0)
            .collect();
        assert_eq!(feats, &want_feats[..], "{name}: active set of row {r}");
        for (&f, &v) in feats.iter().zip(vals) {
            let w = want[f as usize];
            assert!(v > 0.0);
            assert!(
                close(v as f64, w as f64, 0.0),
                "{name} row {r} feature {f}: {v} vs {w}"
            );
        }
    }
    let recon = sae.decode(&codes).unwrap().to_vec2::<f32>().unwrap();
    for (r, (got, want)) in recon.iter().zip(&e.recon).enumerate() {
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        for (g, w) in got.iter().zip(want) {
            assert!(
                close(*g as f64, *w as f64, scale),
                "{name} recon row {r}: {g} vs {w}"
            );
        }
    }
    let m = reconstruction_metrics(sae, &e.x, &e.target).unwrap();
    let want = &e.json["metrics"];
    for (got, key) in [
        (m.mse, "mse"),
        (m.explained_variance, "explained_variance"),
        (m.mean_l0, "mean_l0"),
    ] {
        let w = want[key].as_f64().unwrap();
        assert!(close(got, w, 0.0), "{name} {key}: {got} vs {w}");
    }
    assert_eq!(
        m.dead_features as u64,
        want["dead_features"].as_u64().unwrap()
    );
    assert_eq!(m.n_rows, e.acts.len());
    // Chunking changes nothing.
    let mut small = sae_reload(sae);
    small.set_chunk_rows(3);
    assert_eq!(small.encode(&e.x).unwrap(), codes, "{name}: chunked encode");
}

fn sae_reload(sae: &Sae) -> Sae {
    let name = sae.name();
    let dir = if name.starts_with("Llama3") {
        root().join("llamascope_repo").join(name)
    } else if name.ends_with(".pt") {
        root().join("openai").join(name)
    } else if root().join(name).is_dir() {
        root().join(name)
    } else {
        // A Gemma Scope name carries the release folders above the SAE's.
        let (_, rest) = name.split_once('/').unwrap();
        root().join(rest)
    };
    Sae::load(&dir, &Device::Cpu).unwrap()
}

fn repo() -> PathBuf {
    root().join("llamascope_repo")
}

#[test]
fn llama_scope_jumprelu_bf16_residual() {
    let id: SaeId = "L3R-4x".parse().unwrap();
    let sae = Sae::load_from_repo(&repo(), &id, &Device::Cpu).unwrap();
    assert_eq!(sae.id(), Some(&id));
    assert_eq!(sae.name(), "Llama3_1-8B-Base-L3R-4x");
    assert_eq!(sae.format(), SaeFormat::LlamaScope);
    assert_eq!((sae.d_in(), sae.d_sae(), sae.d_out()), (32, 128, 32));
    assert_eq!(sae.hook_in(), "blocks.3.hook_resid_post");
    assert_eq!(sae.hook_out(), "blocks.3.hook_resid_post");
    assert_eq!(
        sae.activation(),
        &Activation::JumpRelu {
            threshold: ThresholdKind::Scalar(1.1)
        }
    );
    assert_eq!(sae.top_k(), Some(6));
    assert_eq!(sae.source_sha256().len(), 64);
    check(&sae, "Llama3_1-8B-Base-L3R-4x");
}

#[test]
fn llama_scope_topk_transcoder_in_out_norms_differ() {
    let id: SaeId = "L2TC-4x".parse().unwrap();
    let sae = Sae::load_from_repo(&repo(), &id, &Device::Cpu).unwrap();
    assert_eq!(sae.id().map(|i| i.position), Some(Position::TC));
    assert_eq!(sae.hook_in(), "blocks.2.ln2.hook_normalized");
    assert_eq!(sae.hook_out(), "blocks.2.hook_mlp_out");
    assert_eq!(sae.activation(), &Activation::TopK { k: 6 });
    check(&sae, "Llama3_1-8B-Base-L2TC-4x");
}

#[test]
fn llama_scope_f16_inference_norm_without_decoder_norm_gate() {
    let dir = repo().join("Llama3_1-8B-Base-L5A-4x");
    let sae = Sae::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L5A-4x".into()));
    check(&sae, "Llama3_1-8B-Base-L5A-4x");
}

#[test]
fn saelens_jumprelu_v6_with_b_dec_on_input() {
    let sae = Sae::load(&root().join("saelens_jumprelu"), &Device::Cpu).unwrap();
    assert_eq!(sae.format(), SaeFormat::SaeLens);
    assert_eq!(sae.hook_in(), "blocks.4.hook_resid_post");
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L4R-4x".into()));
    assert!(matches!(
        sae.activation(),
        Activation::JumpRelu {
            threshold: ThresholdKind::PerFeature(t)
        } if t.len() == 128
    ));
    check(&sae, "saelens_jumprelu");
}

#[test]
fn saelens_standard_v5_f16() {
    let sae = Sae::load(&root().join("saelens_standard"), &Device::Cpu).unwrap();
    assert_eq!(sae.activation(), &Activation::Relu);
    assert_eq!(sae.top_k(), None);
    check(&sae, "saelens_standard");
}

#[test]
fn saelens_topk_v6_bf16() {
    let sae = Sae::load(&root().join("saelens_topk"), &Device::Cpu).unwrap();
    assert_eq!(sae.activation(), &Activation::TopK { k: 5 });
    assert_eq!(sae.hook_in(), "blocks.1.hook_mlp_out");
    check(&sae, "saelens_topk");
}

#[test]
fn repo_listing_and_decoder_directions() {
    let found = scopedex_sae::list_repo(&repo()).unwrap();
    let ids: Vec<String> = found.iter().map(|(i, _)| i.to_string()).collect();
    assert_eq!(ids, ["L2TC-4x", "L3R-4x", "L5A-4x"]);
    // Directions = decode(one-hot) − decode(empty), native scale (TC: / s_out).
    let sae = Sae::load_from_repo(&repo(), &"L2TC-4x".parse().unwrap(), &Device::Cpu).unwrap();
    let dirs = sae.decoder_directions().unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(dirs.len(), 128);
    let mut codes = SparseCodes::new(128);
    codes.push_row(&[], &[]);
    codes.push_row(&[7], &[1.0]);
    let y = sae.decode(&codes).unwrap().to_vec2::<f32>().unwrap();
    for j in 0..32 {
        let want = y[1][j] - y[0][j];
        assert!((dirs[7][j] - want).abs() <= 1e-4 * want.abs().max(1e-3));
    }
}

#[test]
fn codes_round_trip_through_safetensors() {
    let sae = Sae::load(&root().join("saelens_topk"), &Device::Cpu).unwrap();
    let codes = sae.encode(&expected("saelens_topk").x).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codes.safetensors");
    codes.save_safetensors(&path).unwrap();
    assert_eq!(SparseCodes::load_safetensors(&path).unwrap(), codes);
    let raw = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(raw["row_ptr"].dtype(), candle_core::DType::I64);
    assert_eq!(raw["row_ptr"].dims(), [41]);
    assert_eq!(raw["features"].dtype(), candle_core::DType::I64);
    assert_eq!(raw["values"].dtype(), candle_core::DType::F32);
    assert_eq!(raw["values"].dims(), [codes.nnz()]);
}

#[test]
fn gemma_scope_attention_sae_from_params_npz() {
    let dir = root().join("gemma-scope-2b-pt-att/layer_5/width_128/average_l0_9");
    let sae = Sae::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(sae.format(), SaeFormat::GemmaScope);
    // att SAEs read the heads before the output projection.
    assert_eq!(sae.hook_in(), "blocks.5.attn.hook_z");
    assert_eq!(sae.hook_out(), "blocks.5.attn.hook_z");
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L5Z-128".into()));
    check(&sae, "gemma-scope-2b-pt-att_layer_5_width_128_average_l0_9");
}

#[test]
fn gemma_scope_2_transcoder_from_params_safetensors() {
    let dir = root().join("gemma-scope-2-270m-pt/transcoder/layer_3_width_128_l0_small");
    let sae = Sae::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(sae.format(), SaeFormat::GemmaScope);
    // Gemma Scope 2's transcoders read the pre-MLP norm's output and predict the MLP's.
    assert_eq!(sae.hook_in(), "blocks.3.mlp.hook_in");
    assert_eq!(sae.hook_out(), "blocks.3.hook_mlp_out");
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L3TM-128".into()));
    check(
        &sae,
        "gemma-scope-2-270m-pt_transcoder_layer_3_width_128_l0_small",
    );
}

/// A Gemma Scope file outside its release folders has no hook: the error says which layout
/// gives it. A file missing `threshold` names the file and the tensor.
#[test]
fn gemma_scope_errors_name_the_layout_and_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let src = root().join("gemma-scope-2b-pt-att/layer_5/width_128/average_l0_9/params.npz");
    let loose = tmp.path().join("loose");
    std::fs::create_dir_all(&loose).unwrap();
    std::fs::copy(&src, loose.join("params.npz")).unwrap();
    let msg = Sae::load(&loose, &Device::Cpu).unwrap_err().to_string();
    assert!(msg.contains("layer_12") && msg.contains("layer_N"), "{msg}");

    let st = root()
        .join("gemma-scope-2-270m-pt/transcoder/layer_3_width_128_l0_small/params.safetensors");
    let dir = tmp
        .path()
        .join("gemma-scope-2-270m-pt/mlp_out/layer_3_width_128_l0_small");
    std::fs::create_dir_all(&dir).unwrap();
    let mut tensors = candle_core::safetensors::load(&st, &Device::Cpu).unwrap();
    tensors.remove("threshold");
    candle_core::safetensors::save(&tensors, dir.join("params.safetensors")).unwrap();
    let msg = Sae::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(
        msg.contains("threshold") && msg.contains("params.safetensors"),
        "{msg}"
    );
}

/// An SAE whose cfg says it read TransformerLens' centred residual stream (as SAELens'
/// `gpt2-small-res-jb` does) centres its inputs and targets over d_model; turned off, it does not.
#[test]
fn saelens_centred_residual_sae_centres_its_inputs() {
    let mut sae = Sae::load(&root().join("saelens_centred_resid_pre"), &Device::Cpu).unwrap();
    assert_eq!(sae.hook_in(), "blocks.2.hook_resid_pre");
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L2RP-4x".into()));
    assert!(sae.trained_on_centred_residual());
    check(&sae, "saelens_centred_resid_pre");
    let e = expected("saelens_centred_resid_pre");
    let centred = sae.encode(&e.x).unwrap();
    sae.set_centre(false);
    assert_ne!(sae.encode(&e.x).unwrap(), centred);
}

#[test]
fn openai_topk_autoencoder_from_its_torch_state_dict() {
    let path = root().join("openai/resid_post_mlp_v5_32k/autoencoders/3.pt");
    let sae = Sae::load(&path, &Device::Cpu).unwrap();
    assert_eq!(sae.format(), SaeFormat::OpenAi);
    assert_eq!(sae.hook_in(), "blocks.3.hook_resid_post");
    // k from the pickle's activation_state_dict, inputs layer-normalised per token.
    assert!(matches!(sae.activation(), Activation::TopK { k: 6 }));
    assert_eq!(sae.input_norm(), scopedex_sae::InputNorm::LayerNorm);
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L3R-4x".into()));
    check(&sae, "openai_resid_post_mlp_v5_32k_autoencoders_3.pt");
}
