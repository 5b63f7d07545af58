//! [`IndexReader`]: the query side of a published index (RocksDB + tantivy; Parquet only for
//! each SAE's feature maxes, read once on first use, and the optional activation log).
use std::path::Path;
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::layout::IndexLayout;
use crate::manifest::{Manifest, SaeEntry};
use crate::parquet::ActivationReader;
use crate::query::{self, Node};
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleKind, ExampleRecord,
    ExplanationRecord, FeatureOccurrence, FeatureRecord, SaeSummary,
};
use crate::rocks::{self, ContextFeaturesView, RocksReader};
use crate::text::{SearchHit, SimilarResult, Snippet, TextIndex};

struct Inner {
    layout: IndexLayout,
    manifest: Manifest,
    rocks: RocksReader,
    text: TextIndex,
    explanations: crate::explanations::ExplanationSearcher,
    /// `(id, d_sae)` of every SAE, for the query parser.
    saes: Vec<(String, u32)>,
    /// Per SAE (manifest order): every feature's max activation, loaded on first use.
    feature_max: Vec<OnceLock<Arc<Vec<f32>>>>,
}

/// A page of [`IndexReader::occurrences`].
#[derive(Debug, Clone, PartialEq)]
pub struct OccurrencePage {
    /// Contexts where the feature fires, by increasing context id.
    pub occurrences: Vec<FeatureOccurrence>,
    /// Where the next page starts (pass as `after`); `None` on the last page.
    pub next_after: Option<u64>,
}

