//! The forward's non-GEMM work with candle's ops, for any device: attention on a right-padded
//! `[B, T_max]` layout, norms and activations as candle composes them.
//!
//! Activations arrive packed (`[sum(lengths), ·]`, no padding); attention gathers the fused
//! q/k/v rows into the padded layout ([`Padding`]) and the output rows back. A causal mask alone
//! keeps every real position from seeing padding (padding only ever follows the real tokens), so
//! no separate padding mask is needed; padding slots hold a copy of a real row, so they stay
//! finite, and are never read back.
use candle_core::{DType, Device, Tensor};

use super::cpu::ScoreRule;
use crate::Result;

/// Inputs of the padded attention, shared by every block of one forward.
pub(crate) struct Padded {
    /// Batch size.
    pub(crate) b: usize,
    /// Padded sequence length.
    pub(crate) t: usize,
    /// Per RoPE table: `[t, head_dim / 2]` cosines and sines, in the activations' dtype
    /// (computed in f32, as transformers does, then cast).
    pub(crate) ropes: Vec<(Tensor, Tensor)>,
    /// f32 `[t, t]`: 0 where key ≤ query, −∞ above the diagonal.
    pub(crate) mask: Tensor,
    /// Per sliding window: the causal mask that also hides keys `window` or more positions back.
    pub(crate) window_masks: Vec<(usize, Tensor)>,
    /// How packed rows map to the padded layout; `None` when every sequence has length `t`
    /// (then both layouts are the same).
    pub(crate) padding: Option<Padding>,
}

impl Padded {
    /// The context of a batch of sequences of `lengths`, one RoPE table per `ropes` entry
    /// (inverse frequencies) and one mask per sliding window in `windows`; activations in
    /// `dtype`.
    pub(crate) fn new(
        lengths: &[usize],
        ropes: &[Vec<f32>],
        windows: &[usize],
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let t = lengths.iter().copied().max().unwrap_or(0);
        Ok(Padded {
            b: lengths.len(),
            t,
            ropes: ropes
                .iter()
                .map(|f| {
                    let (cos, sin) = crate::layers::rope::cos_sin(f, t, device)?;
                    Ok((cos.to_dtype(dtype)?, sin.to_dtype(dtype)?))
                })
                .collect::<Result<_>>()?,
            mask: causal_mask(t, None, device)?,
            window_masks: windows
                .iter()
                .map(|&w| Ok((w, causal_mask(t, Some(w), device)?)))
                .collect::<Result<_>>()?,
            padding: Padding::new(lengths, t, device)?,
        })
    }
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

/// Bytes of f32 attention scores one group of sequences may hold at once: 512 MiB. Scores are
/// `[b, heads, t, t]`; at Llama-3.1-8B shapes (32 heads, t = 1,024) that is 128 MiB per
/// sequence, so a batch of 256 sequences would need 32 GiB. Sequences are therefore attended in
/// groups (each group's scores are formed, softmaxed and consumed before the next): memory is
/// bounded by the group, not the batch, and the GEMMs stay large enough to fill a GPU.
const SCORE_BYTES_PER_GROUP: usize = 512 << 20;

/// Attention on the padded layout: qkv `[rows, (nh + 2 nkv)·hd]` packed → `[rows, nh·hd]`
/// packed, scored as `rule` says, q and k rotated by RoPE table `rope` of the context (none:
/// learned positions). Sequences are attended in groups of at most
/// [`SCORE_BYTES_PER_GROUP`] of scores.
pub(crate) fn padded_attention(
    qkv: &Tensor,
    ctx: &Padded,
    rule: ScoreRule,
    rope: Option<usize>,
) -> Result<Tensor> {
    grouped_attention(qkv, ctx, rule, rope, SCORE_BYTES_PER_GROUP)
}

/// [`padded_attention`] with groups of at most `score_bytes` of f32 scores.
fn grouped_attention(
    qkv: &Tensor,
    ctx: &Padded,
    rule: ScoreRule,
    rope: Option<usize>,
    score_bytes: usize,
) -> Result<Tensor> {
    let (b, t) = (ctx.b, ctx.t);
    let per_seq = rule.heads.n_heads * t * t * 4;
    let group = (score_bytes / per_seq.max(1)).clamp(1, b.max(1));
    let qkv = match &ctx.padding {
        Some(p) => qkv.index_select(&p.to_padded, 0)?,
        None => qkv.clone(),
    };
    let mut outs = Vec::with_capacity(b.div_ceil(group));
    let mut start = 0;
    while start < b {
        let g = group.min(b - start);
        let part = qkv.narrow(0, start * t, g * t)?;
        outs.push(attend_group(&part, g, ctx, rule, rope)?);
        start += g;
    }
    let out = if outs.len() == 1 {
        outs.pop().expect("one group")
    } else {
        Tensor::cat(&outs, 0)?
    };
    Ok(match &ctx.padding {
        Some(p) => out.index_select(&p.to_packed, 0)?,
        None => out,
    })
}

/// Attention of `b` padded sequences: qkv `[b·t, (nh + 2 nkv)·hd]` → `[b·t, nh·hd]`.
fn attend_group(
    qkv: &Tensor,
    b: usize,
    ctx: &Padded,
    rule: ScoreRule,
    rope: Option<usize>,
) -> Result<Tensor> {
    let heads = rule.heads;
    let (t, hd) = (ctx.t, heads.head_dim);
    let (nh, nkv) = (heads.n_heads, heads.n_kv_heads);
    let rep = nh / nkv;
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
    let (q, k) = match rope {
        Some(i) => {
            let (cos, sin) = &ctx.ropes[i];
            (
                candle_nn::rotary_emb::rope(&q, cos, sin)?,
                candle_nn::rotary_emb::rope(&k, cos, sin)?,
            )
        }
        None => (q, k),
    };
    // GQA without copying k/v: query head h uses kv head h / rep, so group the `rep` query
    // heads of each kv head along the row axis.
    let q = q.reshape((b, nkv, rep * t, hd))?;
    let mut scores = (q.matmul(&k.t()?)? * rule.scale as f64)?; // [b, nkv, rep*t, t]
    if let Some(cap) = rule.softcap {
        scores = ((scores / cap as f64)?.tanh()? * cap as f64)?;
    }
    let mask = match rule.window {
        None => &ctx.mask,
        Some(w) => ctx
            .window_masks
            .iter()
            .find(|(mw, _)| *mw == w)
            .map(|(_, m)| m)
            .ok_or_else(|| candle_core::Error::Msg(format!("no mask for window {w}")))?,
    };
    // The mask and the softmax in f32 whatever the activations' dtype (transformers' eager
    // attention: `softmax(..., dtype=float32).to(query.dtype)`).
    let scores = scores
        .to_dtype(DType::F32)?
        .reshape((b, nkv, rep, t, t))?
        .broadcast_add(mask)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?
        .to_dtype(v.dtype())?
        .reshape((b, nkv, rep * t, t))?;
    let out = probs.matmul(&v)?; // [b, nkv, rep*t, hd]
    Ok(out
        .reshape((b, nh, t, hd))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * t, nh * hd))?)
}

