//! One optimiser step: forward, hand-written sparse backward, AuxK, Adam, decoder renormalisation.
//!
//! Loss (normalised units, batch of B rows): `L = (1/B) Σ_b ‖ŷ'_b − y'_b‖²
//! + α (1/B) Σ_b ‖ê_b − e_b‖²`, where `e = y' − ŷ'` is the residual (held constant) and
//! `ê = Σ_{j ∈ aux_b} relu(h_bj) D_j` reconstructs it from the row's top `k_aux` *dead* features
//! (Gao et al. 2024, AuxK). Only the k active (and k_aux auxiliary) features of a row have a
//! gradient, so the backward is sparse: with `g_b = (2/B)(ŷ'_b − y'_b)`,
//!
//! ```text
//! ∂L/∂D_j   = Σ_b a_bj g_b            ∂L/∂h_bj = g_b · D_j  (active j; TopK passes it through)
//! ∂L/∂E_j   = Σ_b (∂L/∂h_bj) x'_b      ∂L/∂b_enc_j = Σ_b ∂L/∂h_bj      ∂L/∂b_dec = Σ_b g_b
//! ```
//!
//! (and the same with `α(2/B)(ê_b − e_b)` and `z_bj` for the auxiliary terms). Entries are
//! bucketed by feature, then every feature's encoder row, decoder row and bias get their
//! gradient and their Adam update in one parallel pass. Adam is dense (moments of features
//! without gradient still decay), which costs about one memory sweep of the parameters per step.
use rayon::prelude::*;

use crate::config::TrainConfig;
use crate::sae::{axpy, dot, keep_best, TopKSae};

/// Per-step statistics (normalised units).
#[derive(Debug, Clone, Copy, Default)]
pub struct StepStats {
    /// Σ‖ŷ' − y'‖² over the batch.
    pub sq_err: f64,
    /// Σ‖y' − mean‖² over the batch (mean = `b_dec` at init, a fixed reference).
    pub sq_total: f64,
    /// Mean active features per row.
    pub l0: f64,
    /// Features dead (not fired within `dead_after_tokens`) at this step.
    pub dead: usize,
    /// The AuxK loss (before α).
    pub aux_loss: f64,
}

/// One gradient contribution of a row to a feature.
#[derive(Clone, Copy)]
struct Entry {
    row: u32,
    /// The feature, or [`NONE`] for an unused slot.
    feat: u32,
    /// Coefficient of the row's vector in ∂L/∂D_j.
    coef: f32,
    /// ∂L/∂h_bj.
    dh: f32,
    /// The vector is the aux residual difference (else the main error).
    aux: bool,
}

const NONE: u32 = u32::MAX;

/// Reusable buffers of one SAE's step.
#[derive(Default)]
pub struct StepScratch {
    xn: Vec<f32>,
    yn: Vec<f32>,
    pre: Vec<f32>,
    err: Vec<f32>,
    aux_diff: Vec<f32>,
    entries: Vec<Entry>,
    sorted: Vec<Entry>,
    offsets: Vec<usize>,
}

