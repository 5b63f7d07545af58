//! TopK selection on a CUDA device (the `cuda` feature): the pre-activations never leave the GPU;
//! only the k (feature, value) pairs per token cross to the host. The kernel
//! (`kernels/topk.cu`: radix select of the k-th largest gate, then compaction in column order)
//! ranks exactly as [`crate::Sae::encode`]'s host selection does: gate descending, ties to the
//! lower feature id. candle's own sort kernels do not cover rows 32,768 or 131,072 wide.
use candle_core::{DType, Tensor};

use crate::codes::SparseCodes;
use crate::error::Result;
use crate::sae::Sae;

impl Sae {
    /// `b_enc` and the gate scales as `[1, d_sae]` tensors on the SAE's device, for
    /// [`Sae::select_on_device`]; `None` off a CUDA device (selection then runs on the host).
    /// Made once per [`Sae::encode`] call, not per chunk.
    pub(crate) fn device_selection_inputs(&self) -> Result<Option<(Tensor, Tensor)>> {
        if !self.device.is_cuda() {
            return Ok(None);
        }
        let b = Tensor::from_slice(&self.b_enc, (1, self.d_sae), &self.device)?;
        let g = Tensor::from_slice(&self.gate_scale, (1, self.d_sae), &self.device)?;
        Ok(Some((b, g)))
    }

    /// TopK codes of one chunk of pre-activations `pre` `[rows, d_sae]` (bias not added) held on
    /// the CUDA device, appended to `out`; `(b, g)` from [`Sae::device_selection_inputs`].
    pub(crate) fn select_on_device(
        &self,
        pre: &Tensor,
        (b, g): &(Tensor, Tensor),
        k: usize,
        out: &mut SparseCodes,
    ) -> Result<()> {
        let h = pre.to_dtype(DType::F32)?.broadcast_add(b)?;
        let gate = h.broadcast_mul(g)?;
        let (gate_top, idx) = topk_last_dim(&gate, k)?;
        let h_top = h.contiguous()?.gather(&idx.contiguous()?, 1)?;
        let rows = pre.dim(0)?;
        let idx = idx.to_vec2::<u32>()?;
        let gate_top = gate_top.to_vec2::<f32>()?;
        let h_top = h_top.to_vec2::<f32>()?;
        for r in 0..rows {
            let mut kept: Vec<(u32, f32)> = idx[r]
                .iter()
                .zip(&gate_top[r])
                .zip(&h_top[r])
                .filter(|((_, &gv), &hv)| gv > 0.0 && hv > 0.0)
                .map(|((&j, _), &hv)| (j, hv))
                .collect();
            kept.sort_unstable_by_key(|p| p.0);
            for (j, v) in kept {
                out.features.push(j);
                out.values.push(v);
            }
            out.row_ptr.push(out.features.len());
        }
        Ok(())
    }
}

/// Row-wise top k of `x` `[rows, n]`: values and u32 column ids, `[rows, k]`, value descending,
/// ties to the lower column.
fn topk_last_dim(x: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    {
        Ok(cuda::topk(x, k)?)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (x, k);
        Err(candle_core::Error::Msg("TopK on a GPU needs the `cuda` feature".into()).into())
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda::{CudaDType, CudaStorage, WrapErr};
    use candle_core::op::BackpropOp;
    use candle_core::{bail, CudaDevice, DType, Result, Storage, Tensor};

    /// PTX built by build.rs from kernels/topk.cu.
    const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/topk.ptx"));
    const MODULE: &str = "scopedex_topk";
    /// `TOPK_THREADS` and `TOPK_MAX_K` of topk.cu.
    const THREADS: u32 = 512;
    const MAX_K: usize = 1024;

    pub(super) fn topk(x: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
        let (rows, n) = x.dims2()?;
        if k == 0 || k > n || k > MAX_K {
            bail!("topk: k = {k} must be in 1..={}", n.min(MAX_K));
        }
        let dev = x.device().clone();
        if rows == 0 {
            return Ok((
                Tensor::zeros((0, k), x.dtype(), &dev)?,
                Tensor::zeros((0, k), DType::U32, &dev)?,
            ));
        }
        // The kernel reads rows at a fixed stride with unit column stride.
        let x = x.contiguous()?;
        let cuda = dev.as_cuda_device()?.clone();
        let (storage, layout) = x.storage_and_layout();
        let Storage::Cuda(cs) = &*storage else {
            bail!("topk: the tensor is not on a CUDA device")
        };
        let start = layout.start_offset();
        let (vals, idx) = match x.dtype() {
            DType::F32 => launch::<f32>(&cuda, cs, start, "topk_rows_f32", rows, n, k)?,
            DType::BF16 => launch::<half::bf16>(&cuda, cs, start, "topk_rows_bf16", rows, n, k)?,
            dt => bail!("topk: unsupported dtype {dt:?} (f32, bf16)"),
        };
        drop(storage);
        let wrap = |s| Tensor::from_storage(Storage::Cuda(s), (rows, k), BackpropOp::none(), false);
        Ok((wrap(vals), wrap(idx)))
    }

    fn launch<T: CudaDType + DeviceRepr>(
        dev: &CudaDevice,
        cs: &CudaStorage,
        start: usize,
        func_name: &str,
        rows: usize,
        n: usize,
        k: usize,
    ) -> Result<(CudaStorage, CudaStorage)> {
        let src = cs.as_cuda_slice::<T>()?.slice(start..);
        // Loaded once per device; candle caches it under MODULE.
        let func = dev.get_or_load_custom_func(func_name, MODULE, PTX)?;
        // Safety: the kernel writes every element of both outputs (k slots per row).
        let mut out_val = unsafe { dev.alloc::<T>(rows * k)? };
        let mut out_idx = unsafe { dev.alloc::<u32>(rows * k)? };
        let (n32, k32, stride) = (n as u32, k as u32, n as u64);
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = func.builder();
        b.arg(&src);
        b.arg(&n32);
        b.arg(&k32);
        b.arg(&stride);
        b.arg(&mut out_val);
        b.arg(&mut out_idx);
        // Safety: argument types and order match topk_rows_* in kernels/topk.cu; k ≤ MAX_K ≤ n.
        unsafe { b.launch(cfg) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(out_val, dev.clone()),
            CudaStorage::wrap_cuda_slice(out_idx, dev.clone()),
        ))
    }
}
