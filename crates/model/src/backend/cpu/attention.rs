//! Causal grouped-query self-attention of packed sequences, with rotate-half RoPE applied
//! straight from the fused qkv rows.
use std::mem::MaybeUninit;

use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};

use super::rows::{exp, max_of, sum};
use super::{assume_init, par_filled, rows_per_task, uninit_buffer};

/// Head layout of the fused qkv rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

/// How one attention layer scores: the head layout, the score scale, an optional soft-cap and
/// an optional sliding window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScoreRule {
    pub(crate) heads: Heads,
    /// Multiplies `q·k` (`1/sqrt(head_dim)` unless the family says otherwise).
    pub(crate) scale: f32,
    /// `cap · tanh(s / cap)` of the scaled scores (Gemma 2), before the mask.
    pub(crate) softcap: Option<f32>,
    /// A query sees only the last `window` positions, itself included (sliding-window layers).
    pub(crate) window: Option<usize>,
}

/// A RoPE table: `cos`/`sin` `[≥ max(lengths), hd/2]`, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rope<'a> {
    pub(crate) cos: &'a [f32],
    pub(crate) sin: &'a [f32],
}

/// Query rows per attention work item. Items are (sequence, block of queries) and own disjoint
/// output rows, so they run in parallel without sharing writes. 32 queries keep each BLAS call
/// (`32 × T × head_dim`) within OpenBLAS's single-thread size up to T = 128 at head_dim 64, so
/// calls from several rayon workers do not queue on its threaded driver (64 measured ~2x
/// slower at T = 128; 16 no better than 32).
const QUERY_BLOCK: usize = 32;

/// Query rows per work item at `head_dim`: [`QUERY_BLOCK`] at 64, fewer for wider heads so that
/// each BLAS call stays as small (Gemma's 256-wide heads: 8 queries; 32 made OpenBLAS go
/// multi-threaded inside every rayon worker, and the forward spent a third of its time in
/// OpenBLAS's thread hand-off).
fn query_block(head_dim: usize) -> usize {
    (QUERY_BLOCK * 64 / head_dim.max(1)).clamp(4, QUERY_BLOCK)
}

