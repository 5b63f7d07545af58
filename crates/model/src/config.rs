//! The resolved model configuration the forward runs on, built by a family
//! ([`crate::families`]) from an HF `config.json` or from GGUF metadata.
//!
//! Invariants of a [`Config`] (checked by [`Config::validate`]): `n_heads * head_dim` is the
//! attention width, `n_heads` is a multiple of `n_kv_heads`, `head_dim` is even (RoPE pairs).
use std::path::Path;

use serde::Deserialize;

use crate::families::Family;
use crate::{Error, Result};

/// Llama 3.1's RoPE frequency scaling (`rope_scaling` with `rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct RopeScaling {
    /// Scaling type; only `llama3` is supported.
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Factor by which low frequencies are divided.
    pub factor: f32,
    /// Wavelengths longer than `original_max_position_embeddings / low_freq_factor` are scaled.
    pub low_freq_factor: f32,
    /// Wavelengths shorter than `original_max_position_embeddings / high_freq_factor` are kept.
    pub high_freq_factor: f32,
    /// The context length the model was pre-trained with.
    pub original_max_position_embeddings: usize,
}

/// The first token id of a `bos_token_id` / `eos_token_id` value (a number or a list).
pub(crate) fn first_id(v: &Option<serde_json::Value>) -> Option<u32> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|x| u32::try_from(x).ok()),
        serde_json::Value::Array(a) => a
            .first()
            .and_then(|x| x.as_u64())
            .and_then(|x| u32::try_from(x).ok()),
        _ => None,
    }
}

/// The resolved configuration the forward runs on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// The model family, which decides the block structure.
    pub family: Family,
    /// Number of blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (grouped-query attention when `< n_heads`).
    pub n_kv_heads: usize,
    /// Per-head width.
    pub head_dim: usize,
    /// Width of the MLP.
    pub d_mlp: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f32,
    /// Llama-3.1 RoPE scaling, if any.
    pub rope_scaling: Option<RopeScaling>,
    /// Per-frequency divisors from a GGUF `rope_freqs.weight` tensor (llama.cpp's encoding of
    /// Llama-3.1 scaling), `head_dim / 2` values; applied after `rope_scaling`.
    pub rope_freq_factors: Option<Vec<f32>>,
    /// Whether the LM head is the embedding matrix.
    pub tied_embeddings: bool,
    /// Maximum context length the model was trained for.
    pub max_position: usize,
    /// BOS token id, if known from the model file.
    pub bos_token_id: Option<u32>,
    /// EOS token id, if known from the model file.
    pub eos_token_id: Option<u32>,
    /// Attention scores are scaled by `query_pre_attn_scalar^-0.5` when set (Gemma), else by
    /// `head_dim^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    /// Soft-cap of the attention scores, `cap · tanh(s / cap)` (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Soft-cap of the logits (Gemma 2).
    pub final_softcap: Option<f32>,
    /// Width of the sliding window of the layers that use one (Gemma).
    pub sliding_window: Option<usize>,
    /// Per layer, whether its attention is within the sliding window (empty: none is).
    pub sliding_layers: Vec<bool>,
    /// RoPE base of the sliding-window layers when it differs from `rope_theta` (Gemma 3).
    pub rope_local_theta: Option<f32>,
    /// Linear RoPE scaling of the global layers: positions divided by this factor (Gemma 3 4B+).
    pub rope_linear_factor: Option<f32>,
}

/// Bounds on header values (far above any released model: Llama-3.1-405B has 126 layers,
/// d_mlp 53,248; Gemma's vocabulary is 262,144).
const MAX_LAYERS: usize = 4096;
const MAX_DIM: usize = 1 << 20;
const MAX_VOCAB: usize = 1 << 24;

