//! Llama ([Touvron et al. 2023](https://arxiv.org/abs/2302.13971); Llama 3.1's RoPE scaling
//! from [Grattafiori et al. 2024](https://arxiv.org/abs/2407.21783)), following HF
//! transformers' `modeling_llama.py`: embeddings, pre-norm blocks of RMSNorm → GQA attention
//! with RoPE → residual → RMSNorm → SwiGLU MLP → residual, final RMSNorm, LM head (tied or not).
use std::path::Path;

use candle_core::Device;
use serde::Deserialize;

use super::{lm_head, Family, Parts};
use crate::backend::Heads;
use crate::config::{first_id, Config, RopeScaling};
use crate::gguf::Meta;
use crate::layers::attention::{Attention, Biases};
use crate::layers::block::{DecoderBlock, PreNormBlock};
use crate::layers::mlp::{GateAct, Mlp};
use crate::layers::norm::{Norm, RmsNorm};
use crate::weights::WeightSource;
use crate::{Error, Result};

/// HF `model_type` values of the family.
pub(super) const HF_MODEL_TYPES: &[&str] = &["llama"];
/// HF `architectures` values of the family.
pub(super) const HF_ARCHITECTURES: &[&str] = &["LlamaForCausalLM"];
/// GGUF `general.architecture` values of the family.
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["llama"];

/// The subset of an HF `config.json` of a `LlamaForCausalLM` that the forward needs.
#[derive(Debug, Clone, Deserialize)]
struct HfConfig {
    /// `architectures`, e.g. `["LlamaForCausalLM"]`.
    #[serde(default)]
    architectures: Vec<String>,
    /// Width of the residual stream.
    hidden_size: usize,
    /// Width of the MLP.
    intermediate_size: usize,
    /// Vocabulary size.
    vocab_size: usize,
    /// Number of blocks.
    num_hidden_layers: usize,
    /// Number of query heads.
    num_attention_heads: usize,
    /// Number of key/value heads (defaults to `num_attention_heads`).
    num_key_value_heads: Option<usize>,
    /// Per-head width (defaults to `hidden_size / num_attention_heads`).
    head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    rope_theta: f32,
    /// RoPE scaling (Llama 3.1).
    rope_scaling: Option<serde_json::Value>,
    /// transformers ≥ 5 spelling: `rope_theta` and the scaling fields in one object.
    rope_parameters: Option<serde_json::Value>,
    /// Maximum context length.
    #[serde(default = "default_max_position")]
    max_position_embeddings: usize,
    /// Whether the LM head shares the embedding matrix.
    #[serde(default)]
    tie_word_embeddings: bool,
    /// `bos_token_id`.
    bos_token_id: Option<serde_json::Value>,
    /// `eos_token_id` (a number or a list of numbers).
    eos_token_id: Option<serde_json::Value>,
    /// `hidden_act`; only `silu` is supported.
    #[serde(default)]
    hidden_act: Option<String>,
    /// `attention_bias`; must be false.
    #[serde(default)]
    attention_bias: bool,
    /// `mlp_bias`; must be false.
    #[serde(default)]
    mlp_bias: bool,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_rope_theta() -> f32 {
    10_000.0
}
fn default_max_position() -> usize {
    4096
}

/// Resolves an HF `config.json`, rejecting what the Llama forward does not implement.
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    let c = HfConfig::deserialize(json).map_err(|e| Error::BadConfig {
        path: path.to_path_buf(),
        field: "(json)".into(),
        detail: e.to_string(),
    })?;
    let unsupported = |what: &str, detail: String| Error::Unsupported {
        path: path.to_path_buf(),
        what: what.to_string(),
        detail,
    };
    if let Some(a) = c
        .architectures
        .iter()
        .find(|a| !HF_ARCHITECTURES.contains(&a.as_str()))
    {
        return Err(unsupported("architecture", a.clone()));
    }
    if let Some(act) = &c.hidden_act {
        if act != "silu" {
            return Err(unsupported("hidden_act", act.clone()));
        }
    }
    if c.attention_bias || c.mlp_bias {
        return Err(unsupported("bias", "attention_bias/mlp_bias = true".into()));
    }
    let mut rope_theta = c.rope_theta;
    let mut scaling = c.rope_scaling.clone();
    if let Some(rp) = c.rope_parameters.as_ref().filter(|v| v.is_object()) {
        if let Some(theta) = rp.get("rope_theta").and_then(|t| t.as_f64()) {
            rope_theta = theta as f32;
        }
        if scaling.is_none() {
            scaling = Some(rp.clone());
        }
    }
    let rope_scaling = match &scaling {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let kind = v
                .get("rope_type")
                .or_else(|| v.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("");
            if kind == "default" {
                None
            } else if kind != "llama3" {
                return Err(unsupported("rope_scaling type", kind.to_string()));
            } else {
                Some(RopeScaling::deserialize(v).map_err(|e| Error::BadConfig {
                    path: path.to_path_buf(),
                    field: "rope_scaling".into(),
                    detail: e.to_string(),
                })?)
            }
        }
    };
    if c.num_attention_heads == 0 {
        return Err(Error::BadConfig {
            path: path.to_path_buf(),
            field: "num_attention_heads".into(),
            detail: "must be > 0".into(),
        });
    }
    let cfg = Config {
        family: Family::Llama,
        n_layers: c.num_hidden_layers,
        d_model: c.hidden_size,
        n_heads: c.num_attention_heads,
        n_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim: c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads),
        d_mlp: c.intermediate_size,
        vocab_size: c.vocab_size,
        rms_norm_eps: c.rms_norm_eps,
        rope_theta,
        rope_scaling,
        rope_freq_factors: None,
        tied_embeddings: c.tie_word_embeddings,
        max_position: c.max_position_embeddings,
        bos_token_id: first_id(&c.bos_token_id),
        eos_token_id: first_id(&c.eos_token_id),
        ..Config::empty(Family::Llama)
    };
    cfg.validate(path)?;
    Ok(cfg)
}

