//! The `config.json` keys the families built like Llama share (Qwen2/3, Gemma 2/3), in both
//! spellings transformers has written: 4.x (`rope_theta`, `rope_scaling`,
//! `sliding_window_pattern`) and 5.x (`rope_parameters`, `layer_types`).
use std::path::Path;

use serde::Deserialize;

use crate::config::{first_id, Config};
use crate::families::Family;
use crate::{Error, Result};

/// The shared subset of an HF `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct HfCommon {
    pub(super) hidden_size: usize,
    pub(super) intermediate_size: usize,
    pub(super) vocab_size: usize,
    pub(super) num_hidden_layers: usize,
    pub(super) num_attention_heads: usize,
    pub(super) num_key_value_heads: Option<usize>,
    pub(super) head_dim: Option<usize>,
    pub(super) rms_norm_eps: Option<f64>,
    pub(super) rope_theta: Option<f32>,
    pub(super) rope_parameters: Option<serde_json::Value>,
    pub(super) rope_scaling: Option<serde_json::Value>,
    pub(super) max_position_embeddings: Option<usize>,
    pub(super) tie_word_embeddings: Option<bool>,
    pub(super) bos_token_id: Option<serde_json::Value>,
    pub(super) eos_token_id: Option<serde_json::Value>,
    pub(super) hidden_act: Option<String>,
    pub(super) hidden_activation: Option<String>,
    pub(super) query_pre_attn_scalar: Option<f64>,
    pub(super) sliding_window: Option<usize>,
    pub(super) use_sliding_window: Option<bool>,
    pub(super) layer_types: Option<Vec<String>>,
    pub(super) rope_local_base_freq: Option<f32>,
    pub(super) sliding_window_pattern: Option<usize>,
    #[serde(rename = "_sliding_window_pattern")]
    pub(super) sliding_window_pattern_private: Option<usize>,
}

impl HfCommon {
    /// Parses `json`, naming `path` in errors.
    pub(super) fn parse(json: &serde_json::Value, path: &Path) -> Result<HfCommon> {
        HfCommon::deserialize(json).map_err(|e| Error::BadConfig {
            path: path.to_path_buf(),
            field: "(json)".into(),
            detail: e.to_string(),
        })
    }

    /// The config from the shared keys: sizes, norm eps, the RoPE base (`rope_theta`, or
    /// `rope_parameters.rope_theta`), tied embeddings (`tied_default` when absent), BOS/EOS.
    pub(super) fn base(&self, family: Family, tied_default: bool) -> Config {
        let rope_theta = self
            .rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|t| t.as_f64())
                    .map(|t| t as f32)
            })
            .unwrap_or(10_000.0);
        Config {
            n_layers: self.num_hidden_layers,
            d_model: self.hidden_size,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim: self
                .head_dim
                .unwrap_or(self.hidden_size / self.num_attention_heads.max(1)),
            d_mlp: self.intermediate_size,
            vocab_size: self.vocab_size,
            rms_norm_eps: self.rms_norm_eps.unwrap_or(1e-6),
            rope_theta,
            tied_embeddings: self.tie_word_embeddings.unwrap_or(tied_default),
            max_position: self.max_position_embeddings.unwrap_or(4096),
            bos_token_id: first_id(&self.bos_token_id),
            eos_token_id: first_id(&self.eos_token_id),
            ..Config::empty(family)
        }
    }

    /// The MLP activation (`hidden_activation`, else `hidden_act`), checked against what the
    /// family runs.
    pub(super) fn check_activation(&self, path: &Path, expected: &[&str]) -> Result<()> {
        let act = self.hidden_activation.as_ref().or(self.hidden_act.as_ref());
        match act {
            Some(a) if !expected.contains(&a.as_str()) => Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "hidden_act".into(),
                detail: format!("{a} (this family runs {})", expected.join(" or ")),
            }),
            _ => Ok(()),
        }
    }

    /// Which layers use the sliding window: `layer_types` when given, else `default(l)`.
    pub(super) fn sliding_layers(
        &self,
        path: &Path,
        default: impl Fn(usize) -> bool,
    ) -> Result<Vec<bool>> {
        match &self.layer_types {
            Some(types) => types
                .iter()
                .map(|t| match t.as_str() {
                    "sliding_attention" => Ok(true),
                    "full_attention" => Ok(false),
                    other => Err(Error::Unsupported {
                        path: path.to_path_buf(),
                        what: "layer_types entry".into(),
                        detail: other.to_string(),
                    }),
                })
                .collect(),
            None => Ok((0..self.num_hidden_layers).map(default).collect()),
        }
    }

    /// The RoPE parameters of one layer kind in transformers 5's per-kind
    /// `rope_parameters` (`{"full_attention": {...}, "sliding_attention": {...}}`).
    pub(super) fn rope_of_kind(&self, kind: &str) -> Option<&serde_json::Value> {
        self.rope_parameters.as_ref()?.get(kind)
    }
}

/// Rejects a `rope_scaling` / `rope_parameters` type other than `default` (and `allowed`).
pub(super) fn check_rope_type(
    v: Option<&serde_json::Value>,
    allowed: &[&str],
    path: &Path,
) -> Result<Option<String>> {
    let Some(v) = v.filter(|v| v.is_object()) else {
        return Ok(None);
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    if kind == "default" {
        return Ok(None);
    }
    if !allowed.contains(&kind) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "rope_scaling type".into(),
            detail: kind.to_string(),
        });
    }
    Ok(Some(kind.to_string()))
}
