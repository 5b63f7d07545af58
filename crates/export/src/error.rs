//! The crate's error type.
use std::path::{Path, PathBuf};

/// Everything that can go wrong in an export.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for something that cannot be exported (empty feature range, non-empty
    /// output directory without `force`, bad option).
    #[error("{0}")]
    Usage(String),
    /// Reading the index failed (an unknown SAE is [`scopedex_store::Error::UnknownSae`]).
    #[error("{0}")]
    Store(#[source] scopedex_store::Error),
    /// Writing the output failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The index refers to data it does not hold (e.g. an example's context).
    #[error("inconsistent index: {0}")]
    Inconsistent(String),
}

impl From<scopedex_store::Error> for Error {
    fn from(e: scopedex_store::Error) -> Self {
        Error::Store(e)
    }
}

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// True for mistakes in the caller's input (exit code 2): [`Error::Usage`] and the store's
    /// caller errors (unknown SAE, feature out of range).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Usage(_) => true,
            Error::Store(e) => e.is_user_error(),
            _ => false,
        }
    }
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
