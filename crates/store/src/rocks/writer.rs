//! Builds `rocksdb/` from the Parquet tables of an index directory.
use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, WriteBatch, WriteOptions, DB};

use super::codec;
use super::*;
use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::Manifest;
use crate::parquet::TableReader;
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleRecord, ExplanationRecord,
    FeatureRecord, NeighbourRecord, SaeSummary,
};

/// Puts per write batch: large enough to amortise, small enough to bound memory.
const BATCH_PUTS: usize = 4096;

struct Loader {
    db: DB,
    path: std::path::PathBuf,
    batch: WriteBatch,
    write_opts: WriteOptions,
}

impl Loader {
    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::corrupt(format!("rocksdb:{name}"), "column family missing"))
    }

    fn put(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = self
            .db
            .cf_handle(cf)
            .ok_or_else(|| Error::corrupt(format!("rocksdb:{cf}"), "column family missing"))?;
        self.batch.put_cf(handle, key, value);
        if self.batch.len() >= BATCH_PUTS {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(|e| Error::rocks(&self.path, e))
    }
}

/// Creates a RocksDB at `path` from the Parquet files under `layout` (anything at `path` is
/// removed first). The store is complete, closed and synced on return.
pub(crate) fn build(path: &Path, layout: &IndexLayout, manifest: &Manifest) -> Result<()> {
    let path = path.to_path_buf();
    crate::fsutil::remove_dir_all_if_exists(&path)?;
    let _span = tracing::info_span!("build_rocksdb", path = %path.display()).entered();

    let mut opts = table_options(None);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.prepare_for_bulk_load();
    opts.set_write_buffer_size(64 << 20);
    opts.set_max_background_jobs(2);
    let cfs = COLUMN_FAMILIES.iter().map(|name| {
        let mut cf_opts = table_options(None);
        cf_opts.prepare_for_bulk_load();
        cf_opts.set_write_buffer_size(64 << 20);
        ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|e| Error::rocks(&path, e))?;
    let mut write_opts = WriteOptions::default();
    write_opts.disable_wal(true);
    let mut l = Loader {
        db,
        path: path.clone(),
        batch: WriteBatch::default(),
        write_opts,
    };

    let contexts = layout.contexts();
    if contexts.exists() {
        for batch in TableReader::<ContextRecord>::open(&contexts)? {
            for r in batch? {
                l.put(
                    CF_CONTEXTS,
                    &context_key(r.context_id),
                    &codec::encode_context(&r)?,
                )?;
            }
        }
    }
    for sae in &manifest.saes {
        load_sae(&mut l, layout, &sae.id)?;
    }
    load_context_top(&mut l, layout, manifest)?;
    l.put(
        CF_META,
        META_SERVING_VERSION,
        &SERVING_VERSION.to_le_bytes(),
    )?;
    l.flush_batch()?;

    let mut compact = rocksdb::CompactOptions::default();
    compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    for name in COLUMN_FAMILIES {
        let cf = l.cf(name)?;
        l.db.flush_cf(cf).map_err(|e| Error::rocks(&path, e))?;
        l.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &compact);
    }
    drop(l);
    crate::fsutil::sync_tree(&path)
}

fn load_sae(l: &mut Loader, layout: &IndexLayout, sae: &str) -> Result<()> {
    let summary = layout.summary(sae);
    if summary.exists() {
        for batch in TableReader::<SaeSummary>::open(&summary)? {
            for s in batch? {
                l.put(CF_META, &summary_key(sae), &codec::encode_summary(&s))?;
            }
        }
    }
    let features = layout.features(sae);
    if features.exists() {
        for batch in TableReader::<FeatureRecord>::open(&features)? {
            for r in batch? {
                l.put(
                    CF_FEATURES,
                    &feature_key(sae, r.feature),
                    &codec::encode_feature(&r),
                )?;
            }
        }
    }
    let examples = layout.examples(sae);
    if examples.exists() {
        for batch in TableReader::<ExampleRecord>::open(&examples)? {
            for r in batch? {
                let code = kind_code(r.kind).ok_or_else(|| {
                    Error::corrupt(
                        examples.display().to_string(),
                        "interval index 65535 has no key code",
                    )
                })?;
                l.put(
                    CF_EXAMPLES,
                    &example_key(sae, r.feature, code, r.rank),
                    &codec::encode_example(&r),
                )?;
            }
        }
    }
    let cooc = layout.cooccurrence(sae);
    if cooc.exists() {
        load_cooc(l, sae, &cooc)?;
    }
    let neighbours = layout.neighbours(sae);
    if neighbours.exists() {
        // Written grouped by feature, closest first.
        let mut group: Vec<NeighbourRecord> = Vec::new();
        let put = |l: &mut Loader, group: &mut Vec<NeighbourRecord>| -> Result<()> {
            if let Some(f) = group.first().map(|g| g.feature) {
                l.put(
                    CF_NEIGHBOURS,
                    &feature_key(sae, f),
                    &codec::encode_neighbours(group),
                )?;
            }
            group.clear();
            Ok(())
        };
        for batch in TableReader::<NeighbourRecord>::open(&neighbours)? {
            for r in batch? {
                if group.first().is_some_and(|g| g.feature != r.feature) {
                    put(l, &mut group)?;
                }
                group.push(r);
            }
        }
        put(l, &mut group)?;
    }
    let context_features = layout.context_features(sae);
    if context_features.exists() {
        for batch in TableReader::<ContextFeaturesRecord>::open(&context_features)? {
            for r in batch? {
                l.put(
                    CF_CONTEXT_FEATURES,
                    &sae_context_key(sae, r.context_id),
                    &codec::encode_context_features(&r)?,
                )?;
            }
        }
    }
    let explanations = layout.explanations(sae);
    if explanations.exists() {
        for batch in TableReader::<ExplanationRecord>::open(&explanations)? {
            for r in batch? {
                l.put(
                    CF_EXPLANATIONS,
                    &feature_key(sae, r.feature),
                    &codec::encode_explanation(&r),
                )?;
            }
        }
    }
    Ok(())
}

