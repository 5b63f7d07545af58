//! Gemma 3 text models (transformers' `modeling_gemma3.py`, `Gemma3ForCausalLM`): Gemma 2's
//! block plus per-head q/k RMSNorms (`(1 + w)` gain) before RoPE, no soft-caps, five local
//! layers to one global (`layer_types`, or every `sliding_window_pattern`-th layer global), a
//! RoPE base per layer kind (local 10⁴, global 10⁶) and, on 4B and up, linear RoPE scaling of
//! the global layers.
use std::path::Path;

use candle_core::Device;

use super::gemma2::{load_sandwich, opt_f32, GELU_TANH};
use super::hf::{check_rope_type, HfCommon};
use super::{Family, Parts};
use crate::config::Config;
use crate::gguf::Meta;
use crate::weights::WeightSource;
use crate::{Error, Result};

pub(super) const HF_MODEL_TYPES: &[&str] = &["gemma3_text"];
pub(super) const HF_ARCHITECTURES: &[&str] = &["Gemma3ForCausalLM"];
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["gemma3"];

/// Resolves a Gemma 3 text `config.json` (absent keys take `Gemma3TextConfig`'s defaults).
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    let c = HfCommon::parse(json, path)?;
    c.check_activation(path, GELU_TANH)?;
    let pattern = c
        .sliding_window_pattern
        .or(c.sliding_window_pattern_private)
        .unwrap_or(6)
        .max(1);
    // transformers 5: `rope_parameters` per layer kind; 4.x: `rope_theta` (global),
    // `rope_local_base_freq` and `rope_scaling` (global).
    let theta = |v: Option<&serde_json::Value>| {
        v.and_then(|p| p.get("rope_theta"))
            .and_then(|t| t.as_f64())
            .map(|t| t as f32)
    };
    let (global, local) = (
        c.rope_of_kind("full_attention"),
        c.rope_of_kind("sliding_attention"),
    );
    let global_scaling = match global {
        Some(g) => g,
        None => c.rope_scaling.as_ref().unwrap_or(&serde_json::Value::Null),
    };
    check_rope_type(local, &[], path)?;
    let linear = match check_rope_type(Some(global_scaling), &["linear"], path)? {
        Some(_) => Some(
            global_scaling
                .get("factor")
                .and_then(|f| f.as_f64())
                .filter(|f| *f > 0.0)
                .ok_or_else(|| Error::BadConfig {
                    path: path.to_path_buf(),
                    field: "rope_scaling.factor".into(),
                    detail: "is missing or not a positive number".into(),
                })? as f32,
        ),
        None => None,
    };
    let base = c.base(Family::Gemma3, true);
    Ok(Config {
        rope_theta: theta(global).or(c.rope_theta).unwrap_or(1_000_000.0),
        rope_local_theta: Some(theta(local).or(c.rope_local_base_freq).unwrap_or(10_000.0)),
        rope_linear_factor: linear,
        query_pre_attn_scalar: Some(c.query_pre_attn_scalar.unwrap_or(256.0)),
        attn_softcap: opt_f32(json, "attn_logit_softcapping", None),
        final_softcap: opt_f32(json, "final_logit_softcapping", None),
        sliding_window: Some(c.sliding_window.unwrap_or(4096)),
        sliding_layers: c.sliding_layers(path, |l| (l + 1) % pattern != 0)?,
        ..base
    })
}

/// Resolves a `gemma3` GGUF file's config: llama.cpp's keys, every sixth layer global, local
/// RoPE base 10⁴ (llama.cpp hard-codes both), linear scaling from `gemma3.rope.scaling.factor`.
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    let base = crate::gguf::standard_config(m, Family::Gemma3)?;
    let n = base.n_layers;
    let linear = match m.opt("gemma3.rope.scaling.type") {
        Some(t) if t.to_string().map(String::as_str).unwrap_or("") == "linear" => {
            m.opt_f64("gemma3.rope.scaling.factor")?.map(|f| f as f32)
        }
        _ => None,
    };
    Ok(Config {
        rope_local_theta: Some(10_000.0),
        rope_linear_factor: linear,
        query_pre_attn_scalar: Some(base.head_dim as f64),
        sliding_window: Some(
            m.opt_usize("gemma3.attention.sliding_window")?
                .unwrap_or(4096),
        ),
        sliding_layers: (0..n).map(|l| (l + 1) % 6 != 0).collect(),
        rms_norm_eps: m
            .opt_f64("gemma3.attention.layer_norm_rms_epsilon")?
            .unwrap_or(1e-6),
        ..base
    })
}

/// Loads a Gemma 3 text checkpoint.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    load_sandwich(src, cfg, device, max_blocks, true)
}
