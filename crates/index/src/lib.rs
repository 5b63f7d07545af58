//! The single-pass indexer: per-feature accumulators with an associative merge, the pipeline, shards.
//!
//! [`accum`] holds the statistical core: [`SaeAccumulator`] (everything one SAE needs: top-k
//! contexts, interval samples, density/max/mean/histogram, top tokens, co-occurrence, summary),
//! [`CrossCooc`] (co-occurrence between two SAEs on the same rows) and [`logit_effects`].
#![warn(missing_docs)]

pub mod accum;
mod checkpoint;
mod error;
mod finish;
mod finite;
mod job;
mod merge;
pub mod neighbours;
mod pass;
mod shard;

pub use accum::{
    logit_effects, top_logits, AccumConfig, BatchContexts, CoocConfig, CrossCooc, CrossCoocResults,
    LogitEffects, ResultsChunk, SaeAccumulator, SaeResults, SketchReport,
};
pub use checkpoint::{read_state, write_state, Checkpoint, RunFingerprint};
pub use error::{Error, Result};
pub use job::{
    load_saes, model_weights_file, run_index, IndexOptions, IndexReport, Progress, SaeSpec,
};
pub use merge::{run_merge, MergeReport};
pub use pass::{
    context_features, process_batch, AttachedSae, BatchOutput, CrossPairs, PassState, StageTimes,
};
pub use shard::Shard;
