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
    /// A tensor operation failed (shape mismatch, device fault).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
