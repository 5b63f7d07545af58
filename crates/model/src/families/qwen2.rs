//! Qwen2 / Qwen2.5 (transformers' `modeling_qwen2.py`): Llama's block with biases on the q, k
//! and v projections (`o_proj` has none); embeddings tied or not as the checkpoint says. The
//! optional sliding window of `use_sliding_window` is off in every released config and is
//! refused here rather than run wrong.
use std::path::Path;

use candle_core::Device;

use super::hf::{check_rope_type, HfCommon};
use super::llama::{load_pre_norm, Variant};
use super::{Family, Parts};
use crate::config::Config;
use crate::gguf::Meta;
use crate::weights::WeightSource;
use crate::{Error, Result};

pub(super) const HF_MODEL_TYPES: &[&str] = &["qwen2"];
pub(super) const HF_ARCHITECTURES: &[&str] = &["Qwen2ForCausalLM"];
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["qwen2"];

/// Resolves a Qwen2 `config.json`.
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    config_like_qwen(json, path, Family::Qwen2)
}

/// The config of Qwen2 or Qwen3 (the same keys): no sliding window, SiLU, default RoPE.
pub(super) fn config_like_qwen(
    json: &serde_json::Value,
    path: &Path,
    family: Family,
) -> Result<Config> {
    let c = HfCommon::parse(json, path)?;
    c.check_activation(path, &["silu"])?;
    if c.use_sliding_window == Some(true) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "use_sliding_window".into(),
            detail: "true (no released Qwen config uses it)".into(),
        });
    }
    check_rope_type(c.rope_scaling.as_ref(), &[], path)?;
    check_rope_type(c.rope_parameters.as_ref(), &[], path)?;
    Ok(c.base(family, false))
}

/// Resolves a `qwen2` GGUF file's config.
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    crate::gguf::standard_config(m, Family::Qwen2)
}

/// Loads a Qwen2 checkpoint.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    let variant = Variant {
        qkv_bias: true,
        qk_norm: false,
    };
    load_pre_norm(src, cfg, device, max_blocks, variant)
}
