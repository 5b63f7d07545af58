//! Decoder blocks: what a block hands back for the hooks, and the pre-norm block
//! `h = x + attn(norm1(x)); y = h + mlp(norm2(h))` (Llama and the families built like it).
use candle_core::Tensor;

use crate::backend::{AttnCtx, Backend};
use crate::layers::attention::Attention;
use crate::layers::mlp::GatedMlp;
use crate::layers::norm::RmsNorm;
use crate::Result;

/// Everything a block computes that a hook may want.
pub(crate) struct BlockOut {
    /// Residual stream after the block, `[N, d_model]`.
    pub(crate) resid_post: Tensor,
    /// What the attention sublayer adds to the residual stream (`None` when not asked for,
    /// see [`BlockHooks`]).
    pub(crate) attn_out: Option<Tensor>,
    /// The pre-MLP norm's input divided by its RMS, before the gain (`ln2.hook_normalized`, as
    /// TransformerLens and Llama Scope's transcoders define it; norm ≈ sqrt(d_model)).
    pub(crate) ln2: Tensor,
    /// What the MLP sublayer adds to the residual stream (`None` when not asked for).
    pub(crate) mlp_out: Option<Tensor>,
}

/// Which of a block's optional outputs the caller needs. Outputs not needed are never formed:
/// the fused CPU kernels accumulate `o_proj` and `down_proj` straight into the residual stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockHooks {
    pub(crate) attn_out: bool,
    pub(crate) mlp_out: bool,
}

/// One decoder block of any family.
pub(crate) trait DecoderBlock: std::fmt::Debug + Send + Sync {
    /// x: f32 `[rows, d_model]` packed, the residual stream entering the block.
    fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        hooks: BlockHooks,
    ) -> Result<BlockOut>;
}

/// The pre-norm block: `h = x + attn(norm1(x)); y = h + mlp(norm2(h))`.
#[derive(Debug, Clone)]
pub(crate) struct PreNormBlock {
    pub(crate) norm1: RmsNorm,
    pub(crate) attn: Attention,
    pub(crate) norm2: RmsNorm,
    pub(crate) mlp: GatedMlp,
    pub(crate) span: tracing::Span,
}

impl DecoderBlock for PreNormBlock {
    fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        hooks: BlockHooks,
    ) -> Result<BlockOut> {
        let _enter = self.span.enter();
        let xn = self.norm1.forward(be, x)?;
        let (h, attn_out, ln2, mlp_in) = if hooks.attn_out {
            let attn_out = self.attn.forward(be, &xn, ctx, None)?;
            let (h, ln2, mlp_in) = self.norm2.add_normalize_scale(be, x, &attn_out)?;
            (h, Some(attn_out), ln2, mlp_in)
        } else {
            let h = self.attn.forward(be, &xn, ctx, Some(x))?;
            let (ln2, mlp_in) = self.norm2.normalize_scale(be, &h)?;
            (h, None, ln2, mlp_in)
        };
        let (resid_post, mlp_out) = if hooks.mlp_out {
            let mlp_out = self.mlp.forward(be, &mlp_in, None)?;
            (be.add(&h, &mlp_out)?, Some(mlp_out))
        } else {
            (self.mlp.forward(be, &mlp_in, Some(&h))?, None)
        };
        Ok(BlockOut {
            resid_post,
            attn_out,
            ln2,
            mlp_out,
        })
    }
}
