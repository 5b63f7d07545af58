//! Gemma 2 (transformers' `modeling_gemma2.py`): embeddings scaled by `sqrt(d_model)`, RMSNorms
//! with a `(1 + w)` gain, norms before and after both sublayers (the post-norm's output is what
//! a sublayer adds to the residual stream), GeGLU with tanh-GELU, scores scaled by
//! `query_pre_attn_scalar^-0.5` and soft-capped, sliding-window layers alternating with global
//! ones (even layers local), logits soft-capped, embeddings tied.
use std::path::Path;

use candle_core::Device;

use super::hf::{check_rope_type, HfCommon};
use super::llama::heads;
use super::{lm_head, Family, Parts};
use crate::backend::ScoreRule;
use crate::config::Config;
use crate::gguf::Meta;
use crate::layers::attention::{Attention, Biases};
use crate::layers::block::{DecoderBlock, SandwichBlock};
use crate::layers::mlp::{GateAct, Mlp};
use crate::layers::norm::{Norm, RmsNorm};
use crate::layers::rope;
use crate::weights::WeightSource;
use crate::Result;

pub(super) const HF_MODEL_TYPES: &[&str] = &["gemma2"];
pub(super) const HF_ARCHITECTURES: &[&str] = &["Gemma2ForCausalLM"];
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["gemma2"];

/// The activations Gemma configs name for tanh-GELU.
pub(super) const GELU_TANH: &[&str] = &["gelu_pytorch_tanh", "gelu_tanh", "gelu_new"];

/// A key's value where an absent key means `default` and `null` means none.
pub(super) fn opt_f32(json: &serde_json::Value, key: &str, default: Option<f32>) -> Option<f32> {
    match json.get(key) {
        None => default,
        Some(v) => v.as_f64().map(|x| x as f32),
    }
}

/// Resolves a Gemma 2 `config.json` (absent keys take `Gemma2Config`'s defaults).
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    let c = HfCommon::parse(json, path)?;
    c.check_activation(path, GELU_TANH)?;
    check_rope_type(c.rope_scaling.as_ref(), &[], path)?;
    check_rope_type(c.rope_parameters.as_ref(), &[], path)?;
    Ok(Config {
        query_pre_attn_scalar: Some(c.query_pre_attn_scalar.unwrap_or(256.0)),
        attn_softcap: opt_f32(json, "attn_logit_softcapping", Some(50.0)),
        final_softcap: opt_f32(json, "final_logit_softcapping", Some(30.0)),
        sliding_window: Some(c.sliding_window.unwrap_or(4096)),
        sliding_layers: c.sliding_layers(path, |l| l % 2 == 0)?,
        ..c.base(Family::Gemma2, true)
    })
}

/// Resolves a `gemma2` GGUF file's config (llama.cpp's keys; every other layer local).
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    let base = crate::gguf::standard_config(m, Family::Gemma2)?;
    let n = base.n_layers;
    // llama.cpp's converter does not store query_pre_attn_scalar: it scales by head_dim^-0.5
    // (2B, 9B) or, for the 46-layer 27B, by (d_model / n_heads)^-0.5. A file that carries
    // `gemma2.attention.scale` (gguf-py's key for the score scale) says it outright.
    let scalar = match m.opt_f64("gemma2.attention.scale")? {
        Some(scale) if scale > 0.0 => 1.0 / (scale * scale),
        _ if n == 46 => (base.d_model / base.n_heads) as f64,
        _ => base.head_dim as f64,
    };
    Ok(Config {
        query_pre_attn_scalar: Some(scalar),
        attn_softcap: m
            .opt_f64("gemma2.attn_logit_softcapping")?
            .map(|x| x as f32),
        final_softcap: m
            .opt_f64("gemma2.final_logit_softcapping")?
            .map(|x| x as f32),
        sliding_window: Some(
            m.opt_usize("gemma2.attention.sliding_window")?
                .unwrap_or(4096),
        ),
        sliding_layers: (0..n).map(|l| l % 2 == 0).collect(),
        ..base
    })
}