/// Groups consecutive rows of the same feature into one value. Rows of a feature that come
/// back later (an unsorted file) are merged with what was already put.
/// `context_top`: one value per context with the head (strongest first) of every SAE's
/// context features, from a merge of the SAEs' `context_features.parquet` (each sorted by
/// context id).
fn load_context_top(l: &mut Loader, layout: &IndexLayout, manifest: &Manifest) -> Result<()> {
    let mut rows = manifest
        .saes
        .iter()
        .map(|s| crate::text::Rows::<ContextFeaturesRecord>::open(&layout.context_features(&s.id)))
        .collect::<Result<Vec<_>>>()?;
    loop {
        let Some(id) = rows
            .iter()
            .filter_map(|r| r.head.as_ref().map(|h| h.context_id))
            .min()
        else {
            return Ok(());
        };
        let mut top: Vec<(&[u32], &[f32])> = Vec::with_capacity(rows.len());
        let mut current = Vec::with_capacity(rows.len());
        for r in &mut rows {
            current.push(if r.head.as_ref().is_some_and(|h| h.context_id == id) {
                r.advance()?
            } else {
                None
            });
        }
        for c in &current {
            top.push(match c {
                Some(c) => {
                    let n = c.features.len().min(CONTEXT_TOP_FEATURES);
                    (&c.features[..n], &c.max_acts[..n.min(c.max_acts.len())])
                }
                None => (&[], &[]),
            });
        }
        l.put(
            CF_CONTEXT_TOP,
            &context_key(id),
            &codec::encode_context_top(&top)?,
        )?;
    }
}

fn load_cooc(l: &mut Loader, sae: &str, path: &Path) -> Result<()> {
    let mut group: Vec<CooccurrenceRecord> = Vec::new();
    let mut seen_max: Option<u32> = None;
    for batch in TableReader::<CooccurrenceRecord>::open(path)? {
        for r in batch? {
            if group.first().is_some_and(|g| g.feature != r.feature) {
                put_cooc(l, sae, &mut group, &mut seen_max)?;
            }
            group.push(r);
        }
    }
    put_cooc(l, sae, &mut group, &mut seen_max)
}

fn put_cooc(
    l: &mut Loader,
    sae: &str,
    group: &mut Vec<CooccurrenceRecord>,
    seen_max: &mut Option<u32>,
) -> Result<()> {
    let Some(feature) = group.first().map(|g| g.feature) else {
        return Ok(());
    };
    let key = feature_key(sae, feature);
    if seen_max.is_some_and(|m| feature <= m) {
        // Out of order: fold in what an earlier group stored (pending batch first).
        l.flush_batch()?;
        let cf = l.cf(CF_COOC)?;
        if let Some(old) =
            l.db.get_pinned_cf(cf, &key)
                .map_err(|e| Error::rocks(&l.path, e))?
        {
            group.extend(codec::decode_cooc(
                feature,
                codec::Dec::new(CF_COOC, &key, &old)?,
            )?);
        }
    }
    *seen_max = Some(seen_max.map_or(feature, |m| m.max(feature)));
    group.sort_by(|a, b| {
        b.n_both
            .cmp(&a.n_both)
            .then_with(|| a.other_sae.cmp(&b.other_sae))
            .then_with(|| a.other_feature.cmp(&b.other_feature))
    });
    let value = codec::encode_cooc(group);
    group.clear();
    l.put(CF_COOC, &key, &value)
}

