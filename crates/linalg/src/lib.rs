//! Dense f32 GEMM for scopedex's CPU path.
//!
//! The model's projections, the SAE encoder and the trainer spend nearly all their time in
//! GEMM. candle's CPU matmul (the `gemm` crate) reaches about half of a BLAS-class kernel on
//! this machine kind, so [`sgemm`] calls a system BLAS loaded at run time ([`blas`]) when one is
//! present and falls back to the `gemm` crate otherwise. `SCOPEDEX_BLAS=off` forces the
//! fallback, `SCOPEDEX_BLAS=/path/libopenblas.so` picks a library. [`matmul`] wraps it as a
//! candle op, so tensors on other devices (CUDA) keep candle's own kernels.
mod blas;
mod matmul;
mod portable;
mod vector;

use std::sync::OnceLock;

pub use matmul::matmul;
pub use vector::{axpy, dot};

/// Which kernel [`sgemm`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A BLAS loaded at run time; the text names the library and its kernel.
    Blas(String),
    /// The `gemm` crate (candle's CPU GEMM).
    Portable,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Blas(d) => write!(f, "BLAS {d}"),
            Backend::Portable => f.write_str("portable (gemm crate)"),
        }
    }
}

fn loaded() -> Option<&'static blas::Blas> {
    static BLAS: OnceLock<Option<blas::Blas>> = OnceLock::new();
    BLAS.get_or_init(|| match blas::Blas::load() {
        Ok(Some(b)) => {
            b.set_threads(blas_threads(rayon::current_num_threads()));
            tracing::info!("GEMM backend: BLAS {}", b.description);
            Some(b)
        }
        Ok(None) => {
            tracing::info!("GEMM backend: portable (gemm crate)");
            None
        }
        Err(e) => {
            tracing::warn!("GEMM backend: portable; BLAS not loaded: {e}");
            None
        }
    })
    .as_ref()
}

/// Loads the BLAS now (it is otherwise loaded at the first GEMM) and says which backend runs.
/// Binaries call this early, before they start threads, because loading may set
/// `OPENBLAS_CORETYPE` in the process environment.
pub fn init() -> Backend {
    backend()
}

/// The backend [`sgemm`] uses in this process.
pub fn backend() -> Backend {
    match loaded() {
        Some(b) => Backend::Blas(b.description.clone()),
        None => Backend::Portable,
    }
}

/// Caps the threads a BLAS uses for one GEMM (the portable kernel and split GEMMs follow
/// rayon's pool).
pub fn set_threads(n: usize) {
    if let Some(b) = loaded() {
        b.set_threads(blas_threads(n));
    }
}

/// The BLAS's own pool size for `n` wanted threads: 1 where rayon splits the GEMMs.
fn blas_threads(n: usize) -> usize {
    if split_on_rayon() {
        1
    } else {
        n
    }
}

/// One operand of [`sgemm`]: a row-major matrix, optionally used transposed.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    /// Distance between rows of the stored matrix (≥ its column count).
    pub ld: usize,
    /// Use the stored matrix transposed.
    pub trans: bool,
}

impl<'a> Mat<'a> {
    /// A contiguous row-major `[rows, cols]` matrix used as is.
    pub fn new(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            ld: cols,
            trans: false,
        }
    }

    /// A contiguous row-major `[rows, cols]` matrix used transposed (`[cols, rows]`).
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            ld: cols,
            trans: true,
        }
    }

    /// Elements needed to address an `r × c` operand (after the transpose).
    fn span(&self, r: usize, c: usize) -> usize {
        let (sr, sc) = if self.trans { (c, r) } else { (r, c) };
        if sr == 0 || sc == 0 {
            0
        } else {
            (sr - 1) * self.ld + sc
        }
    }
}

