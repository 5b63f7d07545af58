//! Per-feature accumulators of one indexing pass, with an exact associative, commutative merge.
//!
//! One [`SaeAccumulator`] per SAE takes every batch ([`BatchContexts`] + the SAE's
//! [`SparseCodes`]) and keeps, per feature:
//! * top-k contexts by max activation, ties by lower context_id ([`topk`]), sparse windows;
//! * interval samples over log-spaced buckets, selected into N equal-width intervals of
//!   `[0, max]` at the end ([`intervals`] documents the scheme);
//! * firing count, max, exact sum, log-binned histogram ([`stats`]);
//! * top tokens by count (Misra–Gries with [`AccumConfig::token_counters`] counters, exact while
//!   a feature fires on ≤ that many distinct tokens; [`sketch`] states the bound);
//! * co-occurrence partners ([`cooc`]: exact dense counts within a memory budget, else sketch).
//!
//! plus per-SAE totals ([`summary`]). [`CrossCooc`] does co-occurrence between two SAEs.
//!
//! **Merge = single pass.** Every piece merges exactly (integer sums, max, the unique top-k under
//! a total order, bottom-s samples by a hash priority), so splitting the contexts into shards
//! and merging the accumulators in any grouping and order gives results identical to one pass —
//! as long as the sketches stay exact (`SketchReport::{cooc_exact, *_max_error == 0}`); once a
//! sketch has had to evict, results stay within its stated bound but may depend on the grouping.
//!
//! **Positions counted.** With `exclude_bos`, position 0 of every context is skipped by
//! everything (statistics, L0, co-occurrence, example maxima, reconstruction sums); example
//! `acts` read 0 there, so `max_act == acts[max_pos] == max(acts)` always holds.
//!
//! **Memory.** Bounded, independent of the number of tokens: per feature at most `top_k` +
//! ≈ `samples_per_interval · (4·log2(intervals) + 2)` sparse windows (8 bytes per nonzero),
//! `token_counters` + (sketch mode) `sketch_counters` counters of 12 bytes, the histogram, and
//! in exact mode the co-occurrence triangle.
use rayon::prelude::*;
use scopedex_sae::SparseCodes;
use scopedex_store::records::{
    CooccurrenceRecord, ExampleKind, ExampleRecord, FeatureRecord, SaeSummary, TokenCount,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

mod batch;
pub mod cooc;
pub mod intervals;
mod logits;
pub mod sketch;
pub mod stats;
pub mod summary;
pub mod topk;

pub use batch::BatchContexts;
pub use cooc::{CrossCooc, CrossCoocResults};
pub use logits::{logit_effects, top_logits, LogitEffects, LogitHistogram, LOGIT_HIST_BINS};
pub use summary::row_sse;

use self::batch::{BatchView, Entry};
use self::cooc::{CoocMode, CoocRow, Scratch};
use self::intervals::{priority, IntervalSampler};
use self::sketch::MisraGries;
use self::stats::{FeatureStats, HistEdges};
use self::summary::SummaryAccum;
use self::topk::{Example, SparseAct, TopK};
use crate::error::{Error, Result};

/// Co-occurrence settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoocConfig {
    /// Partners kept per feature (0 disables co-occurrence).
    pub partners: usize,
    /// Dense exact counts are used when they take at most this many bytes (4 per cell).
    pub exact_budget_bytes: u64,
    /// Misra–Gries counters per feature in sketch mode (≥ `partners`).
    pub sketch_counters: usize,
}

impl Default for CoocConfig {
    fn default() -> Self {
        CoocConfig {
            partners: 32,
            // Exact up to d_sae = 16384 within one SAE (≈ 537 MB triangle).
            exact_budget_bytes: 600_000_000,
            sketch_counters: 128,
        }
    }
}

/// Accumulator settings (equal settings are required to merge).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccumConfig {
    /// Top contexts per feature.
    pub top_k: usize,
    /// Equal-width intervals of `[0, max]` for interval samples.
    pub intervals: usize,
    /// Samples per interval (also the reservoir size of each activation bucket).
    pub samples_per_interval: usize,
    /// Bins of the per-feature activation histogram.
    pub hist_bins: usize,
    /// Range `(lo, hi)` of the log-spaced activation histogram; values outside are clamped into
    /// the first/last bin.
    pub hist_range: (f32, f32),
    /// Top tokens reported per feature.
    pub top_tokens: usize,
    /// Misra–Gries counters per feature for top tokens (exact while a feature fires on at most
    /// this many distinct tokens; otherwise error ≤ n_fired/(m+1)).
    pub token_counters: usize,
    /// Bins of the per-SAE density histogram (log10 density from `density_min_log10` to 0).
    pub density_bins: usize,
    /// Lower end of the density histogram, log10.
    pub density_min_log10: f32,
    /// Co-occurrence settings.
    pub cooc: CoocConfig,
    /// Skip position 0 of every context (the BOS token) everywhere.
    pub exclude_bos: bool,
}

