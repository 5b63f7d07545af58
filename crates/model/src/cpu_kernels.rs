//! Fused f32 CPU kernels for the forward's non-GEMM work: RMSNorm, residual add + RMSNorm,
//! SiLU(gate)·up, causal GQA attention with RoPE straight from the packed qkv rows, and
//! projections that accumulate into the residual stream ([`linear`]).
//!
//! Why: candle runs each element-wise op as its own (mostly single-threaded) pass with a fresh
//! zeroed buffer, and attention needed a padded `[B, T_max]` layout plus head transposes; on the
//! CPU that was ~45 % of the forward. Here each kernel is one parallel (rayon) pass over rows
//! that writes its output once, and attention reads head slices of the qkv rows in place.
//!
//! Numerics follow the candle path up to float rounding: sums use several partial
//! accumulators, RMSNorm multiplies by `1/rms` (as HF does) instead of dividing, and `exp` is a
//! polynomial ([`exp`]) within 1 ulp of the correctly rounded value, so that the loops
//! vectorise.
//!
//! These run only for CPU f32 tensors; other devices keep candle's ops (see `Block::forward`).
use std::mem::MaybeUninit;

use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};

use crate::{Error, Result};

/// Whether the forward on a CPU device uses these kernels. `SCOPEDEX_CPU_KERNELS=off` falls back
/// to candle's ops (for A/B measurements and for bisecting a numerical difference).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        !matches!(
            std::env::var("SCOPEDEX_CPU_KERNELS").as_deref(),
            Ok("off" | "0" | "false")
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Tensor plumbing

/// Runs `f` on the f32 elements of a CPU tensor, in row-major order (copying only when the
/// tensor is not contiguous), holding the tensor's storage read lock meanwhile.
fn with_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if !t.is_contiguous() {
        return with_slice(&t.contiguous()?, f);
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::BadInput(
            "fused CPU kernel given a non-CPU tensor".into(),
        ));
    };
    let all = cpu.as_slice::<f32>()?;
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| Error::BadInput("fused CPU kernel given a strided tensor".into()))?;
    Ok(f(&all[a..b]))
}

/// `[rows, width]` of a rank-2 tensor.
fn dims2(t: &Tensor) -> Result<(usize, usize)> {
    Ok(t.dims2()?)
}

fn tensor(data: Vec<f32>, rows: usize, width: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, (rows, width), &Device::Cpu)?)
}

/// Rows per rayon task for a row-wise kernel over `[rows, width]`: about four tasks per thread
/// for balance, but at least ~4K elements each so that scheduling stays negligible.
fn rows_per_task(rows: usize, width: usize) -> usize {
    let width = width.max(1);
    let balanced = rows.div_ceil(4 * rayon::current_num_threads());
    let min_rows = (4096 / width).max(1);
    balanced.max(min_rows).max(1)
}

/// An empty buffer with room for `len` elements, for a kernel that writes every one of them
/// through `spare_capacity_mut()` before [`assume_init`]: zeroing buffers that are about to be
/// overwritten would be one more pass over memory.
fn uninit_buffer(len: usize) -> Vec<f32> {
    Vec::with_capacity(len)
}

/// A copy of `src`, or `len` zeros when `None`, written by all rayon threads: the GEMM outputs
/// are large, and one thread filling them would leave the other cores idle.
fn par_filled(len: usize, src: Option<&[f32]>) -> Vec<f32> {
    let mut v = uninit_buffer(len);
    let chunk = rows_per_task(len.div_ceil(1024), 1024) * 1024;
    let dst = v.spare_capacity_mut()[..len].par_chunks_mut(chunk);
    match src {
        Some(src) => {
            assert_eq!(src.len(), len);
            dst.zip(src.par_chunks(chunk)).for_each(|(d, s)| {
                for (d, &s) in d.iter_mut().zip(s) {
                    d.write(s);
                }
            })
        }
        None => dst.for_each(|d| {
            for d in d {
                d.write(0.0);
            }
        }),
    }
    // SAFETY: the chunks cover `v[..len]` and each was written in full.
    unsafe { assume_init(&mut v, len) };
    v
}

