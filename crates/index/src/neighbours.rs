//! Decoder-cosine neighbours: for each feature, the features whose decoder directions (`W_dec`
//! rows) point most the same way — in its own SAE, and in every other SAE of the same width
//! whose output is at the same layer (Llama Scope's R, A, M and TC of one layer all write to
//! the residual stream there, so their directions are comparable).
//!
//! Rows are normalised to unit length (a zero row has no neighbours and is no one's); one GEMM
//! per block of [`ROW_BLOCK`] rows scores a block against a whole SAE, then each row keeps its
//! [`DECODER_NEIGHBOURS`] best (the feature itself left out). The work is `2·d_sae²·d` flops per
//! SAE pair: seconds for the demo's SAEs, hours on a CPU for Llama Scope's 32K × 4096, so a
//! pair above [`MAX_PAIR_FLOPS`] is skipped with a log line (a GPU job).
use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};
use scopedex_store::NeighbourRecord;

use crate::error::Result;
use crate::pass::AttachedSae;

/// Neighbours kept per feature and compared SAE.
pub const DECODER_NEIGHBOURS: usize = 10;
/// Rows scored per GEMM.
pub const ROW_BLOCK: usize = 64;
/// Largest SAE pair compared on a CPU (flops).
pub const MAX_PAIR_FLOPS: f64 = 2e12;

/// `rows` (`[n, d]` row-major) scaled to unit length; zero rows stay zero.
pub fn unit_rows(mut rows: Vec<f32>, d: usize) -> Vec<f32> {
    rows.par_chunks_mut(d.max(1)).for_each(|r| {
        let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            r.iter_mut().for_each(|v| *v /= norm);
        }
    });
    rows
}

/// For each row of `a`, the `n` rows of `b` with the largest cosine (both unit-row matrices of
/// width `d`), best first, ties by index; `same` leaves out row `i` of `b` for row `i` of `a`.
/// Zero rows get none and are never chosen.
pub fn nearest(a: &[f32], b: &[f32], d: usize, n: usize, same: bool) -> Vec<Vec<(u32, f32)>> {
    let (na, nb) = (a.len() / d.max(1), b.len() / d.max(1));
    let live_b: Vec<bool> = b
        .chunks(d.max(1))
        .map(|r| r.iter().any(|&v| v != 0.0))
        .collect();
    let mut out = Vec::with_capacity(na);
    let mut scores = vec![0f32; ROW_BLOCK * nb];
    for (bi, block) in a.chunks(ROW_BLOCK * d.max(1)).enumerate() {
        let m = block.len() / d.max(1);
        if nb > 0 && d > 0 {
            sgemm(
                m,
                nb,
                d,
                1.0,
                Mat::new(block, d),
                Mat::transposed(b, d),
                0.0,
                &mut scores,
                nb,
            );
        }
        let done: Vec<Vec<(u32, f32)>> = (0..m)
            .into_par_iter()
            .map(|i| {
                let row = &block[i * d..(i + 1) * d];
                if !row.iter().any(|&v| v != 0.0) {
                    return Vec::new();
                }
                let me = bi * ROW_BLOCK + i;
                let mut best: Vec<(u32, f32)> = scores[i * nb..(i + 1) * nb]
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| live_b[j] && !(same && j == me))
                    .map(|(j, &c)| (j as u32, c))
                    .collect();
                let ord = |x: &(u32, f32), y: &(u32, f32)| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0));
                if best.len() > n && n > 0 {
                    best.select_nth_unstable_by(n - 1, ord);
                }
                best.truncate(n);
                best.sort_by(ord);
                best
            })
            .collect();
        out.extend(done);
    }
    out
}

