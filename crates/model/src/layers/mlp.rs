//! The gated MLP (SwiGLU): `down(silu(gate(x)) · up(x))`, gate and up fused into one GEMM.
use candle_core::{Device, Tensor};

use crate::backend::Backend;
use crate::layers::linear::Linear;
use crate::weights::WeightSource;
use crate::Result;

/// A gated MLP with HF's `gate_proj`, `up_proj`, `down_proj`.
#[derive(Debug, Clone)]
pub(crate) struct GatedMlp {
    /// `[gate; up]` fused: `[d_model] → [2 * d_mlp]`.
    gate_up: Linear,
    down: Linear,
    d_mlp: usize,
    span: tracing::Span,
}

impl GatedMlp {
    /// Loads `{prefix}.gate_proj`, `up_proj`, `down_proj` (bias-free).
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_model: usize,
        d_mlp: usize,
        device: &Device,
    ) -> Result<Self> {
        let gate = format!("{prefix}.gate_proj.weight");
        let up = format!("{prefix}.up_proj.weight");
        Ok(GatedMlp {
            gate_up: Linear::load_fused(src, &[(&gate, d_mlp), (&up, d_mlp)], d_model, device)?,
            down: Linear::load(
                src,
                &format!("{prefix}.down_proj.weight"),
                d_model,
                d_mlp,
                device,
            )?,
            d_mlp,
            span: tracing::span!(tracing::Level::TRACE, "mlp"),
        })
    }

    /// x: f32 `[N, d_model]` → `residual + mlp(x)`, `[N, d_model]` (`residual` zero when
    /// `None`; the fused kernels then accumulate `down` into a copy of it).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let _enter = self.span.enter();
        let gu = self.gate_up.forward(be, x, None)?;
        let h = be.silu_mul(&gu, self.d_mlp)?;
        self.down.forward(be, &h, residual)
    }
}
