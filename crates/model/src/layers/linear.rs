//! A bias-free linear layer holding its weight pre-transposed (`[in, out]`, contiguous), so the
//! product is one row-major GEMM `x[N, in] · W^T`.
use candle_core::{Device, Tensor};

use crate::backend::Backend;
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

    /// Loads the weight `name`, `[d_out, d_in]`.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        name: &str,
        d_out: usize,
        d_in: usize,
        device: &Device,
    ) -> Result<Self> {
        Self::from_weight(&src.load(name, &[d_out, d_in], device)?)
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

    /// `residual + x W^T` for x: f32 `[N, in]` (`residual` `[N, out]`, zero when `None`).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        be.linear(x, &self.wt, residual)
    }
}