/// The neighbour records of SAE `i` of `saes` against the SAEs `with` (feature order; per
/// feature, the SAEs in `with` order); `unit[j]` are SAE `j`'s unit decoder rows (`Some` for
/// every `j` in `with`).
pub fn neighbours_of(
    i: usize,
    saes: &[AttachedSae],
    unit: &[Option<Vec<f32>>],
    with: &[usize],
) -> Vec<NeighbourRecord> {
    let Some(a) = unit[i].as_deref() else {
        return Vec::new();
    };
    let d = saes[i].sae.d_out();
    let mut per_feature: Vec<Vec<NeighbourRecord>> = vec![Vec::new(); saes[i].sae.d_sae()];
    for &j in with {
        let Some(b) = unit[j].as_deref() else {
            continue;
        };
        for (f, list) in nearest(a, b, d, DECODER_NEIGHBOURS, i == j)
            .into_iter()
            .enumerate()
        {
            per_feature[f].extend(list.into_iter().map(|(g, c)| NeighbourRecord {
                feature: f as u32,
                other_sae: saes[j].id.clone(),
                other_feature: g,
                cosine: c,
            }));
        }
    }
    per_feature.into_iter().flatten().collect()
}

/// Which SAEs SAE `i` is compared with: itself first, then every other SAE of the same width
/// whose output is at the same layer; none when a pair costs more than [`MAX_PAIR_FLOPS`].
pub fn comparable(saes: &[AttachedSae], i: usize) -> Vec<usize> {
    let me = &saes[i];
    let flops = 2.0 * (me.sae.d_sae() as f64).powi(2) * me.sae.d_out() as f64;
    if flops > MAX_PAIR_FLOPS {
        return Vec::new();
    }
    std::iter::once(i)
        .chain((0..saes.len()).filter(|&j| {
            let s = &saes[j];
            j != i
                && s.sae.d_sae() == me.sae.d_sae()
                && s.sae.d_out() == me.sae.d_out()
                && s.hook_out.layer() == me.hook_out.layer()
        }))
        .collect()
}

/// Unit decoder rows of SAE `s`.
pub fn unit_decoder(s: &AttachedSae) -> Result<Vec<f32>> {
    let rows: Vec<f32> = s.sae.decoder_directions()?.flatten_all()?.to_vec1()?;
    Ok(unit_rows(rows, s.sae.d_out()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_matches_brute_force() {
        let (na, nb, d) = (150, 97, 7);
        let mut z = 3u64;
        let mut rnd = || {
            z = crate::accum::intervals::splitmix64(z);
            ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let mut a: Vec<f32> = (0..na * d).map(|_| rnd()).collect();
        a[5 * d..6 * d].iter_mut().for_each(|v| *v = 0.0); // a dead feature
        let a = unit_rows(a, d);
        let b = unit_rows((0..nb * d).map(|_| rnd()).collect(), d);
        for (x, y, same) in [(&a, &b, false), (&a, &a, true)] {
            let (nx, ny) = (x.len() / d, y.len() / d);
            let got = nearest(x, y, d, 4, same);
            assert_eq!(got.len(), nx);
            assert!(got[5].is_empty(), "a zero row has no neighbours");
            for (i, list) in got.iter().enumerate() {
                if i == 5 {
                    continue;
                }
                let mut want: Vec<(u32, f32)> = (0..ny)
                    .filter(|&j| {
                        !(same && j == i) && y[j * d..(j + 1) * d].iter().any(|&v| v != 0.0)
                    })
                    .map(|j| {
                        let c = (0..d).map(|k| x[i * d + k] * y[j * d + k]).sum::<f32>();
                        (j as u32, c)
                    })
                    .collect();
                want.sort_by(|p, q| q.1.total_cmp(&p.1).then(p.0.cmp(&q.0)));
                want.truncate(4);
                let ids: Vec<u32> = list.iter().map(|p| p.0).collect();
                let want_ids: Vec<u32> = want.iter().map(|p| p.0).collect();
                assert_eq!(ids, want_ids, "row {i} same={same}");
                for (g, w) in list.iter().zip(&want) {
                    assert!((g.1 - w.1).abs() < 1e-5);
                }
            }
        }
    }
}