impl Default for AccumConfig {
    fn default() -> Self {
        AccumConfig {
            top_k: 32,
            intervals: 10,
            samples_per_interval: 8,
            hist_bins: 64,
            hist_range: (1e-4, 1e4),
            top_tokens: 16,
            token_counters: 128,
            density_bins: 32,
            density_min_log10: -8.0,
            cooc: CoocConfig::default(),
            exclude_bos: true,
        }
    }
}

impl AccumConfig {
    /// Checks ranges (ranks and interval numbers are u16 in the records).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let (lo, hi) = self.hist_range;
        if self.top_k > 1 << 16 || self.samples_per_interval > 1 << 16 {
            return bad(format!(
                "top_k {} and samples_per_interval {} must be ≤ 65536",
                self.top_k, self.samples_per_interval
            ));
        }
        if self.intervals == 0 || self.intervals > 1 << 16 {
            return bad(format!("intervals {} must be in 1..=65536", self.intervals));
        }
        if self.hist_bins == 0 || !(lo > 0.0 && hi > lo && hi.is_finite()) {
            return bad(format!(
                "hist_bins {} must be ≥ 1 and hist_range ({lo}, {hi}) must satisfy 0 < lo < hi < inf",
                self.hist_bins
            ));
        }
        if self.token_counters < self.top_tokens || self.cooc.sketch_counters < self.cooc.partners {
            return bad(format!(
                "token_counters {} / sketch_counters {} must be ≥ top_tokens {} / partners {}",
                self.token_counters, self.cooc.sketch_counters, self.top_tokens, self.cooc.partners
            ));
        }
        if self.density_bins == 0
            || self.density_min_log10.is_nan()
            || self.density_min_log10 >= 0.0
        {
            return bad(format!(
                "density_bins {} must be ≥ 1 and density_min_log10 {} < 0",
                self.density_bins, self.density_min_log10
            ));
        }
        Ok(())
    }
}

/// Whether the sketches stayed exact, and their largest error bounds (0 = exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SketchReport {
    /// Co-occurrence counted densely (exact).
    pub cooc_exact: bool,
    /// Largest `true − reported` bound of any co-occurrence count (0 when exact).
    pub cooc_max_error: u64,
    /// Largest `true − reported` bound of any top-token count (0 when exact).
    pub top_tokens_max_error: u64,
}

impl Default for SketchReport {
    fn default() -> Self {
        SketchReport {
            cooc_exact: true,
            cooc_max_error: 0,
            top_tokens_max_error: 0,
        }
    }
}

/// Everything one SAE produced, records sorted deterministically: features by id; examples by
/// (feature, kind: top then intervals ascending, rank); co-occurrence by (feature, n_both desc,
/// partner).
#[derive(Debug, Clone, PartialEq)]
pub struct SaeResults {
    /// Per-SAE totals.
    pub summary: SaeSummary,
    /// One record per feature (dead ones included).
    pub features: Vec<FeatureRecord>,
    /// Top and interval examples.
    pub examples: Vec<ExampleRecord>,
    /// Within-SAE partners.
    pub cooccurrence: Vec<CooccurrenceRecord>,
    /// Exactness of the sketches.
    pub sketch: SketchReport,
}

/// The records of a range of features (see [`SaeAccumulator::finish_streaming`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultsChunk {
    /// Per-feature records of the range.
    pub features: Vec<FeatureRecord>,
    /// Their examples.
    pub examples: Vec<ExampleRecord>,
    /// Their partners.
    pub cooccurrence: Vec<CooccurrenceRecord>,
}

/// Everything kept for one feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FeatureState {
    stats: FeatureStats,
    tokens: MisraGries,
    top: TopK,
    intervals: IntervalSampler,
    cooc: CoocRow,
}

/// Reusable per-task buffers.
#[derive(Default)]
struct Buffers {
    tokens: Scratch,
    partners: Scratch,
}

/// Settings shared by the per-feature work of one batch.
struct Ctx<'a> {
    cfg: &'a AccumConfig,
    edges: &'a HistEdges,
    view: &'a BatchView,
    batch: &'a BatchContexts<'a>,
    codes: &'a SparseCodes,
}

impl FeatureState {
    fn new(cfg: &AccumConfig, mode: CoocMode, f: usize, d: usize) -> Self {
        FeatureState {
            stats: FeatureStats::new(cfg.hist_bins),
            tokens: MisraGries::default(),
            top: TopK::default(),
            intervals: IntervalSampler::default(),
            cooc: CoocRow::new(mode, f, d),
        }
    }

