//! RMSNorm with a gain: `x / sqrt(mean(x²) + eps) · w`, computed in f32.
use candle_core::{Device, Tensor};

use crate::backend::Backend;
use crate::weights::WeightSource;
use crate::Result;

/// An RMSNorm over the last dimension.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads a `[width]` gain.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        name: &str,
        width: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(RmsNorm {
            weight: src.load(name, &[width], device)?,
            eps: eps as f32,
        })
    }

    /// x: f32 `[N, width]` → the normalized, scaled rows.
    pub(crate) fn forward(&self, be: &Backend, x: &Tensor) -> Result<Tensor> {
        be.rms_norm(x, &self.weight, self.eps)
    }

    /// `(h / rms(h), h / rms(h) · w)`: the normalized input before the gain
    /// (TransformerLens' `hook_normalized`) and the norm's output, in one pass.
    pub(crate) fn normalize_scale(&self, be: &Backend, h: &Tensor) -> Result<(Tensor, Tensor)> {
        be.rms_norm_pair(h, &self.weight, self.eps)
    }

    /// [`RmsNorm::normalize_scale`] of `h = x + a`, returning `h` first, in one pass.
    pub(crate) fn add_normalize_scale(
        &self,
        be: &Backend,
        x: &Tensor,
        a: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        be.add_rms_norm(x, a, &self.weight, self.eps)
    }
}
