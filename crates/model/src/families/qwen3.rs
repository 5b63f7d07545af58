//! Qwen3 (transformers' `modeling_qwen3.py`): Llama's block with a per-head RMSNorm of q and k
//! (`self_attn.q_norm`, `k_norm`, over `head_dim`) before RoPE, no biases, `head_dim` given
//! explicitly (Qwen3-0.6B: 16 heads of 128 on a 1024-wide residual stream).
use std::path::Path;

use candle_core::Device;

use super::llama::{load_pre_norm, Variant};
use super::qwen2::config_like_qwen;
use super::{Family, Parts};
use crate::config::Config;
use crate::gguf::Meta;
use crate::weights::WeightSource;
use crate::{Error, Result};

pub(super) const HF_MODEL_TYPES: &[&str] = &["qwen3"];
pub(super) const HF_ARCHITECTURES: &[&str] = &["Qwen3ForCausalLM"];
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["qwen3"];

/// Resolves a Qwen3 `config.json`.
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    if json.get("attention_bias").and_then(|b| b.as_bool()) == Some(true) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "attention_bias".into(),
            detail: "true (Qwen3 checkpoints have none)".into(),
        });
    }
    config_like_qwen(json, path, Family::Qwen3)
}

/// Resolves a `qwen3` GGUF file's config.
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    crate::gguf::standard_config(m, Family::Qwen3)
}

/// Loads a Qwen3 checkpoint.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    let variant = Variant {
        qkv_bias: false,
        qk_norm: true,
    };
    load_pre_norm(src, cfg, device, max_blocks, variant)
}
