//! Building `tantivy/` from the Parquet files: one document per context, with its text and the
//! feature terms of every SAE, merged into one segment.
use std::path::Path;

use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{Index, TantivyDocument};

use super::rows::{feature_maxes, Rows};
use super::schema::schema;
use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::Manifest;
use crate::query;
use crate::records::{ContextFeaturesRecord, ContextRecord};

/// Indexing memory budget (tantivy's per-thread minimum is 15 MB).
const WRITER_BUDGET: usize = 64 << 20;

/// Recreates `dir` from the Parquet files under `layout` (a missing file: no rows).
pub(crate) fn build(dir: &Path, layout: &IndexLayout, manifest: &Manifest) -> Result<u64> {
    crate::fsutil::remove_dir_all_if_exists(dir)?;
    crate::fsutil::create_dir_all(dir)?;
    let _span = tracing::info_span!("build_tantivy", path = %dir.display()).entered();
    let (schema, f) = schema();
    let t = |e| Error::tantivy(dir, e);
    let index = Index::create_in_dir(dir, schema).map_err(t)?;
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, WRITER_BUDGET).map_err(t)?;
    // Per SAE: its context features (sorted by context id, as the writer enforces) and the
    // feature maxes the strength buckets are relative to.
    let mut saes = Vec::with_capacity(manifest.saes.len());
    for s in &manifest.saes {
        saes.push((
            s.id.as_str(),
            Rows::<ContextFeaturesRecord>::open(&layout.context_features(&s.id))?,
            feature_maxes(layout, &s.id, s.d_sae)?,
        ));
    }
    let mut n = 0u64;
    let mut contexts = Rows::<ContextRecord>::open(&layout.contexts())?;
    while let Some(c) = contexts.advance()? {
        let mut doc = TantivyDocument::default();
        doc.add_u64(f.id, c.context_id);
        doc.add_text(f.text, &c.text);
        let mut tokens: Vec<Token> = Vec::new();
        for (sae, rows, max) in &mut saes {
            // Rows of contexts that are not in contexts.parquet are skipped.
            while rows
                .head
                .as_ref()
                .is_some_and(|r| r.context_id < c.context_id)
            {
                rows.advance()?;
            }
            if rows
                .head
                .as_ref()
                .is_some_and(|r| r.context_id == c.context_id)
            {
                let rec = rows.advance()?.expect("head checked above");
                for (text, position) in query::context_feature_terms(sae, &rec, max) {
                    tokens.push(Token {
                        offset_from: 0,
                        offset_to: 0,
                        position: position as usize,
                        text,
                        position_length: 1,
                    });
                }
            }
        }
        if !tokens.is_empty() {
            tokens.sort_by(|a, b| a.position.cmp(&b.position).then(a.text.cmp(&b.text)));
            doc.add_pre_tokenized_text(
                f.feat,
                PreTokenizedString {
                    text: String::new(),
                    tokens,
                },
            );
        }
        writer.add_document(doc).map_err(t)?;
        n += 1;
    }
    writer.commit().map_err(t)?;
    // One segment: "more like this" opens every source term's postings once per segment.
    let segments = index.searchable_segment_ids().map_err(t)?;
    if segments.len() > 1 {
        writer.merge(&segments).wait().map_err(t)?;
    }
    writer.wait_merging_threads().map_err(t)?;
    crate::fsutil::sync_tree(dir)?;
    Ok(n)
}
