//! The RocksDB serving store (`rocksdb/`), derived from the Parquet files.
//!
//! Nothing here is a source of truth: [`build`] recreates the whole directory from Parquet
//! (at publish and by `scopedex reindex`); readers open it read-only. Most callers want
//! [`crate::IndexReader`] rather than this module.
//!
//! ## Column families and keys
//! Integers in keys are big-endian so that byte order is numeric order and one feature's rows
//! are one contiguous range. `{sae}` is the SAE id's bytes (validated: no NUL), then a `0x00`
//! separator, so no SAE's range overlaps another's.
//!
//! | cf | key | value ([`codec`]) |
//! |---|---|---|
//! | `features` | `{sae}\0{feature:u32}` | feature statistics |
//! | `examples` | `{sae}\0{feature:u32}{kind:u16}{rank:u16}` | one example; kind 0 = top, i + 1 = interval_i |
//! | `cooc` | `{sae}\0{feature:u32}` | all partners of the feature, strongest first |
//! | `neighbours` | `{sae}\0{feature:u32}` | decoder-cosine neighbours, closest first |
//! | `contexts` | `{context_id:u64}` | one context (tokens, offsets, text) |
//! | `meta` | `summary\0{sae}` | SAE summary; `serving_version` → u32 LE |
//! | `context_features` | `{sae}\0{context_id:u64}` | strongest features of the SAE in the context |
//! | `context_top` | `{context_id:u64}` | the strongest [`CONTEXT_TOP_FEATURES`] features of every SAE in the context |
//! | `similar` | `{context_id:u64}` | precomputed "more like this" list (see [`crate::similar`]) |
//! | `explanations` | `{sae}\0{feature:u32}` | the feature's explanation and scores |
//!
//! `context_features` was added after serving version 1 without a version change: a store
//! built before it has no such column family, and readers then report no features per context
//! (`scopedex reindex` adds it). `context_top` and `similar` came later still, the same way, and is filled after
//! the rest (it reads the finished store and the tantivy index); `meta/similar_list_len`
//! (u32 LE) is written last, so a store without it has no usable lists and answers live.
//!
//! A feature lookup is one point get (bloom filter, block cache); an examples page is one seek
//! and a short forward scan bounded by an upper-bound key, ordered by kind then rank.
//!
//! ## Tuning
//! Built with WAL off and auto-compaction off (bulk load), then flushed and compacted to the
//! bottom level, so readers see few sorted files. zstd on every level, 16 KiB blocks, 10-bit
//! bloom filters on whole keys, index/filter blocks in the block cache (a shared LRU).
pub(crate) mod codec;
mod reader;
mod writer;

pub(crate) use codec::encode_similar;
pub use codec::ContextFeaturesView;
pub(crate) use reader::RocksReader;
pub(crate) use writer::{build, ExplanationWriter, SimilarWriter};

use crate::records::ExampleKind;

/// Column family of feature statistics.
pub const CF_FEATURES: &str = "features";
/// Column family of examples.
pub const CF_EXAMPLES: &str = "examples";
/// Column family of co-occurrence lists.
pub const CF_COOC: &str = "cooc";
/// Column family of contexts.
pub const CF_CONTEXTS: &str = "contexts";
/// Column family of per-SAE summaries and build metadata.
pub const CF_META: &str = "meta";
/// Column family of the strongest features per (SAE, context).
pub const CF_CONTEXT_FEATURES: &str = "context_features";
/// Column family of the strongest few features of every SAE per context: what a search hit
/// lists, in one read from a column family small enough to stay in the block cache.
pub const CF_CONTEXT_TOP: &str = "context_top";
/// Features kept per SAE and context in [`CF_CONTEXT_TOP`].
pub const CONTEXT_TOP_FEATURES: usize = 8;
/// Column family of the precomputed "more like this" lists.
pub const CF_SIMILAR: &str = "similar";
/// Column family of decoder-cosine neighbours per feature.
pub const CF_NEIGHBOURS: &str = "neighbours";
/// Column family of feature explanations (optional: stores built before it have none).
pub const CF_EXPLANATIONS: &str = "explanations";
/// All column families (besides RocksDB's `default`, unused).
pub const COLUMN_FAMILIES: [&str; 10] = [
    CF_FEATURES,
    CF_EXAMPLES,
    CF_COOC,
    CF_CONTEXTS,
    CF_META,
    CF_CONTEXT_FEATURES,
    CF_CONTEXT_TOP,
    CF_SIMILAR,
    CF_NEIGHBOURS,
    CF_EXPLANATIONS,
];
/// Column families a reader accepts being absent (added later; see the module docs).
pub(crate) const OPTIONAL_COLUMN_FAMILIES: [&str; 5] = [
    CF_CONTEXT_FEATURES,
    CF_CONTEXT_TOP,
    CF_SIMILAR,
    CF_NEIGHBOURS,
    CF_EXPLANATIONS,
];

