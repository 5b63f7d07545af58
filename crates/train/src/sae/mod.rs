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
//!
//! Here: parameters and initialisation. `forward` (encode / select / decode), `restart`
//! (encoder-scale calibration, dead features, resampling), `export` (Llama Scope hyperparams
//! and tensors), `math` (vector kernels); the training step is `crate::step`.
use scopedex_sae::DatasetNorm;

use crate::rng::Rng;

mod export;
mod forward;
mod jump;
mod math;
mod restart;

pub(crate) use forward::keep_best;
pub use forward::Codes;
pub(crate) use math::{axpy, dot, normalize};

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
    /// JumpReLU gate threshold (normalised units) calibrated after training; `Some` makes the
    /// export a JumpReLU (see `jump`).
    pub(crate) jump_threshold: Option<f32>,
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
            jump_threshold: None,
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

    pub(crate) fn row<'a>(&self, m: &'a [f32], j: u32) -> &'a [f32] {
        let a = j as usize * self.d;
        &m[a..a + self.d]
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
