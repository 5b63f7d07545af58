//! Feature explanations in an index: `saes/{sae}/explanations.parquet` (the source of truth),
//! the `explanations` column family of `rocksdb/` (serving) and `explanations/`, a small
//! tantivy index of the explanation texts (feature search). All three are derived from, or
//! are, Parquet: `scopedex reindex` rebuilds the other two.
//!
//! [`publish`] replaces one SAE's explanations of a published index atomically, like any other
//! publish ([`crate::publish`]): the index is linked into a temporary sibling (immutable files
//! — Parquet, RocksDB table files, tantivy segments — as hard links, the rest copied), the new
//! table is written there, the copy's RocksDB gets the new rows and the explanation text index
//! is rebuilt; then the manifest is written last and the directory swapped in. A crash leaves
//! the old index in place; a reader that has the old one open keeps working.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Schema, Value, FAST, INDEXED, STORED, STRING, TEXT};
use tantivy::{Index, ReloadPolicy, TantivyDocument};

use crate::error::{Error, Result};
use crate::layout::{IndexLayout, EXPLANATIONS_TEXT_DIR};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::parquet::{TableReader, TableWriter};
use crate::records::ExplanationRecord;
use crate::{fsutil, publish as swap, rocks};

const FIELD_SAE: &str = "sae";
const FIELD_FEATURE: &str = "feature";
const FIELD_TEXT: &str = "text";

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_text_field(FIELD_SAE, STRING | STORED);
    b.add_u64_field(FIELD_FEATURE, INDEXED | FAST | STORED);
    b.add_text_field(FIELD_TEXT, TEXT | STORED);
    b.build()
}

/// Reads `saes/{sae}/explanations.parquet` (empty when the SAE has none).
pub fn read(layout: &IndexLayout, sae: &str) -> Result<Vec<ExplanationRecord>> {
    let path = layout.explanations(sae);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for batch in TableReader::<ExplanationRecord>::open(&path)? {
        out.extend(batch?);
    }
    Ok(out)
}

/// Builds the explanation text index at `dir` from every SAE's table under `layout`; removes
/// `dir` and builds nothing when no SAE has explanations. Returns the documents indexed.
pub(crate) fn build_text(dir: &Path, layout: &IndexLayout, manifest: &Manifest) -> Result<u64> {
    fsutil::remove_dir_all_if_exists(dir)?;
    let mut all = Vec::new();
    for s in &manifest.saes {
        let rows = read(layout, &s.id)?;
        if !rows.is_empty() {
            all.push((s.id.clone(), rows));
        }
    }
    if all.is_empty() {
        return Ok(0);
    }
    fsutil::create_dir_all(dir)?;
    let schema = schema();
    let t = |e| Error::tantivy(dir, e);
    let index = Index::create_in_dir(dir, schema.clone()).map_err(t)?;
    let field = |name: &str| schema.get_field(name).map_err(t);
    let (f_sae, f_feature, f_text) = (field(FIELD_SAE)?, field(FIELD_FEATURE)?, field(FIELD_TEXT)?);
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, 16 << 20).map_err(t)?;
    let mut n = 0;
    for (sae, rows) in &all {
        for r in rows {
            let mut doc = TantivyDocument::default();
            doc.add_text(f_sae, sae);
            doc.add_u64(f_feature, u64::from(r.feature));
            doc.add_text(f_text, &r.text);
            writer.add_document(doc).map_err(t)?;
            n += 1;
        }
    }
    writer.commit().map_err(t)?;
    writer.wait_merging_threads().map_err(t)?;
    fsutil::sync_tree(dir)?;
    Ok(n)
}

/// One feature found by its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplanationHit {
    /// The SAE.
    pub sae: String,
    /// The feature.
    pub feature: u32,
    /// The explanation text.
    pub text: String,
    /// BM25 score of the match.
    pub score: f32,
}

/// A searcher over `explanations/`; an index without one finds nothing.
pub(crate) struct ExplanationSearcher {
    /// Reader, all-words parser, any-word parser, schema.
    inner: Option<(tantivy::IndexReader, QueryParser, QueryParser, Schema)>,
    path: PathBuf,
}

impl ExplanationSearcher {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        if !dir.join("meta.json").is_file() {
            return Ok(ExplanationSearcher {
                inner: None,
                path: dir.to_path_buf(),
            });
        }
        let t = |e| Error::tantivy(dir, e);
        let index = Index::open_in_dir(dir).map_err(t)?;
        let schema = index.schema();
        let text = schema.get_field(FIELD_TEXT).map_err(t)?;
        let any = QueryParser::for_index(&index, vec![text]);
        let mut all = any.clone();
        all.set_conjunction_by_default();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(t)?;
        Ok(ExplanationSearcher {
            inner: Some((reader, all, any, schema)),
            path: dir.to_path_buf(),
        })
    }

    /// The best `limit` features whose explanation matches `query` (tantivy's query syntax:
    /// words, "phrases", AND/OR/-), restricted to `sae` when given. A query that is not valid
    /// syntax is searched leniently (as words) rather than refused. All words must match;
    /// when none does so, any word may.
    pub(crate) fn search(
        &self,
        query: &str,
        sae: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ExplanationHit>> {
        let Some((reader, all, any, schema)) = &self.inner else {
            return Ok(Vec::new());
        };
        let t = |e| Error::tantivy(&self.path, e);
        let searcher = reader.searcher();
        let run = |parser: &QueryParser| -> Result<Vec<ExplanationHit>> {
            let (q, _errors) = parser.parse_query_lenient(query);
            // Over-fetch when filtering by SAE; the filter is cheap next to the search.
            let fetch = if sae.is_some() {
                limit.saturating_mul(8).max(64)
            } else {
                limit
            };
            let top = searcher
                .search(&q, &TopDocs::with_limit(fetch.max(1)).order_by_score())
                .map_err(t)?;
            let field = |name: &str| schema.get_field(name).map_err(t);
            let (f_sae, f_feature, f_text) =
                (field(FIELD_SAE)?, field(FIELD_FEATURE)?, field(FIELD_TEXT)?);
            let mut out = Vec::new();
            for (score, addr) in top {
                let doc: TantivyDocument = searcher.doc(addr).map_err(t)?;
                let s = doc.get_first(f_sae).and_then(|v| v.as_str()).unwrap_or("");
                if sae.is_some_and(|want| want != s) {
                    continue;
                }
                out.push(ExplanationHit {
                    sae: s.to_string(),
                    feature: doc
                        .get_first(f_feature)
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0) as u32,
                    text: doc
                        .get_first(f_text)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string(),
                    score,
                });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        };
        let hits = run(all)?;
        if !hits.is_empty() {
            return Ok(hits);
        }
        run(any)
    }
}

