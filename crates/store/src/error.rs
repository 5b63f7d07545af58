//! The crate-wide error type.
//!
//! Variants fall in three groups, so callers (the server, the CLI) can map them to a status:
//! - caller mistakes: [`Error::UnknownSae`], [`Error::FeatureOutOfRange`], [`Error::Query`],
//!   [`Error::InvalidInput`] (a 4xx / exit code 2);
//! - an index that is not there or not ours: [`Error::MissingIndex`], [`Error::FormatVersion`];
//! - storage faults: [`Error::Io`], [`Error::Parquet`], [`Error::Arrow`], [`Error::RocksDb`],
//!   [`Error::Tantivy`], [`Error::Json`], [`Error::Corrupt`] (each names the file or key).
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Reading or writing a Parquet file failed.
    #[error("Parquet error in {}: {source}", path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// Building or reading an Arrow batch failed.
    #[error("Arrow error in {}: {source}", path.display())]
    Arrow {
        /// The Parquet file the batch belongs to.
        path: PathBuf,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// A RocksDB operation failed.
    #[error("RocksDB error in {}: {source}", path.display())]
    RocksDb {
        /// The RocksDB directory.
        path: PathBuf,
        /// The underlying error.
        source: rocksdb::Error,
    },
    /// A tantivy operation failed.
    #[error("tantivy error in {}: {source}", path.display())]
    Tantivy {
        /// The tantivy directory.
        path: PathBuf,
        /// The underlying error.
        source: tantivy::TantivyError,
    },
    /// A JSON file (the manifest) could not be parsed or written.
    #[error("JSON error in {}: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Stored data does not decode: a RocksDB value, a Parquet column of the wrong type, etc.
    #[error("corrupt data at {location}: {reason}")]
    Corrupt {
        /// Where: `rocksdb:{cf}:{key as hex}` or a Parquet file and column.
        location: String,
        /// What was wrong.
        reason: String,
    },
    /// The index directory (or its manifest) does not exist.
    #[error("no index at {}: {reason}", path.display())]
    MissingIndex {
        /// The directory that was asked for.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The index was written by another format version of scopedex.
    #[error(
        "index at {} has format version {found}, this build reads version {expected}; \
         rebuild it with `scopedex index` (or `scopedex reindex` if only the serving store changed)",
        path.display()
    )]
    FormatVersion {
        /// The index directory.
        path: PathBuf,
        /// The version in its manifest.
        found: u32,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// An output path holds something scopedex did not write; publishing there would replace it.
    #[error(
        "refusing to write to {}: {reason}; choose a new path, an empty directory or an \
         existing scopedex output (nothing was changed)",
        path.display()
    )]
    NotOurs {
        /// The output path.
        path: PathBuf,
        /// What is there.
        reason: String,
    },
    /// The SAE id is not part of this index.
    #[error("unknown SAE {sae:?} (this index has: {known})")]
    UnknownSae {
        /// The id that was asked for.
        sae: String,
        /// Comma-separated ids the index does have.
        known: String,
    },
    /// The feature index is `>= d_sae`.
    #[error("feature {feature} is out of range for SAE {sae:?} (d_sae = {d_sae})")]
    FeatureOutOfRange {
        /// The SAE id.
        sae: String,
        /// The feature that was asked for.
        feature: u32,
        /// The SAE's number of features.
        d_sae: u32,
    },
    /// The search query does not parse (or names an unknown SAE or feature).
    #[error("invalid search query {query:?}: {message}")]
    Query {
        /// The query string.
        query: String,
        /// The parser's message (with the position).
        message: String,
        /// 0-based character position of the error in the query, when known.
        position: Option<usize>,
    },
    /// The caller passed something the store cannot accept (e.g. an SAE id that is not a safe
    /// directory name, records written after `finish`).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// `Result` with the store's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl AsRef<Path>, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn arrow(path: impl AsRef<Path>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn rocks(path: impl AsRef<Path>, source: rocksdb::Error) -> Self {
        Error::RocksDb {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn tantivy(path: impl AsRef<Path>, source: tantivy::TantivyError) -> Self {
        Error::Tantivy {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            location: location.into(),
            reason: reason.into(),
        }
    }

    /// True for errors caused by the caller's input (unknown SAE, feature out of range, bad
    /// query, invalid input) rather than by the index or the machine: map these to 4xx.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Error::UnknownSae { .. }
                | Error::FeatureOutOfRange { .. }
                | Error::Query { .. }
                | Error::InvalidInput(_)
                | Error::NotOurs { .. }
        )
    }
}
