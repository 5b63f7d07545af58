//! Grouped-query causal self-attention: q, k and v projections fused into one GEMM (with their
//! biases, if any), optional per-head q/k norms before RoPE, then scores, soft-cap, window and
//! softmax on the backend ([`Backend::attention`]), then the output projection.
use candle_core::{Device, Tensor};

use crate::backend::{AttnCtx, Backend, Heads, ScoreRule};
use crate::layers::linear::Linear;
use crate::layers::norm::RmsNorm;
use crate::weights::WeightSource;
use crate::Result;

/// An attention sublayer.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    /// `[q; k; v]` fused: `[d_model] → [(n_heads + 2 n_kv_heads) head_dim]`.
    qkv: Linear,
    o: Linear,
    /// RMSNorms over `head_dim` of each q and k head, before RoPE (Qwen3, Gemma 3).
    qk_norm: Option<(RmsNorm, RmsNorm)>,
    rule: ScoreRule,
    /// The context's RoPE table for this layer; `None`: no RoPE (learned positions).
    rope: Option<usize>,
    span: tracing::Span,
}

/// Whether the HF projections carry biases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Biases {
    /// `q_proj`, `k_proj`, `v_proj` (Qwen2).
    pub(crate) qkv: bool,
}

impl Attention {
    /// Loads `{prefix}.q_proj`, `k_proj`, `v_proj`, `o_proj` (HF names), scoring with
    /// `1/sqrt(head_dim)` and RoPE table 0; see the `with_*` methods for the rest.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        d_model: usize,
        heads: Heads,
        biases: Biases,
        device: &Device,
    ) -> Result<Self> {
        let q_out = heads.n_heads * heads.head_dim;
        let kv_out = heads.n_kv_heads * heads.head_dim;
        let name = |p: &str, kind: &str| format!("{prefix}.{p}_proj.{kind}");
        let (q, k, v) = (
            name("q", "weight"),
            name("k", "weight"),
            name("v", "weight"),
        );
        let bias_names = [name("q", "bias"), name("k", "bias"), name("v", "bias")];
        let bias_refs: Vec<&str> = bias_names.iter().map(String::as_str).collect();
        let qkv = Linear::load_fused(
            src,
            &[(&q, q_out), (&k, kv_out), (&v, kv_out)],
            d_model,
            biases.qkv.then_some(&bias_refs[..]),
            device,
        )?;
        let o = Linear::load(src, &name("o", "weight"), d_model, q_out, device)?;
        Ok(Self::from_projections(qkv, o, heads))
    }

    /// From projections already loaded: `qkv` producing `[q heads | k heads | v heads]` rows.
    pub(crate) fn from_projections(qkv: Linear, o: Linear, heads: Heads) -> Self {
        Attention {
            qkv,
            o,
            qk_norm: None,
            rule: ScoreRule {
                heads,
                scale: 1.0 / (heads.head_dim as f32).sqrt(),
                softcap: None,
                window: None,
            },
            rope: Some(0),
            span: tracing::span!(tracing::Level::TRACE, "attn"),
        }
    }

    /// Per-head q and k norms before RoPE.
    pub(crate) fn with_qk_norm(mut self, q_norm: RmsNorm, k_norm: RmsNorm) -> Self {
        self.qk_norm = Some((q_norm, k_norm));
        self
    }

    /// Another score rule (scale, soft-cap, sliding window).
    pub(crate) fn with_rule(mut self, rule: ScoreRule) -> Self {
        self.rule = rule;
        self
    }

    /// Another RoPE table of the context, or none.
    pub(crate) fn with_rope(mut self, rope: Option<usize>) -> Self {
        self.rope = rope;
        self
    }

    /// The sliding window this layer attends within, if any.
    pub(crate) fn window(&self) -> Option<usize> {
        self.rule.window
    }

    /// x: f32 `[rows, d_model]` packed (normalized) → (`z`, the heads' outputs before the output
    /// projection `[rows, n_heads·head_dim]` when `want_z`; `residual` + the projected output
    /// `[rows, d_model]`, `residual` zero when `None`).
    pub(crate) fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        residual: Option<&Tensor>,
        want_z: bool,
    ) -> Result<(Option<Tensor>, Tensor)> {
        let _enter = self.span.enter();
        let mut qkv = self.qkv.forward(be, x, None)?;
        if let Some((q_norm, k_norm)) = &self.qk_norm {
            qkv = self.norm_heads(be, &qkv, q_norm, k_norm)?;
        }
        let z = be.attention(&qkv, ctx, self.rule, self.rope)?;
        let out = self.o.forward(be, &z, residual)?;
        Ok((want_z.then_some(z), out))
    }

    /// The qkv rows with every q and k head normalized over `head_dim`.
    fn norm_heads(
        &self,
        be: &Backend,
        qkv: &Tensor,
        q_norm: &RmsNorm,
        k_norm: &RmsNorm,
    ) -> Result<Tensor> {
        be.rms_norm_qk_heads(
            qkv,
            self.rule.heads,
            (q_norm.weight(), k_norm.weight()),
            q_norm.eps(),
        )
    }
}
