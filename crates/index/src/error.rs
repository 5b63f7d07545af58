//! The crate's one error type.
//!
//! Caller mistakes (a batch whose rows do not match its contexts, codes that break the CSR
//! invariants, merging accumulators built with different settings) are separate from checkpoint
//! faults (a state file that does not decode), so the indexer can tell a bug from a bad file.

/// Errors of the accumulators and the indexer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A batch does not fit the accumulator or breaks an invariant of its inputs.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// Two accumulators (or an accumulator and an argument) disagree on a setting or a shape.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A serialized accumulator state could not be decoded.
    #[error("corrupt accumulator state: {0}")]
    CorruptState(String),
    /// The model produced NaN or infinity at a hook: its weights (or dtype) are broken, and
    /// nothing computed from them can be published.
    #[error(
        "the model produced a non-finite activation ({value}) at hook {hook}, context \
         {context_id}, position {position}; check the model file (weights with NaN / Inf, or \
         a dtype that overflows). Nothing was published"
    )]
    NonFinite {
        /// The hook point.
        hook: String,
        /// The first context with a non-finite value.
        context_id: u64,
        /// Its token position.
        position: usize,
        /// The value (NaN, inf or -inf).
        value: f32,
    },
    /// The run produced no contexts (every corpus file skipped, an empty corpus, or a shard
    /// that owns nothing), so there is nothing to publish.
    #[error("nothing was indexed: {0}. The previous index, if any, is unchanged")]
    NothingIndexed(String),
    /// A user's input (an argument, an SAE spec, a shard list) is wrong.
    #[error("{0}")]
    InvalidInput(String),
    /// A state or checkpoint file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Loading or running the model failed.
    #[error(transparent)]
    Model(#[from] scopedex_model::Error),
    /// Loading or running an SAE failed.
    #[error(transparent)]
    Sae(#[from] scopedex_sae::Error),
    /// Reading the corpus failed (strict mode, or an unreadable path).
    #[error(transparent)]
    Corpus(#[from] scopedex_corpus::Error),
    /// Writing or reading the index failed.
    #[error(transparent)]
    Store(#[from] scopedex_store::Error),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Whether the user's input is at fault (exit code 2) rather than the machine or a bug.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::InvalidInput(_)
            | Error::InvalidConfig(_)
            | Error::NonFinite { .. }
            | Error::NothingIndexed(_) => true,
            Error::Sae(e) => e.is_user_error(),
            Error::Store(e) => e.is_user_error(),
            Error::Model(e) => e.is_user_error(),
            Error::Corpus(_) => true,
            _ => false,
        }
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
