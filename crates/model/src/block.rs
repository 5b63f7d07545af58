//! One decoder block: `h = x + attn(rms1(x)); y = h + mlp(rms2(h))`.
use candle_core::{Device, Tensor};

use crate::attention::{Attention, AttnCtx, Fused};
use crate::config::Config;
use crate::cpu_kernels;
use crate::mlp::Mlp;
use crate::weights::WeightSource;
use crate::Result;

/// An RMSNorm with weight: `x / sqrt(mean(x²) + eps) * w`, computed in f32.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads a `[d_model]` weight.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        name: &str,
        cfg: &Config,
        device: &Device,
    ) -> Result<Self> {
        Ok(RmsNorm {
            weight: src.load(name, &[cfg.d_model], device)?,
            eps: cfg.rms_norm_eps as f32,
        })
    }

    /// x: f32 `[N, d_model]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps)?)
    }

    /// [`RmsNorm::forward`] by the fused CPU kernel (CPU f32 only).
    pub(crate) fn forward_cpu(&self, x: &Tensor) -> Result<Tensor> {
        cpu_kernels::rms_norm(x, &self.weight, self.eps)
    }

    /// `(h, h / rms(h), h / rms(h) · w)` for `h = x + a` in one pass (CPU f32 only).
    pub(crate) fn add_normalize_scale_cpu(
        &self,
        x: &Tensor,
        a: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        cpu_kernels::add_rms_norm(x, a, &self.weight, self.eps)
    }

    /// `(h / rms(h), h / rms(h) · w)` in one pass (CPU f32 only).
    pub(crate) fn normalize_scale_cpu(&self, h: &Tensor) -> Result<(Tensor, Tensor)> {
        cpu_kernels::rms_norm_pair(h, &self.weight, self.eps)
    }

    /// `x / rms(x)` without the gain, f32 `[N, d_model]` (TransformerLens' `hook_normalized`).
    pub(crate) fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        let ones = self.weight.ones_like()?;
        Ok(candle_nn::ops::rms_norm(x, &ones, self.eps)?)
    }

    /// Applies the gain to an output of [`RmsNorm::normalize`].
    pub(crate) fn scale(&self, normalized: &Tensor) -> Result<Tensor> {
        Ok(normalized.broadcast_mul(&self.weight)?)
    }
}

/// Everything a block computes that a hook may want.
pub(crate) struct BlockOut {
    /// Residual stream after the block, `[N, d_model]`.
    pub(crate) resid_post: Tensor,
    /// Attention output after `o_proj` (`None` when not asked for, see [`BlockHooks`]).
    pub(crate) attn_out: Option<Tensor>,
    /// Post-attention RMSNorm's normalized input before its gain (`ln2.hook_normalized`, as
    /// TransformerLens and Llama Scope's transcoders define it; norm ≈ sqrt(d_model)).
    pub(crate) ln2: Tensor,
    /// MLP output (`None` when not asked for, see [`BlockHooks`]).
    pub(crate) mlp_out: Option<Tensor>,
}

/// Which of a block's optional outputs the caller needs. On the fused CPU path the outputs
/// not needed are never formed: `o_proj` and `down_proj` accumulate straight into the residual
/// stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockHooks {
    pub(crate) attn_out: bool,
    pub(crate) mlp_out: bool,
}

/// A Llama decoder block.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
    span: tracing::Span,
}

impl Block {
    /// Loads `model.layers.{i}.*`.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        i: usize,
        cfg: &Config,
        device: &Device,
    ) -> Result<Self> {
        let p = format!("model.layers.{i}");
        Ok(Block {
            input_layernorm: RmsNorm::load(
                src,
                &format!("{p}.input_layernorm.weight"),
                cfg,
                device,
            )?,
            self_attn: Attention::load(src, &format!("{p}.self_attn"), cfg, device)?,
            post_attention_layernorm: RmsNorm::load(
                src,
                &format!("{p}.post_attention_layernorm.weight"),
                cfg,
                device,
            )?,
            mlp: Mlp::load(src, &format!("{p}.mlp"), cfg, device)?,
            span: tracing::span!(tracing::Level::TRACE, "block", layer = i),
        })
    }

    /// x: f32 `[rows, d_model]` packed, the residual stream entering the block.
    pub(crate) fn forward(&self, x: &Tensor, ctx: &AttnCtx, hooks: BlockHooks) -> Result<BlockOut> {
        let _enter = self.span.enter();
        let ctx = match ctx {
            AttnCtx::Fused(f) => return self.forward_cpu(x, f, hooks),
            AttnCtx::Padded(p) => p,
        };
        let attn_out = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, ctx)?;
        let h = (x + &attn_out)?;
        let ln2 = self.post_attention_layernorm.normalize(&h)?;
        let mlp_out = self
            .mlp
            .forward(&self.post_attention_layernorm.scale(&ln2)?)?;
        let resid_post = (&h + &mlp_out)?;
        Ok(BlockOut {
            resid_post,
            attn_out: Some(attn_out),
            ln2,
            mlp_out: Some(mlp_out),
        })
    }

    /// [`Block::forward`] with the fused CPU kernels: the same computation, each element-wise
    /// step one parallel pass, and the residual adds folded into `o_proj`/`down_proj` unless
    /// their outputs are hooked.
    fn forward_cpu(&self, x: &Tensor, ctx: &Fused, hooks: BlockHooks) -> Result<BlockOut> {
        let xn = self.input_layernorm.forward_cpu(x)?;
        let norm2 = &self.post_attention_layernorm;
        let (h, attn_out, ln2, mlp_in) = if hooks.attn_out {
            let attn_out = self.self_attn.forward_cpu(&xn, ctx, None)?;
            let (h, ln2, mlp_in) = norm2.add_normalize_scale_cpu(x, &attn_out)?;
            (h, Some(attn_out), ln2, mlp_in)
        } else {
            let h = self.self_attn.forward_cpu(&xn, ctx, Some(x))?;
            let (ln2, mlp_in) = norm2.normalize_scale_cpu(&h)?;
            (h, None, ln2, mlp_in)
        };
        let (resid_post, mlp_out) = if hooks.mlp_out {
            let mlp_out = self.mlp.forward_cpu(&mlp_in, None)?;
            (cpu_kernels::add(&h, &mlp_out)?, Some(mlp_out))
        } else {
            (self.mlp.forward_cpu(&mlp_in, Some(&h))?, None)
        };
        Ok(BlockOut {
            resid_post,
            attn_out,
            ln2,
            mlp_out,
        })
    }
}
