//! "More like this": contexts ranked by the summed [`term_weight`] of the feature terms they
//! share with a source context. Every feature term's statistics are read once from the term
//! dictionaries ([`FeatureTerms`]), then scores are accumulated over the terms' postings.
use tantivy::postings::TermInfo;
use tantivy::schema::IndexRecordOption;

use super::schema::FIELD_CONTEXT_ID;
use super::searcher::{SearchHit, TextIndex};
use crate::error::{Error, Result};

/// Feature terms of the source used by "more like this" at most: the highest-weighted (rarest)
/// ones, ties by term text. Bounds the query's cost for contexts with thousands of features.
pub const MAX_SIMILAR_TERMS: usize = 512;

/// What "more like this" searched with and found.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarResult {
    /// Best first (ties by lower context_id); the source context is never among them.
    pub hits: Vec<SearchHit>,
    /// The feature terms used, with their weights, highest first (at most
    /// [`MAX_SIMILAR_TERMS`]; terms no context has are dropped).
    pub terms: Vec<(String, f32)>,
}

/// The weight of a feature term shared with the source: BM25's inverse document frequency,
/// `ln(1 + (N - df + 0.5) / (df + 0.5))` for a term in `df` of `N` contexts.
pub fn term_weight(df: u64, n: u64) -> f32 {
    let (df, n) = (df as f64, n as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// A feature term's contexts (`df`), its weight and where its postings are in each segment.
pub(super) struct TermStats {
    term: String,
    df: u32,
    /// [`term_weight`] for the searcher's document count.
    weight: f32,
    /// `(segment ordinal, term info)` for the segments that hold the term.
    postings: Vec<(u32, TermInfo)>,
}

/// Every feature term of the index, found by string or by (SAE, feature, level) without
/// building the string.
#[derive(Default)]
pub(super) struct FeatureTerms {
    stats: Vec<TermStats>,
    by_term: rustc_hash::FxHashMap<String, u32>,
    /// Per SAE: `feature × LEVELS + level` → index into `stats` (`u32::MAX`: no such term).
    by_feature: rustc_hash::FxHashMap<String, Vec<u32>>,
}

/// Strength levels of a feature's terms (the base term and one per bucket).
const LEVELS: usize = 1 + crate::query::STRENGTH_BUCKETS.len();

impl FeatureTerms {
    fn feature(&self, sae_terms: &[u32], feature: u32, level: usize) -> Option<u32> {
        sae_terms
            .get(feature as usize * LEVELS + level)
            .copied()
            .filter(|&i| i != u32::MAX)
    }
}

impl TextIndex {
    fn feature_terms(&self) -> Result<&FeatureTerms> {
        let r = self.feature_terms.get_or_init(|| {
            let searcher = self.reader.searcher();
            let mut out = FeatureTerms::default();
            for (ord, seg) in searcher.segment_readers().iter().enumerate() {
                let inv = seg
                    .inverted_index(self.fields.feat)
                    .map_err(|e| e.to_string())?;
                let mut stream = inv.terms().stream().map_err(|e| e.to_string())?;
                while stream.advance() {
                    let term = String::from_utf8_lossy(stream.key()).into_owned();
                    let info = stream.value().clone();
                    let next = out.stats.len() as u32;
                    let i = *out.by_term.entry(term.clone()).or_insert(next);
                    if i == next {
                        out.stats.push(TermStats {
                            term,
                            df: 0,
                            weight: 0.0,
                            postings: Vec::new(),
                        });
                    }
                    let stats = &mut out.stats[i as usize];
                    stats.df += info.doc_freq;
                    stats.postings.push((ord as u32, info));
                }
            }
            let n = searcher.num_docs();
            for (i, st) in out.stats.iter_mut().enumerate() {
                st.weight = term_weight(u64::from(st.df), n);
                if let Some((sae, f, level)) = crate::query::parse_feature_term(&st.term) {
                    let slots = out.by_feature.entry(sae.to_string()).or_default();
                    let at = f as usize * LEVELS + level;
                    if slots.len() <= at {
                        slots.resize(at + 1, u32::MAX);
                    }
                    slots[at] = i as u32;
                }
            }
            Ok(out)
        });
        r.as_ref().map_err(|e| {
            Error::corrupt(
                self.path.display().to_string(),
                format!("reading the feature terms: {e}"),
            )
        })
    }

    /// "More like this": contexts sharing feature terms with `terms` (the source's terms, see
    /// [`crate::query::context_feature_terms`]), scored by the summed [`term_weight`] of the
    /// shared terms (only the [`MAX_SIMILAR_TERMS`] highest); `exclude` (the source context)
    /// is left out. Best `limit` first, ties by lower context id.
    pub(crate) fn similar(
        &self,
        terms: &[String],
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let all = self.feature_terms()?;
        let mut found: Vec<u32> = terms
            .iter()
            .filter_map(|t| all.by_term.get(t.as_str()).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        self.rank_similar(all, found, exclude, limit)
    }

    /// [`Self::similar`] for a source given as features: per SAE, `(feature, level)` for each
    /// active feature, which has the terms of levels `0..=level` (no strings are built).
    pub(crate) fn similar_to_features(
        &self,
        sources: &[(&str, Vec<(u32, usize)>)],
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let all = self.feature_terms()?;
        let mut found = Vec::new();
        for (sae, features) in sources {
            let Some(slots) = all.by_feature.get(*sae) else {
                continue;
            };
            for &(f, level) in features {
                found.extend((0..=level).filter_map(|l| all.feature(slots, f, l)));
            }
        }
        found.sort_unstable();
        found.dedup();
        self.rank_similar(all, found, exclude, limit)
    }

    /// Ranks contexts by the summed weights of the terms `found` (indices into `all`, no
    /// duplicates) they have, keeping the [`MAX_SIMILAR_TERMS`] highest-weighted terms.
    fn rank_similar(
        &self,
        all: &FeatureTerms,
        mut found: Vec<u32>,
        exclude: Option<u64>,
        limit: usize,
    ) -> Result<SimilarResult> {
        let order = |a: &u32, b: &u32| {
            let (x, y) = (&all.stats[*a as usize], &all.stats[*b as usize]);
            y.weight
                .total_cmp(&x.weight)
                .then_with(|| x.term.cmp(&y.term))
        };
        if found.len() > MAX_SIMILAR_TERMS {
            found.select_nth_unstable_by(MAX_SIMILAR_TERMS - 1, order);
            found.truncate(MAX_SIMILAR_TERMS);
        }
        found.sort_by(order);
        let weighted: Vec<&TermStats> = found.iter().map(|&i| &all.stats[i as usize]).collect();
        let terms_used = || {
            weighted
                .iter()
                .map(|s| (s.term.clone(), s.weight))
                .collect()
        };
        if weighted.is_empty() {
            return Ok(SimilarResult {
                hits: Vec::new(),
                terms: terms_used(),
            });
        }
        // Score accumulation over the terms' postings (a weighted union, as a disjunction of
        // constant-score term queries would compute, without its per-clause scorers): every
        // context gets the sum of the weights of the terms it has, in `weighted` order.
        let searcher = self.reader.searcher();
        let t = |e| Error::tantivy(&self.path, e);
        let mut scored: Vec<SearchHit> = Vec::new();
        for (ord, seg) in searcher.segment_readers().iter().enumerate() {
            let inv = seg.inverted_index(self.fields.feat).map_err(t)?;
            let mut scores = vec![0.0f32; seg.max_doc() as usize];
            for stats in &weighted {
                let Some((_, info)) = stats.postings.iter().find(|(o, _)| *o as usize == ord)
                else {
                    continue;
                };
                let mut block = inv
                    .read_block_postings_from_terminfo(info, IndexRecordOption::Basic)
                    .map_err(|e| Error::io(&self.path, e))?;
                while !block.docs().is_empty() {
                    for &doc in block.docs() {
                        scores[doc as usize] += stats.weight;
                    }
                    block.advance();
                }
            }
            let ids = seg.fast_fields().u64(FIELD_CONTEXT_ID).map_err(t)?;
            for (doc, &score) in scores.iter().enumerate() {
                if score > 0.0 {
                    let context_id = ids.first(doc as u32).ok_or_else(|| {
                        Error::corrupt(
                            self.path.display().to_string(),
                            format!("document {doc} has no context_id"),
                        )
                    })?;
                    if exclude != Some(context_id) {
                        scored.push(SearchHit { context_id, score });
                    }
                }
            }
        }
        let order = |a: &SearchHit, b: &SearchHit| {
            b.score
                .total_cmp(&a.score)
                .then(a.context_id.cmp(&b.context_id))
        };
        if scored.len() > limit {
            if limit > 0 {
                scored.select_nth_unstable_by(limit - 1, order);
            }
            scored.truncate(limit);
        }
        scored.sort_by(order);
        Ok(SimilarResult {
            hits: scored,
            terms: terms_used(),
        })
    }
}