/// Causal self-attention of packed sequences.
///
/// `qkv: [rows, (nh + 2·nkv)·hd]` is the fused projection output, each row `[q heads | k heads
/// | v heads]`, sequences one after another (`lengths`); `rope` rotates q and k (none: the
/// model has learned positions). Returns `[rows, nh·hd]`, query head `h` attending with kv head
/// `h / (nh / nkv)`, scores as `rule` says, each position seeing itself and earlier ones of its
/// own sequence only (within the window, if any). No padding exists, so nothing else is masked.
///
/// Scores and the weighted sum of each (query block, head) are two sgemm calls reading head
/// slices of the row-major buffers through their leading dimension. A direct dot-product loop
/// was tried for short sequences and measured slower than OpenBLAS's small-matrix kernel even at
/// 8 keys (and at most ~20 % faster on the portable fallback, below 32 keys), so there is none.
pub(crate) fn causal_attention_slice(
    qkv: &[f32],
    lengths: &[usize],
    rule: ScoreRule,
    rope: Option<Rope>,
) -> Vec<f32> {
    let Heads {
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: hd,
    } = rule.heads;
    assert!(nkv > 0 && nh % nkv == 0 && hd % 2 == 0 && hd > 0);
    let rep = nh / nkv;
    let half = hd / 2;
    let width = (nh + 2 * nkv) * hd; // qkv row
    let qk_width = (nh + nkv) * hd; // rotated q|k row
    let out_width = nh * hd;
    let rows: usize = lengths.iter().sum();
    let t_max = lengths.iter().copied().max().unwrap_or(0);
    assert_eq!(
        qkv.len(),
        rows * width,
        "qkv is not [rows, (nh + 2 nkv) hd]"
    );
    if let Some(r) = rope {
        assert!(r.cos.len() >= t_max * half && r.sin.len() >= t_max * half);
    }

    // 1. RoPE on every q and k head, into a scratch `[rows, (nh + nkv)·hd]`; v is read in place.
    let pos: Vec<usize> = lengths.iter().flat_map(|&l| 0..l).collect();
    let mut qk = uninit_buffer(rows * qk_width);
    let chunk = rows_per_task(rows, qk_width);
    qk.spare_capacity_mut()[..rows * qk_width]
        .par_chunks_mut(chunk * qk_width)
        .zip(qkv.par_chunks(chunk * width))
        .zip(pos.par_chunks(chunk))
        .for_each(|((dst, src), pos)| {
            for ((dst, src), &p) in dst
                .chunks_exact_mut(qk_width)
                .zip(src.chunks_exact(width))
                .zip(pos)
            {
                let heads = dst
                    .chunks_exact_mut(hd)
                    .zip(src[..qk_width].chunks_exact(hd));
                match rope {
                    Some(r) => {
                        let (c, s) = (
                            &r.cos[p * half..(p + 1) * half],
                            &r.sin[p * half..(p + 1) * half],
                        );
                        for (dst, src) in heads {
                            rope_head(dst, src, c, s);
                        }
                    }
                    None => {
                        for (dst, src) in heads {
                            for (d, &x) in dst.iter_mut().zip(src) {
                                d.write(x);
                            }
                        }
                    }
                }
            }
        });
    // SAFETY: the row chunks cover `qk[..rows·qk_width]`; `rope_head` writes all of each head
    // and the heads cover each row.
    unsafe { assume_init(&mut qk, rows * qk_width) };

    // 2. Work items: (sequence start, query block) in row order, each with its output rows.
    let mut out = par_filled(rows * out_width, None);
    let mut items = Vec::new();
    {
        let mut rest: &mut [f32] = &mut out;
        let mut start = 0;
        for &len in lengths {
            let mut i0 = 0;
            while i0 < len {
                let i1 = (i0 + query_block(hd)).min(len);
                let (mine, tail) = rest.split_at_mut((i1 - i0) * out_width);
                items.push((start, i0, i1, mine));
                rest = tail;
                i0 = i1;
            }
            start += len;
        }
    }
    let scale = rule.scale;
    items.into_par_iter().for_each(|(start, i0, i1, out)| {
        // Queries i0..i1 of the sequence see keys 0..i1.
        let (qb, n_keys) = (i1 - i0, i1);
        // Probabilities of one head, `[qb, n_keys]`; reused across heads.
        let mut p = vec![0f32; qb * n_keys];
        for h in 0..nh {
            let g = h / rep;
            let q = Mat {
                data: &qk[(start + i0) * qk_width + h * hd..],
                ld: qk_width,
                trans: false,
            };
            let k_t = Mat {
                data: &qk[start * qk_width + (nh + g) * hd..],
                ld: qk_width,
                trans: true,
            };
            let v = Mat {
                data: &qkv[start * width + (nh + nkv + g) * hd..],
                ld: width,
                trans: false,
            };
            sgemm(qb, n_keys, hd, scale, q, k_t, 0.0, &mut p, n_keys);
            if let Some(cap) = rule.softcap {
                softcap(&mut p, cap);
            }
            for (r, row) in p.chunks_exact_mut(n_keys).enumerate() {
                let i = i0 + r; // the query's position
                let first = rule.window.map_or(0, |w| (i + 1).saturating_sub(w));
                softmax_causal(row, first, i + 1);
            }
            let o = &mut out[h * hd..];
            sgemm(
                qb,
                hd,
                n_keys,
                1.0,
                Mat::new(&p, n_keys),
                v,
                0.0,
                o,
                out_width,
            );
        }
    });
    out
}

