//! Decoder blocks: what a block hands back for the hooks, the pre-norm block (Llama, Qwen,
//! GPT-2) and the sandwich block (Gemma 2 and 3).
use candle_core::Tensor;

use crate::backend::{AttnCtx, Backend};
use crate::layers::attention::Attention;
use crate::layers::mlp::Mlp;
use crate::layers::norm::Norm;
use crate::Result;

/// Everything a block computes that a hook may want.
pub(crate) struct BlockOut {
    /// Residual stream after the block, `[N, d_model]`.
    pub(crate) resid_post: Tensor,
    /// The attention heads' outputs before the output projection, heads concatenated
    /// (`attn.hook_z`; `None` when not asked for).
    pub(crate) z: Option<Tensor>,
    /// What the attention sublayer adds to the residual stream (`None` when not asked for,
    /// see [`BlockHooks`]).
    pub(crate) attn_out: Option<Tensor>,
    /// The pre-MLP norm's input normalized, before its gain (and bias) (`ln2.hook_normalized`,
    /// as TransformerLens and Llama Scope's transcoders define it).
    pub(crate) ln2: Tensor,
    /// The MLP's input: the pre-MLP norm's output (`mlp.hook_in`).
    pub(crate) mlp_in: Tensor,
    /// What the MLP sublayer adds to the residual stream (`None` when not asked for).
    pub(crate) mlp_out: Option<Tensor>,
}

/// Which of a block's optional outputs the caller needs. Outputs not needed are never formed:
/// the fused CPU kernels accumulate the output projections straight into the residual stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockHooks {
    pub(crate) z: bool,
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

    /// The sliding window the block's attention uses, if any.
    fn window(&self) -> Option<usize>;
}

/// The pre-norm block: `h = x + attn(norm1(x)); y = h + mlp(norm2(h))`.
#[derive(Debug, Clone)]
pub(crate) struct PreNormBlock {
    pub(crate) norm1: Norm,
    pub(crate) attn: Attention,
    pub(crate) norm2: Norm,
    pub(crate) mlp: Mlp,
}

impl DecoderBlock for PreNormBlock {
    fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        hooks: BlockHooks,
    ) -> Result<BlockOut> {
        let xn = self.norm1.forward(be, x)?;
        let (h, z, attn_out, ln2, mlp_in) = if hooks.attn_out {
            let (z, attn_out) = self.attn.forward(be, &xn, ctx, None, hooks.z)?;
            let (h, ln2, mlp_in) = self.norm2.add_normalize_scale(be, x, &attn_out)?;
            (h, z, Some(attn_out), ln2, mlp_in)
        } else {
            let (z, h) = self.attn.forward(be, &xn, ctx, Some(x), hooks.z)?;
            let (ln2, mlp_in) = self.norm2.normalize_scale(be, &h)?;
            (h, z, None, ln2, mlp_in)
        };
        let (resid_post, mlp_out) = if hooks.mlp_out {
            let mlp_out = self.mlp.forward(be, &mlp_in, None)?;
            (be.add(&h, &mlp_out)?, Some(mlp_out))
        } else {
            (self.mlp.forward(be, &mlp_in, Some(&h))?, None)
        };
        Ok(BlockOut {
            resid_post,
            z,
            attn_out,
            ln2,
            mlp_in,
            mlp_out,
        })
    }

    fn window(&self) -> Option<usize> {
        self.attn.window()
    }
}

/// Gemma's block, norms before and after each sublayer:
/// `h = x + post_attn_norm(attn(pre_attn_norm(x)))`,
/// `y = h + post_mlp_norm(mlp(pre_mlp_norm(h)))`. What a sublayer adds to the residual stream
/// (`hook_attn_out`, `hook_mlp_out`) is its post-norm's output.
#[derive(Debug, Clone)]
pub(crate) struct SandwichBlock {
    pub(crate) pre_attn_norm: Norm,
    pub(crate) attn: Attention,
    pub(crate) post_attn_norm: Norm,
    pub(crate) pre_mlp_norm: Norm,
    pub(crate) mlp: Mlp,
    pub(crate) post_mlp_norm: Norm,
}

impl DecoderBlock for SandwichBlock {
    fn forward(
        &self,
        be: &Backend,
        x: &Tensor,
        ctx: &AttnCtx,
        hooks: BlockHooks,
    ) -> Result<BlockOut> {
        let xn = self.pre_attn_norm.forward(be, x)?;
        let (z, a) = self.attn.forward(be, &xn, ctx, None, hooks.z)?;
        let attn_out = self.post_attn_norm.forward(be, &a)?;
        let (h, ln2, mlp_in) = self.pre_mlp_norm.add_normalize_scale(be, x, &attn_out)?;
        let m = self.mlp.forward(be, &mlp_in, None)?;
        let mlp_out = self.post_mlp_norm.forward(be, &m)?;
        let resid_post = be.add(&h, &mlp_out)?;
        Ok(BlockOut {
            resid_post,
            z,
            attn_out: hooks.attn_out.then_some(attn_out),
            ln2,
            mlp_in,
            mlp_out: hooks.mlp_out.then_some(mlp_out),
        })
    }

    fn window(&self) -> Option<usize> {
        self.attn.window()
    }
}
