//! The SwiGLU MLP: `down(silu(gate(x)) * up(x))`, with gate and up fused into one GEMM.
use candle_core::{Device, Tensor};

use crate::config::Config;
use crate::cpu_kernels;
use crate::linear::Linear;
use crate::weights::WeightSource;
use crate::Result;

/// A Llama MLP block.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    /// `[gate; up]` fused: `[d_model] → [2 * d_mlp]`.
    gate_up: Linear,
    down: Linear,
    d_mlp: usize,
    span: tracing::Span,
}

impl Mlp {
    /// Loads `{prefix}.gate_proj`, `up_proj`, `down_proj`.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        cfg: &Config,
        device: &Device,
    ) -> Result<Self> {
        let gate = format!("{prefix}.gate_proj.weight");
        let up = format!("{prefix}.up_proj.weight");
        let gate_up = Linear::load_fused(
            src,
            &[(&gate, cfg.d_mlp), (&up, cfg.d_mlp)],
            cfg.d_model,
            device,
        )?;
        let down_w = src.load(
            &format!("{prefix}.down_proj.weight"),
            &[cfg.d_model, cfg.d_mlp],
            device,
        )?;
        Ok(Mlp {
            gate_up,
            down: Linear::from_weight(&down_w)?,
            d_mlp: cfg.d_mlp,
            span: tracing::span!(tracing::Level::TRACE, "mlp"),
        })
    }

    /// x: f32 `[N, d_model]` → `[N, d_model]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _enter = self.span.enter();
        let gu = self.gate_up.forward(x)?;
        let gate = gu.narrow(1, 0, self.d_mlp)?;
        let up = gu.narrow(1, self.d_mlp, self.d_mlp)?;
        let h = (candle_nn::ops::silu(&gate)? * up)?;
        self.down.forward(&h)
    }

    /// [`Mlp::forward`] by the fused CPU kernels (CPU f32 only): SiLU·up reads gate and up from
    /// the fused GEMM output in place; with `residual`, `down` accumulates into a copy of it.
    pub(crate) fn forward_cpu(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let _enter = self.span.enter();
        let gu = self.gate_up.forward_cpu(x, None)?;
        let h = cpu_kernels::silu_mul(&gu, self.d_mlp)?;
        self.down.forward_cpu(&h, residual)
    }
}
