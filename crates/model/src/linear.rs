//! A bias-free linear layer holding its weight pre-transposed (`[in, out]`, contiguous), so the
//! product is one row-major GEMM `x[N, in] · W^T`.
use candle_core::{Device, Tensor};

use crate::cpu_kernels;
use crate::weights::WeightSource;
use crate::Result;

/// `y = x W^T` for an HF weight `W` of shape `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// f32 `[in, out]`, contiguous.
    wt: Tensor,
}

impl Linear {
    /// Builds from an HF-orientation weight `[out, in]`.
    pub(crate) fn from_weight(w: &Tensor) -> Result<Self> {
        Ok(Linear {
            wt: w.t()?.contiguous()?,
        })
    }

    /// Loads the weights `names` (each `[out_i, in]`) and concatenates them along `out`, so
    /// several projections of the same input run as one GEMM.
    pub(crate) fn load_fused(
        src: &mut dyn WeightSource,
        names: &[(&str, usize)],
        d_in: usize,
        device: &Device,
    ) -> Result<Self> {
        let ws = names
            .iter()
            .map(|(n, out)| src.load(n, &[*out, d_in], device))
            .collect::<Result<Vec<_>>>()?;
        let w = if ws.len() == 1 {
            ws[0].clone()
        } else {
            Tensor::cat(&ws, 0)?
        };
        Self::from_weight(&w)
    }

    /// x: f32 `[N, in]` → `[N, out]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // A BLAS sgemm on CPU f32 when one is installed (2x candle's kernel), candle otherwise.
        Ok(scopedex_linalg::matmul(x, &self.wt)?)
    }

    /// CPU f32 only: `init + x W^T`, `init` `[N, out]` or zeros (see [`cpu_kernels::linear`]).
    pub(crate) fn forward_cpu(&self, x: &Tensor, init: Option<&Tensor>) -> Result<Tensor> {
        cpu_kernels::linear(x, &self.wt, init)
    }
}
