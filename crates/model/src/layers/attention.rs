//! Grouped-query causal self-attention with rotate-half RoPE; q, k and v projections fused into
//! one GEMM. The score and softmax work runs on the backend ([`Backend::attention`]).
use candle_core::{Device, Tensor};

use crate::backend::{AttnCtx, Backend, Heads};
use crate::layers::linear::Linear;
use crate::weights::WeightSource;
use crate::Result;

/// An attention sublayer with HF's `q_proj`, `k_proj`, `v_proj`, `o_proj`.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    /// `[q; k; v]` fused: `[d_model] → [(n_heads + 2 n_kv_heads) head_dim]`.
    qkv: Linear,
    o: Linear,
    heads: Heads,
    span: tracing::Span,
}

impl Attention {
    /// Loads `{prefix}.q_proj`, `k_proj`, `v_proj`, `o_proj` (bias-free).
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_model: usize,
        heads: Heads,
        device: &Device,
    ) -> Result<Self> {
        let q_out = heads.n_heads * heads.head_dim;
        let kv_out = heads.n_kv_heads * heads.head_dim;
        let (q, k, v) = (
            format!("{prefix}.q_proj.weight"),
            format!("{prefix}.k_proj.weight"),
            format!("{prefix}.v_proj.weight"),
        );
        let qkv = Linear::load_fused(
            src,
            &[(&q, q_out), (&k, kv_out), (&v, kv_out)],
            d_model,
            device,
        )?;
        let o = Linear::load(
            src,
            &format!("{prefix}.o_proj.weight"),
            d_model,
            q_out,
            device,
        )?;
        Ok(Attention {
            qkv,
            o,
            heads,
            span: tracing::span!(tracing::Level::TRACE, "attn"),
        })
    }

    /// x: f32 `[rows, d_model]` packed (normalized) → `residual` + the attention output after
    /// `o_proj`, `[rows, d_model]` (`residual` zero when `None`).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let _enter = self.span.enter();
        let qkv = self.qkv.forward(be, x, None)?;
        let z = be.attention(&qkv, ctx, self.heads)?;
        self.o.forward(be, &z, residual)
    }
}
