//! Grouped-query self-attention with rotate-half RoPE and a causal mask.
//!
//! Activations arrive packed (`[sum(lengths), ·]`, no padding). On the CPU, attention runs on
//! the packed rows too ([`crate::cpu_kernels::causal_attention`]). Elsewhere (CUDA) it uses
//! candle ops on a right-padded `[B, T_max]` layout: the fused q/k/v rows are gathered into it
//! ([`Padding`]), and the output rows gathered back. A causal mask alone keeps every real
//! position from seeing padding (padding only ever follows the real tokens), so no separate
//! padding mask is needed; padding slots hold a copy of a real row, so they stay finite, and are
//! never read back.
use candle_core::{Device, Tensor};

use crate::config::Config;
use crate::cpu_kernels::{self, Heads};
use crate::linear::Linear;
use crate::weights::WeightSource;
use crate::{rope, Result};

/// Per-forward inputs shared by every block.
pub(crate) enum AttnCtx {
    /// CPU f32: the fused kernels of [`crate::cpu_kernels`] on packed rows.
    Fused(Fused),
    /// candle ops on the padded layout (any device).
    Padded(Padded),
}

impl AttnCtx {
    /// The fused CPU path when `fused` (the caller has checked the device), else the padded one.
    pub(crate) fn new(
        lengths: &[usize],
        inv_freq: &[f32],
        device: &Device,
        fused: bool,
    ) -> Result<Self> {
        let t = lengths.iter().copied().max().unwrap_or(0);
        if fused {
            let (cos, sin) = rope::cos_sin_vecs(inv_freq, t);
            return Ok(AttnCtx::Fused(Fused {
                lengths: lengths.to_vec(),
                cos,
                sin,
            }));
        }
        let (cos, sin) = rope::cos_sin(inv_freq, t, device)?;
        Ok(AttnCtx::Padded(Padded {
            b: lengths.len(),
            t,
            cos,
            sin,
            mask: causal_mask(t, device)?,
            padding: Padding::new(lengths, t, device)?,
        }))
    }
}

/// Inputs of the fused CPU path.
pub(crate) struct Fused {
    /// Rows of each packed sequence.
    pub(crate) lengths: Vec<usize>,
    /// f32 `[max(lengths), head_dim / 2]`, row-major.
    pub(crate) cos: Vec<f32>,
    /// f32 `[max(lengths), head_dim / 2]`, row-major.
    pub(crate) sin: Vec<f32>,
}

/// Inputs of the padded (candle ops) path.
pub(crate) struct Padded {
    /// Batch size.
    pub(crate) b: usize,
    /// Padded sequence length.
    pub(crate) t: usize,
    /// f32 `[t, head_dim / 2]`.
    pub(crate) cos: Tensor,
    /// f32 `[t, head_dim / 2]`.
    pub(crate) sin: Tensor,
    /// f32 `[t, t]`: 0 where key ≤ query, −∞ above the diagonal.
    pub(crate) mask: Tensor,
    /// How packed rows map to the padded layout; `None` when every sequence has length `t`
    /// (then both layouts are the same).
    pub(crate) padding: Option<Padding>,
}

/// Gather indices between packed rows and the padded `[b * t]` layout.
pub(crate) struct Padding {
    /// u32 `[b * t]`: the packed row of each padded slot (padding slots: the sequence's first row).
    to_padded: Tensor,
    /// u32 `[sum(lengths)]`: the padded slot of each packed row.
    to_packed: Tensor,
}

impl Padding {
    pub(crate) fn new(lengths: &[usize], t: usize, device: &Device) -> Result<Option<Self>> {
        if lengths.iter().all(|&l| l == t) {
            return Ok(None);
        }
        let mut to_padded = Vec::with_capacity(lengths.len() * t);
        let mut to_packed = Vec::with_capacity(lengths.iter().sum());
        let mut start = 0usize;
        for (i, &l) in lengths.iter().enumerate() {
            for p in 0..t {
                to_padded.push((start + if p < l { p } else { 0 }) as u32);
            }
            to_packed.extend((0..l).map(|p| (i * t + p) as u32));
            start += l;
        }
        let n_padded = to_padded.len();
        let n_packed = to_packed.len();
        Ok(Some(Padding {
            to_padded: Tensor::from_vec(to_padded, n_padded, device)?,
            to_packed: Tensor::from_vec(to_packed, n_packed, device)?,
        }))
    }
}

/// A Llama attention block.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    /// `[q; k; v]` fused: `[d_model] → [(n_heads + 2 n_kv_heads) head_dim]`.
    qkv: Linear,
    o: Linear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    span: tracing::Span,
}