/// A context's strongest features per SAE (manifest order), each list strongest first, as
/// `(feature, max_act)` ([`IndexReader::context_top_features`]).
pub type ContextTopFeatures = Vec<Vec<(u32, f32)>>;

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
        let (rocks, text) = (layout.rocksdb(), layout.tantivy());
        Self::open_parts(layout, manifest, &rocks, &text)
    }

    /// A reader over the stores at `rocks_path` and `tantivy_path` (built from `layout`'s
    /// Parquet files, not necessarily in place yet) with `manifest` (not necessarily saved).
    pub(crate) fn open_parts(
        layout: IndexLayout,
        manifest: Manifest,
        rocks_path: &Path,
        tantivy_path: &Path,
    ) -> Result<Self> {
        let rocks = RocksReader::open(rocks_path)?;
        let text = TextIndex::open(tantivy_path)?;
        let explanations =
            crate::explanations::ExplanationSearcher::open(&layout.explanations_text())?;
        let saes = manifest
            .saes
            .iter()
            .map(|s| (s.id.clone(), s.d_sae))
            .collect();
        let feature_max = manifest.saes.iter().map(|_| OnceLock::new()).collect();
        Ok(IndexReader {
            inner: Arc::new(Inner {
                layout,
                manifest,
                rocks,
                text,
                explanations,
                saes,
                feature_max,
            }),
        })
    }

    pub(crate) fn rocks(&self) -> &RocksReader {
        &self.inner.rocks
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root()
    }

    /// The vocabulary recorded with the index (`vocab.parquet`), or `None` for an index written
    /// without one (older indexes, fixtures): then only the model's tokenizer can name tokens.
    /// A file that does not read or whose ids are not `0..n` is an error naming it.
    pub fn vocab(&self) -> Result<Option<Vec<crate::VocabRecord>>> {
        read_vocab(self.dir())
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

    /// The explanation of a feature (`None` when it has none).
    pub fn explanation(&self, sae: &str, feature: u32) -> Result<Option<ExplanationRecord>> {
        self.check(sae, feature)?;
        self.inner.rocks.explanation(sae, feature)
    }

    /// The explanations of many features of one SAE, in the order of `features` (`None`
    /// where a feature has none); features out of range are an error.
    pub fn explanations_many(
        &self,
        sae: &str,
        features: &[u32],
    ) -> Result<Vec<Option<ExplanationRecord>>> {
        for &f in features {
            self.check(sae, f)?;
        }
        self.inner.rocks.explanations_many(sae, features)
    }

    /// Every explanation of one SAE, by feature.
    pub fn explanations(&self, sae: &str) -> Result<Vec<ExplanationRecord>> {
        self.sae(sae)?;
        self.inner.rocks.explanations_of(sae)
    }

    /// Features whose explanation matches `query` (words, "phrases", AND/OR/-), best first,
    /// restricted to `sae` when given; at most `limit`.
    pub fn search_explanations(
        &self,
        query: &str,
        sae: Option<&str>,
        limit: usize,
    ) -> Result<Vec<crate::explanations::ExplanationHit>> {
        if let Some(s) = sae {
            self.sae(s)?;
        }
        self.inner.explanations.search(query, sae, limit)
    }

    /// Decoder-cosine neighbours of a feature, closest first (same SAE and other SAEs of the
    /// same width at its layer); empty for an index written before they were computed.
    pub fn neighbours(&self, sae: &str, feature: u32) -> Result<Vec<crate::NeighbourRecord>> {
        self.check(sae, feature)?;
        self.inner.rocks.neighbours(sae, feature)
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

    /// Runs `f` on the features of `sae` in one context, read in place without decoding the
    /// whole list (`None` as for [`Self::context_features`]).
    pub fn with_context_features<T>(
        &self,
        sae: &str,
        context_id: u64,
        f: impl FnOnce(ContextFeaturesView<'_>) -> T,
    ) -> Result<Option<T>> {
        self.sae(sae)?;
        self.inner.rocks.with_context_features(sae, context_id, f)
    }

    /// The strongest features of every SAE in one context, per SAE in manifest order: at
    /// least [`crate::rocks::CONTEXT_TOP_FEATURES`] (all when the context has fewer), strongest
    /// first, as `(feature, max_act)`; one read from a column family small enough to stay
    /// cached.
    pub fn context_top_features(&self, context_id: u64) -> Result<ContextTopFeatures> {
        let saes = self.sae_ids();
        let mut out = vec![Vec::new(); saes.len()];
        self.inner.rocks.context_top(context_id, &saes, |i, f, a| {
            if let Some(v) = out.get_mut(i) {
                v.push((f, a));
            }
        })?;
        Ok(out)
    }

    /// [`Self::context_top_features`] of many contexts in one batched read, in the order of
    /// `context_ids` (empty lists for a context without features).
    pub fn context_top_features_many(
        &self,
        context_ids: &[u64],
    ) -> Result<Vec<ContextTopFeatures>> {
        let saes = self.sae_ids();
        let mut out = vec![vec![Vec::new(); saes.len()]; context_ids.len()];
        self.inner
            .rocks
            .context_top_many(context_ids, &saes, |j, i, f, a| {
                if let Some(v) = out.get_mut(j).and_then(|lists| lists.get_mut(i)) {
                    v.push((f, a));
                }
            })?;
        Ok(out)
    }

    /// [`Self::with_context_features`] for many contexts in one batched read: `f(index in
    /// context_ids, view)` for each context with a stored list.
    pub fn with_context_features_many(
        &self,
        sae: &str,
        context_ids: &[u64],
        f: impl FnMut(usize, ContextFeaturesView<'_>),
    ) -> Result<()> {
        self.sae(sae)?;
        self.inner
            .rocks
            .with_context_features_many(sae, context_ids, f)
    }

    /// One context.
    pub fn context(&self, context_id: u64) -> Result<Option<ContextRecord>> {
        self.inner.rocks.context(context_id)
    }

    /// Several contexts in one batched read, in the order of `ids` (`None` where missing).
    pub fn contexts(&self, ids: &[u64]) -> Result<Vec<Option<ContextRecord>>> {
        self.inner.rocks.contexts(ids)
    }

    /// Parses a search query ([`crate::query`]); a query that does not parse, or names an
    /// unknown SAE or feature, is [`Error::Query`] with the character position.
    pub fn parse_query(&self, query: &str) -> Result<Node> {
        self.inner.text.parse(query, &self.inner.saes)
    }

    /// Searches contexts by text and features ([`crate::query`] language); best `limit` hits
    /// first.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let node = self.parse_query(query)?;
        self.search_parsed(&node, limit)
    }

    /// [`IndexReader::search`] with a query parsed by [`IndexReader::parse_query`].
    pub fn search_parsed(&self, node: &Node, limit: usize) -> Result<Vec<SearchHit>> {
        self.inner.text.search(node, limit)
    }

    /// Snippets of `texts` (e.g. the hits' context texts) around `query`'s words, at most
    /// `max_chars` characters each.
    pub fn snippets(&self, query: &str, texts: &[&str], max_chars: usize) -> Result<Vec<Snippet>> {
        let node = self.parse_query(query)?;
        self.inner.text.snippets(&node, texts, max_chars)
    }

    /// Every feature's corpus-wide max activation in `sae` (what strength buckets are
    /// relative to); read from `features.parquet` once per reader.
    pub fn feature_maxes(&self, sae: &str) -> Result<Arc<Vec<f32>>> {
        self.sae(sae)?;
        let i = self
            .inner
            .saes
            .iter()
            .position(|(id, _)| id == sae)
            .expect("the manifest has the SAE");
        if let Some(m) = self.inner.feature_max[i].get() {
            return Ok(m.clone());
        }
        let m = Arc::new(crate::text::feature_maxes(
            &self.inner.layout,
            sae,
            self.inner.saes[i].1,
        )?);
        Ok(self.inner.feature_max[i].get_or_init(|| m).clone())
    }

    /// The feature terms of a context's features in `sae`, as the text index holds them.
    pub fn feature_terms(&self, sae: &str, rec: &ContextFeaturesRecord) -> Result<Vec<String>> {
        let max = self.feature_maxes(sae)?;
        Ok(query::context_feature_terms(sae, rec, &max)
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// "More like this" for feature terms (from [`IndexReader::feature_terms`]): contexts by the
    /// summed weight of shared terms, best first, `exclude` left out.
    pub fn similar_to_terms(
        &self,
        terms: &[String],
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        self.inner.text.similar(terms, exclude, limit)
    }

    /// "More like this" for a context of the index: its feature terms in every SAE (or only
    /// `sae`). `None` when the context does not exist.
    pub fn similar_to_context(
        &self,
        context_id: u64,
        sae: Option<&str>,
        limit: usize,
    ) -> Result<Option<SimilarResult>> {
        if let Some(s) = sae {
            self.sae(s)?;
        }
        if self.context(context_id)?.is_none() {
            return Ok(None);
        }
        // The source's feature terms as (feature, strongest level) per SAE, as
        // `query::context_feature_terms` would spell them.
        let mut sources = Vec::new();
        for (id, _) in &self.inner.saes {
            if sae.is_some_and(|s| s != id) {
                continue;
            }
            let max = self.feature_maxes(id)?;
            let features = self
                .inner
                .rocks
                .with_context_features(id, context_id, |cf| {
                    cf.iter()
                        .map(|(f, act, _)| {
                            let m = max.get(f as usize).copied().unwrap_or(0.0);
                            (f, query::strength_level(act, m))
                        })
                        .collect::<Vec<_>>()
                })?;
            if let Some(features) = features {
                sources.push((id.as_str(), features));
            }
        }
        self.inner
            .text
            .similar_to_features(&sources, Some(context_id), limit)
            .map(Some)
    }

    /// Every context where `feature` of `sae` fires (activation > 0 at a counted position, as
    /// for the context features), by increasing context id, from the activation log: the page
    /// after context `after` (from the start when `None`), at most `limit` contexts. Empty when the log was not kept (see the manifest's
    /// `keep_activations`). Reads the feature's row groups of the log's Parquet parts.
    pub fn occurrences(
        &self,
        sae: &str,
        feature: u32,
        after: Option<u64>,
        limit: usize,
    ) -> Result<OccurrencePage> {
        self.check(sae, feature)?;
        let log = ActivationReader::open(self.inner.layout.activations_dir(sae))?;
        let entries = log.feature(feature)?; // sorted by (context_id, pos)
                                             // Same definition of "fires" as the context features: > 0 at a counted position.
        let skip_bos = self.inner.manifest.parameters.exclude_bos;
        let mut occurrences: Vec<FeatureOccurrence> = Vec::new();
        let mut more = false;
        for e in entries {
            if after.is_some_and(|a| e.context_id <= a)
                || e.value <= 0.0
                || (skip_bos && e.pos == 0)
            {
                continue;
            }
            match occurrences.last_mut() {
                Some(o) if o.context_id == e.context_id => {
                    o.n_positions += 1;
                    if e.value > o.max_act {
                        o.max_act = e.value;
                        o.max_pos = u32::from(e.pos);
                    }
                }
                _ => {
                    if occurrences.len() == limit {
                        more = true;
                        break;
                    }
                    occurrences.push(FeatureOccurrence {
                        context_id: e.context_id,
                        n_positions: 1,
                        max_act: e.value,
                        max_pos: u32::from(e.pos),
                    });
                }
            }
        }
        let next_after = if more {
            occurrences.last().map(|o| o.context_id)
        } else {
            None
        };
        Ok(OccurrencePage {
            occurrences,
            next_after,
        })
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

/// The vocabulary of the index at `dir` (see [`IndexReader::vocab`]), without opening the
/// serving store.
pub fn read_vocab(dir: &Path) -> Result<Option<Vec<crate::VocabRecord>>> {
    let path = IndexLayout::new(dir).vocab();
    if !path.is_file() {
        return Ok(None);
    }
    let rows: Vec<crate::VocabRecord> = crate::parquet::read_all(&path)?;
    if rows.is_empty() {
        return Ok(None);
    }
    crate::index_writer::check_vocab(&rows, &path.display().to_string())?;
    Ok(Some(rows))
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
