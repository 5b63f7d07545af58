//! Read-only lookups in `rocksdb/`.
use std::path::{Path, PathBuf};

use rocksdb::{ReadOptions, DB};

use super::codec::{self, Dec};
use super::*;
use crate::error::{Error, Result};
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleRecord, ExplanationRecord,
    FeatureRecord, NeighbourRecord, SaeSummary,
};

/// Block cache shared by all column families of one reader.
const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// A read-only handle on the serving store. `DB` is `Send + Sync`; share it behind an `Arc`.
pub(crate) struct RocksReader {
    db: DB,
    path: PathBuf,
    /// Length of the precomputed similar lists (0: none).
    similar_len: usize,
}

impl RocksReader {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(Error::MissingIndex {
                path: path.to_path_buf(),
                reason: "rocksdb/ is missing; run `scopedex reindex` to rebuild it".into(),
            });
        }
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let mut opts = table_options(Some(&cache));
        // Open every table file up front: the handle keeps working if the directory is
        // unlinked by a later publish while this reader is still in use.
        opts.set_max_open_files(-1);
        // Column families added after version 1 may be absent from an older store.
        let existing = DB::list_cf(&opts, path).map_err(|e| Error::rocks(path, e))?;
        let cfs = COLUMN_FAMILIES
            .iter()
            .filter(|n| !OPTIONAL_COLUMN_FAMILIES.contains(n) || existing.iter().any(|e| e == *n))
            .map(|n| rocksdb::ColumnFamilyDescriptor::new(*n, table_options(Some(&cache))));
        let db = DB::open_cf_descriptors_read_only(&opts, path, cfs, false)
            .map_err(|e| Error::rocks(path, e))?;
        let mut r = RocksReader {
            db,
            path: path.to_path_buf(),
            similar_len: 0,
        };
        let version = r
            .get(CF_META, META_SERVING_VERSION)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_le_bytes);
        if version != Some(SERVING_VERSION) {
            return Err(Error::corrupt(
                format!("rocksdb:{CF_META}:serving_version"),
                format!(
                    "serving store version {version:?}, this build reads {SERVING_VERSION}; \
                     run `scopedex reindex`"
                ),
            ));
        }
        if r.db.cf_handle(CF_SIMILAR).is_some() {
            r.similar_len = r
                .get(CF_META, META_SIMILAR_LIST_LEN)?
                .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
                .map_or(0, |v| u32::from_le_bytes(v) as usize);
        }
        Ok(r)
    }

    /// Length of the precomputed "more like this" lists (0 when the store has none).
    pub(crate) fn similar_list_len(&self) -> usize {
        self.similar_len
    }

    /// The precomputed "more like this" list of a context (`None` when there is none);
    /// `saes`: the manifest's SAE ids.
    pub(crate) fn similar_list(
        &self,
        context_id: u64,
        saes: &[&str],
    ) -> Result<Option<crate::similar::SimilarList>> {
        if self.similar_len == 0 {
            return Ok(None);
        }
        self.get_with(CF_SIMILAR, &context_key(context_id), |d| {
            codec::decode_similar(d, saes)
        })
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::corrupt(format!("rocksdb:{name}"), "column family missing"))
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = self.cf(cf)?;
        self.db
            .get_pinned_cf(handle, key)
            .map(|v| v.map(|s| s.to_vec()))
            .map_err(|e| Error::rocks(&self.path, e))
    }

    /// Point lookup, decoded in place from the pinned slice (no copy).
    fn get_with<T>(
        &self,
        cf: &'static str,
        key: &[u8],
        decode: impl FnOnce(Dec<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let handle = self.cf(cf)?;
        match self
            .db
            .get_pinned_cf(handle, key)
            .map_err(|e| Error::rocks(&self.path, e))?
        {
            Some(v) => decode(Dec::new(cf, key, &v)?).map(Some),
            None => Ok(None),
        }
    }

    /// Batched [`Self::get_with`]: one MultiGet for every key (RocksDB finds their blocks
    /// together, a third of the CPU of separate gets for a page of hits), then
    /// `decode(index of the key, value)` for each key present.
    fn multi_get_with<K: AsRef<[u8]>>(
        &self,
        cf: &'static str,
        keys: &[K],
        mut decode: impl FnMut(usize, Dec<'_>) -> Result<()>,
    ) -> Result<()> {
        let handle = self.cf(cf)?;
        let values = self.db.batched_multi_get_cf(handle, keys.iter(), false);
        for (i, (key, v)) in keys.iter().zip(values).enumerate() {
            if let Some(v) = v.map_err(|e| Error::rocks(&self.path, e))? {
                decode(i, Dec::new(cf, key.as_ref(), &v)?)?;
            }
        }
        Ok(())
    }

    pub(crate) fn summary(&self, sae: &str) -> Result<Option<SaeSummary>> {
        self.get_with(CF_META, &summary_key(sae), codec::decode_summary)
    }

    pub(crate) fn feature(&self, sae: &str, feature: u32) -> Result<Option<FeatureRecord>> {
        self.get_with(CF_FEATURES, &feature_key(sae, feature), |d| {
            codec::decode_feature(feature, d)
        })
    }

    pub(crate) fn cooc(&self, sae: &str, feature: u32) -> Result<Vec<CooccurrenceRecord>> {
        Ok(self
            .get_with(CF_COOC, &feature_key(sae, feature), |d| {
                codec::decode_cooc(feature, d)
            })?
            .unwrap_or_default())
    }

    /// Decoder-cosine neighbours of a feature (empty when none were stored, or the store
    /// predates the column family).
    pub(crate) fn neighbours(&self, sae: &str, feature: u32) -> Result<Vec<NeighbourRecord>> {
        if self.db.cf_handle(CF_NEIGHBOURS).is_none() {
            return Ok(Vec::new());
        }
        Ok(self
            .get_with(CF_NEIGHBOURS, &feature_key(sae, feature), |d| {
                codec::decode_neighbours(feature, d)
            })?
            .unwrap_or_default())
    }

    /// The explanation of a feature (`None` when it has none, or the store predates them).
    pub(crate) fn explanation(&self, sae: &str, feature: u32) -> Result<Option<ExplanationRecord>> {
        if self.db.cf_handle(CF_EXPLANATIONS).is_none() {
            return Ok(None);
        }
        self.get_with(CF_EXPLANATIONS, &feature_key(sae, feature), |d| {
            codec::decode_explanation(feature, d)
        })
    }

    /// The explanations of many features of one SAE in one batched read, in the order of
    /// `features` (`None` where a feature has none).
    pub(crate) fn explanations_many(
        &self,
        sae: &str,
        features: &[u32],
    ) -> Result<Vec<Option<ExplanationRecord>>> {
        let mut out = vec![None; features.len()];
        if self.db.cf_handle(CF_EXPLANATIONS).is_none() || features.is_empty() {
            return Ok(out);
        }
        let keys: Vec<Vec<u8>> = features.iter().map(|&f| feature_key(sae, f)).collect();
        self.multi_get_with(CF_EXPLANATIONS, &keys, |i, d| {
            out[i] = Some(codec::decode_explanation(features[i], d)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every explanation of one SAE, by feature.
    pub(crate) fn explanations_of(&self, sae: &str) -> Result<Vec<ExplanationRecord>> {
        if self.db.cf_handle(CF_EXPLANATIONS).is_none() {
            return Ok(Vec::new());
        }
        let cf = self.cf(CF_EXPLANATIONS)?;
        let prefix = sae_prefix(sae);
        let mut opts = ReadOptions::default();
        if let Some(upper) = prefix_upper_bound(&prefix) {
            opts.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek(&prefix);
        let mut out = Vec::new();
        while it.valid() {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                break;
            };
            let feature = key
                .get(prefix.len()..)
                .and_then(|k| <[u8; 4]>::try_from(k).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("rocksdb:{CF_EXPLANATIONS}"),
                        "key is not an SAE id, NUL, then a u32 feature",
                    )
                })?;
            out.push(codec::decode_explanation(
                feature,
                Dec::new(CF_EXPLANATIONS, key, value)?,
            )?);
            it.next();
        }
        it.status().map_err(|e| Error::rocks(&self.path, e))?;
        Ok(out)
    }

    /// The strongest features of `sae` in one context (`None` when none were stored, or the
    /// store predates the column family).
    pub(crate) fn context_features(
        &self,
        sae: &str,
        context_id: u64,
    ) -> Result<Option<ContextFeaturesRecord>> {
        if self.db.cf_handle(CF_CONTEXT_FEATURES).is_none() {
            return Ok(None);
        }
        self.get_with(
            CF_CONTEXT_FEATURES,
            &sae_context_key(sae, context_id),
            |d| codec::decode_context_features(context_id, d),
        )
    }

    /// Runs `f` on a context's features read in place (`None` as for [`Self::context_features`]).
    pub(crate) fn with_context_features<T>(
        &self,
        sae: &str,
        context_id: u64,
        f: impl FnOnce(codec::ContextFeaturesView<'_>) -> T,
    ) -> Result<Option<T>> {
        if self.db.cf_handle(CF_CONTEXT_FEATURES).is_none() {
            return Ok(None);
        }
        self.get_with(
            CF_CONTEXT_FEATURES,
            &sae_context_key(sae, context_id),
            |d| codec::ContextFeaturesView::decode(d).map(f),
        )
    }

    /// [`Self::with_context_features`] for many contexts in one batched read: `f(index in
    /// context_ids, view)` for each context that has a list.
    pub(crate) fn with_context_features_many(
        &self,
        sae: &str,
        context_ids: &[u64],
        mut f: impl FnMut(usize, codec::ContextFeaturesView<'_>),
    ) -> Result<()> {
        if self.db.cf_handle(CF_CONTEXT_FEATURES).is_none() {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = context_ids
            .iter()
            .map(|&id| sae_context_key(sae, id))
            .collect();
        self.multi_get_with(CF_CONTEXT_FEATURES, &keys, |i, d| {
            f(i, codec::ContextFeaturesView::decode(d)?);
            Ok(())
        })
    }

    /// Calls `f(sae index, feature, max_act)` for the strongest [`CONTEXT_TOP_FEATURES`] (or
    /// more) features of every SAE (`saes`, manifest order) in a context, strongest first per
    /// SAE: one read from the small `context_top` column family (a store without it: the full
    /// per-SAE lists).
    pub(crate) fn context_top(
        &self,
        context_id: u64,
        saes: &[&str],
        mut f: impl FnMut(usize, u32, f32),
    ) -> Result<()> {
        if self.db.cf_handle(CF_CONTEXT_TOP).is_none() {
            for (i, sae) in saes.iter().enumerate() {
                self.with_context_features(sae, context_id, |cf| {
                    cf.iter().for_each(|(feat, act, _)| f(i, feat, act))
                })?;
            }
            return Ok(());
        }
        self.get_with(CF_CONTEXT_TOP, &context_key(context_id), |d| {
            codec::decode_context_top(d, &mut f)
        })?;
        Ok(())
    }

    /// [`Self::context_top`] for many contexts in one batched read: `f(index in context_ids,
    /// sae index, feature, max_act)`.
    pub(crate) fn context_top_many(
        &self,
        context_ids: &[u64],
        saes: &[&str],
        mut f: impl FnMut(usize, usize, u32, f32),
    ) -> Result<()> {
        if self.db.cf_handle(CF_CONTEXT_TOP).is_none() {
            for (j, &id) in context_ids.iter().enumerate() {
                self.context_top(id, saes, |i, feat, act| f(j, i, feat, act))?;
            }
            return Ok(());
        }
        let keys: Vec<[u8; 8]> = context_ids.iter().map(|&id| context_key(id)).collect();
        self.multi_get_with(CF_CONTEXT_TOP, &keys, |j, d| {
            codec::decode_context_top(d, &mut |i, feat, act| f(j, i, feat, act))
        })
    }

    pub(crate) fn context(&self, id: u64) -> Result<Option<ContextRecord>> {
        self.get_with(CF_CONTEXTS, &context_key(id), |d| {
            codec::decode_context(id, d)
        })
    }

    /// Many contexts with one batched read (order of `ids`, `None` where missing).
    pub(crate) fn contexts(&self, ids: &[u64]) -> Result<Vec<Option<ContextRecord>>> {
        let cf = self.cf(CF_CONTEXTS)?;
        let keys: Vec<[u8; 8]> = ids.iter().map(|&id| context_key(id)).collect();
        let values = self.db.batched_multi_get_cf(cf, keys.iter(), false);
        ids.iter()
            .zip(&keys)
            .zip(values)
            .map(
                |((&id, key), v)| match v.map_err(|e| Error::rocks(&self.path, e))? {
                    Some(v) => codec::decode_context(id, Dec::new(CF_CONTEXTS, key, &v)?).map(Some),
                    None => Ok(None),
                },
            )
            .collect()
    }

    /// Examples under `prefix` (a feature, or a feature and kind), in key order (kind, rank),
    /// skipping `offset` and returning at most `limit`.
    pub(crate) fn examples(
        &self,
        sae: &str,
        prefix: &[u8],
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExampleRecord>> {
        let cf = self.cf(CF_EXAMPLES)?;
        let mut opts = ReadOptions::default();
        if let Some(upper) = prefix_upper_bound(prefix) {
            opts.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_cf_opt(cf, opts);
        it.seek(prefix);
        let base = sae_prefix(sae).len();
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut skipped = 0;
        while out.len() < limit && it.valid() {
            let Some(key) = it.key() else { break };
            if !key.starts_with(prefix) {
                break;
            }
            if skipped < offset {
                skipped += 1;
                it.next();
                continue;
            }
            let parts = key
                .get(base..)
                .and_then(|k| <[u8; 8]>::try_from(k).ok())
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("rocksdb:{CF_EXAMPLES}:{}", hex::encode(key)),
                        "bad key length",
                    )
                })?;
            let feature = u32::from_be_bytes([parts[0], parts[1], parts[2], parts[3]]);
            let kind = kind_from_code(u16::from_be_bytes([parts[4], parts[5]]));
            let rank = u16::from_be_bytes([parts[6], parts[7]]);
            let value = it.value().unwrap_or_default();
            out.push(codec::decode_example(
                feature,
                kind,
                rank,
                Dec::new(CF_EXAMPLES, key, value)?,
            )?);
            it.next();
        }
        it.status().map_err(|e| Error::rocks(&self.path, e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_without_context_features_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("index");
        crate::fixture::write_index(&out, &crate::fixture::FixtureSpec::default()).unwrap();
        let path = out.join(crate::layout::ROCKSDB_DIR);
        {
            let mut opts = table_options(None);
            opts.create_if_missing(false);
            let mut db = DB::open_cf(&opts, &path, COLUMN_FAMILIES).unwrap();
            db.drop_cf(CF_CONTEXT_FEATURES).unwrap();
        }
        let r = RocksReader::open(&path).unwrap();
        assert_eq!(r.context_features("L1R-8x", 0).unwrap(), None);
        assert!(r.context(0).unwrap().is_some());
    }
}
