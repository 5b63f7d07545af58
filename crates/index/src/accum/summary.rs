//! Per-SAE totals: counted tokens, L0, reconstruction error sums, density histogram.
//!
//! Like the per-feature statistics, every sum is an integer (fixed point for the reconstruction
//! terms), so merging shards in any grouping is exact. Explained variance is
//! `EV = 1 − SSE/SST` with `SSE = Σ_r ‖x_r − x̂_r‖²` and `SST = Σ_r ‖x_r − μ‖² = Σ_r ‖x_r‖² − ‖Σ_r x_r‖²/n`
//! over the counted rows.
use scopedex_sae::{ReconTerms, DIM_SUM_FRAC_BITS};
use serde::{Deserialize, Serialize};

use super::batch::BatchView;
use super::BatchContexts;
use crate::error::{Error, Result};

/// Fractional bits of the per-row reconstruction sums (`i128`).
const ROW_FRAC_BITS: f64 = 32.0;
/// Fractional bits of the per-dimension input sums (`i128`), as the SAE crate reduces them.
const DIM_FRAC_BITS: f64 = DIM_SUM_FRAC_BITS as f64;

#[inline]
fn fixed(v: f64, bits: f64) -> i128 {
    (v * bits.exp2()).round() as i128
}

#[inline]
fn unfixed(x: i128, bits: f64) -> f64 {
    x as f64 / bits.exp2()
}

/// Totals of one SAE.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SummaryAccum {
    /// Counted positions.
    pub tokens: u64,
    /// Σ L0 over counted positions.
    pub l0_sum: u64,
    /// Rows fed to the reconstruction sums.
    pub recon_rows: u64,
    /// Σ ‖x − x̂‖², fixed point.
    pub sse: i128,
    /// Σ ‖x‖², fixed point.
    pub sum_sq: i128,
    /// Σ x per input dimension, fixed point (empty until the first reconstruction batch).
    pub sum: Vec<i128>,
}

impl SummaryAccum {
    /// Adds the reconstruction terms of the counted rows of `batch`; `terms` covers every row,
    /// its `first_rows_dim_sum` being that of each context's position 0.
    pub fn add_reconstruction(
        &mut self,
        batch: &BatchContexts,
        exclude_bos: bool,
        d_in: usize,
        terms: &ReconTerms,
    ) -> Result<()> {
        let view = BatchView::rows(batch, exclude_bos)?;
        let n = view.row_ctx.len();
        if terms.n_rows() != n
            || terms.row_sum_sq.len() != n
            || terms.dim_sum.len() != d_in
            || terms.first_rows_dim_sum.len() != d_in
        {
            return Err(Error::InvalidBatch(format!(
                "reconstruction: terms of {} rows × {} dimensions for {n} rows × d_in {d_in}",
                terms.n_rows(),
                terms.dim_sum.len()
            )));
        }
        if self.sum.is_empty() {
            self.sum = vec![0; d_in];
        }
        for r in (0..n).filter(|&r| view.counted[r]) {
            self.sum_sq += fixed(terms.row_sum_sq[r], ROW_FRAC_BITS);
            self.sse += fixed(terms.row_sse[r] as f64, ROW_FRAC_BITS);
            self.recon_rows += 1;
        }
        for ((s, &all), &first) in self
            .sum
            .iter_mut()
            .zip(&terms.dim_sum)
            .zip(&terms.first_rows_dim_sum)
        {
            *s += if exclude_bos { all - first } else { all };
        }
        Ok(())
    }

    /// Adds `other`.
    pub fn merge(&mut self, other: &SummaryAccum) {
        self.tokens += other.tokens;
        self.l0_sum += other.l0_sum;
        self.recon_rows += other.recon_rows;
        self.sse += other.sse;
        self.sum_sq += other.sum_sq;
        if self.sum.is_empty() {
            self.sum = other.sum.clone();
        } else {
            for (a, b) in self.sum.iter_mut().zip(&other.sum) {
                *a += b;
            }
        }
    }

    /// `1 − SSE/SST`, or NaN when no reconstruction was fed (or SST is 0).
    pub fn explained_variance(&self) -> f64 {
        if self.recon_rows == 0 {
            return f64::NAN;
        }
        let n = self.recon_rows as f64;
        let mean_sq: f64 = self
            .sum
            .iter()
            .map(|&s| {
                let s = unfixed(s, DIM_FRAC_BITS);
                s * s
            })
            .sum::<f64>()
            / n;
        let sst = unfixed(self.sum_sq, ROW_FRAC_BITS) - mean_sq;
        if sst <= 0.0 {
            return f64::NAN;
        }
        1.0 - unfixed(self.sse, ROW_FRAC_BITS) / sst
    }
}

/// Density histogram: `bins` equal-width bins of log10(density) over `[min_log10, 0]`; features
/// below `min_log10` count in bin 0; dead features are not counted. Returns (edges, counts).
pub(crate) fn density_hist(
    n_fired: &[u64],
    tokens: u64,
    bins: usize,
    min_log10: f32,
) -> (Vec<f32>, Vec<u64>) {
    let lo = min_log10 as f64;
    let w = -lo / bins as f64;
    let edges: Vec<f32> = (0..=bins).map(|i| (lo + w * i as f64) as f32).collect();
    let mut counts = vec![0u64; bins];
    if tokens > 0 {
        for &n in n_fired.iter().filter(|&&n| n > 0) {
            let l = (n as f64 / tokens as f64).log10();
            let b = (((l - lo) / w).floor().max(0.0) as usize).min(bins - 1);
            counts[b] += 1;
        }
    }
    (edges, counts)
}
