//! The sparse activation log (`saes/{sae}/activations/*.parquet`, written by `index
//! --keep-activations`) held in memory for one export: every logged activation at a counted
//! position, both by feature and by position, so each feature's values (exact histograms,
//! exact interval shares) and its Pearson partners come without re-reading the log.
//!
//! ## Pearson correlation partners
//! SAEDashboard's `correlated_features_*` come from `RollingCorrCoef.topk_pearson`
//! (`sae_dashboard/utils_fns.py`): for two features' activation vectors `x`, `y` over the
//! token positions of its sample,
//! `pearson = (N·Σxy − Σx·Σy) / √((N·Σx² − (Σx)²)(N·Σy² − (Σy)²))` and, stored in `_l1`,
//! `cossim = Σxy / √(Σx²·Σy²)`. Here the positions are **all counted positions of the index**
//! (`N` = the SAE summary's `tokens_indexed`; position 0 left out when the index excludes BOS),
//! zeros included: a position where a feature did not fire contributes `x = 0`. A feature's
//! candidates are the other features that fire together with it at one position at least
//! (any other feature has `Σxy = 0`, hence a Pearson ≤ 0); a feature with zero variance (dead,
//! or constant) has no correlation and is never listed. The [`CORRELATED_ROWS`] best by
//! Pearson are kept (ties: lower index). SAEDashboard adds `1e-6` to both denominators; we do
//! not, so values differ from its by that epsilon only. Sums are in f64.
//!
//! Memory: 16 bytes per logged entry while loading (sorted once), then 8 bytes per entry in each
//! of the two layouts.
use std::path::Path;

use rayon::prelude::*;
use scopedex_store::{ActivationEntry, ActivationReader, TableReader};

use crate::batch::CORRELATED_ROWS;
use crate::error::{Error, Result};

/// One correlated feature.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partner {
    /// Its index.
    pub feature: u32,
    /// Pearson correlation of the two activation vectors over all counted positions.
    pub pearson: f64,
    /// Cosine similarity of the same vectors (SAEDashboard's `cossim`, written as `_l1`).
    pub cossim: f64,
}

/// The log of one SAE, by feature and by position (module doc).
#[derive(Debug)]
pub struct ActivationLog {
    d_sae: usize,
    /// Counted positions (`N`).
    n_positions: u64,
    /// Feature layout: `feat_start[f]..feat_start[f + 1]` index `feat_pos` / `feat_val`.
    feat_start: Vec<usize>,
    feat_pos: Vec<u32>,
    feat_val: Vec<f32>,
    /// Position layout (positions numbered by `(context_id, pos)` order).
    pos_start: Vec<usize>,
    pos_feat: Vec<u32>,
    pos_val: Vec<f32>,
    /// Per feature `Σx` and `Σx²` over the logged values.
    sum: Vec<f64>,
    sum2: Vec<f64>,
}

/// A logged activation, packed: `(context_id << 16 | pos, feature, value)`.
type Packed = (u64, u32, f32);

fn read_part(path: &Path, d_sae: usize, exclude_bos: bool) -> Result<Vec<Packed>> {
    let mut out = Vec::new();
    for batch in TableReader::<ActivationEntry>::open(path)? {
        for e in batch? {
            if (exclude_bos && e.pos == 0) || e.value == 0.0 {
                continue;
            }
            if e.feature as usize >= d_sae || e.context_id >= 1 << 48 {
                return Err(Error::Inconsistent(format!(
                    "{}: entry feature {} context {} is out of range (d_sae {d_sae})",
                    path.display(),
                    e.feature,
                    e.context_id
                )));
            }
            out.push((e.context_id << 16 | u64::from(e.pos), e.feature, e.value));
        }
    }
    Ok(out)
}

