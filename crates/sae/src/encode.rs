//! Batched sparse encoding: one GEMM per chunk of tokens, then a fused per-token pass.
//!
//! For each chunk of at most `chunk_rows` tokens, candle computes `P = x @ (s_in·E)` ([rows,
//! d_sae], f32); this is the only dense buffer. Rayon then walks the rows in parallel and, per
//! element, forms `h = P + b_enc'`, `gate = h · g` and selects:
//!
//! - **JumpReLU / ReLU**: `gate_j > threshold_j && h_j > 0` (strict, as lm_saes'
//!   `where(x > thr)` and SAELens' `relu(h) * (h > threshold)`; ReLU is threshold 0);
//! - **TopK**: the k largest gates among those > 0, ties to the lower feature id (lm_saes'
//!   `kthvalue` mask / SAELens' `topk`, then ReLU: a kept feature whose `h ≤ 0` would output 0,
//!   so features with `gate ≤ 0` are never candidates — identical whenever decoder norms are
//!   positive, and a zero-norm decoder column contributes nothing anyway).
//!
//! The kept value is `h_j` (not the gate), per lm_saes `feature_acts = hidden_pre * mask`.
//! TopK uses a streaming filter: a candidate buffer of `4k` entries and a running threshold
//! (the k-th best so far); when the buffer fills, `select_nth_unstable_by` prunes it back to k
//! and raises the threshold. Elements are first tested in blocks of 32 with a branch-free
//! "any above threshold" check, so almost all of a row costs one fused multiply-add and a
//! compare, auto-vectorised.
use candle_core::{Device, Storage, Tensor};
use rayon::prelude::*;

use crate::codes::SparseCodes;
use crate::error::{Error, Result};
use crate::params::Activation;
use crate::sae::Sae;

const BLOCK: usize = 32;

/// One task's output rows in CSR pieces.
#[derive(Default)]
struct Part {
    lens: Vec<u32>,
    features: Vec<u32>,
    values: Vec<f32>,
}

impl Sae {
    /// `x`: `[N, d_in]` (or `[.., d_in]`, flattened) activations in the model's native scale, any
    /// float dtype → codes with N rows. Processes `chunk_rows` tokens at a time, never holding
    /// more than one chunk of dense pre-activations.
    pub fn encode(&self, x: &Tensor) -> Result<SparseCodes> {
        let _span = tracing::debug_span!("sae_encode", sae = %self.name).entered();
        let x = self.prepare_input(x)?;
        let n = x.dim(0)?;
        let mut out = SparseCodes::new(self.d_sae);
        out.row_ptr.reserve(n);
        // On a CUDA device selection runs there; elsewhere on the host.
        let on_device = self.device_selection_inputs()?;
        let mut start = 0;
        while start < n {
            let rows = self.chunk_rows.min(n - start);
            let pre = self.preactivations(&x.narrow(0, start, rows)?)?;
            match &on_device {
                Some(sel) => self.select_on_device(&pre, sel, &mut out)?,
                None => {
                    self.with_host_slice(&pre, |dense| self.select_rows(dense, rows, &mut out))?
                }
            }
            start += rows;
        }
        Ok(out)
    }

    /// The second half of [`Sae::encode`]: pre-activations `[rows, d_sae]` (from
    /// [`Sae::preactivations`], bias not added) → codes. Public so benchmarks can time selection
    /// alone and callers with their own GEMM can reuse the selection.
    pub fn sparsify(&self, preactivations: &Tensor) -> Result<SparseCodes> {
        let dims = preactivations.dims();
        if dims.len() != 2 || dims[1] != self.d_sae {
            return Err(Error::Shape {
                what: "pre-activations".into(),
                expected: format!("[rows, {}]", self.d_sae),
                found: dims.to_vec(),
            });
        }
        let mut out = SparseCodes::new(self.d_sae);
        let pre = preactivations.to_dtype(candle_core::DType::F32)?;
        self.with_host_slice(&pre, |dense| self.select_rows(dense, dims[0], &mut out))?;
        Ok(out)
    }

    /// `x @ (s_in·E)` for one chunk: `[rows, d_sae]` f32 (no bias; that is fused into selection).
    /// Public for benchmarks, which time the GEMM alone.
    pub fn preactivations(&self, x: &Tensor) -> Result<Tensor> {
        Ok(scopedex_linalg::matmul(&x.contiguous()?, &self.w_enc)?)
    }