impl Attention {
    /// Loads `{prefix}.q_proj`, `k_proj`, `v_proj`, `o_proj`.
    pub(crate) fn load(
        src: &mut dyn WeightSource,
        prefix: &str,
        cfg: &Config,
        device: &Device,
    ) -> Result<Self> {
        let q_out = cfg.n_heads * cfg.head_dim;
        let kv_out = cfg.n_kv_heads * cfg.head_dim;
        let (q, k, v) = (
            format!("{prefix}.q_proj.weight"),
            format!("{prefix}.k_proj.weight"),
            format!("{prefix}.v_proj.weight"),
        );
        let qkv = Linear::load_fused(
            src,
            &[(&q, q_out), (&k, kv_out), (&v, kv_out)],
            cfg.d_model,
            device,
        )?;
        let o = src.load(
            &format!("{prefix}.o_proj.weight"),
            &[cfg.d_model, q_out],
            device,
        )?;
        Ok(Attention {
            qkv,
            o: Linear::from_weight(&o)?,
            n_heads: cfg.n_heads,
            n_kv_heads: cfg.n_kv_heads,
            head_dim: cfg.head_dim,
            span: tracing::span!(tracing::Level::TRACE, "attn"),
        })
    }

    fn heads(&self) -> Heads {
        Heads {
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
        }
    }

    /// x: f32 `[rows, d_model]` packed (normalized) → attention output after `o_proj`, `[rows, d_model]`.
    pub(crate) fn forward(&self, x: &Tensor, ctx: &Padded) -> Result<Tensor> {
        let _enter = self.span.enter();
        let qkv = self.qkv.forward(x)?;
        self.o.forward(&padded_attention(&qkv, ctx, self.heads())?)
    }

    /// [`Attention::forward`] by the fused CPU kernels (CPU f32 only), plus `residual` when
    /// given: `o_proj` then accumulates into a copy of it, which saves the separate add.
    pub(crate) fn forward_cpu(
        &self,
        x: &Tensor,
        ctx: &Fused,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let _enter = self.span.enter();
        let qkv = self.qkv.forward_cpu(x, None)?;
        let out =
            cpu_kernels::causal_attention(&qkv, &ctx.lengths, self.heads(), &ctx.cos, &ctx.sin)?;
        self.o.forward_cpu(&out, residual)
    }
}

/// Attention with candle ops on the padded layout: qkv `[rows, (nh + 2 nkv)·hd]` packed →
/// `[rows, nh·hd]` packed.
pub(crate) fn padded_attention(qkv: &Tensor, ctx: &Padded, heads: Heads) -> Result<Tensor> {
    let (b, t, hd) = (ctx.b, ctx.t, heads.head_dim);
    let (nh, nkv) = (heads.n_heads, heads.n_kv_heads);
    let rep = nh / nkv;
    let qkv = match &ctx.padding {
        Some(p) => qkv.index_select(&p.to_padded, 0)?,
        None => qkv.clone(),
    };
    // [b*t, heads*hd] → [b, heads, t, hd]
    let split = |start: usize, heads: usize| -> Result<Tensor> {
        Ok(qkv
            .narrow(1, start * hd, heads * hd)?
            .reshape((b, t, heads, hd))?
            .transpose(1, 2)?
            .contiguous()?)
    };
    let q = split(0, nh)?;
    let k = split(nh, nkv)?;
    let v = split(nh + nkv, nkv)?;
    let q = candle_nn::rotary_emb::rope(&q, &ctx.cos, &ctx.sin)?;
    let k = candle_nn::rotary_emb::rope(&k, &ctx.cos, &ctx.sin)?;
    // GQA without copying k/v: query head h uses kv head h / rep, so group the `rep` query
    // heads of each kv head along the row axis.
    let q = q.reshape((b, nkv, rep * t, hd))?;
    let scale = 1.0 / (hd as f64).sqrt();
    let scores = (q.matmul(&k.t()?)? * scale)?; // [b, nkv, rep*t, t]
    let scores = scores
        .reshape((b, nkv, rep, t, t))?
        .broadcast_add(&ctx.mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?.reshape((b, nkv, rep * t, t))?;
    let out = probs.matmul(&v)?; // [b, nkv, rep*t, hd]
    let out = out
        .reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * t, nh * hd))?;
    Ok(match &ctx.padding {
        Some(p) => out.index_select(&p.to_packed, 0)?,
        None => out,
    })
}

/// The causal mask: f32 `[t, t]`, 0 on and below the diagonal, −∞ above.
pub(crate) fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), device)?)
}
