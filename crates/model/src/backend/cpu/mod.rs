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
//! These run only for CPU f32 tensors; other devices take candle's ops (`backend::candle_ops`).
//! Split by concern: [`rows`] holds the row-wise kernels on slices, [`attention`] the causal
//! attention kernel, this module the tensor plumbing and the tensor entry points.
use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};

use crate::layers::mlp::GateAct;
use crate::{Error, Result};

mod attention;
mod rows;

use attention::causal_attention_slice;
pub(crate) use attention::{Heads, Rope, ScoreRule};
use rows::{
    add_rms_norm_slice, add_slice, gelu_tanh_mul_slice, gelu_tanh_slice, rms_norm_pair_slice,
    rms_norm_qk_heads_slice, rms_norm_slice, silu_mul_slice,
};

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

pub(super) fn tensor(data: Vec<f32>, rows: usize, width: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, (rows, width), &Device::Cpu)?)
}

/// Rows per rayon task for a row-wise kernel over `[rows, width]`: about four tasks per thread
/// for balance, but at least ~4K elements each so that scheduling stays negligible.
pub(super) fn rows_per_task(rows: usize, width: usize) -> usize {
    let width = width.max(1);
    let balanced = rows.div_ceil(4 * rayon::current_num_threads());
    let min_rows = (4096 / width).max(1);
    balanced.max(min_rows).max(1)
}

/// An empty buffer with room for `len` elements, for a kernel that writes every one of them
/// through `spare_capacity_mut()` before [`assume_init`]: zeroing buffers that are about to be
/// overwritten would be one more pass over memory.
pub(super) fn uninit_buffer(len: usize) -> Vec<f32> {
    Vec::with_capacity(len)
}