impl TopKSae {
    /// Trains on one batch: `x` `[rows, d]` input and `y` `[rows, d]` target, native scale.
    /// `tokens_seen` counts training rows before this batch; `ref_mean` is the fixed target mean
    /// (normalised) used for the explained-variance readout.
    #[allow(clippy::too_many_arguments)]
    pub fn train_step(
        &mut self,
        x: &[f32],
        y: &[f32],
        lr: f32,
        cfg: &TrainConfig,
        tokens_seen: u64,
        ref_mean: &[f32],
        sc: &mut StepScratch,
    ) -> StepStats {
        let d = self.d;
        let s = self.d_sae;
        let rows = x.len() / d;
        let inv_b = 2.0 / rows as f32;
        sc.xn.clear();
        sc.xn.extend(x.iter().map(|v| v * self.s_in));
        sc.yn.clear();
        sc.yn.extend(y.iter().map(|v| v * self.s_out));
        let mut pre = std::mem::take(&mut sc.pre);
        self.preactivations(&sc.xn, rows, &mut pre);
        let codes = self.select(&pre, rows);

        // Dead features (none before the first window has passed).
        let dead: Vec<u32> = if tokens_seen >= cfg.dead_after_tokens {
            let cut = tokens_seen - cfg.dead_after_tokens;
            (0..s as u32)
                .filter(|&j| self.last_fired[j as usize] <= cut)
                .collect()
        } else {
            Vec::new()
        };
        let k_aux = cfg.aux_k.min(dead.len());

        // Forward residuals and per-entry gradients, row-parallel.
        sc.err.clear();
        sc.err.resize(rows * d, 0.0);
        sc.aux_diff.clear();
        sc.aux_diff
            .resize(if k_aux > 0 { rows * d } else { 0 }, 0.0);
        let slots = codes.k + k_aux;
        let mut entries = std::mem::take(&mut sc.entries);
        entries.clear();
        entries.resize(
            rows * slots,
            Entry {
                row: 0,
                feat: NONE,
                coef: 0.0,
                dh: 0.0,
                aux: false,
            },
        );
        let alpha = cfg.aux_coeff;
        let this = &*self;
        let yn = &sc.yn;
        let aux_chunks: Vec<&mut [f32]> = if k_aux > 0 {
            sc.aux_diff.chunks_mut(d).collect()
        } else {
            (0..rows).map(|_| &mut [][..]).collect()
        };
        let per_row: Vec<(f64, f64, f64)> = sc
            .err
            .par_chunks_mut(d)
            .zip(aux_chunks)
            .zip(entries.par_chunks_mut(slots))
            .enumerate()
            .map_init(Vec::new, |cand, (r, ((err, aux), ent))| {
                let y_r = &yn[r * d..(r + 1) * d];
                err.copy_from_slice(&this.b_dec);
                let (idx, val) = codes.row(r);
                for (&j, &a) in idx.iter().zip(val) {
                    axpy(err, a, this.row(&this.dec, j));
                }
                let mut se = 0f64;
                let mut st = 0f64;
                for i in 0..d {
                    err[i] -= y_r[i];
                    se += (err[i] as f64).powi(2);
                    st += ((y_r[i] - ref_mean[i]) as f64).powi(2);
                }
                for (n, (&j, &a)) in idx.iter().zip(val).enumerate() {
                    ent[n] = Entry {
                        row: r as u32,
                        feat: j,
                        coef: inv_b * a,
                        dh: inv_b * dot(err, this.row(&this.dec, j)),
                        aux: false,
                    };
                }
                let mut aux_loss = 0f64;
                if k_aux > 0 {
                    // Top k_aux dead features by h (> 0) reconstruct e = −err.
                    let p = &pre[r * s..(r + 1) * s];
                    cand.clear();
                    for &j in &dead {
                        let h = p[j as usize] + this.b_enc[j as usize];
                        if h > 0.0 {
                            cand.push((h, j));
                        }
                    }
                    if cand.len() > k_aux {
                        keep_best(cand, k_aux);
                    }
                    // diff = ê − e = ê + err
                    aux.copy_from_slice(err);
                    for &(z, j) in cand.iter() {
                        axpy(aux, z, this.row(&this.dec, j));
                    }
                    aux_loss = aux.iter().map(|v| (*v as f64).powi(2)).sum();
                    for (n, &(z, j)) in cand.iter().enumerate() {
                        ent[codes.k + n] = Entry {
                            row: r as u32,
                            feat: j,
                            coef: alpha * inv_b * z,
                            dh: alpha * inv_b * dot(aux, this.row(&this.dec, j)),
                            aux: true,
                        };
                    }
                    for e in ent[codes.k + cand.len()..].iter_mut() {
                        e.feat = NONE;
                    }
                }
                for e in ent[idx.len()..codes.k].iter_mut() {
                    e.feat = NONE;
                }
                (se, st, aux_loss)
            })
            .collect();
        sc.pre = pre;
        let mut stats = StepStats {
            dead: dead.len(),
            l0: codes.count.iter().map(|&c| c as f64).sum::<f64>() / rows as f64,
            ..StepStats::default()
        };
        for (se, st, al) in per_row {
            stats.sq_err += se;
            stats.sq_total += st;
            stats.aux_loss += al / rows as f64;
        }

        // Firing record.
        let now = tokens_seen + rows as u64;
        for r in 0..rows {
            for &j in codes.row(r).0 {
                self.last_fired[j as usize] = now;
            }
        }

        // Bucket entries by feature (counting sort).
        sc.offsets.clear();
        sc.offsets.resize(s + 1, 0);
        for e in entries.iter().filter(|e| e.feat != NONE) {
            sc.offsets[e.feat as usize + 1] += 1;
        }
        for j in 0..s {
            sc.offsets[j + 1] += sc.offsets[j];
        }
        let total = sc.offsets[s];
        sc.sorted.clear();
        sc.sorted.resize(total, entries[0]);
        let mut fill = sc.offsets.clone();
        for e in entries.iter().filter(|e| e.feat != NONE) {
            let j = e.feat as usize;
            sc.sorted[fill[j]] = *e;
            fill[j] += 1;
        }
        sc.entries = entries;

        // b_dec gradient: Σ_b g_b.
        let mut g_bdec = vec![0f32; d];
        for err in sc.err.chunks_exact(d) {
            axpy(&mut g_bdec, inv_b, err);
        }

        // Adam, feature-parallel.
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2, eps) = (cfg.beta1, cfg.beta2, cfg.eps);
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let step = lr * c2.sqrt() / c1;
        let adam = |p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] -= step * m[i] / (v[i].sqrt() + eps);
            }
        };
        let (sorted, offsets) = (&sc.sorted, &sc.offsets);
        let (xn, err_all, aux_all) = (&sc.xn, &sc.err, &sc.aux_diff);
        self.enc
            .par_chunks_mut(d)
            .zip(self.dec.par_chunks_mut(d))
            .zip(self.m_enc.m.par_chunks_mut(d))
            .zip(self.m_enc.v.par_chunks_mut(d))
            .zip(self.m_dec.m.par_chunks_mut(d))
            .zip(self.m_dec.v.par_chunks_mut(d))
            .zip(self.b_enc.par_iter_mut())
            .zip(self.m_b_enc.m.par_iter_mut())
            .zip(self.m_b_enc.v.par_iter_mut())
            .enumerate()
            .for_each_init(
                || (vec![0f32; d], vec![0f32; d]),
                |(ge, gd), (j, ((((((((e, dv), me), ve), md), vd), be), mbe), vbe))| {
                    ge.iter_mut().for_each(|v| *v = 0.0);
                    gd.iter_mut().for_each(|v| *v = 0.0);
                    let mut gb = 0f32;
                    for en in &sorted[offsets[j]..offsets[j + 1]] {
                        let r = en.row as usize;
                        let vec = if en.aux { aux_all } else { err_all };
                        axpy(gd, en.coef, &vec[r * d..(r + 1) * d]);
                        axpy(ge, en.dh, &xn[r * d..(r + 1) * d]);
                        gb += en.dh;
                    }
                    // Keep the decoder on the unit sphere: drop the radial gradient component.
                    let radial = dot(gd, dv);
                    axpy(gd, -radial, dv);
                    adam(e, me, ve, ge);
                    adam(dv, md, vd, gd);
                    adam(
                        std::slice::from_mut(be),
                        std::slice::from_mut(mbe),
                        std::slice::from_mut(vbe),
                        &[gb],
                    );
                    crate::sae::normalize(dv);
                },
            );
        adam(
            &mut self.b_dec,
            &mut self.m_b_dec.m,
            &mut self.m_b_dec.v,
            &g_bdec,
        );
        stats
    }
}