    /// Feature `f`'s entries of one batch.
    fn update(&mut self, f: u32, col: &[Entry], cx: &Ctx, buf: &mut Buffers) {
        let (cfg, view, codes) = (cx.cfg, cx.view, cx.codes);
        let (k, n, s) = (cfg.top_k, cfg.intervals, cfg.samples_per_interval);
        buf.tokens.xs.clear();
        let mut i = 0;
        while i < col.len() {
            let c = view.row_ctx[col[i].row as usize];
            let (mut j, mut gmax, mut gpos) = (i, 0f32, 0u32);
            while j < col.len() && view.row_ctx[col[j].row as usize] == c {
                let (r, v) = (col[j].row as usize, codes.values[col[j].j as usize]);
                self.stats.add(v, cx.edges);
                buf.tokens.xs.push(view.row_tok[r]);
                if v > gmax {
                    gmax = v;
                    gpos = view.row_pos[r];
                }
                j += 1;
            }
            let group = &col[i..j];
            let cid = cx.batch.context_ids[c as usize];
            let make = || Example {
                context_id: cid,
                max_act: gmax,
                max_pos: gpos,
                len: cx.batch.tokens[c as usize].len() as u32,
                acts: group
                    .iter()
                    .map(|e| SparseAct {
                        pos: view.row_pos[e.row as usize],
                        act: codes.values[e.j as usize],
                    })
                    .collect(),
            };
            if self.top.would_enter(k, gmax, cid) {
                self.top.push(k, make());
            }
            let prio = priority(f, cid);
            self.intervals
                .offer(gmax, (prio, cid), self.stats.max, n, s, make);
            i = j;
        }
        buf.tokens.add_to(&mut self.tokens, cfg.token_counters, 0);
        self.cooc
            .update(f, col, codes, cfg.cooc.sketch_counters, &mut buf.partners);
        self.intervals.collapse(self.stats.max, n, s);
    }

    fn merge(&mut self, o: FeatureState, cfg: &AccumConfig) {
        self.stats.merge(&o.stats);
        self.tokens.merge(&o.tokens, cfg.token_counters);
        self.top.merge(o.top, cfg.top_k);
        self.intervals.merge(
            o.intervals,
            self.stats.max,
            cfg.intervals,
            cfg.samples_per_interval,
        );
        self.cooc.merge(&o.cooc, cfg.cooc.sketch_counters);
    }
}

/// Magic prefix of a serialized [`SaeAccumulator`] (format version in the last byte).
pub(crate) const MAGIC_SAE: &[u8; 8] = b"SDXACC\x00\x01";
/// Magic prefix of a serialized [`CrossCooc`].
pub(crate) const MAGIC_CROSS: &[u8; 8] = b"SDXCRS\x00\x01";

