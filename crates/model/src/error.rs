//! The crate-wide error type.
use std::path::PathBuf;

/// Errors of the model runtime. Every variant names the file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be opened or read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// The model file is not a valid GGUF file, or is truncated.
    #[error("{path} is not a valid GGUF file: {detail}")]
    BadGguf {
        /// The file at fault.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A required metadata field is missing or has the wrong type.
    #[error("{path}: metadata field `{field}` {detail}")]
    BadField {
        /// The file at fault.
        path: PathBuf,
        /// The metadata key.
        field: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A field of an HF `config.json` (or tokenizer file) is missing or invalid.
    #[error("{path}: config field `{field}` {detail}")]
    BadConfig {
        /// The file at fault.
        path: PathBuf,
        /// The field name.
        field: String,
        /// What was wrong with it.
        detail: String,
    },
    /// A weight tensor is missing, or has a shape that does not match the config.
    #[error("{path}: tensor `{tensor}` {detail}")]
    BadTensor {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// The tensor name as stored in the file.
        tensor: String,
        /// What was wrong with it (missing, expected vs found shape, unsupported dtype).
        detail: String,
    },
    /// The file describes a model this crate cannot run (architecture, quantization type).
    #[error("{path}: unsupported {what}: {detail}")]
    Unsupported {
        /// The file at fault.
        path: PathBuf,
        /// What kind of feature is unsupported (e.g. `architecture`, `quantization`).
        what: String,
        /// The offending value.
        detail: String,
    },
    /// A hook name does not parse as one of the known TransformerLens hook points.
    #[error(
        "unknown hook name `{0}` (expected blocks.{{L}}.hook_resid_pre, blocks.{{L}}.hook_resid_post, \
         blocks.{{L}}.hook_attn_out, blocks.{{L}}.attn.hook_z, blocks.{{L}}.hook_mlp_out, \
         blocks.{{L}}.mlp.hook_in or blocks.{{L}}.ln2.hook_normalized)"
    )]
    UnknownHook(String),
    /// A hook names a layer the model does not have.
    #[error("hook `{hook}` names layer {layer}, but the model has {n_layers} layers (0..={})", n_layers.saturating_sub(1))]
    LayerOutOfRange {
        /// The hook name.
        hook: String,
        /// The requested layer.
        layer: usize,
        /// Number of layers of the model.
        n_layers: usize,
    },
    /// The caller passed an invalid batch (empty sequence, token id beyond the vocabulary, ...).
    #[error("invalid input: {0}")]
    BadInput(String),
    /// A hook was asked of a [`crate::Captured`] that does not hold it.
    #[error("hook `{0}` was not captured (add it to the CapturePlan)")]
    NotCaptured(String),
    /// The tokenizer could not be built or failed to encode.
    #[error("tokenizer for {path}: {detail}")]
    Tokenizer {
        /// The model or tokenizer file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A tensor operation failed (shape mismatch, device fault).
    #[error("{}", candle_message(.0))]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// True when the caller's input is at fault (a file, a field, a hook name, a text) — what
    /// the CLI reports with exit code 2; a tensor fault in the runtime is not.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Candle(_) | Error::NotCaptured(_))
    }
}

/// A candle error's message without the backtrace candle attaches (which reads "disabled
/// backtrace", or a page of frames, after the message a user needs).
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::Context { inner, context } => {
            format!("{context}: {}", candle_message(inner))
        }
        candle_core::Error::WithPath { inner, path } => {
            format!("{}: {}", path.display(), candle_message(inner))
        }
        other => other.to_string(),
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
