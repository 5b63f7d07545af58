//! Feature selection on the SAE's device (a CUDA GPU): the pre-activations never leave it; only
//! the active (feature, value) pairs of each token cross to the host.
//!
//! - **TopK**: our kernel (`kernels/topk.cu`: radix select of the k-th largest gate, then
//!   compaction in column order) ranks exactly as [`crate::Sae::encode`]'s host selection does:
//!   gate descending, ties to the lower feature id. candle's own sort kernels do not cover rows
//!   32,768 or 131,072 wide.
//! - **JumpReLU / ReLU**: candle's ops form the mask `gate > threshold && h > 0` (the host's
//!   comparison, in the same f32 arithmetic) and count each row's active features; the same
//!   TopK kernel then takes, per row, the row's largest count of masked gates (inactive entries
//!   set to −∞), so every active feature comes out and only those are kept. A chunk whose
//!   widest row has more than the kernel's 1,024 is selected on the host instead.
//!
//! On the CPU (tests) the TopK step is candle's stable arg-sort, so this path can be checked
//! against the host selection without a GPU.
use candle_core::{DType, Tensor};

use crate::codes::SparseCodes;
use crate::error::Result;
use crate::params::Activation;
use crate::sae::Sae;

/// The largest k the TopK kernel takes (`TOPK_MAX_K` of kernels/topk.cu).
const MAX_K: usize = 1024;

/// The per-feature vectors selection reads, as `[1, d_sae]` tensors on the SAE's device, made
/// once per [`Sae::encode`] call.
pub(crate) struct DeviceSelection {
    b_enc: Tensor,
    gate_scale: Tensor,
    /// Per-feature thresholds (JumpReLU; zeros for ReLU); `None` for TopK.
    threshold: Option<Tensor>,
}

impl Sae {
    /// The inputs of [`Sae::select_on_device`]; `None` off a CUDA device (selection then runs
    /// on the host).
    pub(crate) fn device_selection_inputs(&self) -> Result<Option<DeviceSelection>> {
        if !self.device.is_cuda() {
            return Ok(None);
        }
        self.selection_inputs_on_device().map(Some)
    }

    /// [`DeviceSelection`] on the SAE's device, whatever it is.
    pub(crate) fn selection_inputs_on_device(&self) -> Result<DeviceSelection> {
        let row = |v: &[f32]| Tensor::from_slice(v, (1, self.d_sae), &self.device);
        Ok(DeviceSelection {
            b_enc: row(&self.b_enc)?,
            gate_scale: row(&self.gate_scale)?,
            threshold: match self.activation {
                Activation::TopK { .. } => None,
                _ => Some(row(&self.threshold)?),
            },
        })
    }

    /// Codes of one chunk of pre-activations `pre` `[rows, d_sae]` (bias not added) held on the
    /// device, appended to `out`.
    pub(crate) fn select_on_device(
        &self,
        pre: &Tensor,
        sel: &DeviceSelection,
        out: &mut SparseCodes,
    ) -> Result<()> {
        let h = pre.to_dtype(DType::F32)?.broadcast_add(&sel.b_enc)?;
        let gate = h.broadcast_mul(&sel.gate_scale)?;
        match (&self.activation, &sel.threshold) {
            (Activation::TopK { k }, _) if *k > MAX_K => self.select_on_host(pre, out),
            (Activation::TopK { k }, _) => {
                let (gate_top, idx) = topk_last_dim(&gate, *k)?;
                // Gates ≤ 0 never count (the host's rule: the k largest among those > 0).
                append_rows(&h, &gate_top, &idx, |g| g > 0.0, out)
            }
            (_, Some(threshold)) => {
                let active = gate.broadcast_gt(threshold)?.mul(&h.gt(0f64)?)?;
                let widest = active
                    .to_dtype(DType::U32)?
                    .sum(1)?
                    .max(0)?
                    .to_scalar::<u32>()? as usize;
                if widest == 0 {
                    out.row_ptr
                        .extend(std::iter::repeat_n(out.features.len(), pre.dim(0)?));
                    return Ok(());
                }
                if widest > MAX_K {
                    return self.select_on_host(pre, out);
                }
                let masked = active.where_cond(
                    &gate,
                    &Tensor::new(f32::NEG_INFINITY, gate.device())?.broadcast_as(gate.shape())?,
                )?;
                let (gate_top, idx) = topk_last_dim(&masked, widest)?;
                append_rows(&h, &gate_top, &idx, |g| g > f32::NEG_INFINITY, out)
            }
            (_, None) => Err(candle_core::Error::Msg(
                "threshold selection without thresholds on the device".into(),
            )
            .into()),
        }
    }

    /// The host selection of a chunk the kernel cannot take (more than [`MAX_K`] per row): its
    /// dense pre-activations are copied over.
    fn select_on_host(&self, pre: &Tensor, out: &mut SparseCodes) -> Result<()> {
        let rows = pre.dim(0)?;
        let dense = pre.to_dtype(DType::F32)?;
        self.with_host_slice(&dense, |d| self.select_rows(d, rows, out))
    }
}

