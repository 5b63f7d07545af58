//! Every stage on a second family: the real Gemma 3 270M GGUF
//! (`scripts/fetch-assets.sh --model gemma-3-270m`), indexed with a residual-stream SAE and an
//! attention SAE on `attn.hook_z` (1,024 wide: 4 heads × 256, not d_model), then queried and
//! run live. The model's numerics are checked against transformers in crates/model.
use std::path::{Path, PathBuf};

use scopedex_sae::{fabricate_llama_scope, FabricateSpec};
use scopedex_store::parquet::read_all;
use scopedex_store::{FeatureRecord, IndexLayout, IndexReader};
use serde_json::Value;

use crate::assets::workspace_root;
use crate::index::{run_ok, small_corpus};

fn gemma3() -> PathBuf {
    let path = workspace_root().join("assets/models/gemma-3-270m-Q4_K_M.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-assets.sh --model gemma-3-270m",
        path.display()
    );
    path
}

fn fabricate(dir: &Path, hook: &str, width: usize, d_sae: usize, norm: f32) {
    let spec = FabricateSpec {
        d_model: width,
        d_sae,
        k: 8,
        hook_in: hook.into(),
        hook_out: hook.into(),
        norm: (norm, norm),
        seed: 5,
    };
    fabricate_llama_scope(dir, &spec).unwrap();
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_slice(&run_ok(args).stdout).unwrap()
}

#[test]
fn gemma3_indexes_queries_and_activates_with_residual_and_hook_z_saes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let corpus = small_corpus(root, 24);
    let (resid, z) = (root.join("resid"), root.join("z"));
    fabricate(&resid, "blocks.6.hook_resid_post", 640, 1280, 25.0);
    fabricate(&z, "blocks.6.attn.hook_z", 1024, 2048, 30.0);
    let idx = root.join("index");
    let model = gemma3();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    run_ok(&[
        "index",
        "--model",
        &s(&model),
        "--corpus",
        &s(&corpus),
        "--sae",
        &s(&resid),
        "--sae",
        // An id set by hand, kept through the live reload.
        &format!("{}#gemma-attn-6", s(&z)),
        "--ctx-len",
        "64",
        "--out",
        &s(&idx),
    ]);
    let reader = IndexReader::open(&idx).unwrap();
    let m = &reader.manifest().model;
    assert_eq!((m.n_layers, m.d_model), (18, 640));
    assert_eq!(reader.vocab().unwrap().unwrap().len(), 262_144);
    let layout = IndexLayout::new(&idx);
    let ids: Vec<String> = reader.sae_ids().iter().map(|s| s.to_string()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"gemma-attn-6".to_string()), "{ids:?}");
    for sae in &ids {
        let features: Vec<FeatureRecord> = read_all(layout.features(sae)).unwrap();
        let fired = features.iter().filter(|f| f.n_fired > 0).count();
        assert!(fired > 0, "{sae}: no feature fired");
        // Logit effects exist for the residual SAE only: hook_z is not the residual stream.
        let with_logits = features.iter().filter(|f| !f.logit_pos.is_empty()).count();
        if features.len() == 1280 {
            assert!(with_logits > 0, "{sae}: no logit effects");
        } else {
            assert_eq!(features.len(), 2048);
            assert_eq!(with_logits, 0, "{sae}: logit effects from hook_z");
        }
    }
    // Queries and the live path (tokenizer and forward from the GGUF) answer for both SAEs.
    let idx = s(&idx);
    for sae in &ids {
        let stats = json_of(&["stats", &idx, sae, "--json"]);
        assert!(stats.is_object(), "{stats}");
    }
    let act = json_of(&["activate", &idx, "The cat sat on the mat.", "--json"]);
    let tokens = act["tokens"].as_array().unwrap();
    assert!(tokens.len() >= 7, "{act}");
    let saes_seen: std::collections::BTreeSet<String> = tokens[1..]
        .iter()
        .flat_map(|t| t["features"].as_array().unwrap().iter())
        .map(|f| f["sae"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(saes_seen.len(), 2, "{act}");
}

/// An SAE whose width does not match its hook in this model is refused before the pass,
/// naming the hook and both widths.
#[test]
fn an_sae_of_the_wrong_width_for_its_hook_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let corpus = small_corpus(root, 4);
    let sae = root.join("z");
    // hook_z is 1,024 wide on Gemma 3 270M; d_model is 640.
    fabricate(&sae, "blocks.3.attn.hook_z", 640, 1280, 25.0);
    let out = std::process::Command::new(crate::assets::scopedex_bin())
        .args(["index", "--model"])
        .arg(gemma3())
        .arg("--corpus")
        .arg(&corpus)
        .arg("--sae")
        .arg(&sae)
        .arg("--out")
        .arg(root.join("index"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("blocks.3.attn.hook_z") && err.contains("640") && err.contains("1024"),
        "{err}"
    );
    assert!(!root.join("index").exists());
}
