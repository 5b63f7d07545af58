use candle_core::{Device, Tensor};

use super::*;

/// Deterministic pseudo-random values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// f64 reference of `alpha·op(A)·op(B) + beta·C`.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: Mat,
    b: Mat,
    beta: f32,
    c: &[f32],
    ldc: usize,
) -> Vec<f32> {
    let at = |i: usize, l: usize| {
        if a.trans {
            a.data[l * a.ld + i]
        } else {
            a.data[i * a.ld + l]
        }
    };
    let bt = |l: usize, j: usize| {
        if b.trans {
            b.data[j * b.ld + l]
        } else {
            b.data[l * b.ld + j]
        }
    };
    let mut out = c.to_vec();
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|l| at(i, l) as f64 * bt(l, j) as f64).sum();
            out[i * ldc + j] = (alpha as f64 * s + beta as f64 * c[i * ldc + j] as f64) as f32;
        }
    }
    out
}

/// A GEMM with [`sgemm`]'s signature.
type Kernel<'k> = &'k dyn Fn(usize, usize, usize, f32, Mat, Mat, f32, &mut [f32], usize);

fn check(kernel: Kernel<'_>, name: &str) {
    check_shapes(
        kernel,
        name,
        &[(1, 1, 1), (7, 5, 3), (33, 65, 17), (130, 70, 257)],
    );
}

fn check_shapes(kernel: Kernel<'_>, name: &str, shapes: &[(usize, usize, usize)]) {
    for &(m, n, k) in shapes {
        for ta in [false, true] {
            for tb in [false, true] {
                for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 2.0)] {
                    // Leading dimensions larger than the rows, to exercise strides.
                    let (ar, ac) = if ta { (k, m) } else { (m, k) };
                    let (br, bc) = if tb { (n, k) } else { (k, n) };
                    let (lda, ldb, ldc) = (ac + 3, bc + 1, n + 2);
                    let a = values(ar * lda, 1);
                    let b = values(br * ldb, 2);
                    let c0 = values(m * ldc, 3);
                    let am = Mat {
                        data: &a,
                        ld: lda,
                        trans: ta,
                    };
                    let bm = Mat {
                        data: &b,
                        ld: ldb,
                        trans: tb,
                    };
                    let want = reference(m, n, k, alpha, am, bm, beta, &c0, ldc);
                    let mut got = c0.clone();
                    kernel(m, n, k, alpha, am, bm, beta, &mut got, ldc);
                    for i in 0..m {
                        for j in 0..n {
                            let (g, w) = (got[i * ldc + j], want[i * ldc + j]);
                            assert!(
                                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                                "{name} m{m} n{n} k{k} ta{ta} tb{tb} a{alpha} b{beta} ({i},{j}): {g} vs {w}"
                            );
                        }
                        // Padding between rows of C is never touched.
                        for j in n..ldc {
                            if i + 1 < m {
                                assert_eq!(
                                    got[i * ldc + j],
                                    c0[i * ldc + j],
                                    "{name} wrote padding"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn selected_backend_matches_f64_reference() {
    eprintln!("backend: {}", backend());
    check(
        &|m, n, k, al, a, b, be, c, ldc| sgemm(m, n, k, al, a, b, be, c, ldc),
        "selected",
    );
}

/// GEMMs large enough to be split over rayon's threads, over rows (m ≥ n) and over columns,
/// with parts that are not multiples of the split step.
#[test]
fn split_gemms_match_f64_reference() {
    let shapes = [(301, 150, 97), (150, 301, 97)];
    assert!(
        shapes.iter().all(|&(m, n, k)| worth_splitting(m, n, k))
            || rayon::current_num_threads() == 1
    );
    check_shapes(
        &|m, n, k, al, a, b, be, c, ldc| sgemm(m, n, k, al, a, b, be, c, ldc),
        "split",
        &shapes,
    );
}

#[test]
fn portable_kernel_matches_f64_reference() {
    check(
        &|m, n, k, al, a, b, be, c, ldc| unsafe { portable::sgemm(m, n, k, al, a, b, be, c, ldc) },
        "portable",
    );
}

#[test]
fn empty_inner_dimension_scales_c() {
    let mut c = vec![2.0f32; 6];
    sgemm(
        2,
        3,
        0,
        1.0,
        Mat::new(&[], 1),
        Mat::new(&[], 3),
        0.5,
        &mut c,
        3,
    );
    assert_eq!(c, vec![1.0; 6]);
}

#[test]
#[should_panic(expected = "B too short")]
fn short_operand_panics() {
    let mut c = vec![0f32; 4];
    sgemm(
        2,
        2,
        2,
        1.0,
        Mat::new(&[0.0; 4], 2),
        Mat::new(&[0.0; 3], 2),
        0.0,
        &mut c,
        2,
    );
}

#[test]
fn matmul_op_equals_candle_matmul() {
    let dev = Device::Cpu;
    let x = Tensor::from_vec(values(2 * 5 * 24, 4), (2, 5, 24), &dev).unwrap();
    let w_hf = Tensor::from_vec(values(40 * 24, 5), (40, 24), &dev).unwrap();
    // Transposed view (no copy) and contiguous weight give the same product as candle.
    for w in [w_hf.t().unwrap(), w_hf.t().unwrap().contiguous().unwrap()] {
        let got = matmul(&x, &w).unwrap();
        let want = x.broadcast_matmul(&w).unwrap();
        assert_eq!(got.dims(), &[2, 5, 40]);
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
    }
    // A non-contiguous x (a narrowed view) is made contiguous first.
    let xn = x.narrow(2, 0, 24).unwrap().narrow(1, 1, 3).unwrap();
    let got = matmul(&xn, &w_hf.t().unwrap()).unwrap();
    let want = xn.broadcast_matmul(&w_hf.t().unwrap()).unwrap();
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-4);
}

#[test]
fn vector_kernels() {
    let a = values(37, 6);
    let b = values(37, 7);
    let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
    assert!((dot(&a, &b) as f64 - want).abs() < 1e-5);
    let mut y = a.clone();
    axpy(&mut y, 2.0, &b);
    for i in 0..37 {
        assert_eq!(y[i], a[i] + 2.0 * b[i]);
    }
}
