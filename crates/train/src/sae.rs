//! The trainable TopK SAE: parameters in normalised units, the forward pass and export to the
//! Llama Scope layout.
//!
//! Units: the SAE sees `x' = x · s_in` and reconstructs `y' = y · s_out` with
//! `s = sqrt(d_model) / norm` (Llama Scope's dataset-wise normalisation; `norm` is the mean L2
//! norm of the hook's activations, estimated on the first buffer of training rows).
//!
//! ```text
//! h = x' @ Eᵀ + b_enc            E: [d_sae, d] (= encoder.weight)
//! a = TopK(h) then ReLU          the k largest h_j among h_j > 0, ties to the lower id
//! ŷ' = a @ D + b_dec              D: [d_sae, d], rows of unit L2 norm (= decoder.weightᵀ)
//! ```
//!
//! Decoder variant: rows of `D` are kept at exactly unit norm (renormalised after every step,
//! gradient component along the row removed first, as Gao et al. 2024), so the written
//! hyperparams say `sparsity_include_decoder_norm: false` and the loader's gate is `h` itself —
//! the same selection the trainer makes. `apply_decoder_bias_to_pre_encoder` is false (Llama
//! Scope's default); instead `b_enc` starts at `−E·mean(x')`, which centres the input at init.
use candle_core::{Device, Tensor};
use rayon::prelude::*;
use scopedex_sae::{DatasetNorm, LlamaScopeHyperparams, LlamaScopeTensors, Sae};

use crate::error::Result;
use crate::rng::Rng;

/// Adam moments of one parameter array.
#[derive(Debug, Clone)]
pub(crate) struct Moments {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Moments {
    fn zeros(n: usize) -> Moments {
        Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }
}

/// A TopK SAE being trained (or just trained).
#[derive(Debug, Clone)]
pub struct TopKSae {
    /// Input = output width.
    pub(crate) d: usize,
    pub(crate) d_sae: usize,
    pub(crate) k: usize,
    /// `[d_sae, d]`, row j = encoder direction of feature j.
    pub(crate) enc: Vec<f32>,
    /// `[d_sae]`.
    pub(crate) b_enc: Vec<f32>,
    /// `[d_sae, d]`, row j = unit decoder direction of feature j.
    pub(crate) dec: Vec<f32>,
    /// `[d]`.
    pub(crate) b_dec: Vec<f32>,
    pub(crate) m_enc: Moments,
    pub(crate) m_b_enc: Moments,
    pub(crate) m_dec: Moments,
    pub(crate) m_b_dec: Moments,
    /// Adam steps taken.
    pub(crate) t: u64,
    /// Training tokens seen when each feature last fired.
    pub(crate) last_fired: Vec<u64>,
    /// Input and output scales (`sqrt(d) / norm`).
    pub(crate) s_in: f32,
    pub(crate) s_out: f32,
    /// The estimated dataset norms.
    pub(crate) norm: DatasetNorm,
}

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
    /// A fresh SAE: random unit decoder rows, encoder = decoder transpose (same rows),
    /// `b_dec` = mean normalised target, `b_enc = −E·mean normalised input`.
    ///
    /// `mean_in` / `mean_out`: per-dimension means of the *normalised* input / target.
    pub fn init(
        d: usize,
        d_sae: usize,
        k: usize,
        norm: DatasetNorm,
        mean_in: &[f32],
        mean_out: &[f32],
        rng: &mut Rng,
    ) -> TopKSae {
        let mut dec = vec![0f32; d_sae * d];
        for row in dec.chunks_exact_mut(d) {
            for v in row.iter_mut() {
                *v = rng.normal();
            }
            normalize(row);
        }
        let enc = dec.clone();
        Self::from_directions(d, d_sae, k, norm, mean_in, mean_out, enc, dec)
    }

    /// A fresh SAE whose feature `j` starts at sample `j`: `samples[j] = (x, y)` native-scale
    /// input and target rows (`d_sae` of them). Encoder row = normalised `x·s_in − mean_in`,
    /// decoder row = normalised `y·s_out − mean_out` (a zero vector falls back to random).
    #[allow(clippy::too_many_arguments)]
    pub fn init_from_samples(
        d: usize,
        d_sae: usize,
        k: usize,
        norm: DatasetNorm,
        mean_in: &[f32],
        mean_out: &[f32],
        samples: &[(&[f32], &[f32])],
        rng: &mut Rng,
    ) -> TopKSae {
        assert_eq!(samples.len(), d_sae, "one sample per feature");
        let root = (d as f32).sqrt();
        let (s_in, s_out) = (root / norm.input, root / norm.output);
        let mut enc = vec![0f32; d_sae * d];
        let mut dec = vec![0f32; d_sae * d];
        let mut centred = |dst: &mut [f32], src: &[f32], s: f32, mean: &[f32]| {
            for ((o, v), m) in dst.iter_mut().zip(src).zip(mean) {
                *o = v * s - m;
            }
            if dot(dst, dst) <= f32::MIN_POSITIVE {
                dst.iter_mut().for_each(|v| *v = rng.normal());
            }
            normalize(dst);
        };
        for (j, (x, y)) in samples.iter().enumerate() {
            centred(&mut enc[j * d..(j + 1) * d], x, s_in, mean_in);
            centred(&mut dec[j * d..(j + 1) * d], y, s_out, mean_out);
        }
        Self::from_directions(d, d_sae, k, norm, mean_in, mean_out, enc, dec)
    }

