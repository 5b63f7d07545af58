//! The tantivy index of contexts (`tantivy/`): one document per context, with its text and the
//! active features of every SAE as terms.
//!
//! Schema:
//! - `context_id` (u64; indexed, fast, stored);
//! - `text` (tantivy's default tokenizer: split on non-alphanumerics, lowercase, drop tokens
//!   over 40 bytes; frequencies and positions, so phrase queries work; not stored — the text
//!   lives in RocksDB and snippets are cut from it);
//! - `feat`: pre-tokenized feature terms ([`crate::query::context_feature_terms`]): for every
//!   feature active in the context, `SAE/F` plus `SAE/F>T` for each strength bucket T it
//!   reaches, positioned at the token where the feature's activation is highest. No field
//!   norms: feature clauses are scored by constants, not by BM25 length normalisation.
//!
//! Built from `contexts.parquet`, each SAE's `context_features.parquet` and (for the strength
//! buckets) `features.parquet` `max_act`; rebuilt by `reindex`. Queries are in the language of
//! [`crate::query`]; hits are ranked by score (BM25 of the text terms, plus 1 per feature
//! clause and 1 per strength bucket the feature reaches above the one asked for, so stronger
//! firings rank first), ties by lower context_id. "More like this" ([`TextIndex::similar`])
//! scores a context by the summed weights of the feature terms it shares with the source.
//!
//! Files: `schema` (fields), `rows` (streaming Parquet reads), `builder` (building the index),
//! `searcher` (`TextIndex`: parse, compile, search, snippets),
//! `more_like_this` (similar contexts by shared feature terms).
mod builder;
mod more_like_this;
mod rows;
mod schema;
mod searcher;

pub(crate) use builder::build;
pub use more_like_this::{term_weight, SimilarResult, MAX_SIMILAR_TERMS};
pub(crate) use rows::{feature_maxes, Rows};
pub use schema::{FIELD_CONTEXT_ID, FIELD_FEATURES, FIELD_TEXT};
pub(crate) use searcher::TextIndex;
pub use searcher::{SearchHit, Snippet};