pub(crate) fn encode<T: Serialize>(magic: &[u8; 8], v: &T) -> Result<Vec<u8>> {
    let mut out = magic.to_vec();
    let body = postcard::to_stdvec(v)
        .map_err(|e| Error::CorruptState(format!("cannot encode state: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(magic: &[u8; 8], bytes: &[u8]) -> Result<T> {
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(Error::CorruptState(format!(
            "bad magic/version (expected {:?})",
            String::from_utf8_lossy(magic)
        )));
    }
    postcard::from_bytes(&bytes[8..]).map_err(|e| Error::CorruptState(e.to_string()))
}

/// Features per rayon task in `add_batch` / `finish`.
const CHUNK: usize = 32;

/// Everything one SAE accumulates over a pass (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaeAccumulator {
    sae_id: String,
    d_in: usize,
    d_sae: usize,
    cfg: AccumConfig,
    edges: HistEdges,
    cooc_mode: CoocMode,
    features: Vec<FeatureState>,
    summary: SummaryAccum,
}

impl SaeAccumulator {
    /// Empty accumulator for SAE `sae_id` with input width `d_in` and `d_sae` features.
    pub fn new(sae_id: &str, d_in: usize, d_sae: usize, cfg: &AccumConfig) -> Result<Self> {
        cfg.validate()?;
        if d_sae == 0 || d_sae > u32::MAX as usize {
            return Err(Error::InvalidConfig(format!("d_sae {d_sae} out of range")));
        }
        let cells = d_sae as u128 * (d_sae as u128 - 1) / 2;
        let cooc_mode = CoocMode::choose(&cfg.cooc, cells);
        let features = (0..d_sae)
            .into_par_iter()
            .map(|f| FeatureState::new(cfg, cooc_mode, f, d_sae))
            .collect();
        Ok(SaeAccumulator {
            sae_id: sae_id.to_string(),
            d_in,
            d_sae,
            cfg: cfg.clone(),
            edges: HistEdges::log_spaced(cfg.hist_range.0, cfg.hist_range.1, cfg.hist_bins),
            cooc_mode,
            features,
            summary: SummaryAccum::default(),
        })
    }

    /// The SAE id.
    pub fn sae_id(&self) -> &str {
        &self.sae_id
    }

    /// The settings.
    pub fn config(&self) -> &AccumConfig {
        &self.cfg
    }

    /// Whether within-SAE co-occurrence is counted exactly (dense) rather than sketched.
    pub fn cooc_exact(&self) -> bool {
        self.cooc_mode != CoocMode::Sketch
    }

    /// Positions counted so far.
    pub fn tokens_indexed(&self) -> u64 {
        self.summary.tokens
    }

    /// Adds one batch. `codes` must have one row per position of `batch` (see
    /// [`BatchContexts`]) and satisfy the [`SparseCodes`] invariants (checked).
    pub fn add_batch(&mut self, batch: &BatchContexts, codes: &SparseCodes) -> Result<()> {
        let view = BatchView::new(batch, codes, self.d_sae, self.cfg.exclude_bos)?;
        self.summary.tokens += view.n_counted;
        self.summary.l0_sum += view.l0_sum;
        let cx = Ctx {
            cfg: &self.cfg,
            edges: &self.edges,
            view: &view,
            batch,
            codes,
        };
        self.features
            .par_chunks_mut(CHUNK)
            .enumerate()
            .for_each_init(Buffers::default, |buf, (ci, chunk)| {
                for (i, st) in chunk.iter_mut().enumerate() {
                    let f = ci * CHUNK + i;
                    let col = view.column(f);
                    if !col.is_empty() {
                        st.update(f as u32, col, &cx, buf);
                    }
                }
            });
        Ok(())
    }

    /// Adds the reconstruction terms of one batch for the explained variance.
    ///
    /// `x`: the SAE input, `[rows, d_in]` row-major, rows as in [`BatchContexts`];
    /// `row_sse[r] = ‖x_r − x̂_r‖²` (e.g. from [`row_sse`] or computed on the device). Excluded
    /// rows (BOS) are skipped. Sums are kept in fixed point per row, so the result does not
    /// depend on how rows are grouped into batches or shards.
    pub fn add_reconstruction(
        &mut self,
        batch: &BatchContexts,
        x: &[f32],
        row_sse: &[f32],
    ) -> Result<()> {
        self.summary
            .add_reconstruction(batch, self.cfg.exclude_bos, self.d_in, x, row_sse)
    }

    /// Combines two accumulators of the same SAE and settings (exact, associative and
    /// commutative; see the module doc for the sketches).
    pub fn merge(mut self, other: SaeAccumulator) -> Result<SaeAccumulator> {
        if (&self.sae_id, self.d_in, self.d_sae, &self.cfg)
            != (&other.sae_id, other.d_in, other.d_sae, &other.cfg)
        {
            return Err(Error::Mismatch(format!(
                "cannot merge accumulator {} (d_in {}, d_sae {}) with {} (d_in {}, d_sae {}) or their settings differ",
                self.sae_id, self.d_in, self.d_sae, other.sae_id, other.d_in, other.d_sae
            )));
        }
        self.summary.merge(&other.summary);
        let cfg = &self.cfg;
        self.features
            .par_iter_mut()
            .with_min_len(CHUNK)
            .zip(other.features.into_par_iter())
            .for_each(|(a, b)| a.merge(b, cfg));
        Ok(self)
    }

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

    /// Compact binary form of the whole state (postcard behind an 8-byte magic/version), for
    /// `--resume` checkpoints and shard outputs.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(MAGIC_SAE, self)
    }

    /// Inverse of [`SaeAccumulator::to_bytes`]; checks that the shapes agree with the settings.
    pub fn from_bytes(bytes: &[u8]) -> Result<SaeAccumulator> {
        let a: SaeAccumulator = decode(MAGIC_SAE, bytes)?;
        a.cfg.validate()?;
        let d = a.d_sae;
        let shapes_ok = a.features.len() == d
            && a.edges.edges.len() == a.cfg.hist_bins + 1
            && a.features.iter().enumerate().all(|(f, s)| {
                s.stats.hist.len() == a.cfg.hist_bins
                    && match (&s.cooc, a.cooc_mode) {
                        (CoocRow::Dense(r), CoocMode::Exact) => r.len() == d - f - 1,
                        (CoocRow::Sketch(_), CoocMode::Sketch) | (CoocRow::Off, CoocMode::Off) => {
                            true
                        }
                        _ => false,
                    }
            })
            && (a.summary.sum.is_empty() || a.summary.sum.len() == a.d_in);
        if !shapes_ok {
            return Err(Error::CorruptState(format!(
                "accumulator state of {} does not match its d_sae {d} / settings",
                a.sae_id
            )));
        }
        Ok(a)
    }
}