/// Marks the first `len` elements of `v` initialised.
///
/// # Safety
/// Every one of them has been written through `v.spare_capacity_mut()`.
unsafe fn assume_init(v: &mut Vec<f32>, len: usize) {
    debug_assert!(v.capacity() >= len);
    v.set_len(len);
}

// ---------------------------------------------------------------------------------------------
// Scalar helpers (inlined into vectorised loops)

/// `e^x` within 1 ulp of the correctly rounded value over `[-87.3, 88]` (Cephes' `expf`: range reduction by ln 2, degree-6 polynomial, exponent by
/// bit arithmetic). Written branch-free so that loops calling it vectorise; libm's `expf` is
/// an opaque scalar call. Clamps its argument to `[-87.34, 88]` (results `1.2e-38` and
/// `1.7e38`) instead of reaching `0`/`inf`, which changes no SiLU or softmax result beyond
/// rounding: those only add it to 1 or to a sum ≥ 1.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // HI keeps n = round(x·log2 e) ≤ 127 (a finite 2^n); LO is about the smallest x with a
    // normal result.
    const HI: f32 = 88.0;
    const LO: f32 = -87.336_55;
    let x = x.clamp(LO, HI);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln 2 split in two (355/512, exact in f32, plus the rest) so that `x - n·ln2` is exact.
    let r = x - n * (355.0 / 512.0) - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * (r * r) + r + 1.0;
    // 2^n, n ∈ [-126, 127] after the clamp: the biased exponent n + 127 ∈ [1, 254] sits in the
    // low mantissa bits of `n + 127 + 2^23` (exact in f32); shifting it into the exponent field
    // avoids a float→int conversion, whose saturating `as` semantics stop vectorisation.
    let pow2 = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    y * pow2
}

/// Sum with 16 partial sums.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Maximum (of non-NaN values) with 16 partial maxima.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..16 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter()
        .chain(rest)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// `1 / sqrt(mean(x²) + eps)`.
#[inline(always)]
fn inv_rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (scopedex_linalg::dot(x, x) / x.len() as f32 + eps).sqrt()
}

// ---------------------------------------------------------------------------------------------
// Row-wise kernels on slices

/// `out[r] = x[r] / rms(x[r]) * w` for `x: [rows, w.len()]`.
pub(crate) fn rms_norm_slice(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len();
    assert!(d > 0 && x.len() % d == 0);
    let mut out = uninit_buffer(x.len());
    let chunk = rows_per_task(x.len() / d, d) * d;
    out.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let inv = inv_rms(x, eps);
                for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                    o.write(x * inv * w);
                }
            }
        });
    let n = x.len();
    // SAFETY: the chunks cover `out[..n]` and every row of every chunk was written.
    unsafe { assume_init(&mut out, n) };
    out
}

