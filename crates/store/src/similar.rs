//! "More like this" with the features each similar context shares with the source, and the
//! lists precomputed at publish for every context (RocksDB column family `similar`).
//!
//! A live list costs a weighted union over the postings of up to 512 feature terms plus one
//! context-features read per hit and SAE (~3.4 ms on the demo index); serving a precomputed one
//! is one point get. Lists are precomputed for comparisons over every SAE, [`SIMILAR_LIST_LEN`] long; a
//! request restricted to one SAE, for a longer list, for free text, or on a store built before
//! the column family is answered live — with the same code, so both give the same answer.
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::Result;
use crate::index_reader::IndexReader;
use crate::layout::IndexLayout;
use crate::manifest::Manifest;
use crate::parquet::TableReader;
use crate::query::{parse_feature_term, strength_level, STRENGTH_BUCKETS};
use crate::records::ContextRecord;
use crate::text::SimilarResult;

/// Hits precomputed per context (the API's default page is 20, the web UI asks for 25).
pub const SIMILAR_LIST_LEN: usize = 25;
/// Shared features kept per similar context, the most heavily weighted first.
pub const SIMILAR_SHARED_FEATURES: usize = 8;
/// Contexts per unit of work while precomputing.
const BUILD_CHUNK: usize = 256;

/// A feature a similar context shares with the source.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedFeature {
    /// SAE id.
    pub sae: String,
    /// Feature id.
    pub feature: u32,
    /// Summed weight of the shared terms (the base term and the strength buckets both reach).
    pub weight: f32,
    /// The feature's max activation in the similar context.
    pub max_act: f32,
}

/// One similar context.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarContext {
    /// Context id.
    pub context_id: u64,
    /// Summed weights of the shared feature terms.
    pub score: f32,
    /// The most heavily weighted shared features (at most [`SIMILAR_SHARED_FEATURES`]; ties by
    /// SAE id, then feature).
    pub shared: Vec<SharedFeature>,
}

/// A "more like this" answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarList {
    /// Feature terms of the source searched with.
    pub terms: usize,
    /// Best first (ties by lower context id); the source is never among them.
    pub hits: Vec<SimilarContext>,
}

impl IndexReader {
    /// "More like this" for a context of the index over every SAE (or only `sae`), with the
    /// features each hit shares: the precomputed list when there is one long enough, else
    /// [`Self::similar_list_live`]. `None` when the context does not exist.
    pub fn similar_list(
        &self,
        context_id: u64,
        sae: Option<&str>,
        limit: usize,
    ) -> Result<Option<SimilarList>> {
        if self.similar_list_is_precomputed(sae, limit) {
            let saes = self.sae_ids();
            if let Some(mut list) = self.rocks().similar_list(context_id, &saes)? {
                list.hits.truncate(limit);
                return Ok(Some(list));
            }
        }
        self.similar_list_live(context_id, sae, limit)
    }

    /// Length of the lists precomputed at publish (0: none, every list is computed live).
    pub fn similar_lists_precomputed(&self) -> usize {
        self.rocks().similar_list_len()
    }

    /// Whether [`Self::similar_list`] reads a precomputed list for these arguments (one point
    /// get) rather than ranking live (milliseconds).
    pub fn similar_list_is_precomputed(&self, sae: Option<&str>, limit: usize) -> bool {
        sae.is_none() && limit <= self.rocks().similar_list_len()
    }

    /// [`Self::similar_list`] computed now, never read from the precomputed lists.
    pub fn similar_list_live(
        &self,
        context_id: u64,
        sae: Option<&str>,
        limit: usize,
    ) -> Result<Option<SimilarList>> {
        match self.similar_to_context(context_id, sae, limit)? {
            Some(result) => self.with_shared_features(result, sae).map(Some),
            None => Ok(None),
        }
    }

    /// "More like this" for feature terms computed elsewhere (free text through the live
    /// model), with shared features; `sae` restricts the shared features listed.
    pub fn similar_list_to_terms(
        &self,
        terms: &[String],
        sae: Option<&str>,
        limit: usize,
    ) -> Result<SimilarList> {
        let result = self.similar_to_terms(terms, None, limit)?;
        self.with_shared_features(result, sae)
    }

