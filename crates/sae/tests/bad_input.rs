//! Bad checkpoints and arguments produce errors naming the file and field.
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use scopedex_sae::{
    write_llama_scope, DatasetNorm, Error, LlamaScopeHyperparams, LlamaScopeTensors, Sae,
};

const M: usize = 8;
const S: usize = 32;

fn params() -> LlamaScopeHyperparams {
    LlamaScopeHyperparams {
        d_model: M,
        d_sae: S,
        expansion_factor: 4,
        hook_point_in: "blocks.1.hook_resid_post".into(),
        hook_point_out: "blocks.1.hook_resid_post".into(),
        act_fn: "jumprelu".into(),
        jump_relu_threshold: Some(0.5),
        top_k: Some(4),
        norm_activation: "dataset-wise".into(),
        dataset_average_activation_norm: Some(DatasetNorm {
            input: 3.0,
            output: 3.0,
        }),
        sparsity_include_decoder_norm: true,
        use_decoder_bias: true,
        apply_decoder_bias_to_pre_encoder: false,
    }
}

fn tensors() -> LlamaScopeTensors {
    let d = Device::Cpu;
    let ramp = |n: usize, s: f32| (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * s).collect();
    LlamaScopeTensors {
        encoder_weight: Tensor::from_vec(ramp(S * M, 0.1), (S, M), &d).unwrap(),
        encoder_bias: Tensor::zeros(S, DType::F32, &d).unwrap(),
        decoder_weight: Tensor::from_vec(ramp(M * S, 0.2), (M, S), &d).unwrap(),
        decoder_bias: Tensor::zeros(M, DType::F32, &d).unwrap(),
    }
}

fn write(dir: &Path, p: &LlamaScopeHyperparams, t: &LlamaScopeTensors) -> PathBuf {
    write_llama_scope(dir, p, t).unwrap();
    dir.to_path_buf()
}

/// Rewrites hyperparams.json through `edit`.
fn edit_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("hyperparams.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&path, v.to_string()).unwrap();
}

fn load_err(dir: &Path) -> (Error, String) {
    let err = Sae::load(dir, &Device::Cpu).unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

#[test]
fn written_checkpoint_loads_and_matches_in_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write(&tmp.path().join("L1R-4x"), &params(), &tensors());
    let sae = Sae::load(&dir, &Device::Cpu).unwrap();
    let mem = Sae::from_llama_scope("mem", &params(), &tensors(), &Device::Cpu).unwrap();
    let x = Tensor::from_vec(
        (0..5 * M).map(|i| (i % 7) as f32 - 3.0).collect(),
        (5, M),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(sae.encode(&x).unwrap(), mem.encode(&x).unwrap());
    assert!(sae.check_d_model(M).is_ok());
    let err = sae.check_d_model(4096).unwrap_err();
    assert!(matches!(err, Error::DModelMismatch { .. }));
    assert!(err.to_string().contains("4096"), "{err}");
    // Bad input shape.
    let wrong = Tensor::zeros((3, M + 1), DType::F32, &Device::Cpu).unwrap();
    let err = sae.encode(&wrong).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // L0 check against the trained k.
    assert!(sae.check_mean_l0(4.0).is_none());
    assert!(sae.check_mean_l0(40.0).unwrap().contains("far from"));
}

#[test]
fn missing_and_misshaped_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write(tmp.path(), &params(), &tensors());
    let weights = dir.join("checkpoints/final.safetensors");
    // Drop decoder.bias.
    let mut map = candle_core::safetensors::load(&weights, &Device::Cpu).unwrap();
    map.remove("decoder.bias");
    candle_core::safetensors::save(&map, &weights).unwrap();
    let (err, msg) = load_err(&dir);
    assert!(matches!(err, Error::MissingTensor { .. }), "{msg}");
    assert!(
        msg.contains("decoder.bias") && msg.contains("final.safetensors"),
        "{msg}"
    );
    // Transposed encoder.
    let mut t = tensors();
    t.encoder_weight = Tensor::zeros((M, S), DType::F32, &Device::Cpu).unwrap();
    let mut map = std::collections::HashMap::new();
    map.insert("encoder.weight", t.encoder_weight);
    map.insert("encoder.bias", t.encoder_bias);
    map.insert("decoder.weight", t.decoder_weight);
    map.insert("decoder.bias", t.decoder_bias);
    candle_core::safetensors::save(&map, &weights).unwrap();
    let (err, msg) = load_err(&dir);
    assert!(matches!(err, Error::TensorShape { .. }), "{msg}");
    assert!(
        msg.contains("encoder.weight") && msg.contains("[32, 8]"),
        "{msg}"
    );
    // The writer refuses misshaped tensors too.
    let mut t = tensors();
    t.decoder_bias = Tensor::zeros(M + 1, DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        write_llama_scope(&tmp.path().join("w"), &params(), &t),
        Err(Error::TensorShape { .. })
    ));
    // Missing weights file.
    std::fs::remove_file(&weights).unwrap();
    let (_, msg) = load_err(&dir);
    assert!(msg.contains("final.safetensors"), "{msg}");
}

