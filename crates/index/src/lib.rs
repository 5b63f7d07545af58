//! The single-pass indexer: per-feature accumulators with an associative merge, the pipeline, shards.
#![warn(missing_docs)]