/// Version of the key layout and value encoding, stored under `meta/serving_version`.
pub(crate) const SERVING_VERSION: u32 = 2;
pub(crate) const META_SERVING_VERSION: &[u8] = b"serving_version";
/// Length of the precomputed similar lists (u32 LE); absent: none.
pub(crate) const META_SIMILAR_LIST_LEN: &[u8] = b"similar_list_len";

/// `{sae}\0`
pub(crate) fn sae_prefix(sae: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(sae.len() + 11);
    k.extend_from_slice(sae.as_bytes());
    k.push(0);
    k
}

/// `{sae}\0{feature:u32 BE}` (features and cooc keys; prefix of example keys).
pub(crate) fn feature_key(sae: &str, feature: u32) -> Vec<u8> {
    let mut k = sae_prefix(sae);
    k.extend_from_slice(&feature.to_be_bytes());
    k
}

/// The `u16` kind code of example keys: top = 0, interval_i = i + 1 (`None` for
/// `interval_65535`, which has no code).
pub(crate) fn kind_code(kind: ExampleKind) -> Option<u16> {
    match kind {
        ExampleKind::Top => Some(0),
        ExampleKind::Interval(i) => i.checked_add(1),
    }
}

pub(crate) fn kind_from_code(code: u16) -> ExampleKind {
    match code {
        0 => ExampleKind::Top,
        i => ExampleKind::Interval(i - 1),
    }
}

/// `{sae}\0{feature BE}{kind BE}` — prefix of one list's examples.
pub(crate) fn example_kind_prefix(sae: &str, feature: u32, kind_code: u16) -> Vec<u8> {
    let mut k = feature_key(sae, feature);
    k.extend_from_slice(&kind_code.to_be_bytes());
    k
}

/// `{sae}\0{feature BE}{kind BE}{rank BE}`
pub(crate) fn example_key(sae: &str, feature: u32, kind_code: u16, rank: u16) -> Vec<u8> {
    let mut k = example_kind_prefix(sae, feature, kind_code);
    k.extend_from_slice(&rank.to_be_bytes());
    k
}

/// `summary\0{sae}`
pub(crate) fn summary_key(sae: &str) -> Vec<u8> {
    let mut k = b"summary\0".to_vec();
    k.extend_from_slice(sae.as_bytes());
    k
}

/// `{sae}\0{context_id BE}`
pub(crate) fn sae_context_key(sae: &str, context_id: u64) -> Vec<u8> {
    let mut k = sae_prefix(sae);
    k.extend_from_slice(&context_id.to_be_bytes());
    k
}

/// `{context_id BE}`
pub(crate) fn context_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub(crate) fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < u8::MAX {
            k.push(last + 1);
            return Some(k);
        }
    }
    None
}

/// Options shared by the builder and readers (per column family).
pub(crate) fn table_options(cache: Option<&rocksdb::Cache>) -> rocksdb::Options {
    let mut block = rocksdb::BlockBasedOptions::default();
    block.set_block_size(16 << 10);
    block.set_bloom_filter(10.0, false);
    block.set_cache_index_and_filter_blocks(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if let Some(cache) = cache {
        block.set_block_cache(cache);
    }
    let mut opts = rocksdb::Options::default();
    opts.set_block_based_table_factory(&block);
    opts.set_compression_type(rocksdb::DBCompressionType::Zstd);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_saes_do_not_overlap() {
        assert!(feature_key("a", 255) < feature_key("a", 256));
        assert!(example_key("a", 1, 0, 65535) < example_key("a", 1, 1, 0));
        assert!(example_key("a", 1, 9, 9) < feature_key("a", 2));
        // "a" < "a-b": every key of "a" sorts before every key of "a-b" thanks to the \0.
        assert!(feature_key("a", u32::MAX) < feature_key("a-b", 0));
        assert_eq!(prefix_upper_bound(&[1, 255, 255]), Some(vec![2]));
        assert_eq!(prefix_upper_bound(&[255]), None);
        for k in [
            ExampleKind::Top,
            ExampleKind::Interval(0),
            ExampleKind::Interval(7),
        ] {
            assert_eq!(kind_from_code(kind_code(k).unwrap()), k);
        }
        assert_eq!(kind_code(ExampleKind::Interval(u16::MAX)), None);
    }
}
