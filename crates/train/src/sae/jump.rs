//! The TopK → JumpReLU conversion the Llama Scope release made: one scalar threshold on the
//! gate, chosen so that the mean L0 on held-out tokens equals the trained k. A file written as
//! `act_fn: "jumprelu"` gives the same codes in scopedex, SAELens' Llama Scope loader and lm_saes'
//! inference mode. The conversion costs reconstruction quality (rows with large norms cross
//! the threshold in many features), so TopK stays the default written form and the report gives
//! both forms' held-out figures.
use rayon::prelude::*;

use super::TopKSae;

/// Rows per pre-activation block while calibrating (bounds the block at rows × d_sae floats).
const BLOCK_ROWS: usize = 512;

impl TopKSae {
    /// Sets the JumpReLU gate threshold θ so that `count(h > θ)` over the held-out rows
    /// `x` (`[rows, d]`, native scale) is `rows · k`: θ is the largest pre-activation that is
    /// not among the `rows · k` largest (and at least 0, as TopK keeps only positive ones).
    /// Returns θ in gate units (normalised `h`).
    pub fn calibrate_jump_threshold(&mut self, x: &[f32]) -> f32 {
        let rows = x.len() / self.d;
        let keep = rows * self.k;
        // The `keep` largest pre-activations seen so far, plus a block's worth of candidates;
        // trimmed back to `keep + 1` whenever it doubles.
        let mut best: Vec<f32> = Vec::with_capacity(2 * (keep + 1));
        let mut pre = Vec::new();
        for block in x.chunks(BLOCK_ROWS * self.d) {
            let n = block.len() / self.d;
            let xn: Vec<f32> = block.iter().map(|v| v * self.s_in).collect();
            self.preactivations(&xn, n, &mut pre);
            let floor = if best.len() > keep {
                best[keep]
            } else {
                f32::NEG_INFINITY
            };
            let candidates: Vec<f32> = pre
                .par_chunks(self.d_sae)
                .flat_map_iter(|p| {
                    p.iter()
                        .zip(&self.b_enc)
                        .map(|(v, b)| v + b)
                        .filter(move |h| *h > floor && *h > 0.0)
                })
                .collect();
            best.extend(candidates);
            if best.len() > 2 * (keep + 1) {
                trim_to_largest(&mut best, keep + 1);
            }
        }
        trim_to_largest(&mut best, keep + 1);
        // best[keep] is the (keep+1)-th largest: a strict `>` keeps exactly the `keep` above it.
        let theta = best.get(keep).copied().unwrap_or(0.0).max(0.0);
        self.jump_threshold = Some(theta);
        theta
    }

    /// The calibrated gate threshold (normalised units), once calibrated.
    pub fn jump_threshold(&self) -> Option<f32> {
        self.jump_threshold
    }
}

/// Keeps the `n` largest values of `v`, sorted descending.
fn trim_to_largest(v: &mut Vec<f32>, n: usize) {
    if v.len() > n {
        v.select_nth_unstable_by(n - 1, |a, b| b.total_cmp(a));
        v.truncate(n);
    }
    v.sort_unstable_by(|a, b| b.total_cmp(a));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WrittenActivation;
    use crate::rng::Rng;
    use scopedex_sae::DatasetNorm;

    #[test]
    fn threshold_gives_mean_l0_equal_to_k() {
        let (d, d_sae, k, rows) = (16, 64, 4, 1500);
        let norm = DatasetNorm {
            input: 4.0,
            output: 4.0,
        };
        let mut rng = Rng::new(7);
        let zeros = vec![0f32; d];
        let mut sae = TopKSae::init(d, d_sae, k, norm, &zeros, &zeros, &mut rng);
        let x: Vec<f32> = (0..rows * d).map(|_| rng.normal()).collect();
        let theta = sae.calibrate_jump_threshold(&x);
        assert!(theta > 0.0);
        // Count h > θ directly, one row at a time.
        let mut pre = Vec::new();
        let xn: Vec<f32> = x.iter().map(|v| v * sae.s_in).collect();
        sae.preactivations(&xn, rows, &mut pre);
        let active = pre
            .chunks(d_sae)
            .flat_map(|p| p.iter().zip(&sae.b_enc).map(|(v, b)| v + b))
            .filter(|h| *h > theta)
            .count();
        assert_eq!(
            active,
            rows * k,
            "mean L0 must be exactly k on the calibration rows"
        );
    }

    /// The loader reads the written hyperparams back to the same selection: TopK before
    /// calibration, `h > θ` after (the threshold crosses the file in `gate / s_in` units).
    #[test]
    fn loader_reads_both_written_activations() {
        use candle_core::{Device, Tensor};
        let (d, d_sae, k, rows) = (16, 64, 4, 300);
        let norm = DatasetNorm {
            input: 3.0,
            output: 3.0,
        };
        let mut rng = Rng::new(11);
        let zeros = vec![0f32; d];
        let mut sae = TopKSae::init(d, d_sae, k, norm, &zeros, &zeros, &mut rng);
        let x: Vec<f32> = (0..rows * d).map(|_| rng.normal()).collect();
        let xt = Tensor::from_slice(&x, (rows, d), &Device::Cpu).unwrap();
        assert!(sae
            .hyperparams("in", "in", WrittenActivation::JumpRelu)
            .is_err());
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v
        };

        let topk = sae.to_sae("t", "in", "in", WrittenActivation::TopK);
        let topk = topk.unwrap().encode(&xt).unwrap();
        let ours = sae.encode(&x);
        for r in 0..rows {
            assert_eq!(sorted(ours.row(r).0.to_vec()), topk.row(r).0.to_vec());
        }

        let theta = sae.calibrate_jump_threshold(&x);
        let hp = sae
            .hyperparams("in", "in", WrittenActivation::JumpRelu)
            .unwrap();
        assert_eq!(hp.act_fn, "jumprelu");
        assert_eq!(hp.top_k, Some(k));
        let topk_hp = sae
            .hyperparams("in", "in", WrittenActivation::TopK)
            .unwrap();
        assert_eq!(topk_hp.act_fn, "topk");
        assert_eq!(topk_hp.jump_relu_threshold, hp.jump_relu_threshold);
        let jump = sae.to_sae("t", "in", "in", WrittenActivation::JumpRelu);
        let jump = jump.unwrap().encode(&xt).unwrap();
        let mut pre = Vec::new();
        let xn: Vec<f32> = x.iter().map(|v| v * sae.s_in).collect();
        sae.preactivations(&xn, rows, &mut pre);
        let mut total = 0;
        for (r, p) in pre.chunks(d_sae).enumerate() {
            let expected: Vec<u32> = (0..d_sae as u32)
                .filter(|&j| p[j as usize] + sae.b_enc[j as usize] > theta)
                .collect();
            total += expected.len();
            assert_eq!(jump.row(r).0, &expected[..], "row {r}");
        }
        assert_eq!(total, rows * k);
    }
}