/// Resolves a `llama` GGUF file's config (the shared llama.cpp keys; no RoPE scaling type other
/// than `none`: llama.cpp encodes Llama 3.1's scaling as the `rope_freqs.weight` tensor).
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    let cfg = crate::gguf::standard_config(m, Family::Llama)?;
    let key = "llama.rope.scaling.type";
    if let Some(t) = m.opt(key) {
        let kind = t.to_string().map(String::as_str).unwrap_or("?");
        if kind != "none" {
            return Err(Error::Unsupported {
                path: m.path.to_path_buf(),
                what: format!("rope scaling ({key})"),
                detail: kind.to_string(),
            });
        }
    }
    Ok(cfg)
}

/// Loads the embedding, the first `max_blocks` blocks (`model.layers.{i}.*`), the final norm
/// and the LM head.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    load_pre_norm(src, cfg, device, max_blocks, Variant::default())
}

/// What Llama's relatives change in its block (each says so in its own file).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Variant {
    /// `q_proj`, `k_proj`, `v_proj` carry biases (Qwen2).
    pub(super) qkv_bias: bool,
    /// Per-head RMSNorms of q and k before RoPE, `self_attn.{q,k}_norm` (Qwen3).
    pub(super) qk_norm: bool,
}

/// A Llama-built model: HF names, pre-norm blocks of RMSNorm, attention, RMSNorm, SwiGLU.
pub(super) fn load_pre_norm(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
    variant: Variant,
) -> Result<Parts> {
    let embed_tokens = src.load(
        "model.embed_tokens.weight",
        &[cfg.vocab_size, cfg.d_model],
        device,
    )?;
    let blocks = (0..cfg.n_layers.min(max_blocks))
        .map(|i| load_block(src, i, cfg, device, variant))
        .collect::<Result<Vec<_>>>()?;
    let final_norm = Norm::Rms(RmsNorm::load(
        src,
        "model.norm.weight",
        cfg.d_model,
        cfg.rms_norm_eps,
        device,
    )?);
    let lm_head = lm_head(src, cfg, &embed_tokens, device)?;
    Ok(Parts {
        embed_tokens,
        embed_scale: None,
        pos_embed: None,
        blocks,
        final_norm,
        lm_head,
    })
}

fn load_block(
    src: &mut dyn WeightSource,
    i: usize,
    cfg: &Config,
    device: &Device,
    variant: Variant,
) -> Result<Box<dyn DecoderBlock>> {
    let p = format!("model.layers.{i}");
    let rms = |src: &mut dyn WeightSource, name: &str, width: usize| {
        RmsNorm::load(
            src,
            &format!("{p}.{name}.weight"),
            width,
            cfg.rms_norm_eps,
            device,
        )
    };
    let mut attn = Attention::load(
        src,
        &format!("{p}.self_attn"),
        cfg.d_model,
        heads(cfg),
        Biases {
            qkv: variant.qkv_bias,
        },
        device,
    )?;
    if variant.qk_norm {
        let q_norm = rms(src, "self_attn.q_norm", cfg.head_dim)?;
        let k_norm = rms(src, "self_attn.k_norm", cfg.head_dim)?;
        attn = attn.with_qk_norm(q_norm, k_norm);
    }
    Ok(Box::new(PreNormBlock {
        norm1: Norm::Rms(rms(src, "input_layernorm", cfg.d_model)?),
        attn,
        norm2: Norm::Rms(rms(src, "post_attention_layernorm", cfg.d_model)?),
        mlp: Mlp::load_gated(
            src,
            &format!("{p}.mlp"),
            cfg.d_model,
            cfg.d_mlp,
            GateAct::Silu,
            device,
        )?,
    }))
}

/// The head layout of `cfg`.
pub(super) fn heads(cfg: &Config) -> Heads {
    Heads {
        n_heads: cfg.n_heads,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: cfg.head_dim,
    }
}