/// The post-attention half of a block's norms, in one pass: `h = x + a`,
/// `normalized = h / rms(h)` (no gain), `scaled = normalized * w`.
pub(crate) fn add_rms_norm_slice(
    x: &[f32],
    a: &[f32],
    w: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = w.len();
    let n = x.len();
    assert!(d > 0 && n % d == 0 && a.len() == n);
    let (mut h, mut normalized, mut scaled) =
        (uninit_buffer(n), uninit_buffer(n), uninit_buffer(n));
    let chunk = rows_per_task(n / d, d) * d;
    h.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .zip(normalized.spare_capacity_mut()[..n].par_chunks_mut(chunk))
        .zip(scaled.spare_capacity_mut()[..n].par_chunks_mut(chunk))
        .zip(x.par_chunks(chunk).zip(a.par_chunks(chunk)))
        .for_each(|(((h, nz), sc), (x, a))| {
            let rows = h
                .chunks_exact_mut(d)
                .zip(nz.chunks_exact_mut(d))
                .zip(sc.chunks_exact_mut(d))
                .zip(x.chunks_exact(d).zip(a.chunks_exact(d)));
            for (((h, nz), sc), (x, a)) in rows {
                for ((h, &x), &a) in h.iter_mut().zip(x).zip(a) {
                    h.write(x + a);
                }
                // SAFETY: the loop above wrote every element of this row.
                let hr: &[f32] = unsafe { &*(h as *const [MaybeUninit<f32>] as *const [f32]) };
                normalize_scale_row(hr, w, eps, nz, sc);
            }
        });
    // SAFETY: the chunks cover `[..n]` of each buffer and every row was written.
    unsafe {
        assume_init(&mut h, n);
        assume_init(&mut normalized, n);
        assume_init(&mut scaled, n);
    }
    (h, normalized, scaled)
}

/// `normalized = h / rms(h)`, `scaled = normalized * w` of one row.
#[inline(always)]
fn normalize_scale_row(
    h: &[f32],
    w: &[f32],
    eps: f32,
    normalized: &mut [MaybeUninit<f32>],
    scaled: &mut [MaybeUninit<f32>],
) {
    let inv = inv_rms(h, eps);
    for (((nz, sc), &h), &w) in normalized.iter_mut().zip(scaled.iter_mut()).zip(h).zip(w) {
        let v = h * inv;
        nz.write(v);
        sc.write(v * w);
    }
}

/// [`add_rms_norm_slice`] without the add: `(h / rms(h), h / rms(h) * w)`.
pub(crate) fn rms_norm_pair_slice(h: &[f32], w: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let d = w.len();
    let n = h.len();
    assert!(d > 0 && n % d == 0);
    let (mut normalized, mut scaled) = (uninit_buffer(n), uninit_buffer(n));
    let chunk = rows_per_task(n / d, d) * d;
    normalized.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .zip(scaled.spare_capacity_mut()[..n].par_chunks_mut(chunk))
        .zip(h.par_chunks(chunk))
        .for_each(|((nz, sc), h)| {
            let rows = nz
                .chunks_exact_mut(d)
                .zip(sc.chunks_exact_mut(d))
                .zip(h.chunks_exact(d));
            for ((nz, sc), h) in rows {
                normalize_scale_row(h, w, eps, nz, sc);
            }
        });
    // SAFETY: the chunks cover `[..n]` of both buffers and every row was written.
    unsafe {
        assume_init(&mut normalized, n);
        assume_init(&mut scaled, n);
    }
    (normalized, scaled)
}

/// `x + y`, elementwise.
pub(crate) fn add_slice(x: &[f32], y: &[f32]) -> Vec<f32> {
    let n = x.len();
    assert_eq!(n, y.len());
    let mut out = uninit_buffer(n);
    let chunk = rows_per_task(n.div_ceil(1024), 1024) * 1024;
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk).zip(y.par_chunks(chunk)))
        .for_each(|(o, (x, y))| {
            for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                o.write(x + y);
            }
        });
    // SAFETY: the chunks cover `out[..n]`, every element written.
    unsafe { assume_init(&mut out, n) };
    out
}

/// SwiGLU's middle: `gu: [rows, 2·d_mlp]` holds `[gate | up]` per row (the fused GEMM's
/// output); returns `silu(gate) * up`, `[rows, d_mlp]`.
pub(crate) fn silu_mul_slice(gu: &[f32], d_mlp: usize) -> Vec<f32> {
    assert!(d_mlp > 0 && gu.len() % (2 * d_mlp) == 0);
    let rows = gu.len() / (2 * d_mlp);
    let n = rows * d_mlp;
    let mut out = uninit_buffer(n);
    let r = rows_per_task(rows, d_mlp);
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(r * d_mlp)
        .zip(gu.par_chunks(r * 2 * d_mlp))
        .for_each(|(o, gu)| {
            for (o, gu) in o.chunks_exact_mut(d_mlp).zip(gu.chunks_exact(2 * d_mlp)) {
                let (g, u) = gu.split_at(d_mlp);
                for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
                    o.write(g / (1.0 + exp(-g)) * u);
                }
            }
        });
    // SAFETY: the chunks cover `out[..n]`, every row written.
    unsafe { assume_init(&mut out, n) };
    out
}