/// `C[m, n] = alpha · A[m, k] · B[k, n] + beta · C` (C row-major with row stride `ldc`).
///
/// # Panics
/// When a slice is too short for its dimensions, or a leading dimension is smaller than the
/// stored row length; these are programming errors, not data errors.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let a_cols = if a.trans { m } else { k };
    let b_cols = if b.trans { k } else { n };
    assert!(a.ld >= a_cols.max(1) && b.ld >= b_cols.max(1) && ldc >= n.max(1));
    assert!(a.data.len() >= a.span(m, k), "sgemm: A too short");
    assert!(b.data.len() >= b.span(k, n), "sgemm: B too short");
    assert!(
        c.len() >= if m == 0 { 0 } else { (m - 1) * ldc + n },
        "sgemm: C too short"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.chunks_mut(ldc).take(m) {
            row[..n].iter_mut().for_each(|x| *x *= beta);
        }
        return;
    }
    match loaded() {
        Some(blas) if split_on_rayon() && worth_splitting(m, n, k) => {
            // SAFETY: as below; the parts address disjoint blocks of C.
            unsafe { split_sgemm(blas, m, n, k, alpha, a, b, beta, c, ldc) }
        }
        // SAFETY: the asserts above bound every element either kernel reads or writes.
        Some(blas) => unsafe {
            blas.sgemm(
                a.trans,
                b.trans,
                m,
                n,
                k,
                alpha,
                a.data.as_ptr(),
                a.ld,
                b.data.as_ptr(),
                b.ld,
                beta,
                c.as_mut_ptr(),
                ldc,
            )
        },
        None => unsafe { portable::sgemm(m, n, k, alpha, a, b, beta, c, ldc) },
    }
}

/// Whether large GEMMs are split over rayon's pool, each part a single-threaded BLAS call
/// (the default), rather than handed whole to the BLAS's own thread pool
/// (`SCOPEDEX_GEMM_THREADS=blas`).
///
/// Why: the forward alternates GEMMs with rayon kernels (norms, attention). With two pools,
/// OpenBLAS's idle workers spin in `sched_yield` while rayon's run, and the reverse; on 2 cores
/// that was ~11 % of the forward's samples (`perf`), and none with one pool. The cost is that
/// one operand is packed by every part (~1 % more samples in OpenBLAS's copy routines).
fn split_on_rayon() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("SCOPEDEX_GEMM_THREADS").as_deref() != Ok("blas"))
}

/// Large enough that a part per thread pays for its own packing: the model's projections and
/// the SAE's GEMMs are; attention's per-head products (≤ 32 × 1,024 × 64) are not.
fn worth_splitting(m: usize, n: usize, k: usize) -> bool {
    rayon::current_num_threads() > 1 && m * n * k >= 1 << 22
}

/// [`sgemm`] on the BLAS as one single-threaded call per rayon thread, over blocks of the
/// larger of C's two dimensions, so that the operand packed by every part is the smaller one.
///
/// # Safety
/// As [`blas::Blas::sgemm`]: the caller has checked every bound. The parts write disjoint
/// blocks of C.
#[allow(clippy::too_many_arguments)]
unsafe fn split_sgemm(
    blas: &blas::Blas,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat<'_>,
    b: Mat<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    use rayon::prelude::*;
    // Addresses as integers: raw pointers are not `Send`; the blocks are disjoint.
    let (a_ptr, b_ptr, c_ptr) = (
        a.data.as_ptr() as usize,
        b.data.as_ptr() as usize,
        c.as_mut_ptr() as usize,
    );
    let at = |base: usize, elems: usize| base + elems * std::mem::size_of::<f32>();
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    // Multiples of 16 keep every part's edge on the kernel's register-block boundary.
    let step = len
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(16);
    (0..len.div_ceil(step)).into_par_iter().for_each(|i| {
        let (lo, hi) = (i * step, ((i + 1) * step).min(len));
        // SAFETY: each part's A, B and C blocks lie inside the checked operands.
        unsafe {
            if split_rows {
                let a_off = if a.trans { lo } else { lo * a.ld };
                blas.sgemm(
                    a.trans,
                    b.trans,
                    hi - lo,
                    n,
                    k,
                    alpha,
                    at(a_ptr, a_off) as *const f32,
                    a.ld,
                    b_ptr as *const f32,
                    b.ld,
                    beta,
                    at(c_ptr, lo * ldc) as *mut f32,
                    ldc,
                )
            } else {
                let b_off = if b.trans { lo * b.ld } else { lo };
                blas.sgemm(
                    a.trans,
                    b.trans,
                    m,
                    hi - lo,
                    k,
                    alpha,
                    a_ptr as *const f32,
                    a.ld,
                    at(b_ptr, b_off) as *const f32,
                    b.ld,
                    beta,
                    at(c_ptr, lo) as *mut f32,
                    ldc,
                )
            }
        }
    });
}

#[cfg(test)]
mod tests;
