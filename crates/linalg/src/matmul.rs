//! `x[.., k] @ w[k, n]` as a candle op that runs [`crate::sgemm`] on CPU f32 tensors.
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use crate::Mat;

/// `x[.., k] @ w[k, n]` → `[.., n]`. On the CPU in f32 this is one [`crate::sgemm`] over all
/// leading dimensions of `x` (contiguous rows) and `w` either contiguous `[k, n]` or the
/// transposed view of a contiguous `[n, k]` (`W.t()` of an HF weight, no copy); anything else
/// (other devices, dtypes, strides) goes to candle's own `matmul`.
pub fn matmul(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
    let ok = x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && w.rank() == 2
        && x.rank() >= 1
        && x.dims()[x.rank() - 1] == w.dims()[0]
        && weight_view(w.layout()).is_some();
    if !ok {
        return x.broadcast_matmul(w);
    }
    let x = x.contiguous()?;
    x.apply_op2_no_bwd(w, &Gemm)
}

/// `(trans, ld)` when `w`'s layout is a plain or transposed contiguous matrix.
fn weight_view(l: &Layout) -> Option<(bool, usize)> {
    let (dims, strides) = (l.dims(), l.stride());
    let (k, n) = (dims[0], dims[1]);
    if strides[1] == 1 && (strides[0] == n || k == 1) {
        Some((false, n.max(1)))
    } else if strides[0] == 1 && (strides[1] == k || n == 1) {
        Some((true, k.max(1)))
    } else {
        None
    }
}

struct Gemm;

impl CustomOp2 for Gemm {
    fn name(&self) -> &'static str {
        "scopedex-sgemm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x_all, w_all) = (s1.as_slice::<f32>()?, s2.as_slice::<f32>()?);
        let (xa, xb) = l1
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("sgemm: x not contiguous".into()))?;
        let x = &x_all[xa..xb];
        let dims = l1.dims();
        let k = dims[dims.len() - 1];
        let m: usize = dims[..dims.len() - 1].iter().product();
        let (wk, n) = (l2.dims()[0], l2.dims()[1]);
        if wk != k {
            return Err(candle_core::Error::Msg(format!(
                "sgemm: x has {k} columns, w has {wk} rows"
            )));
        }
        let (trans, ld) = weight_view(l2)
            .ok_or_else(|| candle_core::Error::Msg("sgemm: w layout not supported".into()))?;
        let w = &w_all[l2.start_offset()..];
        let mut out = vec![0f32; m * n];
        crate::sgemm(
            m,
            n,
            k,
            1.0,
            Mat::new(x, k.max(1)),
            Mat { data: w, ld, trans },
            0.0,
            &mut out,
            n.max(1),
        );
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("rank ≥ 1") = n;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}