    /// Runs `f` on the contiguous host `f32` data of `t` (copied to the CPU if needed).
    pub(crate) fn with_host_slice<R>(&self, t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
        let t = if t.device().is_cpu() {
            t.contiguous()?
        } else {
            t.to_device(&Device::Cpu)?
        };
        let (storage, layout) = t.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Err(Error::Candle(candle_core::Error::Msg(
                "pre-activations are not on the CPU after to_device".into(),
            )));
        };
        let all = cpu.as_slice::<f32>()?;
        let (a, b) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("pre-activations not contiguous".into()))?;
        Ok(f(&all[a..b]))
    }

    /// Selects the active features of `rows` rows of dense pre-activations (`[rows, d_sae]`,
    /// bias not yet added) and appends them to `out`.
    pub(crate) fn select_rows(&self, dense: &[f32], rows: usize, out: &mut SparseCodes) {
        let d = self.d_sae;
        debug_assert_eq!(dense.len(), rows * d);
        let threads = rayon::current_num_threads().max(1);
        let rows_per_task = rows.div_ceil(threads * 4).max(1);
        let parts: Vec<Part> = dense
            .par_chunks(rows_per_task * d)
            .map(|block| {
                let mut part = Part::default();
                let mut cand: Vec<(f32, u32)> = Vec::new();
                for raw in block.chunks_exact(d) {
                    let before = part.features.len();
                    match &self.activation {
                        Activation::TopK { k } => self.topk_row(raw, *k, &mut cand, &mut part),
                        _ => self.threshold_row(raw, &mut part),
                    }
                    part.lens.push((part.features.len() - before) as u32);
                }
                part
            })
            .collect();
        let total: usize = parts.iter().map(|p| p.features.len()).sum();
        out.features.reserve(total);
        out.values.reserve(total);
        for p in parts {
            let mut end = *out.row_ptr.last().unwrap_or(&0);
            for len in p.lens {
                end += len as usize;
                out.row_ptr.push(end);
            }
            out.features.extend_from_slice(&p.features);
            out.values.extend_from_slice(&p.values);
        }
    }

    /// JumpReLU / ReLU: keep `h_j` where `h_j·g_j > t_j` and `h_j > 0`.
    fn threshold_row(&self, raw: &[f32], part: &mut Part) {
        let (b, g, t) = (&self.b_enc[..], &self.gate_scale[..], &self.threshold[..]);
        let mut base = 0;
        for (((rc, bc), gc), tc) in raw
            .chunks(BLOCK)
            .zip(b.chunks(BLOCK))
            .zip(g.chunks(BLOCK))
            .zip(t.chunks(BLOCK))
        {
            let mut any = false;
            for i in 0..rc.len() {
                let h = rc[i] + bc[i];
                any |= (h * gc[i] > tc[i]) & (h > 0.0);
            }
            if any {
                for i in 0..rc.len() {
                    let h = rc[i] + bc[i];
                    if h * gc[i] > tc[i] && h > 0.0 {
                        part.features.push((base + i) as u32);
                        part.values.push(h);
                    }
                }
            }
            base += rc.len();
        }
    }

    /// TopK: the k largest gates (> 0; ties to the lower id), output `h` in ascending id order.
    fn topk_row(&self, raw: &[f32], k: usize, cand: &mut Vec<(f32, u32)>, part: &mut Part) {
        let (b, g) = (&self.b_enc[..], &self.gate_scale[..]);
        let cap = 4 * k.max(8);
        cand.clear();
        cand.reserve(cap);
        // Start from a safe floor: the k-th largest gate of a strided sample is ≤ the row's k-th
        // largest (a subset's order statistic), so everything strictly above the next float
        // below it still includes the whole top k, ties included. This skips the warm-up phase
        // where almost every block holds a new candidate.
        let mut floor = 0f32;
        if raw.len() >= SAMPLE_STRIDE * 2 * k {
            for j in (0..raw.len()).step_by(SAMPLE_STRIDE) {
                let gate = (raw[j] + b[j]) * g[j];
                if gate > 0.0 {
                    cand.push((gate, j as u32));
                }
            }
            if cand.len() >= k {
                prune(cand, k);
                floor = next_below(cand[k - 1].0);
            }
            cand.clear();
        }
        let mut gates = [0f32; BLOCK];
        let mut base = 0;
        for ((rc, bc), gc) in raw.chunks(BLOCK).zip(b.chunks(BLOCK)).zip(g.chunks(BLOCK)) {
            let mut any = false;
            for i in 0..rc.len() {
                let gate = (rc[i] + bc[i]) * gc[i];
                gates[i] = gate;
                any |= gate > floor;
            }
            if any {
                for (i, &gate) in gates[..rc.len()].iter().enumerate() {
                    if gate > floor {
                        cand.push((gate, (base + i) as u32));
                        if cand.len() == cap {
                            prune(cand, k);
                            floor = cand[k - 1].0;
                        }
                    }
                }
            }
            base += rc.len();
        }
        if cand.len() > k {
            prune(cand, k);
        }
        cand.sort_unstable_by_key(|&(_, j)| j);
        for &(_, j) in cand.iter() {
            let h = raw[j as usize] + b[j as usize];
            // h > 0 always holds when the gate scale is positive; guard the invariant anyway.
            if h > 0.0 {
                part.features.push(j);
                part.values.push(h);
            }
        }
    }
}

/// Every `SAMPLE_STRIDE`-th gate seeds the TopK floor.
const SAMPLE_STRIDE: usize = 8;

/// The largest float below `x` (for `x > 0`; 0 otherwise), so `gate > next_below(x)` admits
/// gates equal to `x`.
fn next_below(x: f32) -> f32 {
    if x > 0.0 {
        f32::from_bits(x.to_bits() - 1)
    } else {
        0.0
    }
}

/// Keeps the k best candidates (gate descending, id ascending) in `cand[..k]`, with the k-th
/// best (the smallest kept) at `cand[k - 1]`.
fn prune(cand: &mut Vec<(f32, u32)>, k: usize) {
    let better = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    cand.select_nth_unstable_by(k - 1, better);
    cand.truncate(k);
    // After select_nth, cand[k-1] is the k-th best; everything before it is better.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_best_with_low_id_ties() {
        let mut c = vec![(1.0, 5), (3.0, 1), (1.0, 2), (2.0, 7), (0.5, 0)];
        prune(&mut c, 3);
        assert_eq!(c[2], (1.0, 2));
        let mut ids: Vec<u32> = c.iter().map(|x| x.1).collect();
        ids.sort();
        assert_eq!(ids, [1, 2, 7]);
        assert!(next_below(1.0) < 1.0 && next_below(1.0) > 0.999_999);
        assert_eq!(next_below(-1.0), 0.0);
    }
}
