//! The types shared by the format loaders ([`crate::formats`]) and the loaded [`crate::Sae`]:
//! the activation function, the on-disk format tag, and [`Resolved`], the parameter bundle every
//! loader produces. A leaf module: it imports no other module of the crate but `id`, so format
//! loaders depend on it and `sae` depends on both, never the reverse.
use crate::id::SaeId;

/// A JumpReLU threshold: one scalar for all features (Llama Scope) or one per feature (SAELens).
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdKind {
    /// The same threshold for every feature.
    Scalar(f32),
    /// One threshold per feature, `[d_sae]`.
    PerFeature(Vec<f32>),
}

/// The SAE's activation function.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// Keep the `k` largest gates of each token, then ReLU.
    TopK {
        /// Features kept per token (at most).
        k: usize,
    },
    /// Keep `h_j` where `gate_j > threshold_j` (strict).
    JumpRelu {
        /// The threshold(s), compared with the gate.
        threshold: ThresholdKind,
    },
    /// Keep `h_j` where `h_j > 0`.
    Relu,
}

/// A per-token transform of the SAE's input (and reconstruction target) before the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputNorm {
    /// None.
    None,
    /// Minus its mean over d_model: TransformerLens' centred residual stream
    /// (`center_writing_weights`).
    Centre,
    /// Minus its mean, divided by its unbiased standard deviation + 1e-5 (OpenAI's TopK
    /// autoencoders; SAELens `normalize_activations: layer_norm`).
    LayerNorm,
}

/// Which on-disk layout an SAE came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaeFormat {
    /// `hyperparams.json` + `checkpoints/final.safetensors` (OpenMOSS lm_saes / Llama Scope).
    LlamaScope,
    /// `cfg.json` + `sae_weights.safetensors` (SAELens).
    SaeLens,
    /// `params.npz` / `params.safetensors` in a Gemma Scope release folder.
    GemmaScope,
    /// A `.pt` state dict of openai/sparse_autoencoder.
    OpenAi,
}

impl SaeFormat {
    /// `"llama_scope"` or `"saelens"` (as recorded in index manifests).
    pub fn as_str(&self) -> &'static str {
        match self {
            SaeFormat::LlamaScope => "llama_scope",
            SaeFormat::SaeLens => "saelens",
            SaeFormat::GemmaScope => "gemma_scope",
            SaeFormat::OpenAi => "openai",
        }
    }
}

/// Everything a format loader resolves before the common fold (crate-internal).
pub(crate) struct Resolved {
    pub name: String,
    pub id: Option<SaeId>,
    pub format: SaeFormat,
    pub hook_in: String,
    pub hook_out: String,
    pub d_in: usize,
    pub d_sae: usize,
    pub d_out: usize,
    pub activation: Activation,
    pub top_k: Option<usize>,
    pub source_sha256: String,
    /// `[d_in, d_sae]`, raw.
    pub w_enc: Vec<f32>,
    /// `[d_sae]`.
    pub b_enc: Vec<f32>,
    /// `[d_in]`, subtracted from the scaled input before the encoder.
    pub pre_bias: Option<Vec<f32>>,
    /// Multiply the gate by the decoder row norms.
    pub gate_by_decoder_norm: bool,
    /// The per-token transform of inputs and targets before the encoder.
    pub input_norm: InputNorm,
    /// `[d_sae, d_out]`, raw.
    pub w_dec: Vec<f32>,
    /// `[d_out]`, raw (zeros when the SAE has no decoder bias).
    pub b_dec: Vec<f32>,
    pub s_in: f32,
    pub s_out: f32,
}
