//! Keeping features useful: least-squares calibration of the encoder scale (after a data
//! initialisation, and for restarted features), dead-feature detection, and restarts of dead
//! features at badly reconstructed rows ("resampling").
use rayon::prelude::*;

use super::math::{axpy, dot, normalize};
use super::TopKSae;
use crate::rng::Rng;

/// Restart rows of one resampling round have input directions below this cosine.
const MAX_RESTART_COS: f32 = 0.8;

impl TopKSae {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopedex_sae::DatasetNorm;

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