#[test]
fn non_finite_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let mut t = tensors();
    let mut v = vec![0.5f32; M * S];
    v[13] = f32::NAN;
    t.decoder_weight = Tensor::from_vec(v, (M, S), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    let dir = write(tmp.path(), &params(), &t);
    let (err, msg) = load_err(&dir);
    assert!(matches!(err, Error::NonFinite { index: 13, .. }), "{msg}");
    assert!(msg.contains("decoder.weight"), "{msg}");
    // In memory, too.
    let mut t = tensors();
    t.encoder_bias = Tensor::from_vec(vec![f32::INFINITY; S], S, &Device::Cpu).unwrap();
    let err = Sae::from_llama_scope("x", &params(), &t, &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::NonFinite { index: 0, .. }), "{err}");
}

#[test]
fn config_errors_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write(&tmp.path().join("base"), &params(), &tensors());
    let case = |name: &str, edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let dir = tmp.path().join(name);
        write(&dir, &params(), &tensors());
        edit_json(&dir, edit);
        load_err(&dir).1
    };
    let msg = case("unknown_act", &|m| {
        m.insert("act_fn".into(), "gelu".into());
    });
    assert!(
        msg.contains("act_fn") && msg.contains("gelu") && msg.contains("hyperparams.json"),
        "{msg}"
    );
    let msg = case("no_d_sae", &|m| {
        m.remove("d_sae");
    });
    assert!(msg.contains("missing required field `d_sae`"), "{msg}");
    let msg = case("no_thr", &|m| {
        m.remove("jump_relu_threshold");
    });
    assert!(msg.contains("jump_relu_threshold"), "{msg}");
    let msg = case("topk_no_k", &|m| {
        m.insert("act_fn".into(), "topk".into());
        m.remove("top_k");
    });
    assert!(msg.contains("top_k"), "{msg}");
    let msg = case("topk_over_d_sae", &|m| {
        m.insert("act_fn".into(), "topk".into());
        let d_sae = m["d_sae"].as_u64().unwrap();
        m.insert("top_k".into(), (d_sae + 1).into());
    });
    assert!(
        msg.contains("top_k") && msg.contains("exceeds d_sae") && msg.contains("hyperparams.json"),
        "{msg}"
    );
    let msg = case("no_norm", &|m| {
        m.insert(
            "dataset_average_activation_norm".into(),
            serde_json::Value::Null,
        );
    });
    assert!(msg.contains("dataset_average_activation_norm"), "{msg}");
    let msg = case("token_wise", &|m| {
        m.insert("norm_activation".into(), "token-wise".into());
    });
    assert!(
        msg.contains("norm_activation") && msg.contains("token-wise"),
        "{msg}"
    );
    let msg = case("bad_type", &|m| {
        m.insert("d_model".into(), "eight".into());
    });
    assert!(msg.contains("d_model"), "{msg}");
    let msg = case("no_sparsity_flag", &|m| {
        m.remove("sparsity_include_decoder_norm");
    });
    assert!(msg.contains("sparsity_include_decoder_norm"), "{msg}");
    // Unknown fields are ignored.
    edit_json(&base, |m| {
        m.insert("some_future_field".into(), 42.into());
    });
    assert!(Sae::load(&base, &Device::Cpu).is_ok());
    // Bad JSON names the file.
    std::fs::write(base.join("hyperparams.json"), "{ not json").unwrap();
    let (err, msg) = load_err(&base);
    assert!(
        matches!(err, Error::Json { .. }) && msg.contains("hyperparams.json"),
        "{msg}"
    );
}