/// Appends, per row, the entries of `idx` whose gate passes `keep`, in ascending feature order,
/// with their `h` values.
fn append_rows(
    h: &Tensor,
    gate_top: &Tensor,
    idx: &Tensor,
    keep: impl Fn(f32) -> bool,
    out: &mut SparseCodes,
) -> Result<()> {
    let h_top = h.contiguous()?.gather(&idx.contiguous()?, 1)?;
    let idx = idx.to_vec2::<u32>()?;
    let gate_top = gate_top.to_vec2::<f32>()?;
    let h_top = h_top.to_vec2::<f32>()?;
    for ((idx, gates), hs) in idx.iter().zip(&gate_top).zip(&h_top) {
        let mut kept: Vec<(u32, f32)> = idx
            .iter()
            .zip(gates)
            .zip(hs)
            .filter(|((_, &g), &h)| keep(g) && h > 0.0)
            .map(|((&j, _), &h)| (j, h))
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

/// Row-wise top k of `x` `[rows, n]`: values and u32 column ids, `[rows, k]`, value descending,
/// ties to the lower column: our kernel on a CUDA device, candle's stable arg-sort elsewhere.
fn topk_last_dim(x: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    if x.device().is_cuda() {
        #[cfg(feature = "cuda")]
        return Ok(cuda::topk(x, k)?);
    }
    let idx = x
        .contiguous()?
        .arg_sort_last_dim(false)?
        .narrow(1, 0, k)?
        .contiguous()?;
    Ok((x.contiguous()?.gather(&idx, 1)?, idx))
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
    use super::MAX_K;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ThresholdKind;
    use crate::{fabricate_llama_scope, FabricateSpec};
    use candle_core::Device;

    fn fabricated(d_sae: usize, k: usize) -> Sae {
        let dir = tempfile::tempdir().unwrap();
        let spec = FabricateSpec {
            d_model: 16,
            d_sae,
            k,
            hook_in: "blocks.0.hook_resid_post".into(),
            hook_out: "blocks.0.hook_resid_post".into(),
            norm: (4.0, 4.0),
            seed: d_sae as u64,
        };
        fabricate_llama_scope(dir.path(), &spec).unwrap();
        Sae::load(dir.path(), &Device::Cpu).unwrap()
    }

    /// Pre-activations in [-1, 1) on a 1/32 grid, so that rows hold many exact ties.
    fn preactivations(rows: usize, d_sae: usize, seed: u64) -> Tensor {
        let mut s = seed | 1;
        let v: Vec<f32> = (0..rows * d_sae)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) % 64) as f32 / 32.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, (rows, d_sae), &Device::Cpu).unwrap()
    }

    /// The device path (run here on the CPU, candle's arg-sort standing in for the kernel)
    /// against the host selection, on the same pre-activations.
    fn check(sae: &Sae, pre: &Tensor) -> SparseCodes {
        let rows = pre.dim(0).unwrap();
        let mut host = SparseCodes::new(sae.d_sae);
        sae.with_host_slice(pre, |d| sae.select_rows(d, rows, &mut host))
            .unwrap();
        let mut device = SparseCodes::new(sae.d_sae);
        let sel = sae.selection_inputs_on_device().unwrap();
        sae.select_on_device(pre, &sel, &mut device).unwrap();
        assert_eq!(device, host, "{:?}", sae.activation);
        host
    }

    #[test]
    fn device_selection_equals_host_selection() {
        let mut sae = fabricated(256, 8);
        let pre = preactivations(40, 256, 3);
        assert_eq!(check(&sae, &pre).nnz(), 40 * 8);

        let t: Vec<f32> = (0..256).map(|j| (j % 7) as f32 * 0.05).collect();
        sae.activation = Activation::JumpRelu {
            threshold: ThresholdKind::PerFeature(t.clone()),
        };
        sae.threshold = t;
        let codes = check(&sae, &pre);
        assert!(codes.nnz() > 40 * 8, "{}", codes.nnz());
        // Nothing passes: every row empty.
        sae.threshold = vec![1e9; 256];
        assert_eq!(check(&sae, &pre).nnz(), 0);

        sae.activation = Activation::Relu;
        sae.threshold = vec![0.0; 256];
        check(&sae, &pre);
    }

    /// Rows with more active features than the kernel's k are selected on the host.
    #[test]
    fn wide_rows_fall_back_to_the_host() {
        let mut sae = fabricated(4096, 8);
        sae.activation = Activation::Relu;
        sae.threshold = vec![0.0; 4096];
        let pre = preactivations(3, 4096, 9);
        let codes = check(&sae, &pre);
        assert!(codes.nnz() > 3 * MAX_K, "{}", codes.nnz());
        // And a k beyond the kernel's.
        sae.activation = Activation::TopK { k: 1500 };
        assert!(check(&sae, &pre).nnz() > 3 * MAX_K);
    }
}