impl ActivationLog {
    /// Loads every part of `log` (in parallel). `None` when the log has no part (not kept).
    /// `n_positions` is the number of counted positions (`tokens_indexed`).
    pub fn load(
        log: &ActivationReader,
        d_sae: u32,
        exclude_bos: bool,
        n_positions: u64,
    ) -> Result<Option<ActivationLog>> {
        if log.parts().is_empty() {
            return Ok(None);
        }
        let d_sae = d_sae as usize;
        let parts: Vec<Vec<Packed>> = log
            .parts()
            .par_iter()
            .map(|p| read_part(p, d_sae, exclude_bos))
            .collect::<Result<_>>()?;
        let mut all: Vec<Packed> = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for p in parts {
            all.extend(p);
        }
        all.par_sort_unstable_by_key(|&(k, f, _)| (k, f));
        all.dedup_by_key(|&mut (k, f, _)| (k, f));

        let mut pos_start = Vec::new();
        let mut last = None;
        for (i, &(k, _, _)) in all.iter().enumerate() {
            if last != Some(k) {
                pos_start.push(i);
                last = Some(k);
            }
        }
        if pos_start.len() > u32::MAX as usize {
            return Err(Error::Usage(format!(
                "the activation log has {} active positions; at most {} are supported",
                pos_start.len(),
                u32::MAX
            )));
        }
        pos_start.push(all.len());

        let mut feat_start = vec![0usize; d_sae + 1];
        for &(_, f, _) in &all {
            feat_start[f as usize + 1] += 1;
        }
        for f in 0..d_sae {
            feat_start[f + 1] += feat_start[f];
        }
        let mut fill = feat_start.clone();
        let mut feat_pos = vec![0u32; all.len()];
        let mut feat_val = vec![0f32; all.len()];
        let (mut sum, mut sum2) = (vec![0f64; d_sae], vec![0f64; d_sae]);
        for p in 0..pos_start.len() - 1 {
            for &(_, f, v) in &all[pos_start[p]..pos_start[p + 1]] {
                let f = f as usize;
                feat_pos[fill[f]] = p as u32;
                feat_val[fill[f]] = v;
                fill[f] += 1;
                sum[f] += f64::from(v);
                sum2[f] += f64::from(v) * f64::from(v);
            }
        }
        let pos_feat = all.iter().map(|e| e.1).collect();
        let pos_val = all.iter().map(|e| e.2).collect();
        Ok(Some(ActivationLog {
            d_sae,
            n_positions,
            feat_start,
            feat_pos,
            feat_val,
            pos_start,
            pos_feat,
            pos_val,
            sum,
            sum2,
        }))
    }

    /// Logged entries (counted positions).
    pub fn entries(&self) -> usize {
        self.pos_feat.len()
    }

    /// Every logged value of feature `f` at a counted position, in (context, position) order.
    pub fn values(&self, f: u32) -> &[f32] {
        let f = f as usize;
        &self.feat_val[self.feat_start[f]..self.feat_start[f + 1]]
    }

    /// Variance term `N·Σx² − (Σx)²` of feature `f` (0 for a dead or constant feature).
    fn spread(&self, f: usize) -> f64 {
        let n = self.n_positions as f64;
        (n * self.sum2[f] - self.sum[f] * self.sum[f]).max(0.0)
    }

    /// The [`CORRELATED_ROWS`] features most correlated with `f` (module doc). `scratch` is a
    /// reusable buffer (any length; resized here).
    pub fn correlated(&self, f: u32, scratch: &mut Scratch) -> Vec<Partner> {
        let fi = f as usize;
        let n = self.n_positions as f64;
        let spread_f = self.spread(fi);
        if spread_f <= 0.0 {
            return Vec::new();
        }
        scratch.xy.resize(self.d_sae, 0.0);
        scratch.touched.clear();
        let range = self.feat_start[fi]..self.feat_start[fi + 1];
        let xy = &mut scratch.xy[..];
        for (&p, &x) in self.feat_pos[range.clone()]
            .iter()
            .zip(&self.feat_val[range])
        {
            let x = f64::from(x);
            let (a, b) = (self.pos_start[p as usize], self.pos_start[p as usize + 1]);
            for (&j, &y) in self.pos_feat[a..b].iter().zip(&self.pos_val[a..b]) {
                let slot = &mut xy[j as usize];
                if *slot == 0.0 {
                    scratch.touched.push(j);
                }
                *slot += x * f64::from(y);
                if *slot == 0.0 {
                    // Keep "touched" exact when a product is exactly cancelled.
                    *slot = f64::MIN_POSITIVE;
                }
            }
        }
        let mut partners: Vec<Partner> = Vec::with_capacity(scratch.touched.len());
        for &j in &scratch.touched {
            let xy = std::mem::take(&mut scratch.xy[j as usize]);
            let ju = j as usize;
            if j == f {
                continue;
            }
            let spread_j = self.spread(ju);
            if spread_j <= 0.0 {
                continue;
            }
            let pearson = (n * xy - self.sum[fi] * self.sum[ju]) / (spread_f * spread_j).sqrt();
            let cossim = xy / (self.sum2[fi] * self.sum2[ju]).sqrt();
            partners.push(Partner {
                feature: j,
                pearson: pearson.clamp(-1.0, 1.0),
                cossim: cossim.clamp(-1.0, 1.0),
            });
        }
        partners.sort_by(|a, b| {
            b.pearson
                .total_cmp(&a.pearson)
                .then(a.feature.cmp(&b.feature))
        });
        partners.truncate(CORRELATED_ROWS);
        partners
    }
}

