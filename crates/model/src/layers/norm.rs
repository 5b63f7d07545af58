//! Norms over the last dimension, computed in f32: RMSNorm with a gain, and LayerNorm with a
//! gain and a bias (GPT-2).
use candle_core::{Device, Tensor};

use crate::backend::Backend;
use crate::weights::WeightSource;
use crate::Result;

/// `x / sqrt(mean(x²) + eps) · w`.
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
        Self::load_offset(src, name, width, eps, 0.0, device)
    }

    /// Loads a `[width]` weight and uses `offset + weight` as the gain (Gemma's HF checkpoints
    /// store `w` of a `(1 + w)` gain; its GGUF files store `1 + w`).
    pub(crate) fn load_offset(
        src: &mut dyn WeightSource,
        name: &str,
        width: usize,
        eps: f64,
        offset: f64,
        device: &Device,
    ) -> Result<Self> {
        let w = src.load_f32(name, &[width], device)?;
        Ok(RmsNorm {
            weight: if offset == 0.0 { w } else { (w + offset)? },
            eps: eps as f32,
        })
    }

    /// x: f32 `[N, width]` → the normalized, scaled rows.
    pub(crate) fn forward(&self, be: &Backend, x: &Tensor) -> Result<Tensor> {
        be.rms_norm(x, &self.weight, self.eps)
    }

    /// The gain.
    pub(crate) fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The epsilon.
    pub(crate) fn eps(&self) -> f32 {
        self.eps
    }
}

/// `(x − mean) / sqrt(var + eps) · w + b`, biased variance.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `{prefix}.weight` and `{prefix}.bias`, each `[width]`.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        width: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(LayerNorm {
            weight: src.load_f32(&format!("{prefix}.weight"), &[width], device)?,
            bias: src.load_f32(&format!("{prefix}.bias"), &[width], device)?,
            eps: eps as f32,
        })
    }
}

/// A block's norm.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    Rms(RmsNorm),
    Layer(LayerNorm),
}

impl Norm {
    /// x: f32 `[N, width]` → the norm's output.
    pub(crate) fn forward(&self, be: &Backend, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Rms(n) => n.forward(be, x),
            Norm::Layer(n) => Ok(be.layer_norm_pair(x, &n.weight, &n.bias, n.eps)?.1),
        }
    }

    /// `(normalized, output)`: the input normalized before the gain and bias
    /// (TransformerLens' `hook_normalized`) and the norm's output, in one pass.
    pub(crate) fn normalize_scale(&self, be: &Backend, h: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Norm::Rms(n) => be.rms_norm_pair(h, &n.weight, n.eps),
            Norm::Layer(n) => be.layer_norm_pair(h, &n.weight, &n.bias, n.eps),
        }
    }

    /// [`Norm::normalize_scale`] of `h = x + a`, returning `h` first.
    pub(crate) fn add_normalize_scale(
        &self,
        be: &Backend,
        x: &Tensor,
        a: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        match self {
            Norm::Rms(n) => be.add_rms_norm(x, a, &n.weight, n.eps),
            Norm::Layer(_) => {
                let h = be.add(x, a)?;
                let (normalized, scaled) = self.normalize_scale(be, &h)?;
                Ok((h, normalized, scaled))
            }
        }
    }
}