/// Fills the `similar` column family of a built store (opened read-write again, beside any
/// read-only handle): puts, then [`SimilarWriter::finish`] records the list length last.
pub(crate) struct SimilarWriter {
    loader: Loader,
}

impl SimilarWriter {
    pub(crate) fn open(path: &Path) -> Result<SimilarWriter> {
        let mut opts = table_options(None);
        opts.create_missing_column_families(true);
        opts.set_write_buffer_size(64 << 20);
        opts.set_max_background_jobs(2);
        let existing = DB::list_cf(&opts, path).map_err(|e| Error::rocks(path, e))?;
        let cfs = existing
            .iter()
            .map(String::as_str)
            .chain((!existing.iter().any(|c| c == CF_SIMILAR)).then_some(CF_SIMILAR))
            .map(|name| {
                let mut cf_opts = table_options(None);
                cf_opts.prepare_for_bulk_load();
                cf_opts.set_write_buffer_size(64 << 20);
                ColumnFamilyDescriptor::new(name, cf_opts)
            })
            .collect::<Vec<_>>();
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| Error::rocks(path, e))?;
        let mut write_opts = WriteOptions::default();
        write_opts.disable_wal(true);
        Ok(SimilarWriter {
            loader: Loader {
                db,
                path: path.to_path_buf(),
                batch: WriteBatch::default(),
                write_opts,
            },
        })
    }

    pub(crate) fn put(&mut self, context_id: u64, value: &[u8]) -> Result<()> {
        self.loader.put(CF_SIMILAR, &context_key(context_id), value)
    }

    /// Writes the lists' length, flushes and compacts; the store is closed and synced.
    pub(crate) fn finish(mut self, list_len: usize) -> Result<()> {
        let l = &mut self.loader;
        l.flush_batch()?;
        let len = u32::try_from(list_len).unwrap_or(u32::MAX);
        // The length last: a store without it has no usable lists.
        let path = l.path.clone();
        let mut compact = rocksdb::CompactOptions::default();
        compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        let cf = l.cf(CF_SIMILAR)?;
        l.db.flush_cf(cf).map_err(|e| Error::rocks(&path, e))?;
        l.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &compact);
        l.put(CF_META, META_SIMILAR_LIST_LEN, &len.to_le_bytes())?;
        l.flush_batch()?;
        let meta = l.cf(CF_META)?;
        l.db.flush_cf(meta).map_err(|e| Error::rocks(&path, e))?;
        l.db.compact_range_cf_opt(meta, None::<&[u8]>, None::<&[u8]>, &compact);
        drop(self);
        crate::fsutil::sync_tree(&path)
    }
}

/// Replaces one SAE's rows of the `explanations` column family in a built store (opened
/// read-write; the column family is created when the store predates it). Used on the
/// temporary copy of an index that [`crate::explanations::publish`] swaps in.
pub(crate) struct ExplanationWriter;

impl ExplanationWriter {
    /// Deletes `sae`'s explanations and puts `rows`; the store is flushed, closed and synced.
    pub(crate) fn replace(path: &Path, sae: &str, rows: &[ExplanationRecord]) -> Result<()> {
        let mut opts = table_options(None);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        let existing = DB::list_cf(&opts, path).map_err(|e| Error::rocks(path, e))?;
        let cfs = existing
            .iter()
            .map(String::as_str)
            .chain((!existing.iter().any(|c| c == CF_EXPLANATIONS)).then_some(CF_EXPLANATIONS))
            .map(|name| ColumnFamilyDescriptor::new(name, table_options(None)))
            .collect::<Vec<_>>();
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| Error::rocks(path, e))?;
        let mut l = Loader {
            db,
            path: path.to_path_buf(),
            batch: WriteBatch::default(),
            write_opts: WriteOptions::default(),
        };
        let prefix = sae_prefix(sae);
        // The prefix ends in NUL, so it always has an upper bound.
        let end = prefix_upper_bound(&prefix).unwrap_or_else(|| vec![u8::MAX; prefix.len() + 8]);
        let mut deletes = WriteBatch::default();
        deletes.delete_range_cf(l.cf(CF_EXPLANATIONS)?, &prefix, &end);
        l.db.write(deletes).map_err(|e| Error::rocks(path, e))?;
        for r in rows {
            l.put(
                CF_EXPLANATIONS,
                &feature_key(sae, r.feature),
                &codec::encode_explanation(r),
            )?;
        }
        l.flush_batch()?;
        let cf = l.cf(CF_EXPLANATIONS)?;
        l.db.flush_cf(cf).map_err(|e| Error::rocks(path, e))?;
        let mut compact = rocksdb::CompactOptions::default();
        compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        l.db.compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &compact);
        drop(l);
        crate::fsutil::sync_tree(path)
    }
}
