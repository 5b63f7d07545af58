//! One decoder block: `h = x + attn(rms1(x)); y = h + mlp(rms2(h))`.
use candle_core::{Device, Tensor};

use crate::attention::{Attention, AttnCtx};
use crate::config::Config;
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
    /// Attention output after `o_proj`.
    pub(crate) attn_out: Tensor,
    /// Post-attention RMSNorm's normalized input before its gain (`ln2.hook_normalized`, as
    /// TransformerLens and Llama Scope's transcoders define it; norm ≈ sqrt(d_model)).
    pub(crate) ln2: Tensor,
    /// MLP output.
    pub(crate) mlp_out: Tensor,
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

    /// x: f32 `[b * t, d_model]`, the residual stream entering the block.
    pub(crate) fn forward(&self, x: &Tensor, ctx: &AttnCtx) -> Result<BlockOut> {
        let _enter = self.span.enter();
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
            attn_out,
            ln2,
            mlp_out,
        })
    }
}
