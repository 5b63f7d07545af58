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

/// Restart rows of one resampling round have input directions below this cosine.
const MAX_RESTART_COS: f32 = 0.8;

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

    /// Scales every encoder row and `b_enc` by the factor `c` that makes the reconstruction of
    /// `x`, `y` (`[rows, d]`, native scale) least-squares calibrated: `c = Σ⟨y' − b_dec, r⟩ /
    /// Σ‖r‖²` with `r = Σ_j a_j D_j`. TopK picks the same features at any positive scale, so
    /// this only fixes the size of the activations — needed after a data initialisation, where
    /// k features aligned with a row each fire at about the row's full norm and the sum
    /// overshoots it about k-fold. Returns `c` (1 when undefined).
    pub fn calibrate_encoder_scale(&mut self, x: &[f32], y: &[f32]) -> f32 {
        let all = vec![true; self.d_sae];
        self.calibrate(x, y, &all)
    }

    /// [`TopKSae::calibrate_encoder_scale`] for the features in `mask` only: the rest of the
    /// reconstruction (with `b_dec`) is held fixed and `c ≤ 1` (a scale-down; the selection
    /// changes with the scale, so this is one least-squares step, not an exact fit).
    fn calibrate(&mut self, x: &[f32], y: &[f32], mask: &[bool]) -> f32 {
        let d = self.d;
        let rows = x.len() / d;
        let xn: Vec<f32> = x.iter().map(|v| v * self.s_in).collect();
        let mut pre = Vec::new();
        self.preactivations(&xn, rows, &mut pre);
        let codes = self.select(&pre, rows);
        let (num, den) = (0..rows)
            .into_par_iter()
            .map_init(
                || (vec![0f32; d], vec![0f32; d]),
                |(part, rest), r| {
                    part.iter_mut().for_each(|v| *v = 0.0);
                    rest.copy_from_slice(&self.b_dec);
                    let (idx, val) = codes.row(r);
                    for (&j, &a) in idx.iter().zip(val) {
                        let dst = if mask[j as usize] {
                            &mut *part
                        } else {
                            &mut *rest
                        };
                        axpy(dst, a, self.row(&self.dec, j));
                    }
                    let mut num = 0f64;
                    for ((p, yv), b) in part.iter().zip(&y[r * d..(r + 1) * d]).zip(&*rest) {
                        num += (*p as f64) * ((yv * self.s_out - b) as f64);
                    }
                    (num, dot(part, part) as f64)
                },
            )
            .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        let mut c = (num / den) as f32;
        if !(c.is_finite() && c > 0.0) {
            return 1.0;
        }
        if !mask.iter().all(|&m| m) {
            c = c.min(1.0);
        }
        for (j, e) in self.enc.chunks_exact_mut(d).enumerate() {
            if mask[j] {
                e.iter_mut().for_each(|v| *v *= c);
                self.b_enc[j] *= c;
            }
        }
        c
    }

    /// Features that have not fired in the `window` training tokens before `now`.
    pub fn dead_features(&self, now: u64, window: u64) -> Vec<u32> {
        if now < window {
            return Vec::new();
        }
        let cut = now - window;
        (0..self.d_sae as u32)
            .filter(|&j| self.last_fired[j as usize] <= cut)
            .collect()
    }

    /// Restarts `feats` (Anthropic's "resampling", adapted to TopK) at rows the SAE reconstructs
    /// worst: `x`, `y` `[rows, d]` native-scale input and target rows; each feature takes a
    /// distinct row drawn with probability ∝ its squared reconstruction error (rows repeat only
    /// when there are more features than rows). Decoder row = the row's normalised residual
    /// `y' − ŷ'` (what is missing), encoder row = its centred input direction `x' − mean_in`
    /// scaled to the mean norm of the other features' encoder rows (so it can win a TopK on rows
    /// like that one), `b_enc = −E_j·mean_in`; the feature's Adam moments are cleared and it
    /// counts as fired at `now`. Rows whose input direction is close to a chosen row's are
    /// skipped, so fewer features than `feats` may restart. Returns how many restarted.
    pub fn resample(
        &mut self,
        feats: &[u32],
        x: &[f32],
        y: &[f32],
        mean_in: &[f32],
        now: u64,
        rng: &mut Rng,
    ) -> usize {
        let d = self.d;
        let rows = x.len() / d;
        if feats.is_empty() || rows == 0 {
            return 0;
        }
        let xn: Vec<f32> = x.iter().map(|v| v * self.s_in).collect();
        let mut pre = Vec::new();
        self.preactivations(&xn, rows, &mut pre);
        let codes = self.select(&pre, rows);
        let mut err = vec![0f32; rows * d];
        let sq: Vec<f32> = err
            .par_chunks_mut(d)
            .enumerate()
            .map(|(r, e)| {
                e.copy_from_slice(&self.b_dec);
                let (idx, val) = codes.row(r);
                for (&j, &a) in idx.iter().zip(val) {
                    axpy(e, a, self.row(&self.dec, j));
                }
                // e = y' − ŷ'
                for (ei, yi) in e.iter_mut().zip(&y[r * d..(r + 1) * d]) {
                    *ei = yi * self.s_out - *ei;
                }
                dot(e, e)
            })
            .collect();
        // Weighted sampling without replacement (Efraimidis–Spirakis): the largest
        // ln(u) / w keys.
        let mut keys: Vec<(f64, usize)> = sq
            .iter()
            .enumerate()
            .filter(|(_, &w)| w > 0.0)
            .map(|(r, &w)| (rng.uniform().max(1e-300).ln() / w as f64, r))
            .collect();
        if keys.is_empty() {
            return 0;
        }
        keys.sort_by(|a, b| b.0.total_cmp(&a.0));
        let is_feat = {
            let mut m = vec![false; self.d_sae];
            feats.iter().for_each(|&j| m[j as usize] = true);
            m
        };
        let (mut sum, mut n) = (0f64, 0usize);
        for (j, e) in self.enc.chunks_exact(d).enumerate() {
            if !is_feat[j] {
                sum += dot(e, e).sqrt() as f64;
                n += 1;
            }
        }
        let scale = if n > 0 { (sum / n as f64) as f32 } else { 1.0 };
        // Second moments start at the other features' mean, so the first updates are not
        // Adam's oversized ones from a zero second moment.
        let mean_v = |v: &[f32], width: usize| {
            let (mut acc, mut cnt) = (0f64, 0usize);
            for (j, chunk) in v.chunks_exact(width).enumerate() {
                if !is_feat[j] {
                    acc += chunk.iter().map(|&x| x as f64).sum::<f64>();
                    cnt += width;
                }
            }
            if cnt > 0 {
                (acc / cnt as f64) as f32
            } else {
                0.0
            }
        };
        let (v_enc, v_dec, v_b) = (
            mean_v(&self.m_enc.v, d),
            mean_v(&self.m_dec.v, d),
            mean_v(&self.m_b_enc.v, 1),
        );
        // Distinct restart rows: a row whose centred input is within MAX_RESTART_COS of an
        // already chosen one is skipped (features restarted at near-identical rows would fire
        // together on them and overshoot, e.g. at the few massive-norm tokens of a residual
        // stream); features without a row stay dead until the next round.
        let centred_dir = |r: usize| -> Vec<f32> {
            let mut v: Vec<f32> = xn[r * d..(r + 1) * d]
                .iter()
                .zip(mean_in)
                .map(|(a, m)| a - m)
                .collect();
            normalize(&mut v);
            v
        };
        let mut chosen: Vec<usize> = Vec::with_capacity(feats.len());
        let mut dirs: Vec<Vec<f32>> = Vec::with_capacity(feats.len());
        for &(_, r) in &keys {
            if chosen.len() == feats.len() {
                break;
            }
            let v = centred_dir(r);
            if dirs.par_iter().all(|u| dot(u, &v) < MAX_RESTART_COS) {
                chosen.push(r);
                dirs.push(v);
            }
        }
        let mut restarted = vec![false; self.d_sae];
        for (&j, &r) in feats.iter().zip(&chosen) {
            restarted[j as usize] = true;
            let j = j as usize;
            let dec = &mut self.dec[j * d..(j + 1) * d];
            dec.copy_from_slice(&err[r * d..(r + 1) * d]);
            normalize(dec);
            let enc = &mut self.enc[j * d..(j + 1) * d];
            for ((e, xv), m) in enc.iter_mut().zip(&xn[r * d..(r + 1) * d]).zip(mean_in) {
                *e = xv - m;
            }
            if dot(enc, enc) <= f32::MIN_POSITIVE {
                enc.iter_mut().for_each(|v| *v = rng.normal());
            }
            normalize(enc);
            enc.iter_mut().for_each(|v| *v *= scale);
            self.b_enc[j] = -dot(enc, mean_in);
            for (m, v_alive) in [(&mut self.m_enc, v_enc), (&mut self.m_dec, v_dec)] {
                m.m[j * d..(j + 1) * d].iter_mut().for_each(|v| *v = 0.0);
                m.v[j * d..(j + 1) * d]
                    .iter_mut()
                    .for_each(|v| *v = v_alive);
            }
            self.m_b_enc.m[j] = 0.0;
            self.m_b_enc.v[j] = v_b;
            self.last_fired[j] = now;
        }
        // Restarted features aligned with a row fire at about its norm; several of them on one
        // row overshoot it, so their scale is fitted to the rows.
        if !chosen.is_empty() {
            self.calibrate(x, y, &restarted);
        }
        chosen.len()
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
    fn random_sae(d: usize, d_sae: usize, k: usize, seed: u64) -> TopKSae {
        let norm = DatasetNorm {
            input: (d as f32).sqrt(),
            output: (d as f32).sqrt(),
        };
        TopKSae::init(
            d,
            d_sae,
            k,
            norm,
            &vec![0.0; d],
            &vec![0.0; d],
            &mut Rng::new(seed),
        )
    }

    /// Σ‖y − decode(encode(x))‖² / Σ‖y‖² (native scale).
    fn fvu(sae: &TopKSae, x: &[f32], y: &[f32]) -> f64 {
        let yh = sae.decode(&sae.encode(x));
        let e: f64 = yh
            .iter()
            .zip(y)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        e / y.iter().map(|v| (*v as f64).powi(2)).sum::<f64>()
    }

    #[test]
    fn calibration_fixes_the_overshoot_of_a_data_init() {
        let (d, d_sae, k) = (16, 64, 8);
        let mut rng = Rng::new(5);
        let rows: Vec<f32> = (0..256 * d).map(|_| rng.normal()).collect();
        let norm = DatasetNorm {
            input: 4.0,
            output: 4.0,
        };
        let samples: Vec<(&[f32], &[f32])> =
            rows.chunks_exact(d).take(d_sae).map(|r| (r, r)).collect();
        let zero = vec![0.0; d];
        let mut sae =
            TopKSae::init_from_samples(d, d_sae, k, norm, &zero, &zero, &samples, &mut rng);
        let before = fvu(&sae, &rows, &rows);
        let c = sae.calibrate_encoder_scale(&rows, &rows);
        let after = fvu(&sae, &rows, &rows);
        assert!(c < 0.5, "k aligned features overshoot: c = {c}");
        assert!(after < before && after < 1.0, "FVU {before} → {after}");
        // Calibrated: the least-squares scale is now 1 (TopK's choice is scale-free).
        let again = sae.calibrate_encoder_scale(&rows, &rows);
        assert!((again - 1.0).abs() < 1e-3, "{again}");
    }

    #[test]
    fn resampling_restarts_dead_features_at_the_worst_rows() {
        let (d, d_sae, k) = (8, 32, 2);
        let mut sae = random_sae(d, d_sae, k, 1);
        let mut rng = Rng::new(2);
        // 64 small rows and one huge one: the first restarted feature takes the huge row.
        let mut x: Vec<f32> = (0..64 * d).map(|_| 0.1 * rng.normal()).collect();
        let big: Vec<f32> = (0..d)
            .map(|i| if i == 3 { 50.0 } else { i as f32 })
            .collect();
        x.extend_from_slice(&big);
        sae.last_fired.iter_mut().for_each(|t| *t = 1_500);
        sae.last_fired[4] = 10;
        sae.last_fired[9] = 0;
        sae.m_dec.m.iter_mut().for_each(|v| *v = 0.5);
        assert_eq!(
            sae.dead_features(500, 1_000),
            Vec::<u32>::new(),
            "too early"
        );
        let dead = sae.dead_features(2_000, 1_000);
        assert_eq!(dead, vec![4, 9]);
        let old = sae.clone();
        // The worst row's residual, computed independently (s_out = 1 here).
        let yh = sae.decode(&sae.encode(&big));
        let mut res: Vec<f32> = big.iter().zip(&yh).map(|(a, b)| a - b).collect();
        normalize(&mut res);
        let n = sae.resample(&dead, &x, &x, &vec![0.0; d], 2_000, &mut rng);
        assert_eq!(n, 2);
        let dec4 = sae.row(&sae.dec, 4);
        assert!(
            dot(dec4, &res) > 0.999,
            "decoder = the worst row's residual"
        );
        let mut dir = big.clone();
        normalize(&mut dir);
        let enc4 = sae.row(&sae.enc, 4);
        let cos = dot(enc4, &dir) / dot(enc4, enc4).sqrt();
        assert!(
            cos > 0.999,
            "encoder points at the worst row's input: {cos}"
        );
        for j in [4usize, 9] {
            assert_eq!(sae.last_fired[j], 2_000);
            assert!(sae.m_dec.m[j * d..(j + 1) * d].iter().all(|v| *v == 0.0));
            let n = dot(sae.row(&sae.dec, j as u32), sae.row(&sae.dec, j as u32));
            assert!((n - 1.0).abs() < 1e-5);
        }
        assert_ne!(sae.row(&sae.dec, 9), old.row(&old.dec, 9));
        // Every other feature is untouched.
        for j in (0..d_sae as u32).filter(|j| *j != 4 && *j != 9) {
            assert_eq!(sae.row(&sae.enc, j), old.row(&old.enc, j));
            assert_eq!(sae.row(&sae.dec, j), old.row(&old.dec, j));
            assert_eq!(sae.b_enc[j as usize], old.b_enc[j as usize]);
        }
    }

    #[test]
    fn resampling_skips_near_duplicate_rows() {
        let (d, d_sae, k) = (8, 32, 2);
        let mut sae = random_sae(d, d_sae, k, 1);
        let mut rng = Rng::new(2);
        // Every row is (nearly) the same direction: only one feature may restart there.
        let base: Vec<f32> = (0..d).map(|i| 1.0 + i as f32).collect();
        let x: Vec<f32> = (0..64)
            .flat_map(|r| {
                let s = 1.0 + r as f32;
                base.iter()
                    .enumerate()
                    .map(move |(i, v)| s * v + if i == r % d { 0.01 } else { 0.0 })
            })
            .collect();
        sae.last_fired.iter_mut().for_each(|t| *t = 1_500);
        sae.last_fired[4] = 0;
        sae.last_fired[9] = 0;
        let old = sae.clone();
        let n = sae.resample(&[4, 9], &x, &x, &vec![0.0; d], 2_000, &mut rng);
        assert_eq!(n, 1);
        assert_eq!(sae.last_fired[4], 2_000);
        assert_eq!(sae.last_fired[9], 0, "no distinct row left: still dead");
        assert_eq!(sae.row(&sae.enc, 9), old.row(&old.enc, 9));
        assert_eq!(sae.row(&sae.dec, 9), old.row(&old.dec, 9));
    }
}
