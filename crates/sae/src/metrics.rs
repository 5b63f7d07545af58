//! Reconstruction quality of an SAE on given activations.
//!
//! Definitions (all over the rows given, chunk by chunk so memory stays bounded, from the sums
//! of [`crate::ReconTerms`]): `mse` = mean over rows and dimensions of `(ŷ − y)²`;
//! `explained_variance` = `1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖²` with `ȳ` the per-dimension mean of the
//! target (total-variance form); `mean_l0` = active features per row; `dead_features` = features
//! active on no row.
use candle_core::Tensor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::recon_terms::DIM_SUM_FRAC_BITS;
use crate::sae::Sae;

/// Rows per metrics step.
const METRIC_ROWS: usize = 4096;

/// Reconstruction metrics of one SAE on a set of rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReconstructionMetrics {
    /// Mean squared error per element, native scale.
    pub mse: f64,
    /// Fraction of the target's variance explained (1 is perfect; can be negative).
    pub explained_variance: f64,
    /// Mean number of active features per row.
    pub mean_l0: f64,
    /// Features that fired on no row.
    pub dead_features: usize,
    /// Rows evaluated.
    pub n_rows: usize,
}

/// Encodes `x_in` ([N, d_in]), decodes, and compares with `x_target` ([N, d_out]); the target is
/// `x_in` itself except for transcoders (the MLP output).
pub fn reconstruction_metrics(
    sae: &Sae,
    x_in: &Tensor,
    x_target: &Tensor,
) -> Result<ReconstructionMetrics> {
    // Encode normalises each chunk itself: normalising here too would do it twice.
    let x_in = sae.input_rows(x_in)?;
    let n = x_in.dim(0)?;
    let tdims = x_target.dims();
    let t_rows: usize = tdims[..tdims.len().saturating_sub(1)].iter().product();
    if tdims.len() < 2 || tdims[tdims.len() - 1] != sae.d_out() || t_rows != n {
        return Err(Error::Shape {
            what: "reconstruction target".into(),
            expected: format!("[{n}, {}]", sae.d_out()),
            found: tdims.to_vec(),
        });
    }
    let target = x_target.reshape((n, sae.d_out()))?;
    let d = sae.d_out();
    // The sums an index keeps (reduced on the GPU when the SAE is on one).
    let mut sq_err = 0f64;
    let mut norms = 0f64;
    let mut dim_sum = vec![0i128; d];
    let mut nnz = 0usize;
    let mut fired = vec![false; sae.d_sae()];
    let mut start = 0;
    while start < n {
        let rows = METRIC_ROWS.min(n - start);
        let codes = sae.encode(&x_in.narrow(0, start, rows)?)?;
        nnz += codes.nnz();
        for &f in &codes.features {
            fired[f as usize] = true;
        }
        let terms = sae.reconstruction_terms(&target.narrow(0, start, rows)?, &codes, &[])?;
        sq_err += terms.row_sse.iter().map(|&e| e as f64).sum::<f64>();
        norms += terms.row_sum_sq.iter().sum::<f64>();
        for (a, b) in dim_sum.iter_mut().zip(&terms.dim_sum) {
            *a += b;
        }
        start += rows;
    }
    let nf = n as f64;
    let unit = f64::from(DIM_SUM_FRAC_BITS).exp2();
    let mean_norm: f64 = dim_sum
        .iter()
        .map(|&s| (s as f64 / unit).powi(2))
        .sum::<f64>()
        / nf.max(1.0);
    let total_var = norms - mean_norm;
    Ok(ReconstructionMetrics {
        mse: if n == 0 {
            0.0
        } else {
            sq_err / (nf * d as f64)
        },
        explained_variance: if total_var > 0.0 {
            1.0 - sq_err / total_var
        } else {
            f64::NAN
        },
        mean_l0: if n == 0 { 0.0 } else { nnz as f64 / nf },
        dead_features: fired.iter().filter(|f| !**f).count(),
        n_rows: n,
    })
}
