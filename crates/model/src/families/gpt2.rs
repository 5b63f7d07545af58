//! GPT-2 (transformers' `modeling_gpt2.py`): token plus learned position embeddings,
//! pre-norm blocks with LayerNorm (gain and bias), `Conv1D` projections stored `[in, out]` with
//! biases (q, k and v fused in `c_attn`), full multi-head attention without RoPE, a `gelu_new`
//! MLP, final LayerNorm, tied unembedding. Hub files name tensors without the `transformer.`
//! prefix that `save_pretrained` writes; both load, and so do llama.cpp's GGUF files.
use std::path::Path;

use candle_core::Device;
use serde::Deserialize;

use super::llama::heads;
use super::{lm_head, Family, Parts};
use crate::config::{first_id, Config};
use crate::gguf::Meta;
use crate::layers::attention::Attention;
use crate::layers::block::{DecoderBlock, PreNormBlock};
use crate::layers::linear::Linear;
use crate::layers::mlp::Mlp;
use crate::layers::norm::{LayerNorm, Norm};
use crate::weights::WeightSource;
use crate::{Error, Result};

pub(super) const HF_MODEL_TYPES: &[&str] = &["gpt2"];
pub(super) const HF_ARCHITECTURES: &[&str] = &["GPT2LMHeadModel", "GPT2Model"];
pub(super) const GGUF_ARCHITECTURES: &[&str] = &["gpt2"];

/// The subset of a GPT-2 `config.json` the forward needs.
#[derive(Debug, Clone, Deserialize)]
struct HfConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    n_positions: usize,
    vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    activation_function: Option<String>,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    scale_attn_weights: Option<bool>,
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
}

fn default_eps() -> f64 {
    1e-5
}

/// Resolves a GPT-2 `config.json`.
pub(super) fn config_from_hf(json: &serde_json::Value, path: &Path) -> Result<Config> {
    let c = HfConfig::deserialize(json).map_err(|e| Error::BadConfig {
        path: path.to_path_buf(),
        field: "(json)".into(),
        detail: e.to_string(),
    })?;
    let unsupported = |what: &str, detail: &str| Error::Unsupported {
        path: path.to_path_buf(),
        what: what.into(),
        detail: detail.into(),
    };
    match c.activation_function.as_deref() {
        None | Some("gelu_new" | "gelu_pytorch_tanh") => {}
        Some(other) => return Err(unsupported("activation_function", other)),
    }
    if c.scale_attn_by_inverse_layer_idx {
        return Err(unsupported("scale_attn_by_inverse_layer_idx", "true"));
    }
    if c.scale_attn_weights == Some(false) {
        return Err(unsupported("scale_attn_weights", "false"));
    }
    if c.n_head == 0 {
        return Err(Error::BadConfig {
            path: path.to_path_buf(),
            field: "n_head".into(),
            detail: "must be > 0".into(),
        });
    }
    Ok(Config {
        n_layers: c.n_layer,
        d_model: c.n_embd,
        n_heads: c.n_head,
        n_kv_heads: c.n_head,
        head_dim: c.n_embd / c.n_head,
        d_mlp: c.n_inner.unwrap_or(4 * c.n_embd),
        vocab_size: c.vocab_size,
        rms_norm_eps: c.layer_norm_epsilon,
        tied_embeddings: true,
        max_position: c.n_positions,
        bos_token_id: first_id(&c.bos_token_id),
        eos_token_id: first_id(&c.eos_token_id),
        ..Config::empty(Family::Gpt2)
    })
}

/// Resolves a `gpt2` GGUF file's config (llama.cpp's converter: `context_length` is
/// `n_positions`, the LayerNorm epsilon under `attention.layer_norm_epsilon`).
pub(super) fn config_from_gguf(m: &Meta) -> Result<Config> {
    let base = crate::gguf::standard_config(m, Family::Gpt2)?;
    Ok(Config {
        rms_norm_eps: m
            .opt_f64("gpt2.attention.layer_norm_epsilon")?
            .unwrap_or(1e-5),
        tied_embeddings: true,
        ..base
    })
}

/// The llama.cpp name of a GPT-2 tensor (hub spelling, without `transformer.`).
pub(super) fn gguf_tensor_name(hf: &str) -> Option<String> {
    match hf {
        "wte.weight" => return Some("token_embd.weight".into()),
        "wpe.weight" => return Some("position_embd.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    if let Some(kind) = hf.strip_prefix("ln_f.") {
        return Some(format!("output_norm.{kind}"));
    }
    let rest = hf.strip_prefix("h.")?;
    let (layer, name) = rest.split_once('.')?;
    let (module, kind) = name.rsplit_once('.')?;
    let short = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}.{kind}"))
}

/// Loads a GPT-2 checkpoint.
pub(super) fn load(
    src: &mut dyn WeightSource,
    cfg: &Config,
    device: &Device,
    max_blocks: usize,
) -> Result<Parts> {
    let p = if src.has("transformer.wte.weight") {
        "transformer."
    } else {
        ""
    };
    let d = cfg.d_model;
    let embed_tokens = src.load(&format!("{p}wte.weight"), &[cfg.vocab_size, d], device)?;
    let pos_embed = src.load(&format!("{p}wpe.weight"), &[cfg.max_position, d], device)?;
    let blocks = (0..cfg.n_layers.min(max_blocks))
        .map(|i| load_block(src, &format!("{p}h.{i}"), cfg, device))
        .collect::<Result<Vec<_>>>()?;
    let final_norm = Norm::Layer(LayerNorm::load(
        src,
        &format!("{p}ln_f"),
        d,
        cfg.rms_norm_eps,
        device,
    )?);
    let lm_head = lm_head(src, cfg, &embed_tokens, device)?;
    Ok(Parts {
        embed_tokens,
        embed_scale: None,
        pos_embed: Some(pos_embed),
        blocks,
        final_norm,
        lm_head,
    })
}

fn load_block(
    src: &mut dyn WeightSource,
    p: &str,
    cfg: &Config,
    device: &Device,
) -> Result<Box<dyn DecoderBlock>> {
    let d = cfg.d_model;
    let ln = |src: &mut dyn WeightSource, name: &str| -> Result<Norm> {
        Ok(Norm::Layer(LayerNorm::load(
            src,
            &format!("{p}.{name}"),
            d,
            cfg.rms_norm_eps,
            device,
        )?))
    };
    // llama.cpp's converter stores the Conv1D weights transposed, as `[out, in]`.
    let conv = |src: &mut dyn WeightSource, name: &str, d_in: usize, d_out: usize| {
        let prefix = format!("{p}.{name}");
        if src.is_gguf() {
            let w = src.load(&format!("{prefix}.weight"), &[d_out, d_in], device)?;
            let b = src.load(&format!("{prefix}.bias"), &[d_out], device)?;
            Linear::from_weight(&w, Some(b))
        } else {
            Linear::load_conv1d(src, &prefix, d_in, d_out, device)
        }
    };
    let qkv = conv(src, "attn.c_attn", d, 3 * d)?;
    let o = conv(src, "attn.c_proj", d, d)?;
    Ok(Box::new(PreNormBlock {
        norm1: ln(src, "ln_1")?,
        attn: Attention::from_projections(qkv, o, heads(cfg)).with_rope(None),
        norm2: ln(src, "ln_2")?,
        mlp: Mlp::Plain {
            fc: conv(src, "mlp.c_fc", d, cfg.d_mlp)?,
            proj: conv(src, "mlp.c_proj", cfg.d_mlp, d)?,
        },
    }))
}
