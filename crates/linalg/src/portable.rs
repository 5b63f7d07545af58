//! The fallback kernel: the `gemm` crate (what candle's CPU matmul uses), on rayon's pool.
use crate::Mat;

/// Column and row strides of `op(M)` as the `gemm` crate takes them.
fn strides(m: &Mat<'_>) -> (isize, isize) {
    if m.trans {
        (m.ld as isize, 1)
    } else {
        (1, m.ld as isize)
    }
}

/// Same contract as [`crate::sgemm`].
///
/// # Safety
/// The caller has checked that every slice covers the elements its dimensions address.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
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
    let threads = rayon::current_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (a_cs, a_rs) = strides(&a);
    let (b_cs, b_rs) = strides(&b);
    // The gemm crate computes dst = alpha·dst + beta·lhs·rhs: its alpha is our beta.
    gemm::gemm(
        m,
        n,
        k,
        c.as_mut_ptr(),
        1,
        ldc as isize,
        beta != 0.0,
        a.data.as_ptr(),
        a_cs,
        a_rs,
        b.data.as_ptr(),
        b_cs,
        b_rs,
        beta,
        alpha,
        false,
        false,
        false,
        par,
    );
}
