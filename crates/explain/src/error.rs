//! The crate's one error type.
use std::path::PathBuf;

/// Errors of explaining and scoring.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller mistake: bad settings, a feature out of range, an SAE not in the index.
    #[error("{0}")]
    InvalidInput(String),
    /// The endpoint could not be reached, timed out, or answered with an HTTP error after all
    /// retries.
    #[error("endpoint {url}: {detail}")]
    Endpoint {
        /// The URL asked.
        url: String,
        /// What went wrong (status and the start of the body, or the transport error).
        detail: String,
    },
    /// The endpoint answered 200 with a body that is not a chat completion.
    #[error("endpoint {url}: the response is not a chat completion: {detail}")]
    BadResponse {
        /// The URL asked.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A journal or import file holds a line that does not parse.
    #[error("{}:{line}: {detail}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The index could not be read or written.
    #[error(transparent)]
    Store(#[from] scopedex_store::Error),
    /// The run was stopped (Ctrl-C) before it finished; what was done is in the journal.
    #[error(
        "stopped before the end: {done} features done, the rest resumes with the same command"
    )]
    Interrupted {
        /// Features finished before the stop.
        done: usize,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