/// Rotate-half RoPE of one head (HF's `apply_rotary_pos_emb`, candle's `rope`):
/// `dst[i] = x[i]·cos[i] − x[i+h]·sin[i]`, `dst[i+h] = x[i]·sin[i] + x[i+h]·cos[i]`.
#[inline(always)]
fn rope_head(dst: &mut [MaybeUninit<f32>], src: &[f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    let (x1, x2) = src.split_at(half);
    let (d1, d2) = dst.split_at_mut(half);
    for i in 0..half {
        d1[i].write(x1[i] * cos[i] - x2[i] * sin[i]);
        d2[i].write(x1[i] * sin[i] + x2[i] * cos[i]);
    }
}

/// `cap · tanh(s / cap)` in place, with `tanh(y) = 1 − 2 / (e^{2y} + 1)` so the loop
/// vectorises.
fn softcap(scores: &mut [f32], cap: f32) {
    let inv = 1.0 / cap;
    for s in scores.iter_mut() {
        let e = exp(2.0 * *s * inv);
        *s = cap * (1.0 - 2.0 / (e + 1.0));
    }
}

/// Stable softmax over `row[first..valid]` in place; the keys before `first` (outside the
/// window) and from `valid` on (future keys) set to 0 so that the block's `P·V` product ignores
/// them.
#[inline(always)]
fn softmax_causal(row: &mut [f32], first: usize, valid: usize) {
    let (row, masked) = row.split_at_mut(valid);
    let (before, live) = row.split_at_mut(first);
    before.fill(0.0);
    // Separate passes, each vectorisable: a running sum inside the exp loop would serialise it.
    let max = max_of(live);
    for s in live.iter_mut() {
        *s = exp(*s - max);
    }
    let inv = 1.0 / sum(live);
    live.iter_mut().for_each(|s| *s *= inv);
    masked.fill(0.0);
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{randn, rel_err};
    use super::super::{causal_attention, tensor};
    use super::*;
    use crate::backend::candle_ops::{padded_attention, Padded};
    use candle_core::{DType, Device, Tensor};

    /// The candle (padded) path on the same qkv, for comparison.
    fn reference(
        qkv: &Tensor,
        lengths: &[usize],
        rule: ScoreRule,
        inv_freq: Option<&[f32]>,
    ) -> Tensor {
        let ropes: Vec<Vec<f32>> = inv_freq.into_iter().map(<[f32]>::to_vec).collect();
        let windows: Vec<usize> = rule.window.into_iter().collect();
        let padded = Padded::new(
            lengths,
            &ropes,
            &windows,
            &Device::Cpu,
            candle_core::DType::F32,
        )
        .unwrap();
        padded_attention(qkv, &padded, rule, inv_freq.map(|_| 0)).unwrap()
    }

    fn check_attention(lengths: &[usize], rule: ScoreRule, with_rope: bool) {
        let heads = rule.heads;
        let rows: usize = lengths.iter().sum();
        let w = (heads.n_heads + 2 * heads.n_kv_heads) * heads.head_dim;
        let qkv = randn(rows, w, rows as u64 + 7);
        let half = heads.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / 10_000f32.powf(2.0 * i as f32 / heads.head_dim as f32))
            .collect();
        let t = *lengths.iter().max().unwrap();
        let (cos, sin) = crate::layers::rope::cos_sin_vecs(&inv_freq, t);
        let rope = with_rope.then_some(Rope {
            cos: &cos,
            sin: &sin,
        });
        let expected = reference(&qkv, lengths, rule, with_rope.then_some(&inv_freq[..]));
        let qkv_v = qkv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let out = causal_attention_slice(&qkv_v, lengths, rule, rope);
        let out = tensor(out, rows, heads.n_heads * heads.head_dim).unwrap();
        let e = rel_err(&out, &expected);
        assert!(e < 2e-6, "{lengths:?} {rule:?}: {e}");
        // The tensor entry point agrees with the slice kernel.
        let out = causal_attention(&qkv, lengths, rule, rope).unwrap();
        assert!(rel_err(&out, &expected) < 2e-6);
        assert_eq!(out.dtype(), DType::F32);
    }

    #[test]
    fn attention_matches_candle_padded_path() {
        let gqa = Heads {
            n_heads: 6,
            n_kv_heads: 2,
            head_dim: 16,
        };
        let mha = Heads {
            n_heads: 3,
            n_kv_heads: 3,
            head_dim: 8,
        };
        let mqa = Heads {
            n_heads: 4,
            n_kv_heads: 1,
            head_dim: 64,
        };
        for heads in [gqa, mha, mqa] {
            let plain = ScoreRule {
                heads,
                scale: 1.0 / (heads.head_dim as f32).sqrt(),
                softcap: None,
                window: None,
            };
            // Gemma-style: another scale, a soft-cap that binds, a window shorter than most
            // sequences; and no RoPE (GPT-2).
            let gemma = ScoreRule {
                scale: 0.3,
                softcap: Some(1.5),
                window: Some(5),
                ..plain
            };
            for (rule, rope) in [(plain, true), (gemma, true), (plain, false)] {
                check_attention(&[1], rule, rope);
                check_attention(&[5, 1, 37, 64, 70], rule, rope);
                check_attention(&[33, 33], rule, rope); // equal lengths: no padding
                check_attention(&[1, 1, 2], rule, rope);
                check_attention(&[100, 31, 32], rule, rope);
            }
        }
    }
}