/// Per-thread buffer of [`ActivationLog::correlated`].
#[derive(Debug, Default)]
pub struct Scratch {
    xy: Vec<f64>,
    touched: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopedex_store::{ActivationWriter, ActivationWriterOptions};

    #[test]
    fn pearson_matches_dense_brute_force() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let opts = ActivationWriterOptions {
            entries_per_part: 7, // several parts, positions split across them
            mantissa_bits: 23,
            ..ActivationWriterOptions::default()
        };
        let mut w = ActivationWriter::create(&dir, opts).unwrap();
        let (d_sae, contexts, len) = (6u32, 5u64, 4u16);
        let mut dense = vec![vec![0f64; (contexts * u64::from(len - 1)) as usize]; d_sae as usize];
        let mut entries = Vec::new();
        let mut seed = 17u64;
        for c in 0..contexts {
            for pos in 0..len {
                for f in 0..d_sae - 1 {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if (seed >> 33) % 3 == 0 {
                        let v = ((seed >> 40) % 100) as f32 / 10.0 + 0.1;
                        entries.push(ActivationEntry {
                            context_id: c,
                            pos,
                            feature: f,
                            value: v,
                        });
                        if pos > 0 {
                            dense[f as usize]
                                [(c * u64::from(len - 1)) as usize + pos as usize - 1] =
                                f64::from(v);
                        }
                    }
                }
            }
        }
        w.write(&entries).unwrap();
        w.finish().unwrap();
        let reader = ActivationReader::open(&dir).unwrap();
        assert!(reader.parts().len() > 2);
        let n = (contexts * u64::from(len - 1)) as usize;
        let log = ActivationLog::load(&reader, d_sae, true, n as u64)
            .unwrap()
            .unwrap();
        let mut scratch = Scratch::default();
        for f in 0..d_sae {
            let got = log.correlated(f, &mut scratch);
            let x = &dense[f as usize];
            let stats = |v: &[f64]| (v.iter().sum::<f64>(), v.iter().map(|a| a * a).sum::<f64>());
            let (sx, qx) = stats(x);
            let mut want: Vec<(u32, f64)> = Vec::new();
            for j in 0..d_sae {
                let y = &dense[j as usize];
                let (sy, qy) = stats(y);
                let xy: f64 = x.iter().zip(y).map(|(a, b)| a * b).sum();
                let den = ((n as f64 * qx - sx * sx) * (n as f64 * qy - sy * sy)).sqrt();
                if j != f && xy != 0.0 && den > 0.0 {
                    want.push((j, (n as f64 * xy - sx * sy) / den));
                }
            }
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(CORRELATED_ROWS);
            assert_eq!(got.len(), want.len(), "feature {f}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.feature, w.0);
                assert!((g.pearson - w.1).abs() < 1e-9);
            }
            let logged: Vec<f64> = x.iter().copied().filter(|&v| v != 0.0).collect();
            assert_eq!(log.values(f).len(), logged.len());
        }
        // Feature 5 never fires: no partners, no values.
        assert!(log.correlated(5, &mut scratch).is_empty());
        assert!(log.values(5).is_empty());
        let empty = ActivationReader::open(tmp.path().join("none")).unwrap();
        assert!(ActivationLog::load(&empty, d_sae, true, 1)
            .unwrap()
            .is_none());
    }
}
