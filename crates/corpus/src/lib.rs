//! Corpus readers (txt, JSON lists, JSONL / JSONL.zst, Parquet) and fixed-length token contexts.
//!
//! ```text
//! CorpusSpec ──resolve_files──► [CorpusFile] ──documents──► Documents (Result<Document>)
//!                                                              │ contexts(docs, tokenizer, cfg)
//!                                                              ▼
//!                                  ContextStream (Result<Vec<Context>> chunks) + SkipReport
//! ```
//!
//! Invariants:
//! - Order is deterministic: files sorted by path, records in file order, contexts numbered
//!   densely (`context_id` 0, 1, ...) in that order whatever the thread count.
//! - Memory is bounded: files are streamed (a `.json` list, being one value, is parsed one file at
//!   a time), documents are capped at [`MAX_DOC_BYTES`], and contexts come in chunks of about
//!   [`BATCH_BYTES`] of text.
//! - Bad input never panics and is never dropped silently: it is a [`Skip`] in the
//!   [`SkipReport`], or with `strict` the [`Error::BadInput`] that ends the stream.
//! - Every token's byte range round-trips: `&ctx.text[start..end]` is its source text (see
//!   [`context`] for the rule on multi-byte characters split by byte-level tokens).
#![warn(missing_docs)]

pub mod context;
mod document;
mod documents;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod readers;
mod skip;
mod spec;
mod stream;

pub use context::{Context, ContextConfig};
pub use document::Document;
pub use documents::Documents;
pub use error::{Error, Result};
pub use readers::{MAX_DOC_BYTES, MAX_JSON_FILE_BYTES};
pub use skip::{Location, Skip, SkipKind, SkipReport};
pub use spec::{CorpusFile, CorpusSpec, Format};
pub use stream::{contexts, ContextStream, BATCH_BYTES, SEGMENT_BYTES, SPLIT_SEARCH_BYTES};
