//! The crate's one error type.
//!
//! Every variant about a file names the file and the offending field or tensor, so a user can fix
//! the checkpoint without reading code. Caller mistakes (bad ids, shape mismatches), checkpoint
//! faults (missing/misshaped tensors, bad JSON, non-finite weights) and I/O are separate variants;
//! `Candle` wraps failures of the tensor library, which indicate internal problems.
use std::path::PathBuf;

/// Errors of SAE loading, identification and encoding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON config file is not valid JSON or has a field of the wrong type.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The config file.
        path: PathBuf,
        /// The parser's error (names line, column and often the field).
        #[source]
        source: serde_json::Error,
    },
    /// A required config field is absent (or null).
    #[error("{path}: missing required field `{field}`")]
    MissingField {
        /// The config file.
        path: PathBuf,
        /// The field name.
        field: String,
    },
    /// A config field has a value this crate does not accept.
    #[error("{path}: field `{field}`: {reason}")]
    InvalidField {
        /// The config file.
        path: PathBuf,
        /// The field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `act_fn` / `architecture` names an activation this crate does not implement.
    #[error("{path}: field `{field}`: unknown activation {value:?} (expected one of {expected})")]
    UnknownActivation {
        /// The config file.
        path: PathBuf,
        /// The field name (`act_fn` or `architecture`).
        field: String,
        /// The value found.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A folder holds no SAE of a known format.
    #[error(
        "{path}: not an SAE folder (expected hyperparams.json + checkpoints/final.safetensors \
         (Llama Scope), cfg.json + sae_weights.safetensors (SAELens), params.npz or \
         params.safetensors (Gemma Scope), or a Llama Scope repo folder with one such folder \
         per layer)"
    )]
    UnknownFormat {
        /// The folder.
        path: PathBuf,
    },
    /// A repo folder holds no SAE with the requested id, or several SAEs where one was expected.
    #[error("{path}: {reason}")]
    Repo {
        /// The repo folder.
        path: PathBuf,
        /// What went wrong, listing the SAEs found.
        reason: String,
    },
    /// A safetensors file is malformed.
    #[error("{path}: invalid safetensors file: {reason}")]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// A required tensor is absent from the weights file.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The shape implied by the config.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype other than bf16, f16 or f32.
    #[error("{path}: tensor `{name}` has dtype {dtype}, expected BF16, F16 or F32")]
    TensorDtype {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A weight is NaN or infinite.
    #[error("{path}: tensor `{name}` holds a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// The weights file.
        path: PathBuf,
        /// The tensor name.
        name: String,
        /// Flat (row-major) index of the first bad element.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A malformed SAE id.
    #[error(
        "invalid SAE id {input:?}: {reason}; expected `L{{layer}}{{R|A|M|TC|RP|Z|TM}}-{{width}}` \
         with the width an expansion (8x) or a count (16k, 1m, 24576), e.g. L15R-8x or L12Z-16k"
    )]
    BadId {
        /// The string given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The SAE's input width differs from the model's.
    #[error(
        "SAE {sae}: d_model {sae_d_model} does not match the model's hidden size {model_d_model}"
    )]
    DModelMismatch {
        /// The SAE name.
        sae: String,
        /// The SAE's `d_in`.
        sae_d_model: usize,
        /// The model's hidden size.
        model_d_model: usize,
    },
    /// The SAE's input or output width differs from its hook's width in the model.
    #[error(
        "SAE {sae}: its {side} width {sae_width} does not match hook `{hook}`, which is \
         {hook_width} wide in this model"
    )]
    HookWidthMismatch {
        /// The SAE name.
        sae: String,
        /// `input` or `output`.
        side: &'static str,
        /// The hook name.
        hook: String,
        /// The SAE's width on that side.
        sae_width: usize,
        /// The hook's width.
        hook_width: usize,
    },
    /// An argument has the wrong shape (caller error).
    #[error("{what}: expected shape {expected}, got {found:?}")]
    Shape {
        /// Which argument.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape given.
        found: Vec<usize>,
    },
    /// A configuration this crate does not support (named, with the reason).
    #[error("{path}: field `{field}`: {value:?} is not supported: {reason}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// The field name.
        field: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The tensor library failed (an internal error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::InvalidField {
            path: path.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing(path: impl Into<PathBuf>, field: impl Into<String>) -> Self {
        Error::MissingField {
            path: path.into(),
            field: field.into(),
        }
    }

    /// True when the error is the user's input (a bad file, id or argument) rather than an
    /// internal failure; the CLI maps these to exit code 2.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Candle(_))
    }
}