/// Sorts by feature and keeps the last row of each feature.
fn dedup_last(rows: Vec<ExplanationRecord>) -> Vec<ExplanationRecord> {
    let mut by_feature: BTreeMap<u32, ExplanationRecord> = BTreeMap::new();
    for r in rows {
        by_feature.insert(r.feature, r);
    }
    by_feature.into_values().collect()
}

/// Whether a file of the published index may be shared with the copy by a hard link: only
/// files no one ever writes again after they are complete.
fn immutable(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let top = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    if name.ends_with(".parquet") {
        return true;
    }
    match top {
        crate::layout::ROCKSDB_DIR => name.ends_with(".sst") || name.ends_with(".blob"),
        crate::layout::TANTIVY_DIR => {
            !(name == "meta.json" || name == ".managed.json" || name.ends_with(".lock"))
        }
        _ => false,
    }
}

/// Links or copies `src` into `dst` (see [`immutable`]), leaving out `skip` (relative paths)
/// and leftovers of interrupted rebuilds (`*.new-*`, `*.tmp-*`).
fn link_tree(src: &Path, dst: &Path, rel: &Path, skip: &[PathBuf]) -> Result<()> {
    let here = src.join(rel);
    fsutil::create_dir_all(&dst.join(rel))?;
    for entry in std::fs::read_dir(&here).map_err(|e| Error::io(&here, e))? {
        let entry = entry.map_err(|e| Error::io(&here, e))?;
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        if name_str.contains(".new-") || name_str.contains(".tmp-") {
            continue;
        }
        let child = rel.join(&name);
        if skip.contains(&child) {
            continue;
        }
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            link_tree(src, dst, &child, skip)?;
        } else if kind.is_file() {
            let (from, to) = (src.join(&child), dst.join(&child));
            let linked = immutable(&child) && std::fs::hard_link(&from, &to).is_ok();
            if !linked {
                std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
            }
        }
    }
    Ok(())
}

/// Removes the temporary directory unless the publish went through.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = fsutil::remove_dir_all_if_exists(&p) {
                tracing::warn!(path = %p.display(), error = %e, "could not remove a temporary index copy");
            }
        }
    }
}

/// Replaces the explanations of `sae` in the published index at `dir` with `rows` (the last
/// row of a feature wins), atomically: see the module docs. Every row's feature must be below
/// the SAE's `d_sae`.
pub fn publish(dir: impl AsRef<Path>, sae: &str, rows: Vec<ExplanationRecord>) -> Result<()> {
    let dir = dir.as_ref();
    let _span = tracing::info_span!("publish_explanations", dir = %dir.display(), sae).entered();
    let manifest = Manifest::load(dir)?;
    let entry = manifest.sae(sae)?;
    let rows = dedup_last(rows);
    if let Some(r) = rows.iter().find(|r| r.feature >= entry.d_sae) {
        return Err(Error::FeatureOutOfRange {
            sae: sae.to_string(),
            feature: r.feature,
            d_sae: entry.d_sae,
        });
    }
    swap::check_replaceable(dir)?;
    swap::recover(dir)?;
    let tmp = swap::tmp_path(dir)?;
    let mut guard = TmpGuard(Some(tmp.clone()));
    let layout = IndexLayout::new(&tmp);
    let skip = [
        PathBuf::from(MANIFEST_FILE),
        PathBuf::from(EXPLANATIONS_TEXT_DIR),
        Path::new(crate::layout::SAES_DIR)
            .join(sae)
            .join(crate::layout::EXPLANATIONS_FILE),
    ];
    link_tree(dir, &tmp, Path::new(""), &skip)?;
    let mut w = TableWriter::<ExplanationRecord>::create(layout.explanations(sae))?;
    w.write(&rows)?;
    w.finish()?;
    rocks::ExplanationWriter::replace(&layout.rocksdb(), sae, &rows)?;
    build_text(&layout.explanations_text(), &layout, &manifest)?;
    fsutil::sync_tree(&tmp)?;
    // The manifest last: a directory with a manifest is complete.
    manifest.save(&tmp)?;
    fsutil::sync_dir(&tmp)?;
    swap::swap_into_place(&tmp, dir, true)?;
    guard.0 = None;
    tracing::info!(explanations = rows.len(), "explanations published");
    Ok(())
}
