//! MLPs: gated (`down(act(gate(x)) · up(x))`, gate and up fused into one GEMM; SwiGLU for
//! Llama and Qwen, GeGLU with tanh-GELU for Gemma) and plain (`proj(gelu(fc(x)))`, GPT-2).
use candle_core::{Device, Tensor};

use crate::backend::Backend;
use crate::layers::linear::Linear;
use crate::weights::WeightSource;
use crate::Result;

/// The activation of a gated MLP's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateAct {
    /// SiLU (`silu`).
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`).
    GeluTanh,
}

/// An MLP sublayer.
#[derive(Debug, Clone)]
pub(crate) enum Mlp {
    /// HF's `gate_proj`, `up_proj`, `down_proj`.
    Gated {
        /// `[gate; up]` fused: `[d_model] → [2 * d_mlp]`.
        gate_up: Linear,
        down: Linear,
        d_mlp: usize,
        act: GateAct,
    },
    /// `fc` → tanh-GELU → `proj`.
    Plain { fc: Linear, proj: Linear },
}

impl Mlp {
    /// Loads `{prefix}.gate_proj`, `up_proj`, `down_proj` (bias-free).
    pub(crate) fn load_gated(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_model: usize,
        d_mlp: usize,
        act: GateAct,
        device: &Device,
    ) -> Result<Self> {
        let gate = format!("{prefix}.gate_proj.weight");
        let up = format!("{prefix}.up_proj.weight");
        Ok(Mlp::Gated {
            gate_up: Linear::load_fused(
                src,
                &[(&gate, d_mlp), (&up, d_mlp)],
                d_model,
                None,
                device,
            )?,
            down: Linear::load(
                src,
                &format!("{prefix}.down_proj.weight"),
                d_model,
                d_mlp,
                device,
            )?,
            d_mlp,
            act,
        })
    }

    /// x: f32 `[N, d_model]` → `residual + mlp(x)`, `[N, d_model]` (`residual` zero when
    /// `None`; the fused kernels then accumulate the last projection into a copy of it).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let _span = tracing::trace_span!("mlp").entered();
        match self {
            Mlp::Gated {
                gate_up,
                down,
                d_mlp,
                act,
            } => {
                let h = be.gated_hidden(x, gate_up.weight_t(), *d_mlp, *act)?;
                down.forward(be, &h, residual)
            }
            Mlp::Plain { fc, proj } => {
                let h = be.gelu_tanh(&fc.forward(be, x, None)?)?;
                proj.forward(be, &h, residual)
            }
        }
    }
}