// ---------------------------------------------------------------------------------------------
// Attention

/// Head layout of the fused qkv rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
}

/// Query rows per attention work item. Items are (sequence, block of queries) and own disjoint
/// output rows, so they run in parallel without sharing writes. 32 queries keep each BLAS call
/// (`32 × T × head_dim`) within OpenBLAS's single-thread size up to T = 128 at head_dim 64, so
/// calls from several rayon workers do not queue on its threaded driver (64 measured ~2x
/// slower at T = 128; 16 no better than 32).
const QUERY_BLOCK: usize = 32;

/// Causal self-attention of packed sequences.
///
/// `qkv: [rows, (nh + 2·nkv)·hd]` is the fused projection output, each row `[q heads | k heads
/// | v heads]`, sequences one after another (`lengths`). `cos`/`sin: [≥ max(lengths), hd/2]`
/// are the RoPE tables. Returns `[rows, nh·hd]`, query head `h` attending with kv head
/// `h / (nh / nkv)`, scores scaled by `1/sqrt(hd)`, each position seeing itself and earlier ones
/// of its own sequence only. No padding exists, so nothing but causality is masked.
///
/// Scores and the weighted sum of each (query block, head) are two sgemm calls reading head
/// slices of the row-major buffers through their leading dimension. A direct dot-product loop
/// was tried for short sequences and measured slower than OpenBLAS's small-matrix kernel even at
/// 8 keys (and at most ~20 % faster on the portable fallback, below 32 keys), so there is none.
pub(crate) fn causal_attention_slice(
    qkv: &[f32],
    lengths: &[usize],
    heads: Heads,
    cos: &[f32],
    sin: &[f32],
) -> Vec<f32> {
    let Heads {
        n_heads: nh,
        n_kv_heads: nkv,
        head_dim: hd,
    } = heads;
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
    assert!(cos.len() >= t_max * half && sin.len() >= t_max * half);

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
                let (c, s) = (
                    &cos[p * half..(p + 1) * half],
                    &sin[p * half..(p + 1) * half],
                );
                for (dst, src) in dst
                    .chunks_exact_mut(hd)
                    .zip(src[..qk_width].chunks_exact(hd))
                {
                    rope_head(dst, src, c, s);
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
                let i1 = (i0 + QUERY_BLOCK).min(len);
                let (mine, tail) = rest.split_at_mut((i1 - i0) * out_width);
                items.push((start, i0, i1, mine));
                rest = tail;
                i0 = i1;
            }
            start += len;
        }
    }
    let scale = 1.0 / (hd as f32).sqrt();
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
            for (r, row) in p.chunks_exact_mut(n_keys).enumerate() {
                softmax_causal(row, i0 + r + 1);
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

/// Stable softmax over `row[..valid]` in place; `row[valid..]` (future keys) set to 0 so that
/// the block's `P·V` product ignores them.
#[inline(always)]
fn softmax_causal(row: &mut [f32], valid: usize) {
    let (live, masked) = row.split_at_mut(valid);
    // Separate passes, each vectorisable: a running sum inside the exp loop would serialise it.
    let max = max_of(live);
    for s in live.iter_mut() {
        *s = exp(*s - max);
    }
    let inv = 1.0 / sum(live);
    live.iter_mut().for_each(|s| *s *= inv);
    masked.fill(0.0);
}

// ---------------------------------------------------------------------------------------------
// Tensor entry points

/// RMSNorm with gain of `x: [rows, d]`.
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    let (rows, d) = dims2(x)?;
    let out = with_slice(x, |x| with_slice(w, |w| rms_norm_slice(x, w, eps)))??;
    tensor(out, rows, d)
}

