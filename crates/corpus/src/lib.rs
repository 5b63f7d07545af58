//! Corpus readers (txt, JSON lists, JSONL / JSONL.zst, Parquet) and fixed-length token contexts.
#![warn(missing_docs)]