#[test]
fn folders_and_repos() {
    let tmp = tempfile::tempdir().unwrap();
    let (err, msg) = load_err(tmp.path());
    assert!(matches!(err, Error::UnknownFormat { .. }), "{msg}");
    let (_, msg) = load_err(&tmp.path().join("absent"));
    assert!(msg.contains("absent"), "{msg}");
    // A repo with two SAEs.
    let mut p = params();
    write(&tmp.path().join("X-L1R-4x"), &p, &tensors());
    p.hook_point_in = "blocks.2.hook_resid_post".into();
    p.hook_point_out = p.hook_point_in.clone();
    write(&tmp.path().join("X-L2R-4x"), &p, &tensors());
    let (err, msg) = load_err(tmp.path());
    assert!(
        matches!(err, Error::Repo { .. }) && msg.contains("L1R-4x, L2R-4x"),
        "{msg}"
    );
    let sae = Sae::load_from_repo(tmp.path(), &"L2R-4x".parse().unwrap(), &Device::Cpu).unwrap();
    assert_eq!(sae.hook_in(), "blocks.2.hook_resid_post");
    let err =
        Sae::load_from_repo(tmp.path(), &"L9R-4x".parse().unwrap(), &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("no SAE L9R-4x"), "{err}");
}

#[test]
fn saelens_bad_architecture_and_missing_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = |arch: &str| {
        serde_json::json!({
            "architecture": arch, "d_in": M, "d_sae": S, "apply_b_dec_to_input": false,
            "normalize_activations": "none", "metadata": {"hook_name": "blocks.0.hook_resid_post"}
        })
    };
    let d = Device::Cpu;
    let mut map = std::collections::HashMap::new();
    map.insert("W_enc", Tensor::zeros((M, S), DType::F32, &d).unwrap());
    map.insert("W_dec", Tensor::zeros((S, M), DType::F32, &d).unwrap());
    map.insert("b_enc", Tensor::zeros(S, DType::F32, &d).unwrap());
    map.insert("b_dec", Tensor::zeros(M, DType::F32, &d).unwrap());
    candle_core::safetensors::save(&map, dir.join("sae_weights.safetensors")).unwrap();
    std::fs::write(dir.join("cfg.json"), cfg("gated").to_string()).unwrap();
    let (err, msg) = load_err(dir);
    assert!(matches!(err, Error::UnknownActivation { .. }), "{msg}");
    assert!(
        msg.contains("architecture") && msg.contains("gated") && msg.contains("cfg.json"),
        "{msg}"
    );
    std::fs::write(dir.join("cfg.json"), cfg("jumprelu").to_string()).unwrap();
    let (err, msg) = load_err(dir);
    assert!(
        matches!(err, Error::MissingTensor { .. }) && msg.contains("threshold"),
        "{msg}"
    );
    std::fs::write(dir.join("cfg.json"), cfg("standard").to_string()).unwrap();
    let sae = Sae::load(dir, &d).unwrap();
    assert_eq!(sae.id().map(|i| i.to_string()), Some("L0R-4x".into()));
}

#[test]
fn topk_ties_and_all_negative_rows() {
    let d = Device::Cpu;
    let mut p = params();
    p.act_fn = "topk".into();
    p.top_k = Some(3);
    p.sparsity_include_decoder_norm = false;
    let mut t = tensors();
    t.encoder_weight = Tensor::zeros((S, M), DType::F32, &d).unwrap();
    // Equal gates everywhere: the lowest ids win.
    t.encoder_bias = Tensor::ones(S, DType::F32, &d).unwrap();
    let sae = Sae::from_llama_scope("ties", &p, &t, &d).unwrap();
    let x = Tensor::zeros((2, M), DType::F32, &d).unwrap();
    let codes = sae.encode(&x).unwrap();
    assert_eq!(codes.row(0).0, &[0, 1, 2]);
    assert_eq!(codes.row(1).0, &[0, 1, 2]);
    // All gates negative: empty rows.
    t.encoder_bias = (Tensor::ones(S, DType::F32, &d).unwrap() * -1.0).unwrap();
    let sae = Sae::from_llama_scope("neg", &p, &t, &d).unwrap();
    let codes = sae.encode(&x).unwrap();
    assert_eq!((codes.n_rows(), codes.nnz()), (2, 0));
}