    #[allow(clippy::too_many_arguments)]
    fn from_directions(
        d: usize,
        d_sae: usize,
        k: usize,
        norm: DatasetNorm,
        mean_in: &[f32],
        mean_out: &[f32],
        enc: Vec<f32>,
        dec: Vec<f32>,
    ) -> TopKSae {
        let b_enc: Vec<f32> = enc.chunks_exact(d).map(|e| -dot(e, mean_in)).collect();
        let root = (d as f32).sqrt();
        TopKSae {
            d,
            d_sae,
            k,
            b_enc,
            b_dec: mean_out.to_vec(),
            m_enc: Moments::zeros(d_sae * d),
            m_b_enc: Moments::zeros(d_sae),
            m_dec: Moments::zeros(d_sae * d),
            m_b_dec: Moments::zeros(d),
            enc,
            dec,
            t: 0,
            last_fired: vec![0; d_sae],
            s_in: root / norm.input,
            s_out: root / norm.output,
            norm,
        }
    }

    /// Number of features.
    pub fn d_sae(&self) -> usize {
        self.d_sae
    }

    /// Input / output width.
    pub fn d_model(&self) -> usize {
        self.d
    }

    /// The dataset norms the SAE normalises with.
    pub fn norm(&self) -> DatasetNorm {
        self.norm
    }

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
    /// forward; the loaded [`Sae`] must select the same features).
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

    pub(crate) fn row<'a>(&self, m: &'a [f32], j: u32) -> &'a [f32] {
        let a = j as usize * self.d;
        &m[a..a + self.d]
    }

    /// The Llama Scope hyperparams that make the loader reproduce [`TopKSae::encode`].
    pub fn hyperparams(&self, hook_in: &str, hook_out: &str) -> LlamaScopeHyperparams {
        LlamaScopeHyperparams {
            d_model: self.d,
            d_sae: self.d_sae,
            expansion_factor: (self.d_sae / self.d) as u32,
            hook_point_in: hook_in.into(),
            hook_point_out: hook_out.into(),
            act_fn: "topk".into(),
            jump_relu_threshold: None,
            top_k: Some(self.k),
            norm_activation: "dataset-wise".into(),
            dataset_average_activation_norm: Some(self.norm),
            sparsity_include_decoder_norm: false,
            use_decoder_bias: true,
            apply_decoder_bias_to_pre_encoder: false,
        }
    }

    /// The four tensors, f32, in `nn.Linear` orientation.
    pub fn tensors(&self) -> Result<LlamaScopeTensors> {
        let (d, s) = (self.d, self.d_sae);
        let cpu = Device::Cpu;
        let mut dec_t = vec![0f32; d * s];
        for (j, row) in self.dec.chunks_exact(d).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                dec_t[i * s + j] = v;
            }
        }
        Ok(LlamaScopeTensors {
            encoder_weight: Tensor::from_slice(&self.enc, (s, d), &cpu)?,
            encoder_bias: Tensor::from_slice(&self.b_enc, s, &cpu)?,
            decoder_weight: Tensor::from_vec(dec_t, (d, s), &cpu)?,
            decoder_bias: Tensor::from_slice(&self.b_dec, d, &cpu)?,
        })
    }

    /// The SAE as the loader would build it from the written files.
    pub fn to_sae(&self, name: &str, hook_in: &str, hook_out: &str) -> Result<Sae> {
        Ok(Sae::from_llama_scope(
            name,
            &self.hyperparams(hook_in, hook_out),
            &self.tensors()?,
            &Device::Cpu,
        )?)
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

pub(crate) use scopedex_linalg::{axpy, dot};

/// Scales `v` to unit L2 norm (left as is when zero).
pub(crate) fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_init_starts_each_feature_at_its_centred_sample() {
        let d = 4;
        let norm = DatasetNorm {
            input: 2.0,
            output: 4.0,
        };
        // s_in = sqrt(4)/2 = 1, s_out = sqrt(4)/4 = 0.5.
        let (mean_in, mean_out) = (vec![1.0, 0.0, 0.0, 0.0], vec![0.0; 4]);
        let x0 = [1.0f32, 3.0, 0.0, 4.0];
        let y0 = [0.0f32, 0.0, 2.0, 0.0];
        // Sample 1 equals the input mean: centred it is zero, so it falls back to random.
        let x1 = [1.0f32, 0.0, 0.0, 0.0];
        let y1 = [2.0f32, 2.0, 2.0, 2.0];
        let samples: Vec<(&[f32], &[f32])> = vec![(&x0, &y0), (&x1, &y1)];
        let mut rng = Rng::new(3);
        let sae =
            TopKSae::init_from_samples(d, 2, 1, norm, &mean_in, &mean_out, &samples, &mut rng);
        assert_eq!(&sae.enc[..4], &[0.0, 0.6, 0.0, 0.8]);
        assert_eq!(&sae.dec[..4], &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(&sae.dec[4..], &[0.5, 0.5, 0.5, 0.5]);
        let n1 = dot(&sae.enc[4..], &sae.enc[4..]);
        assert!((n1 - 1.0).abs() < 1e-5, "random fallback is unit norm");
        // b_enc centres the input: −E·mean_in.
        assert_eq!(sae.b_enc[0], 0.0);
        assert!((sae.b_enc[1] + sae.enc[4]).abs() < 1e-6);
    }
}
