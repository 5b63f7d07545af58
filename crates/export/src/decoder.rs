//! Decoder-cosine neighbours: for each exported feature, the features whose decoder directions
//! (`W_dec` rows) point the most the same way, from the SAE's weights — for indexes that do
//! not store them (newer ones do, with the same definition, and the export reads those).
//!
//! The SAE is loaded from the manifest's `source_path` (`PATH`, or `PATH:ID` for a Llama Scope
//! repo folder), as `index` recorded it. Rows are normalised to unit length (a zero row has no
//! neighbours and is no one's neighbour) and compared with one GEMM per block of exported
//! features (`[block, d] · [d, d_sae]`). Neuronpedia keeps these lists as the feature's
//! `topkCosSimIndices` / `topkCosSimValues`; the feature itself is left out.
use std::ops::Range;
use std::path::Path;

use candle_core::Device;
use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};
use scopedex_sae::{Sae, SaeId};
use scopedex_store::SaeEntry;

/// Neighbours kept per feature.
pub const DECODER_NEIGHBOURS: usize = 10;

/// Unit-length decoder rows of one SAE.
#[derive(Debug)]
pub struct Decoder {
    d_sae: usize,
    d: usize,
    /// `[d_sae, d]` row-major, each row unit length (or zero).
    rows: Vec<f32>,
    /// Whether each row is non-zero.
    live: Vec<bool>,
}

impl Decoder {
    /// Loads the SAE of `entry` from its `source_path` and keeps its normalised decoder rows.
    /// The error is a sentence saying why it could not (for the export report).
    pub fn load(entry: &SaeEntry) -> std::result::Result<Decoder, String> {
        let full = entry.source_path.as_str();
        // `#NAME` (an id set by hand) does not locate the files.
        let src = full.rsplit_once('#').map_or(full, |(path, _)| path);
        let loaded = match src.rsplit_once(':') {
            Some((path, id)) if id.starts_with('L') && !id.contains(['/', '\\']) => {
                let id: SaeId = id
                    .parse()
                    .map_err(|e| format!("source_path {src:?}: {e}"))?;
                Sae::load_from_repo(Path::new(path), &id, &Device::Cpu)
            }
            _ => Sae::load(Path::new(src), &Device::Cpu),
        }
        .map_err(|e| format!("SAE not loadable from source_path {src:?}: {e}"))?;
        if loaded.d_sae() != entry.d_sae as usize {
            return Err(format!(
                "the SAE at {src:?} has d_sae {}, the index's {} has {}",
                loaded.d_sae(),
                entry.id,
                entry.d_sae
            ));
        }
        let dirs = loaded
            .decoder_directions()
            .and_then(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .map_err(|e| format!("reading the decoder of {src:?}: {e}"))?;
        Ok(Decoder::from_rows(dirs, loaded.d_out()))
    }

    /// From `[d_sae, d]` row-major decoder rows (any scale).
    pub fn from_rows(mut rows: Vec<f32>, d: usize) -> Decoder {
        let d = d.max(1);
        rows.par_chunks_mut(d).for_each(|r| {
            let norm = r
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                r.iter_mut()
                    .for_each(|x| *x = (f64::from(*x) / norm) as f32);
            }
        });
        let live = rows
            .chunks(d)
            .map(|r| r.iter().any(|&x| x != 0.0))
            .collect();
        Decoder {
            d_sae: rows.len() / d,
            d,
            rows,
            live,
        }
    }

    /// For each feature of `range` (in order), its [`DECODER_NEIGHBOURS`] most similar other
    /// features by decoder cosine, descending (ties: lower index).
    pub fn neighbours(&self, range: Range<u32>) -> Vec<Vec<(u32, f32)>> {
        const BLOCK: usize = 256;
        let (d, n) = (self.d, self.d_sae);
        let features: Vec<usize> = (range.start as usize..range.end as usize).collect();
        let mut out = Vec::with_capacity(features.len());
        let mut sims = vec![0f32; BLOCK * n];
        for block in features.chunks(BLOCK) {
            let a = &self.rows[block[0] * d..(block[block.len() - 1] + 1) * d];
            sgemm(
                block.len(),
                n,
                d,
                1.0,
                Mat::new(a, d),
                Mat::transposed(&self.rows, d),
                0.0,
                &mut sims,
                n,
            );
            let rows: Vec<Vec<(u32, f32)>> = block
                .par_iter()
                .enumerate()
                .map(|(i, &f)| {
                    if !self.live[f] {
                        return Vec::new();
                    }
                    top_k(&sims[i * n..(i + 1) * n], |j| j != f && self.live[j])
                })
                .collect();
            out.extend(rows);
        }
        out
    }
}

/// The [`DECODER_NEIGHBOURS`] largest entries `j` of `row` with `keep(j)`, descending (ties:
/// lower index).
fn top_k(row: &[f32], keep: impl Fn(usize) -> bool) -> Vec<(u32, f32)> {
    let k = DECODER_NEIGHBOURS;
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (j, &s) in row.iter().enumerate() {
        if !keep(j) || !s.is_finite() {
            continue;
        }
        if best.len() == k && best.last().is_some_and(|&(_, w)| s <= w) {
            continue;
        }
        let at = best.partition_point(|&(_, w)| w >= s);
        best.insert(at, (j as u32, s));
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_by_cosine() {
        // 4 features in 2-d: 0 = (1, 0), 1 = (2, 0.2), 2 = (0, -3), 3 = zero row.
        let dec = Decoder::from_rows(vec![1.0, 0.0, 2.0, 0.2, 0.0, -3.0, 0.0, 0.0], 2);
        let nb = dec.neighbours(0..4);
        assert_eq!(nb.len(), 4);
        assert_eq!(nb[0][0].0, 1);
        assert!((nb[0][0].1 - (2.0 / 4.04f32.sqrt())).abs() < 1e-6);
        // The zero row is no one's neighbour and has none.
        assert_eq!(nb[0].iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(nb[3].is_empty());
        assert_eq!(dec.neighbours(2..3)[0][0].0, 0); // cosine 0 > negative cosines
    }
}
