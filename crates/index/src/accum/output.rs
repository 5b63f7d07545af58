//! Turning an [`SaeAccumulator`] into records: the per-SAE summary and sketch report, and
//! per-feature records (statistics, examples, co-occurrence partners), streamed in chunks of
//! features or all at once.
use rayon::prelude::*;
use scopedex_store::records::{
    CooccurrenceRecord, ExampleKind, ExampleRecord, FeatureRecord, SaeSummary, TokenCount,
};

use super::accumulator::{SaeAccumulator, CHUNK};
use super::cooc::{self, CoocRow};
use super::logits::LogitEffects;
use super::results::{ResultsChunk, SaeResults, SketchReport};
use super::summary;
use crate::error::{Error, Result};

impl SaeAccumulator {
    /// The per-SAE summary and the sketch report.
    fn summary_and_report(&self) -> (SaeSummary, SketchReport) {
        let s = &self.summary;
        let n_fired: Vec<u64> = self.features.iter().map(|f| f.stats.n_fired).collect();
        let (density_hist_edges, density_hist) = summary::density_hist(
            &n_fired,
            s.tokens,
            self.cfg.density_bins,
            self.cfg.density_min_log10,
        );
        let summary = SaeSummary {
            sae_id: self.sae_id.clone(),
            d_in: self.d_in as u32,
            d_sae: self.d_sae as u32,
            tokens_indexed: s.tokens,
            mean_l0: if s.tokens == 0 {
                0.0
            } else {
                s.l0_sum as f64 / s.tokens as f64
            },
            dead_features: n_fired.iter().filter(|&&n| n == 0).count() as u32,
            explained_variance: s.explained_variance(),
            act_hist_edges: self.edges.edges.clone(),
            density_hist_edges,
            density_hist,
        };
        let report = SketchReport {
            cooc_exact: self.cooc_exact(),
            cooc_max_error: self
                .features
                .iter()
                .map(|f| f.cooc.err())
                .max()
                .unwrap_or(0),
            top_tokens_max_error: self
                .features
                .iter()
                .map(|f| f.tokens.err())
                .max()
                .unwrap_or(0),
        };
        (summary, report)
    }

    /// Records of feature `f`.
    fn feature_records(
        &self,
        f: usize,
        rows: &[&CoocRow],
        n_fired: &[u64],
        logits: Option<&LogitEffects>,
    ) -> (FeatureRecord, Vec<ExampleRecord>, Vec<CooccurrenceRecord>) {
        let st = &self.features[f];
        let cfg = &self.cfg;
        let tokens = self.summary.tokens;
        let fu = f as u32;
        let feature = FeatureRecord {
            feature: fu,
            n_fired: st.stats.n_fired,
            density: if tokens == 0 {
                0.0
            } else {
                st.stats.n_fired as f64 / tokens as f64
            },
            max_act: st.stats.max,
            mean_act: st.stats.mean(),
            act_hist: st.stats.hist.clone(),
            top_tokens: st
                .tokens
                .top(cfg.top_tokens)
                .into_iter()
                .map(|(token, count)| TokenCount { token, count })
                .collect(),
            logit_pos: logits.map(|l| l.pos[f].clone()).unwrap_or_default(),
            logit_neg: logits.map(|l| l.neg[f].clone()).unwrap_or_default(),
            logit_hist: logits.map(|l| l.hist[f].counts.clone()).unwrap_or_default(),
            logit_hist_min: logits.map_or(0.0, |l| l.hist[f].min),
            logit_hist_max: logits.map_or(0.0, |l| l.hist[f].max),
        };
        let mut examples: Vec<ExampleRecord> = st
            .top
            .sorted()
            .into_iter()
            .enumerate()
            .map(|(r, e)| e.to_record(fu, ExampleKind::Top, r as u16))
            .collect();
        if st.stats.max > 0.0 {
            let per = st
                .intervals
                .select(st.stats.max, cfg.intervals, cfg.samples_per_interval);
            for (i, list) in per.into_iter().enumerate() {
                for (r, e) in list.into_iter().enumerate() {
                    examples.push(e.to_record(fu, ExampleKind::Interval(i as u16), r as u16));
                }
            }
        }
        let cooc = cooc::partners_within(rows, f, cfg.cooc.partners, n_fired, tokens)
            .into_iter()
            .map(|(g, c)| {
                cooc::record(
                    fu,
                    &self.sae_id,
                    g,
                    c,
                    st.stats.n_fired,
                    self.features[g as usize].stats.n_fired,
                    tokens,
                )
            })
            .collect();
        (feature, examples, cooc)
    }

    /// Produces the records `features_per_chunk` features at a time (bounded output memory
    /// for large SAEs: dense example windows are only built for one chunk), handing each chunk
    /// to `sink` in feature order. Returns the summary and the sketch report.
    ///
    /// `logits`, when given, must have one entry per feature.
    pub fn finish_streaming<E: From<Error>>(
        self,
        logits: Option<&LogitEffects>,
        features_per_chunk: usize,
        mut sink: impl FnMut(ResultsChunk) -> std::result::Result<(), E>,
    ) -> std::result::Result<(SaeSummary, SketchReport), E> {
        if let Some(l) = logits {
            if l.pos.len() != self.d_sae || l.neg.len() != self.d_sae {
                return Err(Error::Mismatch(format!(
                    "logit effects for {} features, SAE {} has {}",
                    l.pos.len(),
                    self.sae_id,
                    self.d_sae
                ))
                .into());
            }
        }
        let (summary, report) = self.summary_and_report();
        let rows: Vec<&CoocRow> = self.features.iter().map(|f| &f.cooc).collect();
        let n_fired: Vec<u64> = self.features.iter().map(|f| f.stats.n_fired).collect();
        let step = features_per_chunk.max(1);
        for lo in (0..self.d_sae).step_by(step) {
            let hi = (lo + step).min(self.d_sae);
            let parts: Vec<_> = (lo..hi)
                .into_par_iter()
                .with_min_len(CHUNK)
                .map(|f| self.feature_records(f, &rows, &n_fired, logits))
                .collect();
            let mut chunk = ResultsChunk::default();
            for (fr, ex, co) in parts {
                chunk.features.push(fr);
                chunk.examples.extend(ex);
                chunk.cooccurrence.extend(co);
            }
            sink(chunk)?;
        }
        Ok((summary, report))
    }

    /// All records at once (see [`SaeAccumulator::finish_streaming`] for large SAEs).
    pub fn finish(self, logits: Option<&LogitEffects>) -> Result<SaeResults> {
        let mut all = ResultsChunk::default();
        let (summary, sketch) = self.finish_streaming(logits, 4096, |c: ResultsChunk| {
            all.features.extend(c.features);
            all.examples.extend(c.examples);
            all.cooccurrence.extend(c.cooccurrence);
            Ok::<(), Error>(())
        })?;
        Ok(SaeResults {
            summary,
            features: all.features,
            examples: all.examples,
            cooccurrence: all.cooccurrence,
            sketch,
        })
    }
}