/// The causal mask: f32 `[t, t]`, 0 on and below the diagonal, −∞ above; with a `window`,
/// also −∞ for keys `window` or more positions before the query.
pub(crate) fn causal_mask(t: usize, window: Option<usize>, device: &Device) -> Result<Tensor> {
    let w = window.unwrap_or(usize::MAX);
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..t).map(move |j| {
                if j > i || i - j >= w {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), device)?)
}

/// `(x / rms(x), x / rms(x) · w)`: the normalized input (TransformerLens' `hook_normalized`)
/// and the norm's output.
pub(crate) fn rms_norm_pair(x: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let normalized = candle_nn::ops::rms_norm(x, &w.ones_like()?, eps)?;
    let scaled = normalized.broadcast_mul(w)?;
    Ok((normalized, scaled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Heads;

    /// Attending the batch in groups (here one sequence at a time) gives what one group gives.
    #[test]
    fn grouped_attention_equals_one_group() {
        let heads = Heads {
            n_heads: 4,
            n_kv_heads: 2,
            head_dim: 8,
        };
        let rule = ScoreRule {
            heads,
            scale: 0.35,
            softcap: Some(20.0),
            window: None,
        };
        let lengths = [5, 3, 7, 1];
        let rows: usize = lengths.iter().sum();
        let width = (4 + 2 * 2) * 8;
        let qkv = Tensor::randn(0f32, 1.0, (rows, width), &Device::Cpu).unwrap();
        let inv_freq: Vec<f32> = (0..4)
            .map(|i| 1.0 / 10_000f32.powf(i as f32 / 4.0))
            .collect();
        let ctx = Padded::new(&lengths, &[inv_freq], &[], &Device::Cpu, DType::F32).unwrap();
        let whole = grouped_attention(&qkv, &ctx, rule, Some(0), usize::MAX).unwrap();
        let one_by_one = grouped_attention(&qkv, &ctx, rule, Some(0), 1).unwrap();
        let diff = (whole - one_by_one)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "max difference {diff}");
    }
}
