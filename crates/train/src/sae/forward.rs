//! The forward pass: pre-activations (one GEMM), the per-row TopK selection into [`Codes`], and
//! decoding back to the model's native scale.
use rayon::prelude::*;

use super::math::{axpy, gemm_abt};
use super::TopKSae;

/// Sparse codes of a batch: up to `k` (feature, value) pairs per row, `count[r]` of them used.
#[derive(Debug, Clone, Default)]
pub struct Codes {
    /// Slots per row.
    pub k: usize,
    /// `[rows * k]` feature ids (unused slots 0).
    pub idx: Vec<u32>,
    /// `[rows * k]` activations (unused slots 0).
    pub val: Vec<f32>,
    /// Active features per row.
    pub count: Vec<u32>,
}

impl Codes {
    /// Row `r`'s active features and values.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, n) = (r * self.k, self.count[r] as usize);
        (&self.idx[a..a + n], &self.val[a..a + n])
    }
}

impl TopKSae {
    /// Pre-activations without bias, `x' @ Eᵀ`: `x_norm` `[rows, d]` → `[rows, d_sae]`.
    pub(crate) fn preactivations(&self, x_norm: &[f32], rows: usize, out: &mut Vec<f32>) {
        out.clear();
        out.resize(rows * self.d_sae, 0.0);
        gemm_abt(out, x_norm, &self.enc, rows, self.d_sae, self.d);
    }

    /// Selects each row's top k of `h = pre + b_enc` (h > 0, ties to the lower id).
    pub(crate) fn select(&self, pre: &[f32], rows: usize) -> Codes {
        let (k, s) = (self.k, self.d_sae);
        let mut codes = Codes {
            k,
            idx: vec![0; rows * k],
            val: vec![0.0; rows * k],
            count: vec![0; rows],
        };
        codes
            .idx
            .par_chunks_mut(k)
            .zip(codes.val.par_chunks_mut(k))
            .zip(codes.count.par_iter_mut())
            .zip(pre.par_chunks(s))
            .for_each_init(Vec::new, |cand, (((idx, val), count), p)| {
                *count = topk_row(p, &self.b_enc, k, cand, idx, val) as u32;
            });
        codes
    }

    /// Encodes activations in the model's native scale, `[rows, d]` → codes (the trainer's
    /// forward; the loaded [`Sae`](scopedex_sae::Sae) must select the same features).
    pub fn encode(&self, x: &[f32]) -> Codes {
        let rows = x.len() / self.d;
        let xn: Vec<f32> = x.iter().map(|v| v * self.s_in).collect();
        let mut pre = Vec::new();
        self.preactivations(&xn, rows, &mut pre);
        self.select(&pre, rows)
    }

    /// Decodes codes to the model's native output scale, `[rows, d]`.
    pub fn decode(&self, codes: &Codes) -> Vec<f32> {
        let d = self.d;
        let rows = codes.count.len();
        let mut out = vec![0f32; rows * d];
        out.par_chunks_mut(d).enumerate().for_each(|(r, y)| {
            y.copy_from_slice(&self.b_dec);
            let (idx, val) = codes.row(r);
            for (&j, &a) in idx.iter().zip(val) {
                axpy(y, a, self.row(&self.dec, j));
            }
            let inv = 1.0 / self.s_out;
            y.iter_mut().for_each(|v| *v *= inv);
        });
        out
    }
}

/// Top k of `h = p + b` among `h > 0`, ties to the lower id; writes them to `idx`/`val`
/// (any order) and returns how many. A strided sample gives a safe floor first (a subset's k-th
/// largest is ≤ the row's), so only a few candidates per row reach the exact selection.
fn topk_row(
    p: &[f32],
    b: &[f32],
    k: usize,
    cand: &mut Vec<(f32, u32)>,
    idx: &mut [u32],
    val: &mut [f32],
) -> usize {
    const STRIDE: usize = 8;
    let mut floor = 0f32;
    cand.clear();
    if p.len() >= STRIDE * 2 * k {
        for j in (0..p.len()).step_by(STRIDE) {
            let h = p[j] + b[j];
            if h > floor {
                cand.push((h, j as u32));
            }
        }
        if cand.len() >= k {
            keep_best(cand, k);
            // Strictly below the sample's k-th value, so ties with it stay candidates.
            floor = f32::from_bits(cand[k - 1].0.to_bits() - 1).max(0.0);
        }
        cand.clear();
    }
    for (j, (&pj, &bj)) in p.iter().zip(b).enumerate() {
        let h = pj + bj;
        if h > floor {
            cand.push((h, j as u32));
        }
    }
    if cand.len() > k {
        keep_best(cand, k);
    }
    for (n, &(h, j)) in cand.iter().enumerate() {
        idx[n] = j;
        val[n] = h;
    }
    cand.len()
}

/// Keeps the k best of `cand` (value descending, id ascending).
pub(crate) fn keep_best(cand: &mut Vec<(f32, u32)>, k: usize) {
    if cand.len() > k {
        cand.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        cand.truncate(k);
    }
    // The k-th best must sit last (callers read it as the threshold).
    let worst = cand
        .iter()
        .enumerate()
        .min_by(|(_, a), (_, b)| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(i, _)| i);
    if let Some(w) = worst {
        let last = cand.len() - 1;
        cand.swap(w, last);
    }
}