/// A copy of `src`, or `len` zeros when `None`, written by all rayon threads: the GEMM outputs
/// are large, and one thread filling them would leave the other cores idle.
pub(super) fn par_filled(len: usize, src: Option<&[f32]>) -> Vec<f32> {
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
pub(super) unsafe fn assume_init(v: &mut Vec<f32>, len: usize) {
    debug_assert!(v.capacity() >= len);
    v.set_len(len);
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

/// `init + x · wt` for `x: [m, k]`, `wt: [k, n]` (a `Linear` layer's transposed
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
    gemm_into(x, wt, 1.0, &mut c)?;
    tensor(c, m, n)
}

/// `c = x · wt + beta · c` for `x: [m, k]`, `wt: [k, n]` and `c` holding `m · n` values (the
/// callers have checked the shapes).
fn gemm_into(x: &Tensor, wt: &Tensor, beta: f32, c: &mut [f32]) -> Result<()> {
    let ((m, k), (_, n)) = (dims2(x)?, dims2(wt)?);
    with_slice(x, |x| {
        with_slice(wt, |w| {
            sgemm(
                m,
                n,
                k,
                1.0,
                Mat::new(x, k.max(1)),
                Mat::new(w, n.max(1)),
                beta,
                c,
                n.max(1),
            )
        })
    })?
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

std::thread_local! {
    /// Each thread's gate|up product buffer, kept between calls (see [`gated_hidden`]).
    static GATE_UP: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `act(x·Wg) · (x·Wu)` for `x: [m, k]` and the fused `wt = [Wg | Wu]`, `[k, 2·d_mlp]`.
///
/// The `[m, 2·d_mlp]` product is written to a per-thread buffer reused across calls rather
/// than a fresh one: at 2,048 rows of Gemma 3 270M it is 32 MiB, at glibc's largest mmap
/// threshold, so a fresh buffer was mapped and page-faulted in every layer (~4 % of the
/// forward's samples in `perf`).
pub(crate) fn gated_hidden(x: &Tensor, wt: &Tensor, d_mlp: usize, act: GateAct) -> Result<Tensor> {
    let (m, k) = dims2(x)?;
    let (wk, n) = dims2(wt)?;
    if wk != k || n != 2 * d_mlp {
        return Err(Error::BadInput(format!(
            "gated MLP: x {:?}, gate|up weight {:?}, d_mlp {d_mlp}",
            x.dims(),
            wt.dims()
        )));
    }
    let hidden = |gu: &mut Vec<f32>| -> Result<Vec<f32>> {
        if gu.len() < m * n {
            // Grown once to the largest batch; later calls overwrite it (`beta = 0`).
            gu.resize(m * n, 0.0);
        }
        let gu = &mut gu[..m * n];
        gemm_into(x, wt, 0.0, gu)?;
        Ok(match act {
            GateAct::Silu => silu_mul_slice(gu, d_mlp),
            GateAct::GeluTanh => gelu_tanh_mul_slice(gu, d_mlp),
        })
    };
    // A thread that runs rayon jobs while it waits may re-enter: it then takes a fresh buffer.
    let out = GATE_UP.with(|cell| match cell.try_borrow_mut() {
        Ok(mut gu) => hidden(&mut gu),
        Err(_) => hidden(&mut Vec::new()),
    })?;
    tensor(out, m, d_mlp)
}

/// [`rms_norm_qk_heads_slice`] of a `[rows, (nh + 2 nkv)·hd]` qkv tensor.
pub(crate) fn rms_norm_qk_heads(
    qkv: &Tensor,
    heads: Heads,
    wq: &Tensor,
    wk: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let (rows, w) = dims2(qkv)?;
    let Heads {
        n_heads,
        n_kv_heads,
        head_dim,
    } = heads;
    if w != (n_heads + 2 * n_kv_heads) * head_dim {
        return Err(Error::BadInput(format!(
            "qkv {:?} does not match {heads:?}",
            qkv.dims()
        )));
    }
    let out = with_slice(qkv, |x| {
        with_slice(wq, |wq| {
            with_slice(wk, |wk| {
                rms_norm_qk_heads_slice(x, n_heads, n_kv_heads, head_dim, (wq, wk), eps)
            })
        })
    })???;
    tensor(out, rows, w)
}

/// `gelu_tanh(x)` of a `[rows, d]` tensor.
pub(crate) fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    let (rows, d) = dims2(x)?;
    let out = with_slice(x, gelu_tanh_slice)?;
    tensor(out, rows, d)
}

/// [`causal_attention_slice`] of a `[rows, (nh + 2 nkv)·hd]` qkv tensor → `[rows, nh·hd]`.
pub(crate) fn causal_attention(
    qkv: &Tensor,
    lengths: &[usize],
    rule: ScoreRule,
    rope: Option<Rope>,
) -> Result<Tensor> {
    let (rows, w) = dims2(qkv)?;
    let heads = rule.heads;
    if w != (heads.n_heads + 2 * heads.n_kv_heads) * heads.head_dim
        || rows != lengths.iter().sum::<usize>()
    {
        return Err(Error::BadInput(format!(
            "qkv {:?} does not match {heads:?} and lengths summing to {}",
            qkv.dims(),
            lengths.iter().sum::<usize>()
        )));
    }
    let out = with_slice(qkv, |qkv| causal_attention_slice(qkv, lengths, rule, rope))?;
    tensor(out, rows, heads.n_heads * heads.head_dim)
}

/// Inputs shared by the tests of the kernels.
#[cfg(test)]
pub(crate) mod test_util {
    use candle_core::{Device, Tensor};

    pub(crate) fn randn(rows: usize, cols: usize, seed: u64) -> Tensor {
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
    pub(crate) fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        let m = b.abs().unwrap().max_all().unwrap();
        (d.to_scalar::<f32>().unwrap()) / m.to_scalar::<f32>().unwrap().max(1e-30)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{randn, rel_err};
    use super::*;

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
    fn gated_hidden_matches_candle() {
        for rows in [1, 9, 200] {
            let (d, dm) = (24, 48);
            let x = randn(rows, d, rows as u64);
            // Wider range than randn's to reach the activations' tails.
            let wt = (randn(d, 2 * dm, 7) * 3.0).unwrap();
            let gu = x.matmul(&wt).unwrap();
            let g = gu.narrow(1, 0, dm).unwrap();
            let u = gu.narrow(1, dm, dm).unwrap();
            let silu = (candle_nn::ops::silu(&g).unwrap() * &u).unwrap();
            let gelu = (g.gelu().unwrap() * &u).unwrap();
            for (act, want) in [(GateAct::Silu, silu), (GateAct::GeluTanh, gelu)] {
                // Twice: the second call reuses the thread's buffer.
                for _ in 0..2 {
                    let ours = gated_hidden(&x, &wt, dm, act).unwrap();
                    assert!(rel_err(&ours, &want) < 1e-5, "{act:?} {rows}");
                }
            }
        }
        assert!(gated_hidden(&randn(2, 3, 1), &randn(3, 10, 2), 4, GateAct::Silu).is_err());
    }
}