impl Config {
    /// A config of `family` with every size zero and every option unset, for a family to fill
    /// in (`Config { d_model, .., ..Config::empty(family) }`); [`Config::validate`] rejects the
    /// zeros left.
    pub(crate) fn empty(family: Family) -> Config {
        Config {
            family,
            n_layers: 0,
            d_model: 0,
            n_heads: 0,
            n_kv_heads: 0,
            head_dim: 0,
            d_mlp: 0,
            vocab_size: 0,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            rope_freq_factors: None,
            tied_embeddings: false,
            max_position: 4096,
            bos_token_id: None,
            eos_token_id: None,
            query_pre_attn_scalar: None,
            attn_softcap: None,
            final_softcap: None,
            sliding_window: None,
            sliding_layers: Vec::new(),
            rope_local_theta: None,
            rope_linear_factor: None,
        }
    }

    /// The width of the activations at `hook`: `n_heads · head_dim` for `attn.hook_z`,
    /// `d_model` for every other hook.
    pub fn hook_width(&self, hook: crate::HookPoint) -> usize {
        match hook {
            crate::HookPoint::AttnZ(_) => self.n_heads * self.head_dim,
            _ => self.d_model,
        }
    }

    /// Whether layer `l` attends within the sliding window.
    pub fn is_sliding(&self, l: usize) -> bool {
        self.sliding_window.is_some() && self.sliding_layers.get(l).copied().unwrap_or(false)
    }

    /// Checks the invariants of the module doc; `path` names the file in errors.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, detail: String| Error::BadConfig {
            path: path.to_path_buf(),
            field: field.to_string(),
            detail,
        };
        for (field, v) in [
            ("n_layers", self.n_layers),
            ("d_model", self.d_model),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("head_dim", self.head_dim),
            ("d_mlp", self.d_mlp),
            ("vocab_size", self.vocab_size),
        ] {
            if v == 0 {
                return Err(bad(field, "must be > 0".into()));
            }
        }
        // Header values are untrusted: bound them so no size computed from them overflows.
        for (field, v, max) in [
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("d_model", self.d_model, MAX_DIM),
            ("n_heads", self.n_heads, MAX_DIM),
            ("n_kv_heads", self.n_kv_heads, MAX_DIM),
            ("head_dim", self.head_dim, MAX_DIM),
            ("d_mlp", self.d_mlp, MAX_DIM),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
        ] {
            if v > max {
                return Err(bad(
                    field,
                    format!("= {v} is beyond any real model (at most {max})"),
                ));
            }
        }
        if self.n_heads % self.n_kv_heads != 0 {
            return Err(bad(
                "n_kv_heads",
                format!(
                    "= {} does not divide n_heads = {}",
                    self.n_kv_heads, self.n_heads
                ),
            ));
        }
        if !self.sliding_layers.is_empty() && self.sliding_layers.len() != self.n_layers {
            return Err(bad(
                "layer_types",
                format!(
                    "lists {} layers, the model has {}",
                    self.sliding_layers.len(),
                    self.n_layers
                ),
            ));
        }
        if self.sliding_window == Some(0) {
            return Err(bad("sliding_window", "must be > 0".into()));
        }
        for (field, cap) in [
            ("attn_logit_softcapping", self.attn_softcap),
            ("final_logit_softcapping", self.final_softcap),
        ] {
            if cap.is_some_and(|c| !(c > 0.0 && c.is_finite())) {
                return Err(bad(field, format!("= {cap:?} must be a positive number")));
            }
        }
        if self.head_dim % 2 != 0 {
            return Err(bad("head_dim", format!("= {} must be even", self.head_dim)));
        }
        if let Some(s) = &self.rope_scaling {
            if s.rope_type != "llama3" {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    what: "rope_scaling type".into(),
                    detail: s.rope_type.clone(),
                });
            }
            if s.high_freq_factor <= s.low_freq_factor || s.factor <= 0.0 {
                return Err(bad(
                    "rope_scaling",
                    "needs factor > 0 and high_freq_factor > low_freq_factor".into(),
                ));
            }
        }
        if let Some(f) = &self.rope_freq_factors {
            if f.len() != self.head_dim / 2 {
                return Err(bad(
                    "rope_freqs.weight",
                    format!(
                        "has {} values, expected head_dim/2 = {}",
                        f.len(),
                        self.head_dim / 2
                    ),
                ));
            }
        }
        Ok(())
    }
}
