//! The crate-wide error type.
//!
//! Three families are kept apart: caller mistakes (a path that does not exist, a file of an
//! unsupported kind, an invalid context configuration), bad corpus input met in `strict` mode
//! ([`Error::BadInput`], which the CLI maps to exit code 2), and I/O faults while listing the
//! corpus. Bad input in the default (non-strict) mode is never an error: it is a [`Skip`] counted
//! in the [`SkipReport`](crate::SkipReport).
use std::path::PathBuf;

use crate::skip::Skip;

/// Errors of `scopedex-corpus`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A corpus path that is neither an existing file, a directory nor a glob pattern.
    #[error("corpus path not found: {}", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// A file named explicitly whose extension is not a supported corpus format.
    #[error(
        "unsupported corpus file {}: expected .jsonl, .jsonl.zst, .txt, .parquet or .json",
        path.display()
    )]
    UnsupportedFile {
        /// The file.
        path: PathBuf,
    },
    /// A glob pattern that does not parse.
    #[error("invalid glob pattern {pattern:?}: {detail}")]
    Glob {
        /// The pattern as given.
        pattern: String,
        /// The parser's message.
        detail: String,
    },
    /// A path, directory or glob that expands to no corpus file.
    #[error("no corpus files (.jsonl, .jsonl.zst, .txt, .parquet, .json) found in {what}")]
    NoFiles {
        /// The path(s) or pattern that matched nothing.
        what: String,
    },
    /// An I/O error while listing a directory or reading file metadata.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path being listed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bad record or file met in `strict` mode; `Display` is `file:line: reason`.
    #[error("{0}")]
    BadInput(Skip),
    /// An invalid [`ContextConfig`](crate::ContextConfig) or [`CorpusSpec`](crate::CorpusSpec).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
