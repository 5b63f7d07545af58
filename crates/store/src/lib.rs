//! Storage of an index: zstd Parquet (source of truth), RocksDB (serving) and tantivy (context
//! text), described by `manifest.json` and published atomically.
//!
//! ## Index directory
//! ```text
//! index/
//!   manifest.json                  Manifest: format version, model, tokenizer, corpus files
//!                                  (sha256), ctx_len, parameters, SAEs (sha256), shards, created.
//!                                  Written last: a directory with a manifest is complete.
//!   contexts.parquet               context_id, doc_id, tokens, token_starts, token_ends, text
//!   saes/{sae_id}/
//!     features.parquet             one row per feature: stats, histogram, top tokens, logits
//!     examples.parquet             feature, kind (top | interval_{i}), rank, context_id,
//!                                  max_pos, max_act, acts (list<float32>, every position)
//!     cooccurrence.parquet         feature, other_sae, other_feature, n_both, jaccard, npmi
//!     summary.parquet              one row: tokens indexed, mean L0, dead features, EV, hists
//!     explanations.parquet         optional: feature, text, model, prompt version, settings,
//!                                  train contexts, scores (see [`explanations`])
//!     activations/part-*.parquet   optional sparse log: feature, context_id, pos, value,
//!                                  sorted per part by (feature, context_id, pos)
//!   rocksdb/                       serving store built from the Parquet files (see [`rocks`])
//!   tantivy/                       text + feature-term index of contexts (see [`text`],
//!                                  query language in [`query`])
//!   explanations/                  optional: tantivy index of explanation texts
//! ```
//! Column types are in `schemas/index.md` (kept equal to the writers' Arrow schemas by a test).
//! Differences from DESIGN.md: token byte offsets are two columns `token_starts`/`token_ends`
//! (as [`records::ContextRecord`]) rather than one `token_offsets`; the per-SAE summary is a
//! table of its own; RocksDB keys are `{sae}\0{feature}` in column families rather than
//! `f/{sae}/{feature}` in one keyspace (a `/` could appear in no SAE id anyway, but the NUL
//! separator sorts before every id character, so SAE ranges never interleave).
//!
//! ## Writing and reading
//! [`IndexWriter`] streams records into `{out}.tmp-{pid}-{n}` and [`IndexWriter::publish`]
//! builds RocksDB and tantivy from the Parquet files, then swaps the directory in atomically
//! ([`publish`] explains the crash guarantees). [`rebuild_serving`] redoes the derived stores
//! from Parquet (`scopedex reindex`). [`IndexReader`] answers queries from RocksDB and tantivy
//! and is cheap to clone across threads.
#![warn(missing_docs)]

mod error;
pub mod explanations;
pub mod fixture;
mod fsutil;
mod index_reader;
mod index_writer;
pub mod layout;
pub mod manifest;
pub mod parquet;
pub mod publish;
pub mod query;
pub mod records;
pub mod rocks;
mod similar;
pub mod text;

pub use error::{Error, Result};
pub use index_reader::{read_vocab, ContextTopFeatures, IndexReader, OccurrencePage};
pub use index_writer::{
    rebuild_serving, IndexWriter, IndexWriterOptions, PublishReport, SaeCounts,
};
pub use layout::IndexLayout;
pub use manifest::{
    now_rfc3339, sha256_file, validate_sae_id, CorpusFile, IndexParameters, Manifest, ModelInfo,
    SaeEntry, ShardInfo, TokenizerInfo, ACTIVATION_MANTISSA_BITS_KEY, FORMAT_VERSION,
};
pub use parquet::activations::{round_mantissa, ActivationLogStats, DEFAULT_MANTISSA_BITS};
pub use parquet::{
    ActivationReader, ActivationWriter, ActivationWriterOptions, TableReader, TableWriter,
};
pub use publish::{check_replaceable, recover, Recovery};
pub use query::{
    parse_feature_term, strength_level, FeatureRef, Node as QueryNode, QueryError, STRENGTH_BUCKETS,
};
pub use records::{
    ActivationEntry, ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleKind,
    ExampleRecord, ExplanationRecord, ExplanationScores, FeatureOccurrence, FeatureRecord,
    NeighbourRecord, SaeSummary, TokenCount, TokenValue, VocabRecord,
};
pub use rocks::ContextFeaturesView;
pub use similar::{
    SharedFeature, SimilarContext, SimilarList, SIMILAR_LIST_LEN, SIMILAR_SHARED_FEATURES,
};
pub use text::{term_weight, SearchHit, SimilarResult, Snippet, MAX_SIMILAR_TERMS};
