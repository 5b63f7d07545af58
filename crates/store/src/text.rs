//! The tantivy index of context text (`tantivy/`): one document per context.
//!
//! Schema: `context_id` (u64; indexed, fast, stored) and `text` (tantivy's default tokenizer:
//! split on non-alphanumerics, lowercase, drop tokens over 40 bytes; frequencies and positions,
//! so phrase queries work; not stored — the text lives in RocksDB and snippets are cut from it).
//! Query syntax is tantivy's (`word`, `"a phrase"`, `+must -not`, `a OR b`); hits are ranked by
//! BM25, ties by lower context_id. Built from `contexts.parquet`; rebuilt by `reindex`.
use std::ops::Range;
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, FAST, INDEXED, STORED, TEXT};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader as TantivyReader, ReloadPolicy, TantivyDocument};

use crate::error::{Error, Result};
use crate::parquet::TableReader;
use crate::records::ContextRecord;

/// Field name of the context id.
pub const FIELD_CONTEXT_ID: &str = "context_id";
/// Field name of the context text.
pub const FIELD_TEXT: &str = "text";

/// Indexing memory budget (tantivy's per-thread minimum is 15 MB).
const WRITER_BUDGET: usize = 64 << 20;

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let id = b.add_u64_field(FIELD_CONTEXT_ID, INDEXED | FAST | STORED);
    let text = b.add_text_field(FIELD_TEXT, TEXT);
    (b.build(), id, text)
}

/// Recreates `dir` from `contexts.parquet` (missing file: an empty index).
pub(crate) fn build(dir: &Path, contexts: &Path) -> Result<u64> {
    crate::fsutil::remove_dir_all_if_exists(dir)?;
    crate::fsutil::create_dir_all(dir)?;
    let _span = tracing::info_span!("build_tantivy", path = %dir.display()).entered();
    let (schema, id, text) = schema();
    let t = |e| Error::tantivy(dir, e);
    let index = Index::create_in_dir(dir, schema).map_err(t)?;
    let mut writer: tantivy::IndexWriter<TantivyDocument> =
        index.writer_with_num_threads(1, WRITER_BUDGET).map_err(t)?;
    let mut n = 0u64;
    if contexts.exists() {
        for batch in TableReader::<ContextRecord>::open(contexts)? {
            for c in batch? {
                let mut doc = TantivyDocument::default();
                doc.add_u64(id, c.context_id);
                doc.add_text(text, &c.text);
                writer.add_document(doc).map_err(t)?;
                n += 1;
            }
        }
    }
    writer.commit().map_err(t)?;
    writer.wait_merging_threads().map_err(t)?;
    crate::fsutil::sync_tree(dir)?;
    Ok(n)
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The matching context.
    pub context_id: u64,
    /// BM25 score (higher is better).
    pub score: f32,
}

/// A fragment of a context's text around the query's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The fragment (at most ~150 characters).
    pub fragment: String,
    /// Byte ranges of matched terms within `fragment`.
    pub highlighted: Vec<Range<usize>>,
}

/// A searcher over `tantivy/`; `Send + Sync`.
pub(crate) struct TextIndex {
    path: PathBuf,
    index: Index,
    reader: TantivyReader,
    text: Field,
}

impl TextIndex {
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::MissingIndex {
                path: dir.to_path_buf(),
                reason: "tantivy/ is missing; run `scopedex reindex` to rebuild it".into(),
            });
        }
        let t = |e| Error::tantivy(dir, e);
        let index = Index::open_in_dir(dir).map_err(t)?;
        let schema = index.schema();
        let field = |name: &str| {
            schema.get_field(name).map_err(|_| {
                Error::corrupt(
                    dir.display().to_string(),
                    format!("tantivy field {name} missing"),
                )
            })
        };
        field(FIELD_CONTEXT_ID)?;
        let text = field(FIELD_TEXT)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(t)?;
        Ok(TextIndex {
            path: dir.to_path_buf(),
            index,
            reader,
            text,
        })
    }

    fn parse(&self, query: &str) -> Result<Box<dyn tantivy::query::Query>> {
        QueryParser::for_index(&self.index, vec![self.text])
            .parse_query(query)
            .map_err(|e| Error::Query {
                query: query.to_string(),
                message: e.to_string(),
            })
    }

    /// The best `limit` contexts for `query`, best first (ties: lower context_id first).
    pub(crate) fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let q = self.parse(query)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let t = |e| Error::tantivy(&self.path, e);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&*q, &TopDocs::with_limit(limit).order_by_score())
            .map_err(t)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let ids = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64(FIELD_CONTEXT_ID)
                .map_err(t)?;
            let context_id = ids.first(addr.doc_id).ok_or_else(|| {
                Error::corrupt(
                    self.path.display().to_string(),
                    format!("document {addr:?} has no context_id"),
                )
            })?;
            hits.push(SearchHit { context_id, score });
        }
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.context_id.cmp(&b.context_id))
        });
        Ok(hits)
    }

    /// Snippets of `texts` for `query` (one per text, same order).
    pub(crate) fn snippets(
        &self,
        query: &str,
        texts: &[&str],
        max_chars: usize,
    ) -> Result<Vec<Snippet>> {
        let q = self.parse(query)?;
        let searcher = self.reader.searcher();
        let mut generator = SnippetGenerator::create(&searcher, &*q, self.text)
            .map_err(|e| Error::tantivy(&self.path, e))?;
        generator.set_max_num_chars(max_chars.max(1));
        Ok(texts
            .iter()
            .map(|t| {
                let s = generator.snippet(t);
                Snippet {
                    fragment: s.fragment().to_string(),
                    highlighted: s.highlighted().to_vec(),
                }
            })
            .collect())
    }

    /// Number of indexed contexts.
    pub(crate) fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}
