//! [`IndexReader`]: the query side of a published index (RocksDB + tantivy, no Parquet scans).
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::{Manifest, SaeEntry};
use crate::parquet::ActivationReader;
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleKind, ExampleRecord,
    FeatureRecord, SaeSummary,
};
use crate::rocks::{self, RocksReader};
use crate::text::{SearchHit, Snippet, TextIndex};

struct Inner {
    layout: IndexLayout,
    manifest: Manifest,
    rocks: RocksReader,
    text: TextIndex,
}

/// A read-only, thread-safe handle on one published index. Cloning is an `Arc` clone; every
/// clone shares the RocksDB block cache and the tantivy searcher.
///
/// Caller mistakes come back as [`Error::UnknownSae`] and [`Error::FeatureOutOfRange`] (checked
/// against the manifest's `d_sae`) and [`Error::Query`]; a feature in range with no stored row
/// is `Ok(None)`.
///
/// The handle stays valid when the directory is republished (the old files stay open); open a
/// new reader to see the new index.
#[derive(Clone)]
pub struct IndexReader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("dir", &self.inner.layout.root())
            .field("saes", &self.sae_ids())
            .finish()
    }
}

impl IndexReader {
    /// Opens the index at `dir`: reads and checks `manifest.json` ([`Error::MissingIndex`],
    /// [`Error::FormatVersion`]), opens `rocksdb/` read-only and `tantivy/`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let manifest = Manifest::load(dir)?;
        let layout = IndexLayout::new(dir);
        let rocks = RocksReader::open(&layout.rocksdb())?;
        let text = TextIndex::open(&layout.tantivy())?;
        Ok(IndexReader {
            inner: Arc::new(Inner {
                layout,
                manifest,
                rocks,
                text,
            }),
        })
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// SAE ids in manifest order.
    pub fn sae_ids(&self) -> Vec<&str> {
        self.inner
            .manifest
            .saes
            .iter()
            .map(|s| s.id.as_str())
            .collect()
    }

    /// The manifest entry of `sae` ([`Error::UnknownSae`] if absent).
    pub fn sae(&self, sae: &str) -> Result<&SaeEntry> {
        self.inner.manifest.sae(sae)
    }

    fn check(&self, sae: &str, feature: u32) -> Result<()> {
        let entry = self.sae(sae)?;
        if feature >= entry.d_sae {
            return Err(Error::FeatureOutOfRange {
                sae: sae.to_string(),
                feature,
                d_sae: entry.d_sae,
            });
        }
        Ok(())
    }

    /// Corpus-wide statistics of `sae` (`None` if the indexer wrote none).
    pub fn sae_summary(&self, sae: &str) -> Result<Option<SaeSummary>> {
        self.sae(sae)?;
        self.inner.rocks.summary(sae)
    }

    /// Statistics of one feature.
    pub fn feature(&self, sae: &str, feature: u32) -> Result<Option<FeatureRecord>> {
        self.check(sae, feature)?;
        self.inner.rocks.feature(sae, feature)
    }

    /// Examples of one feature, ordered by kind (top, interval_0, interval_1, ...) then rank;
    /// only `kind` when given. Skips `offset`, returns at most `limit`.
    pub fn examples(
        &self,
        sae: &str,
        feature: u32,
        kind: Option<ExampleKind>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<ExampleRecord>> {
        self.check(sae, feature)?;
        let prefix = match kind {
            None => rocks::feature_key(sae, feature),
            Some(k) => match rocks::kind_code(k) {
                Some(code) => rocks::example_kind_prefix(sae, feature, code),
                None => return Ok(Vec::new()),
            },
        };
        self.inner.rocks.examples(sae, &prefix, limit, offset)
    }

    /// Co-occurring partners of one feature, strongest (`n_both`) first; only those in
    /// `other_sae` when given (which must be an SAE of this index). At most `limit`.
    pub fn cooccurrence(
        &self,
        sae: &str,
        feature: u32,
        other_sae: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CooccurrenceRecord>> {
        self.check(sae, feature)?;
        if let Some(other) = other_sae {
            self.sae(other)?;
        }
        let mut all = self.inner.rocks.cooc(sae, feature)?;
        if let Some(other) = other_sae {
            all.retain(|r| r.other_sae == other);
        }
        all.truncate(limit);
        Ok(all)
    }

    /// The strongest features of `sae` in one context, strongest first (`None` when the
    /// indexer stored none for it, or the index predates per-context features).
    pub fn context_features(
        &self,
        sae: &str,
        context_id: u64,
    ) -> Result<Option<ContextFeaturesRecord>> {
        self.sae(sae)?;
        self.inner.rocks.context_features(sae, context_id)
    }

    /// One context.
    pub fn context(&self, context_id: u64) -> Result<Option<ContextRecord>> {
        self.inner.rocks.context(context_id)
    }

    /// Several contexts in one batched read, in the order of `ids` (`None` where missing).
    pub fn contexts(&self, ids: &[u64]) -> Result<Vec<Option<ContextRecord>>> {
        self.inner.rocks.contexts(ids)
    }

    /// Full-text search over context text (tantivy query syntax); best `limit` hits first.
    /// A query that does not parse is [`Error::Query`] with the parser's message.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        self.inner.text.search(query, limit)
    }

    /// Snippets of `texts` (e.g. the hits' context texts) around `query`'s terms, at most
    /// `max_chars` characters each.
    pub fn snippets(&self, query: &str, texts: &[&str], max_chars: usize) -> Result<Vec<Snippet>> {
        self.inner.text.snippets(query, texts, max_chars)
    }

    /// Number of contexts in the text index.
    pub fn num_contexts(&self) -> u64 {
        self.inner.text.num_docs()
    }

    /// The sparse activation log of `sae` (empty if it was not kept). Reads Parquet: for
    /// export and analysis, not for request paths.
    pub fn activations(&self, sae: &str) -> Result<ActivationReader> {
        self.sae(sae)?;
        ActivationReader::open(self.inner.layout.activations_dir(sae))
    }

    /// Paths of the index's files (for export tools).
    pub fn layout(&self) -> &IndexLayout {
        &self.inner.layout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<IndexReader>();
    }
}
