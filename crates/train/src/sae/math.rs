//! Dense vector kernels shared by the forward pass, the training step and restarts.
pub(crate) use scopedex_linalg::{axpy, dot};

/// `out[m, n] = a[m, kk] @ b[n, kk]ᵀ` (all row-major).
pub(crate) fn gemm_abt(out: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, kk: usize) {
    use scopedex_linalg::Mat;
    scopedex_linalg::sgemm(
        m,
        n,
        kk,
        1.0,
        Mat::new(a, kk),
        Mat::transposed(b, kk),
        0.0,
        out,
        n,
    );
}

/// Scales `v` to unit L2 norm (left as is when zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}
