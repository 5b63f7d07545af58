//! `scopedex info` on the fetched default model: proves the asset fetch produced the real file.
use std::process::Command;

use crate::assets::{default_model, scopedex_bin};

#[test]
fn default_model_metadata_matches_smollm2_135m() {
    let out = Command::new(scopedex_bin())
        .args(["info", "--model"])
        .arg(default_model())
        .output()
        .expect("run scopedex");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["family"], "llama");
    assert_eq!(v["n_layers"], 30);
    assert_eq!(v["d_model"], 576);
    assert_eq!(v["vocab_size"], 49152);
    let gguf = &v["gguf"];
    assert_eq!(gguf["architecture"], "llama");
    assert_eq!(gguf["tokenizer_model"], "gpt2");
    // 30 blocks x 9 tensors + token_embd + output_norm (tied embeddings: no output.weight).
    assert_eq!(gguf["n_tensors"], 272);
    // Every hook kind with its width: hook_z is n_heads · head_dim = 9 × 64.
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 7);
    let z = hooks
        .iter()
        .find(|h| h["name"] == "blocks.{L}.attn.hook_z")
        .unwrap();
    assert_eq!(z["width"], 576);
    assert!(hooks
        .iter()
        .all(|h| h["meaning"].as_str().is_some_and(|m| !m.is_empty())));
}

#[test]
fn missing_model_exits_2_naming_the_file() {
    let out = Command::new(scopedex_bin())
        .args(["info", "--model", "/nonexistent/model.gguf"])
        .output()
        .expect("run scopedex");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}
