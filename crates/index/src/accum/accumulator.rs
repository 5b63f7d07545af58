//! [`SaeAccumulator`]: everything one SAE accumulates over a pass — creation, adding batches
//! and reconstruction terms, the exact merge, and the serialized form. Records come out in
//! `output`.
use rayon::prelude::*;
use scopedex_sae::{ReconTerms, SparseCodes};
use serde::{Deserialize, Serialize};

use super::batch::{BatchContexts, BatchView};
use super::config::AccumConfig;
use super::cooc::{CoocMode, CoocRow};
use super::feature::{Buffers, Ctx, FeatureState};
use super::persist::{decode, encode, MAGIC_SAE};
use super::stats::HistEdges;
use super::summary::SummaryAccum;
use crate::error::{Error, Result};

/// Features per rayon task in `add_batch` / `finish`.
pub(super) const CHUNK: usize = 32;

/// Everything one SAE accumulates over a pass (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SaeAccumulator {
    pub(super) sae_id: String,
    pub(super) d_in: usize,
    pub(super) d_sae: usize,
    pub(super) cfg: AccumConfig,
    pub(super) edges: HistEdges,
    pub(super) cooc_mode: CoocMode,
    pub(super) features: Vec<FeatureState>,
    pub(super) summary: SummaryAccum,
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
    /// `terms`: [`ReconTerms`] of every row of `batch` (from [`Sae::reconstruction_terms`](scopedex_sae::Sae::reconstruction_terms), which
    /// reduces them on the device, or [`ReconTerms::from_rows`]), with each context's position 0
    /// as its first rows. Excluded rows (BOS) are skipped. Sums are kept in fixed point per row,
    /// so the result does not depend on how rows are grouped into batches or shards.
    pub fn add_reconstruction(&mut self, batch: &BatchContexts, terms: &ReconTerms) -> Result<()> {
        self.summary
            .add_reconstruction(batch, self.cfg.exclude_bos, self.d_in, terms)
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
