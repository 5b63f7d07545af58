//! Per-feature accumulators of one indexing pass, with an exact associative, commutative merge.
//!
//! One [`SaeAccumulator`] per SAE takes every batch ([`BatchContexts`] + the SAE's
//! [`SparseCodes`](scopedex_sae::SparseCodes)) and keeps, per feature:
//! * top-k contexts by max activation, ties by lower context_id ([`topk`]), sparse windows;
//! * interval samples over log-spaced buckets, selected into N equal-width intervals of
//!   `[0, max]` at the end ([`intervals`] documents the scheme);
//! * firing count, max, exact sum, log-binned histogram ([`stats`]);
//! * top tokens by count (Misra–Gries with [`AccumConfig::token_counters`] counters, exact while
//!   a feature fires on ≤ that many distinct tokens; [`sketch`] states the bound);
//! * co-occurrence partners ([`cooc`]: exact dense counts within a memory budget, else sketch).
//!
//! plus per-SAE totals ([`summary`]). [`CrossCooc`] does co-occurrence between two SAEs.
//!
//! **Merge = single pass.** Every piece merges exactly (integer sums, max, the unique top-k under
//! a total order, bottom-s samples by a hash priority), so splitting the contexts into shards
//! and merging the accumulators in any grouping and order gives results identical to one pass —
//! as long as the sketches stay exact (`SketchReport::{cooc_exact, *_max_error == 0}`); once a
//! sketch has had to evict, results stay within its stated bound but may depend on the grouping.
//!
//! **Positions counted.** With `exclude_bos`, position 0 of every context is skipped by
//! everything (statistics, L0, co-occurrence, example maxima, reconstruction sums); example
//! `acts` read 0 there, so `max_act == acts[max_pos] == max(acts)` always holds.
//!
//! **Memory.** Bounded, independent of the number of tokens: per feature at most `top_k` +
//! ≈ `samples_per_interval · (4·log2(intervals) + 2)` sparse windows (8 bytes per nonzero),
//! `token_counters` + (sketch mode) `sketch_counters` counters of 12 bytes, the histogram, and
//! in exact mode the co-occurrence triangle.
//!
//! Files: `config` (settings), `accumulator` ([`SaeAccumulator`]: add, merge, serialize),
//! `feature` (one feature's state), `output` (records), `results` (result types), `persist`
//! (framing of serialized state); the pieces of per-feature state live in `topk`, `intervals`,
//! `stats`, `sketch`, `cooc`, `summary`, and `batch` / `logits` handle the input batches and
//! logit effects.
mod accumulator;
mod batch;
mod config;
pub mod cooc;
mod feature;
pub mod intervals;
mod logits;
mod output;
mod persist;
mod results;
pub mod sketch;
pub mod stats;
pub mod summary;
pub mod topk;

pub use accumulator::SaeAccumulator;
pub use batch::BatchContexts;
pub use config::{AccumConfig, CoocConfig};
pub use cooc::{CrossCooc, CrossCoocResults};
pub use logits::{logit_effects, top_logits, LogitEffects, LogitHistogram, LOGIT_HIST_BINS};
pub use results::{ResultsChunk, SaeResults, SketchReport};
