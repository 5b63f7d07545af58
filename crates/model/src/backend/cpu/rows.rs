//! Row-wise f32 kernels on slices: RMSNorm (with and without the residual add), the
//! elementwise add and SiLU(gate)·up, each one parallel pass that writes its output once.
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{assume_init, rows_per_task, uninit_buffer};

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
pub(super) fn sum(x: &[f32]) -> f32 {
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
pub(super) fn max_of(x: &[f32]) -> f32 {
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
    gated_mul_slice(gu, d_mlp, |g| g / (1.0 + exp(-g)))
}

/// `act(gate) * up` of `[gate | up]` rows, `[rows, d_mlp]`; `act` is inlined into the
/// vectorised loop.
#[inline(always)]
fn gated_mul_slice(gu: &[f32], d_mlp: usize, act: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
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
                    o.write(act(g) * u);
                }
            }
        });
    // SAFETY: the chunks cover `out[..n]`, every row written.
    unsafe { assume_init(&mut out, n) };
    out
}

/// Per-head RMSNorm of the q and k heads of fused qkv rows (`[q heads | k heads | v heads]`,
/// each head `hd` wide), v copied: one pass, one output buffer.
pub(crate) fn rms_norm_qk_heads_slice(
    qkv: &[f32],
    n_heads: usize,
    n_kv_heads: usize,
    hd: usize,
    (wq, wk): (&[f32], &[f32]),
    eps: f32,
) -> Vec<f32> {
    let width = (n_heads + 2 * n_kv_heads) * hd;
    assert!(hd > 0 && wq.len() == hd && wk.len() == hd && qkv.len() % width == 0);
    let n = qkv.len();
    let mut out = uninit_buffer(n);
    let chunk = rows_per_task(n / width, width) * width;
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .zip(qkv.par_chunks(chunk))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
                for (h, (o, x)) in o.chunks_exact_mut(hd).zip(x.chunks_exact(hd)).enumerate() {
                    let w = if h < n_heads {
                        wq
                    } else if h < n_heads + n_kv_heads {
                        wk
                    } else {
                        for (o, &x) in o.iter_mut().zip(x) {
                            o.write(x);
                        }
                        continue;
                    };
                    let inv = inv_rms(x, eps);
                    for ((o, &x), &w) in o.iter_mut().zip(x).zip(w) {
                        o.write(x * inv * w);
                    }
                }
            }
        });
    // SAFETY: the chunks cover `out[..n]` and every head of every row was written.
    unsafe { assume_init(&mut out, n) };
    out
}

/// `0.5·g·(1 + tanh(√(2/π)·(g + 0.044715·g³)))`: GELU's tanh approximation (`gelu_new`,
/// `gelu_pytorch_tanh`), with `tanh(y) = 1 − 2 / (e^{2y} + 1)` so loops vectorise.
#[inline(always)]
pub(crate) fn gelu_tanh(g: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let y = SQRT_2_OVER_PI * (g + 0.044_715 * g * g * g);
    let tanh = 1.0 - 2.0 / (exp(2.0 * y) + 1.0);
    0.5 * g * (1.0 + tanh)
}

/// GeGLU's middle: `gu: [rows, 2·d_mlp]` holds `[gate | up]` per row; returns
/// `gelu_tanh(gate) * up`, `[rows, d_mlp]`.
pub(crate) fn gelu_tanh_mul_slice(gu: &[f32], d_mlp: usize) -> Vec<f32> {
    gated_mul_slice(gu, d_mlp, gelu_tanh)
}

/// `gelu_tanh(x)` elementwise.
pub(crate) fn gelu_tanh_slice(x: &[f32]) -> Vec<f32> {
    let n = x.len();
    let mut out = uninit_buffer(n);
    let chunk = rows_per_task(n.div_ceil(1024), 1024) * 1024;
    out.spare_capacity_mut()[..n]
        .par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, x)| {
            for (o, &x) in o.iter_mut().zip(x) {
                o.write(gelu_tanh(x));
            }
        });
    // SAFETY: the chunks cover `out[..n]`, every element written.
    unsafe { assume_init(&mut out, n) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gelu_tanh_matches_the_formula() {
        for i in -400..400 {
            let g = i as f32 * 0.05;
            let exact = {
                let g = g as f64;
                0.5 * g
                    * (1.0
                        + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g.powi(3))).tanh())
            };
            assert!(
                (gelu_tanh(g) as f64 - exact).abs() <= 1e-6 * (1.0 + exact.abs()),
                "{g}"
            );
        }
    }
}
