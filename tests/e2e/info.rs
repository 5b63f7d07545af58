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
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["n_layers"], 30);
    assert_eq!(v["d_model"], 576);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["tokenizer_model"], "gpt2");
    // 30 blocks x 9 tensors + token_embd + output_norm (tied embeddings: no output.weight).
    assert_eq!(v["n_tensors"], 272);
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