/// `(h, normalized, scaled)` of [`add_rms_norm_slice`], each `[rows, d]`.
pub(crate) fn add_rms_norm(
    x: &Tensor,
    a: &Tensor,
    w: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (rows, d) = dims2(x)?;
    if a.dims() != x.dims() {
        return Err(Error::BadInput(format!(
            "residual add of {:?} and {:?}",
            x.dims(),
            a.dims()
        )));
    }
    let (h, nz, sc) = with_slice(x, |x| {
        with_slice(a, |a| with_slice(w, |w| add_rms_norm_slice(x, a, w, eps)))
    })???;
    Ok((
        tensor(h, rows, d)?,
        tensor(nz, rows, d)?,
        tensor(sc, rows, d)?,
    ))
}

/// `(h / rms(h), h / rms(h) * w)` of `h: [rows, d]`.
pub(crate) fn rms_norm_pair(h: &Tensor, w: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    let (rows, d) = dims2(h)?;
    let (nz, sc) = with_slice(h, |h| with_slice(w, |w| rms_norm_pair_slice(h, w, eps)))??;
    Ok((tensor(nz, rows, d)?, tensor(sc, rows, d)?))
}

/// `init + x · wt` for `x: [m, k]`, `wt: [k, n]` (a [`crate::linear::Linear`]'s transposed
/// weight) and `init: [m, n]` or zeros, as one sgemm with `beta = 1` accumulating into the
/// output buffer. Why not `scopedex_linalg::matmul`: accumulating into a residual copy replaces
/// a separate add pass, and `beta = 1` on an already-zeroed buffer spares OpenBLAS the extra
/// pass over C that it makes to apply `beta = 0`.
pub(crate) fn linear(x: &Tensor, wt: &Tensor, init: Option<&Tensor>) -> Result<Tensor> {
    let (m, k) = dims2(x)?;
    let (wk, n) = dims2(wt)?;
    if wk != k || init.is_some_and(|t| t.dims() != [m, n]) {
        return Err(Error::BadInput(format!(
            "linear: x {:?}, weight {:?}, init {:?}",
            x.dims(),
            wt.dims(),
            init.map(Tensor::dims)
        )));
    }
    let mut c = match init {
        Some(t) => with_slice(t, |t| par_filled(m * n, Some(t)))?,
        None => par_filled(m * n, None),
    };
    with_slice(x, |x| {
        with_slice(wt, |w| {
            sgemm(
                m,
                n,
                k,
                1.0,
                Mat::new(x, k.max(1)),
                Mat::new(w, n.max(1)),
                1.0,
                &mut c,
                n.max(1),
            )
        })
    })??;
    tensor(c, m, n)
}

/// `x + y` for two `[rows, d]` tensors.
pub(crate) fn add(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (rows, d) = dims2(x)?;
    if y.dims() != x.dims() {
        return Err(Error::BadInput(format!(
            "residual add of {:?} and {:?}",
            x.dims(),
            y.dims()
        )));
    }
    let out = with_slice(x, |x| with_slice(y, |y| add_slice(x, y)))??;
    tensor(out, rows, d)
}

/// `silu(gate) * up` of a fused `[rows, 2·d_mlp]` gate|up tensor.
pub(crate) fn silu_mul(gu: &Tensor, d_mlp: usize) -> Result<Tensor> {
    let (rows, w) = dims2(gu)?;
    if w != 2 * d_mlp {
        return Err(Error::BadInput(format!(
            "gate|up has {w} columns, expected 2 × {d_mlp}"
        )));
    }
    let out = with_slice(gu, |gu| silu_mul_slice(gu, d_mlp))?;
    tensor(out, rows, d_mlp)
}