/// Loads a Gemma 2 checkpoint.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    load_sandwich(src, cfg, device, max_blocks, false)
}

/// A Gemma checkpoint: scaled embeddings, sandwich blocks (with per-head q/k norms when
/// `qk_norm`, Gemma 3), final norm, tied unembedding.
pub(super) fn load_sandwich(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
    qk_norm: bool,
) -> Result<Parts> {
    // HF checkpoints store `w` of the `(1 + w)` gain; llama.cpp's converter stores `1 + w`.
    let offset = if src.is_gguf() { 0.0 } else { 1.0 };
    let embed_tokens = src.load(
        "model.embed_tokens.weight",
        &[cfg.vocab_size, cfg.d_model],
        device,
    )?;
    let (_, rope_of_layer) = rope::tables(cfg);
    let blocks = (0..cfg.n_layers.min(max_blocks))
        .map(|i| load_block(src, i, cfg, device, offset, qk_norm, rope_of_layer[i]))
        .collect::<Result<Vec<_>>>()?;
    let final_norm = Norm::Rms(RmsNorm::load_offset(
        src,
        "model.norm.weight",
        cfg.d_model,
        cfg.rms_norm_eps,
        offset,
        device,
    )?);
    let lm_head = lm_head(src, cfg, &embed_tokens, device)?;
    Ok(Parts {
        embed_tokens,
        // transformers casts sqrt(d_model) (a Python float) to the activation dtype.
        embed_scale: Some((cfg.d_model as f64).sqrt() as f32),
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
    offset: f64,
    qk_norm: bool,
    rope: usize,
) -> Result<Box<dyn DecoderBlock>> {
    let p = format!("model.layers.{i}");
    let rms = |src: &mut dyn WeightSource, name: &str, width: usize| -> Result<Norm> {
        Ok(Norm::Rms(RmsNorm::load_offset(
            src,
            &format!("{p}.{name}.weight"),
            width,
            cfg.rms_norm_eps,
            offset,
            device,
        )?))
    };
    let heads = heads(cfg);
    let rule = ScoreRule {
        heads,
        scale: (1.0
            / cfg
                .query_pre_attn_scalar
                .unwrap_or(cfg.head_dim as f64)
                .sqrt()) as f32,
        softcap: cfg.attn_softcap,
        window: cfg.is_sliding(i).then_some(cfg.sliding_window).flatten(),
    };
    let mut attn = Attention::load(
        src,
        &format!("{p}.self_attn"),
        cfg.d_model,
        heads,
        Biases { qkv: false },
        device,
    )?
    .with_rule(rule)
    .with_rope(Some(rope));
    if qk_norm {
        let norm = |src: &mut dyn WeightSource, name: &str| {
            RmsNorm::load_offset(
                src,
                &format!("{p}.self_attn.{name}.weight"),
                cfg.head_dim,
                cfg.rms_norm_eps,
                offset,
                device,
            )
        };
        let (q_norm, k_norm) = (norm(src, "q_norm")?, norm(src, "k_norm")?);
        attn = attn.with_qk_norm(q_norm, k_norm);
    }
    Ok(Box::new(SandwichBlock {
        pre_attn_norm: rms(src, "input_layernorm", cfg.d_model)?,
        attn,
        post_attn_norm: rms(src, "post_attention_layernorm", cfg.d_model)?,
        pre_mlp_norm: rms(src, "pre_feedforward_layernorm", cfg.d_model)?,
        mlp: Mlp::load_gated(
            src,
            &format!("{p}.mlp"),
            cfg.d_model,
            cfg.d_mlp,
            GateAct::GeluTanh,
            device,
        )?,
        post_mlp_norm: rms(src, "post_feedforward_layernorm", cfg.d_model)?,
    }))
}
