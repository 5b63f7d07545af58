//! The model families scopedex runs, one file each, and the registry that picks one from a
//! checkpoint: `model_type` (or `architectures`) in an HF `config.json`, `general.architecture`
//! in a GGUF file.
//!
//! A family owns what differs between architectures: how its config resolves, how its tensors
//! are named in GGUF files, and which blocks its weights build. Everything else (embedding,
//! packing, hook capture, early stop, logits) is the one decoder in [`crate::Model`].
use std::fmt;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::config::Config;
use crate::gguf::Meta;
use crate::layers::block::DecoderBlock;
use crate::layers::norm::Norm;
use crate::weights::WeightSource;
use crate::{Error, Result};

mod gemma2;
mod gemma3;
mod gpt2;
mod hf;
mod llama;
mod qwen2;
mod qwen3;

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Llama 2 / 3 / 3.1 and the models built the same way (SmolLM2, ...).
    Llama,
    /// Qwen2 and Qwen2.5.
    Qwen2,
    /// Qwen3 (dense).
    Qwen3,
    /// Gemma 2.
    Gemma2,
    /// Gemma 3, text models (`gemma3_text`).
    Gemma3,
    /// GPT-2.
    Gpt2,
}

/// Dispatches to the family's file: `each!(self, f(args))` calls `<family>::f(args)`.
macro_rules! each {
    ($family:expr, $f:ident ( $($arg:expr),* )) => {
        match $family {
            Family::Llama => llama::$f($($arg),*),
            Family::Qwen2 => qwen2::$f($($arg),*),
            Family::Qwen3 => qwen3::$f($($arg),*),
            Family::Gemma2 => gemma2::$f($($arg),*),
            Family::Gemma3 => gemma3::$f($($arg),*),
            Family::Gpt2 => gpt2::$f($($arg),*),
        }
    };
    ($family:expr, $c:ident) => {
        match $family {
            Family::Llama => llama::$c,
            Family::Qwen2 => qwen2::$c,
            Family::Qwen3 => qwen3::$c,
            Family::Gemma2 => gemma2::$c,
            Family::Gemma3 => gemma3::$c,
            Family::Gpt2 => gpt2::$c,
        }
    };
}

impl Family {
    /// Every family, in the order errors list them.
    pub const ALL: &'static [Family] = &[
        Family::Llama,
        Family::Qwen2,
        Family::Qwen3,
        Family::Gemma2,
        Family::Gemma3,
        Family::Gpt2,
    ];

    /// The family's name (its HF `model_type`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Qwen2 => "qwen2",
            Family::Qwen3 => "qwen3",
            Family::Gemma2 => "gemma2",
            Family::Gemma3 => "gemma3",
            Family::Gpt2 => "gpt2",
        }
    }

    /// Whether TransformerLens' `center_writing_weights` changes this family's residual stream
    /// (it centres LayerNorm models only): SAEs trained on it then need centred inputs.
    pub fn transformer_lens_centres_residual(self) -> bool {
        matches!(self, Family::Gpt2)
    }

    /// The family of an HF `model_type`.
    pub(crate) fn from_model_type(model_type: &str) -> Option<Family> {
        Family::ALL
            .iter()
            .copied()
            .find(|f| f.hf_model_types().contains(&model_type))
    }

    /// The family of an HF `architectures` entry (`LlamaForCausalLM`).
    pub(crate) fn from_hf_architecture(arch: &str) -> Option<Family> {
        Family::ALL
            .iter()
            .copied()
            .find(|f| f.hf_architectures().contains(&arch))
    }

    /// The family of a GGUF `general.architecture`.
    pub(crate) fn from_gguf_architecture(arch: &str) -> Option<Family> {
        Family::ALL
            .iter()
            .copied()
            .find(|f| f.gguf_architectures().contains(&arch))
    }

    fn hf_model_types(self) -> &'static [&'static str] {
        each!(self, HF_MODEL_TYPES)
    }

    fn hf_architectures(self) -> &'static [&'static str] {
        each!(self, HF_ARCHITECTURES)
    }

    fn gguf_architectures(self) -> &'static [&'static str] {
        each!(self, GGUF_ARCHITECTURES)
    }

    /// An error for a checkpoint whose `field` names no family we run, listing those we do.
    pub(crate) fn unknown(path: &Path, field: &str, value: &str) -> Error {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        Error::Unsupported {
            path: path.to_path_buf(),
            what: field.to_string(),
            detail: format!("`{value}` (supported families: {})", names.join(", ")),
        }
    }

    /// Resolves an HF `config.json` (already parsed) of this family.
    pub(crate) fn config_from_hf(self, json: &serde_json::Value, path: &Path) -> Result<Config> {
        each!(self, config_from_hf(json, path))
    }

    /// Resolves the config of a GGUF file of this family.
    pub(crate) fn config_from_gguf(self, meta: &Meta) -> Result<Config> {
        each!(self, config_from_gguf(meta))
    }

    /// The GGUF name of an HF tensor name, `None` when the file has no counterpart.
    pub(crate) fn gguf_tensor_name(self, hf: &str) -> Option<String> {
        match self {
            Family::Gemma2 | Family::Gemma3 => crate::gguf::gemma_tensor_name(hf),
            Family::Gpt2 => gpt2::gguf_tensor_name(hf),
            _ => crate::gguf::standard_tensor_name(hf),
        }
    }

    /// Whether llama.cpp's converter permuted this family's q/k rows for interleaved-pair RoPE
    /// (its `LlamaModel` does; the others keep HF's rotate-half order).
    pub(crate) fn gguf_permutes_qk(self) -> bool {
        matches!(self, Family::Llama)
    }

    /// Builds the decoder's parts (its first `max_blocks` blocks) from HF-named weights.
    pub(crate) fn load(
        self,
        src: &mut dyn WeightSource,
        cfg: &Config,
        device: &Device,
        max_blocks: usize,
    ) -> Result<Parts> {
        each!(self, load(src, cfg, device, max_blocks))
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a family's weights build: the pieces [`crate::Model`] runs.
pub(crate) struct Parts {
    /// f32 `[vocab, d_model]`.
    pub(crate) embed_tokens: Tensor,
    /// Multiplies the token embeddings (Gemma: `sqrt(d_model)`).
    pub(crate) embed_scale: Option<f32>,
    /// Learned position embeddings added to the token embeddings, f32 `[n_positions, d_model]`
    /// (GPT-2).
    pub(crate) pos_embed: Option<Tensor>,
    pub(crate) blocks: Vec<Box<dyn DecoderBlock>>,
    pub(crate) final_norm: Norm,
    /// f32 `[vocab, d_model]`; the same tensor as `embed_tokens` when tied.
    pub(crate) lm_head: Tensor,
}

/// The unembedding: `lm_head.weight`, or the embedding when the checkpoint ties them (a tied
/// checkpoint may omit `lm_head.weight`).
pub(crate) fn lm_head(
    src: &mut dyn WeightSource,
    cfg: &Config,
    embed_tokens: &Tensor,
    device: &Device,
) -> Result<Tensor> {
    if cfg.tied_embeddings && !src.has("lm_head.weight") {
        Ok(embed_tokens.clone())
    } else {
        src.load("lm_head.weight", &[cfg.vocab_size, cfg.d_model], device)
    }
}