/// [`causal_attention_slice`] of a `[rows, (nh + 2 nkv)·hd]` qkv tensor → `[rows, nh·hd]`.
pub(crate) fn causal_attention(
    qkv: &Tensor,
    lengths: &[usize],
    heads: Heads,
    cos: &[f32],
    sin: &[f32],
) -> Result<Tensor> {
    let (rows, w) = dims2(qkv)?;
    if w != (heads.n_heads + 2 * heads.n_kv_heads) * heads.head_dim
        || rows != lengths.iter().sum::<usize>()
    {
        return Err(Error::BadInput(format!(
            "qkv {:?} does not match {heads:?} and lengths summing to {}",
            qkv.dims(),
            lengths.iter().sum::<usize>()
        )));
    }
    let out = with_slice(qkv, |qkv| {
        causal_attention_slice(qkv, lengths, heads, cos, sin)
    })?;
    tensor(out, rows, heads.n_heads * heads.head_dim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{causal_mask, padded_attention, Padding};
    use candle_core::DType;

    fn randn(rows: usize, cols: usize, seed: u64) -> Tensor {
        // Deterministic values in [-2, 2) without candle's RNG (reproducible across versions).
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    }

    /// Max |a − b| relative to max |b|.
    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let m = b.abs().unwrap().max_all().unwrap();
        (d.to_scalar::<f32>().unwrap()) / m.to_scalar::<f32>().unwrap().max(1e-30)
    }

    #[test]
    fn exp_is_within_one_ulp() {
        let mut x = -87.3f32;
        while x < 88.0 {
            let exact = (x as f64).exp() as f32;
            let ulps = (exp(x).to_bits() as i64 - exact.to_bits() as i64).abs();
            assert!(ulps <= 1, "exp({x}) = {} vs {exact}", exp(x));
            x += 0.000_37;
        }
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) >= 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite());
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn rms_norm_matches_candle() {
        for rows in [1, 3, 77] {
            let x = randn(rows, 40, rows as u64);
            let w = randn(1, 40, 99).reshape(40).unwrap();
            let ours = rms_norm(&x, &w, 1e-5).unwrap();
            let theirs = candle_nn::ops::rms_norm(&x, &w, 1e-5).unwrap();
            assert!(rel_err(&ours, &theirs) < 1e-6);
        }
    }

    #[test]
    fn add_rms_norm_matches_candle() {
        for rows in [1, 5, 130] {
            let d = 72;
            let x = randn(rows, d, 1);
            let a = randn(rows, d, 2);
            let w = randn(1, d, 3).reshape(d).unwrap();
            let (h, nz, sc) = add_rms_norm(&x, &a, &w, 1e-6).unwrap();
            let h_ref = (&x + &a).unwrap();
            let nz_ref = candle_nn::ops::rms_norm(&h_ref, &w.ones_like().unwrap(), 1e-6).unwrap();
            let sc_ref = nz_ref.broadcast_mul(&w).unwrap();
            assert_eq!(rel_err(&h, &h_ref), 0.0);
            assert!(rel_err(&nz, &nz_ref) < 1e-6);
            assert!(rel_err(&sc, &sc_ref) < 1e-6);
        }
    }

    #[test]
    fn rms_norm_pair_matches_candle() {
        let (rows, d) = (37, 24);
        let h = randn(rows, d, 8);
        let w = randn(1, d, 9).reshape(d).unwrap();
        let (nz, sc) = rms_norm_pair(&h, &w, 1e-5).unwrap();
        let nz_ref = candle_nn::ops::rms_norm(&h, &w.ones_like().unwrap(), 1e-5).unwrap();
        assert!(rel_err(&nz, &nz_ref) < 1e-6);
        assert!(rel_err(&sc, &nz_ref.broadcast_mul(&w).unwrap()) < 1e-6);
    }

    #[test]
    fn linear_matches_candle_matmul_with_and_without_init() {
        for (m, k, n) in [(1, 8, 5), (70, 33, 19), (3, 1, 4)] {
            let x = randn(m, k, 10);
            let wt = randn(k, n, 11);
            let init = randn(m, n, 12);
            let plain = x.matmul(&wt).unwrap();
            assert!(rel_err(&linear(&x, &wt, None).unwrap(), &plain) < 1e-6);
            let acc = linear(&x, &wt, Some(&init)).unwrap();
            assert!(rel_err(&acc, &(&plain + &init).unwrap()) < 1e-6);
        }
        let x = randn(2, 3, 1);
        assert!(linear(&x, &randn(4, 5, 2), None).is_err());
        assert!(linear(&x, &randn(3, 5, 2), Some(&randn(2, 4, 3))).is_err());
    }

    #[test]
    fn add_matches_candle() {
        let (x, y) = (randn(33, 50, 4), randn(33, 50, 5));
        assert_eq!(rel_err(&add(&x, &y).unwrap(), &(&x + &y).unwrap()), 0.0);
    }

    #[test]
    fn silu_mul_matches_candle() {
        for rows in [1, 9, 200] {
            let dm = 48;
            // Wider range than randn's to reach SiLU's tails.
            let gu = (randn(rows, 2 * dm, rows as u64) * 12.0).unwrap();
            let ours = silu_mul(&gu, dm).unwrap();
            let g = gu.narrow(1, 0, dm).unwrap();
            let u = gu.narrow(1, dm, dm).unwrap();
            let theirs = (candle_nn::ops::silu(&g).unwrap() * u).unwrap();
            assert!(rel_err(&ours, &theirs) < 1e-6);
        }
    }

    /// The candle (padded) path on the same qkv, for comparison.
    fn reference(qkv: &Tensor, lengths: &[usize], heads: Heads, inv_freq: &[f32]) -> Tensor {
        let t = *lengths.iter().max().unwrap();
        let (cos, sin) = crate::rope::cos_sin(inv_freq, t, &Device::Cpu).unwrap();
        let padded = crate::attention::Padded {
            b: lengths.len(),
            t,
            cos,
            sin,
            mask: causal_mask(t, &Device::Cpu).unwrap(),
            padding: Padding::new(lengths, t, &Device::Cpu).unwrap(),
        };
        padded_attention(qkv, &padded, heads).unwrap()
    }

    fn check_attention(lengths: &[usize], heads: Heads) {
        let rows: usize = lengths.iter().sum();
        let w = (heads.n_heads + 2 * heads.n_kv_heads) * heads.head_dim;
        let qkv = randn(rows, w, rows as u64 + 7);
        let half = heads.head_dim / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / 10_000f32.powf(2.0 * i as f32 / heads.head_dim as f32))
            .collect();
        let t = *lengths.iter().max().unwrap();
        let (cos, sin) = crate::rope::cos_sin_vecs(&inv_freq, t);
        let expected = reference(&qkv, lengths, heads, &inv_freq);
        let qkv_v = qkv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let out = causal_attention_slice(&qkv_v, lengths, heads, &cos, &sin);
        let out = tensor(out, rows, heads.n_heads * heads.head_dim).unwrap();
        let e = rel_err(&out, &expected);
        assert!(e < 2e-6, "{lengths:?} {heads:?}: {e}");
        // The tensor entry point agrees with the slice kernel.
        let out = causal_attention(&qkv, lengths, heads, &cos, &sin).unwrap();
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
            check_attention(&[1], heads);
            check_attention(&[5, 1, 37, 64, 70], heads);
            check_attention(&[33, 33], heads); // equal lengths: the reference takes no padding
            check_attention(&[1, 1, 2], heads);
            check_attention(&[100, 31, 32], heads);
        }
    }
}
