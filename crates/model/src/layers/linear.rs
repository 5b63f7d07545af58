//! A linear layer holding its weight pre-transposed (`[in, out]`, contiguous), so the product is
//! one row-major GEMM `x[N, in] · W^T`, with an optional bias.
use candle_core::{Device, Tensor};

use crate::backend::Backend;
use crate::weights::WeightSource;
use crate::Result;

/// `y = x W^T + b` for an HF weight `W` of shape `[out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    /// f32 `[in, out]`, contiguous.
    wt: Tensor,
    /// f32 `[out]`.
    bias: Option<Tensor>,
}

impl Linear {
    /// Builds from an HF-orientation weight `[out, in]`.
    pub(crate) fn from_weight(w: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Linear {
            wt: w.t()?.contiguous()?,
            bias,
        })
    }

    /// Loads the weight `name`, `[d_out, d_in]`, without bias.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        name: &str,
        d_out: usize,
        d_in: usize,
        device: &Device,
    ) -> Result<Self> {
        Self::from_weight(&src.load(name, &[d_out, d_in], device)?, None)
    }

    /// Loads a GPT-2 `Conv1D`: `{prefix}.weight` stored `[in, out]` and `{prefix}.bias` `[out]`.
    pub(crate) fn load_conv1d(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        device: &Device,
    ) -> Result<Self> {
        Ok(Linear {
            wt: src
                .load(&format!("{prefix}.weight"), &[d_in, d_out], device)?
                .contiguous()?,
            bias: Some(src.load(&format!("{prefix}.bias"), &[d_out], device)?),
        })
    }

    /// Loads the weights `names` (each `[out_i, in]`) and concatenates them along `out`, so
    /// several projections of the same input run as one GEMM; with `biases`, their `[out_i]`
    /// biases likewise (the names in the same order).
    pub(crate) fn load_fused(
        src: &mut dyn WeightSource,
        names: &[(&str, usize)],
        d_in: usize,
        biases: Option<&[&str]>,
        device: &Device,
    ) -> Result<Self> {
        let ws = names
            .iter()
            .map(|(n, out)| src.load(n, &[*out, d_in], device))
            .collect::<Result<Vec<_>>>()?;
        let bias = match biases {
            None => None,
            Some(bs) => {
                let bs = bs
                    .iter()
                    .zip(names)
                    .map(|(b, (_, out))| src.load(b, &[*out], device))
                    .collect::<Result<Vec<_>>>()?;
                Some(Tensor::cat(&bs, 0)?)
            }
        };
        let w = if ws.len() == 1 {
            ws[0].clone()
        } else {
            Tensor::cat(&ws, 0)?
        };
        Self::from_weight(&w, bias)
    }

    /// `W^T`, `[in, out]` (a gated MLP's fused gate|up, which has no bias, is applied by the
    /// backend together with its activation).
    pub(crate) fn weight_t(&self) -> &Tensor {
        debug_assert!(
            self.bias.is_none(),
            "weight_t of a linear layer with a bias"
        );
        &self.wt
    }

    /// `residual + x W^T + b` for x: f32 `[N, in]` (`residual` `[N, out]`, zero when `None`).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let y = be.linear(x, &self.wt, residual)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}
