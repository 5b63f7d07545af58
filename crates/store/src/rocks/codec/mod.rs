//! The versioned binary value encoding of the serving store (hand-written, no dependency).
//!
//! Every value starts with one version byte ([`VALUE_VERSION`](bytes::VALUE_VERSION)), then fields
//! in a fixed order, little-endian; variable-length parts are a `u32` count then the items; strings
//! are a `u32` byte length then UTF-8. Fields that are part of the key (SAE, feature, kind, rank,
//! context id) are not repeated in the value. Decoding checks every length against the bytes left
//! and that nothing trails, and reports the column family and key (hex) of a bad value.
//!
//! | value | layout after the version byte |
//! |---|---|
//! | feature | n_fired u64, density f64, max_act f32, mean_act f32, act_hist [u64], top_tokens [(u32 token, u64 count)], logit_pos [(u32, f32)], logit_neg [(u32, f32)], then (absent in older stores) logit_hist [u64], logit_hist_min f32, logit_hist_max f32 |
//! | example | context_id u64, max_pos u32, max_act f32, acts: tag u8 = 0 dense: [f32]; tag 1 sparse: len u32, [(u16 pos, f32 value)] of the nonzeros |
//! | cooc | other SAE names [string], partners [(u16 name index, u32 other_feature, u64 n_both, f32 jaccard, f32 npmi)], sorted by n_both desc, then name, feature |
//! | context | doc_id string, tokens [u32], token_starts [u32] and token_ends [u32] (same count as tokens, no count of their own), text string |
//! | context features | features [u32], max_acts [f32] (same count as features, no count of its own) |
//! | context top | per SAE of the manifest [(features [u32], max_acts [f32] (same count, no count of its own))] |
//! | similar | terms u32, hits [(context_id u64, score f32, shared [(u16 SAE index in the manifest, u32 feature, f32 weight, f32 max_act)])] |
//! | explanation | see [`explanation`]: 7 strings, train_contexts [u64], detection and fuzzing scores |
//! | summary | sae_id string, d_in u32, d_sae u32, tokens_indexed u64, mean_l0 f64, dead_features u32, explained_variance f64, act_hist_edges [f32], density_hist_edges [f32], density_hist [u64] |
//!
//! Files: `bytes` (version byte, writer, reader), `feature` (values keyed by SAE and feature, and
//! the SAE summary), `context` (values keyed by context id).
mod bytes;
mod context;
mod explanation;
mod feature;

pub(crate) use bytes::Dec;
pub use context::ContextFeaturesView;
pub(crate) use context::{
    decode_context, decode_context_features, decode_context_top, decode_similar, encode_context,
    encode_context_features, encode_context_top, encode_similar,
};
pub(crate) use explanation::{decode_explanation, encode_explanation};
pub(crate) use feature::{
    decode_cooc, decode_example, decode_feature, decode_neighbours, decode_summary, encode_cooc,
    encode_example, encode_feature, encode_neighbours, encode_summary,
};
