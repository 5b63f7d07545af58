//! The crate's error type: caller mistakes (bad settings, unknown hooks) are kept apart from
//! faults in the model, the corpus, the SAE writer and the file system.
use std::path::PathBuf;

/// Everything training can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or inconsistent (a caller mistake).
    #[error("invalid training settings: {0}")]
    InvalidConfig(String),
    /// The activation source produced nothing to train or evaluate on.
    #[error("no activations: {0}")]
    NoData(String),
    /// The model failed to load or run.
    #[error(transparent)]
    Model(#[from] scopedex_model::Error),
    /// The corpus could not be read.
    #[error(transparent)]
    Corpus(#[from] scopedex_corpus::Error),
    /// Writing or evaluating the SAE failed.
    #[error(transparent)]
    Sae(#[from] scopedex_sae::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The training report could not be serialised.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

impl Error {
    /// Whether the error is the caller's (bad settings or input) rather than a fault.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::InvalidConfig(_) | Error::NoData(_) => true,
            Error::Model(e) => e.is_user_error(),
            Error::Sae(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