    /// Joins a "more like this" result with the features each hit shares with the source: a
    /// hit shares a feature's terms up to the lower of the two strength levels (and only those
    /// the source searched with).
    fn with_shared_features(
        &self,
        result: SimilarResult,
        sae: Option<&str>,
    ) -> Result<SimilarList> {
        let saes: Vec<&str> = self
            .sae_ids()
            .into_iter()
            .filter(|s| sae.is_none_or(|only| only == *s))
            .collect();
        // The source's terms by feature: per SAE, a dense feature → slot table into the
        // weights of each level searched with (hits are checked feature by feature, hundreds
        // per context), so no term strings are built per hit.
        type Levels = [f32; 1 + STRENGTH_BUCKETS.len()];
        let mut slots: Vec<Vec<u32>> = Vec::with_capacity(saes.len());
        let mut levels: Vec<Levels> = Vec::new();
        for s in &saes {
            slots.push(vec![u32::MAX; self.sae(s)?.d_sae as usize]);
        }
        for (term, w) in &result.terms {
            if let Some((s, f, level)) = parse_feature_term(term) {
                let Some(i) = saes.iter().position(|x| *x == s) else {
                    continue;
                };
                let Some(slot) = slots[i].get_mut(f as usize) else {
                    continue;
                };
                if *slot == u32::MAX {
                    *slot = levels.len() as u32;
                    levels.push(Levels::default());
                }
                levels[*slot as usize][level] = *w;
            }
        }
        let maxes = saes
            .iter()
            .map(|s| self.feature_maxes(s))
            .collect::<Result<Vec<_>>>()?;
        let mut hits = Vec::with_capacity(result.hits.len());
        for hit in &result.hits {
            let mut shared = Vec::new();
            for ((s, max), slots) in saes.iter().zip(&maxes).zip(&slots) {
                self.with_context_features(s, hit.context_id, |cf| {
                    for (f, act, _) in cf.iter() {
                        let Some(&slot) = slots.get(f as usize).filter(|&&x| x != u32::MAX) else {
                            continue;
                        };
                        let reached =
                            strength_level(act, max.get(f as usize).copied().unwrap_or(0.0));
                        let weight: f32 = levels[slot as usize][..=reached].iter().sum();
                        if weight > 0.0 {
                            shared.push(SharedFeature {
                                sae: s.to_string(),
                                feature: f,
                                weight,
                                max_act: act,
                            });
                        }
                    }
                })?;
            }
            shared.sort_by(|a, b| {
                b.weight
                    .total_cmp(&a.weight)
                    .then_with(|| a.sae.cmp(&b.sae))
                    .then(a.feature.cmp(&b.feature))
            });
            shared.truncate(SIMILAR_SHARED_FEATURES);
            hits.push(SimilarContext {
                context_id: hit.context_id,
                score: hit.score,
                shared,
            });
        }
        Ok(SimilarList {
            terms: result.terms.len(),
            hits,
        })
    }
}

/// Precomputes the [`SIMILAR_LIST_LEN`]-long list of every context into the `similar` column
/// family of the RocksDB at `rocks_path`, reading it and the tantivy index at `tantivy_path`
/// (both freshly built from `layout`'s Parquet files). Runs on every core.
pub(crate) fn build(
    layout: &IndexLayout,
    manifest: &Manifest,
    rocks_path: &Path,
    tantivy_path: &Path,
) -> Result<()> {
    let _span = tracing::info_span!("build_similar_lists", path = %rocks_path.display()).entered();
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    let contexts = layout.contexts();
    if contexts.exists() {
        for batch in TableReader::<ContextRecord>::open(&contexts)? {
            ids.extend(batch?.into_iter().map(|c| c.context_id));
        }
    }
    let reader =
        IndexReader::open_parts(layout.clone(), manifest.clone(), rocks_path, tantivy_path)?;
    let saes: Vec<String> = reader.sae_ids().iter().map(|s| s.to_string()).collect();
    let mut writer = crate::rocks::SimilarWriter::open(rocks_path)?;
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tx, rx) = mpsc::sync_channel::<Result<Vec<(u64, Vec<u8>)>>>(workers * 2);
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let (tx, reader, ids, next, saes) = (tx.clone(), &reader, &ids, &next, &saes);
            scope.spawn(move || loop {
                let start = next.fetch_add(BUILD_CHUNK, Ordering::Relaxed);
                if start >= ids.len() {
                    break;
                }
                let chunk = &ids[start..(start + BUILD_CHUNK).min(ids.len())];
                let encoded = chunk
                    .iter()
                    .filter_map(|&id| {
                        reader
                            .similar_list_live(id, None, SIMILAR_LIST_LEN)
                            .transpose()
                            .map(|l| l.map(|l| (id, crate::rocks::encode_similar(&l, saes))))
                    })
                    .collect::<Result<Vec<_>>>();
                let failed = encoded.is_err();
                if tx.send(encoded).is_err() || failed {
                    // The receiver stopped (an error elsewhere) or this chunk failed.
                    next.store(ids.len(), Ordering::Relaxed);
                    break;
                }
            });
        }
        drop(tx);
        for chunk in rx {
            for (id, value) in chunk? {
                writer.put(id, &value)?;
            }
        }
        Ok(())
    })?;
    drop(reader);
    writer.finish(SIMILAR_LIST_LEN)?;
    tracing::info!(
        contexts = ids.len(),
        seconds = started.elapsed().as_secs_f64(),
        "similar lists precomputed"
    );
    Ok(())
}
