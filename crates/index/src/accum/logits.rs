//! Logit effects: for each feature, the tokens whose logits its decoder direction raises and
//! lowers most, `W_dec[f] · W_U[t]` (computed once per SAE, never per token).
//!
//! [`logit_effects`] is the CPU path: for each block of [`FEATURE_BLOCK`] features, one GEMM
//! (`scopedex_linalg::sgemm`) per tile of [`VOCAB_TILE`] vocabulary rows fills the block's score
//! rows, then rayon takes each row's top-n and its equal-width histogram
//! ([`LogitHistogram`]), so the working memory is `FEATURE_BLOCK × vocab` scores (16 MB for
//! Llama 3's 128k vocabulary) plus the results, whatever `d_sae` is (131072 × 128k scores are
//! never materialised). The compute is `2·d_sae·vocab·d_model` flops:
//! seconds for small SAEs, minutes on a CPU for Llama Scope's (a GPU job) — a caller with a
//! device can compute score rows there in chunks and hand each row to [`top_logits`].
use rayon::prelude::*;
use scopedex_linalg::{sgemm, Mat};
use scopedex_store::records::TokenValue;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

/// Features per block of score rows.
pub const FEATURE_BLOCK: usize = 32;
/// Vocabulary rows per score tile.
pub const VOCAB_TILE: usize = 2048;

/// Top positive and negative logit effects per feature (index = feature).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogitEffects {
    /// Tokens raised most, descending value (ties by token id).
    pub pos: Vec<Vec<TokenValue>>,
    /// Tokens lowered most, ascending value (ties by token id).
    pub neg: Vec<Vec<TokenValue>>,
    /// Every effect, binned.
    pub hist: Vec<LogitHistogram>,
}

/// Heap key whose maximum is the worst kept entry (smaller value, then larger token, is worse).
#[derive(Clone, Copy)]
struct Key(f32, u32);
impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Key {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Key {}

/// The `n` largest values seen.
struct TopN {
    n: usize,
    heap: BinaryHeap<Key>,
}

impl TopN {
    fn new(n: usize) -> Self {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n + 1),
        }
    }

    #[inline]
    fn offer(&mut self, v: f32, t: u32) {
        if self.n == 0 {
            return;
        }
        let k = Key(v, t);
        if self.heap.len() < self.n {
            self.heap.push(k);
        } else if self.heap.peek().is_some_and(|w| k < *w) {
            self.heap.pop();
            self.heap.push(k);
        }
    }

    /// Best first; `sign` multiplies the stored value back.
    fn into_sorted(self, sign: f32) -> Vec<TokenValue> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|k| TokenValue {
                token: k.1,
                value: sign * k.0,
            })
            .collect()
    }
}

/// Top `top_n` positive (descending) and negative (ascending) entries of one score row
/// (`scores[t]` = effect on token `t`). NaN scores are ordered by `f32::total_cmp`.
pub fn top_logits(scores: &[f32], top_n: usize) -> (Vec<TokenValue>, Vec<TokenValue>) {
    let (mut p, mut n) = (TopN::new(top_n), TopN::new(top_n));
    for (t, &s) in scores.iter().enumerate() {
        p.offer(s, t as u32);
        n.offer(-s, t as u32);
    }
    (p.into_sorted(1.0), n.into_sorted(-1.0))
}

/// Top `top_n` logit effects of every feature, and the histogram of all of them.
///
/// `decoder_directions`: `[d_sae, d_model]` row-major (`W_dec`); `unembedding`: `[vocab, d_model]`
/// row-major (`W_U` transposed, as stored by most checkpoints). Fold any final-norm weight into
/// `unembedding` beforehand if wanted.
pub fn logit_effects(
    decoder_directions: &[f32],
    unembedding: &[f32],
    d_model: usize,
    top_n: usize,
) -> Result<LogitEffects> {
    if d_model == 0 || decoder_directions.len() % d_model != 0 || unembedding.len() % d_model != 0 {
        return Err(Error::Mismatch(format!(
            "logit effects: decoder ({}) and unembedding ({}) lengths must be multiples of d_model {d_model}",
            decoder_directions.len(),
            unembedding.len()
        )));
    }
    let n_features = decoder_directions.len() / d_model;
    let vocab = unembedding.len() / d_model;
    let mut out = LogitEffects {
        pos: Vec::with_capacity(n_features),
        neg: Vec::with_capacity(n_features),
        hist: Vec::with_capacity(n_features),
    };
    if vocab == 0 {
        out.pos = vec![Vec::new(); n_features];
        out.neg = vec![Vec::new(); n_features];
        out.hist = vec![LogitHistogram::default(); n_features];
        return Ok(out);
    }
    // The block's full score rows, so each feature's range is known before it is binned.
    let mut rows = vec![0f32; FEATURE_BLOCK * vocab];
    for block in decoder_directions.chunks(FEATURE_BLOCK * d_model) {
        let nf = block.len() / d_model;
        for (ti, tile) in unembedding.chunks(VOCAB_TILE * d_model).enumerate() {
            let nt = tile.len() / d_model;
            let t0 = ti * VOCAB_TILE;
            // rows[i, t0 + k] = W_dec[f0 + i] · W_U[t0 + k]
            sgemm(
                nf,
                nt,
                d_model,
                1.0,
                Mat::new(block, d_model),
                Mat::transposed(tile, d_model),
                0.0,
                &mut rows[t0..],
                vocab,
            );
        }
        let done: Vec<_> = rows[..nf * vocab]
            .par_chunks(vocab)
            .map(|row| {
                let (p, n) = top_logits(row, top_n);
                (p, n, LogitHistogram::of(row))
            })
            .collect();
        for (p, n, h) in done {
            out.pos.push(p);
            out.neg.push(n);
            out.hist.push(h);
        }
    }
    Ok(out)
}

/// Bins of [`LogitHistogram`].
pub const LOGIT_HIST_BINS: usize = 40;

/// Equal-width histogram of one feature's logit effects over the whole vocabulary (what
/// SAEDashboard and Neuronpedia draw as "logit effects").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogitHistogram {
    /// Lower edge of the first bin (the smallest effect).
    pub min: f32,
    /// Upper edge of the last bin (the largest effect).
    pub max: f32,
    /// Count per bin, [`LOGIT_HIST_BINS`] of them (empty for an empty row).
    pub counts: Vec<u64>,
}

impl LogitHistogram {
    /// The histogram of `row` (non-finite values are left out).
    pub fn of(row: &[f32]) -> Self {
        let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in row.iter().filter(|v| v.is_finite()) {
            min = min.min(v);
            max = max.max(v);
        }
        if min > max {
            return LogitHistogram::default();
        }
        let mut counts = vec![0u64; LOGIT_HIST_BINS];
        let width = (max - min) / LOGIT_HIST_BINS as f32;
        for &v in row.iter().filter(|v| v.is_finite()) {
            let b = if width > 0.0 {
                (((v - min) / width) as usize).min(LOGIT_HIST_BINS - 1)
            } else {
                0
            };
            counts[b] += 1;
        }
        LogitHistogram { min, max, counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopedex_linalg::dot;

    #[test]
    fn matches_brute_force() {
        let (d_sae, vocab, d_model) = (37, 300, 13);
        let mut z = 7u64;
        let mut rnd = || {
            z = super::super::intervals::splitmix64(z);
            ((z >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let dec: Vec<f32> = (0..d_sae * d_model).map(|_| rnd()).collect();
        let wu: Vec<f32> = (0..vocab * d_model).map(|_| rnd()).collect();
        let le = logit_effects(&dec, &wu, d_model, 5).unwrap();
        assert_eq!(le.pos.len(), d_sae);
        for f in 0..d_sae {
            let scores: Vec<f32> = (0..vocab)
                .map(|t| {
                    dot(
                        &dec[f * d_model..(f + 1) * d_model],
                        &wu[t * d_model..(t + 1) * d_model],
                    )
                })
                .collect();
            let mut idx: Vec<usize> = (0..vocab).collect();
            idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let want: Vec<u32> = idx[..5].iter().map(|&t| t as u32).collect();
            assert_eq!(le.pos[f].iter().map(|x| x.token).collect::<Vec<_>>(), want);
            idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            let want: Vec<u32> = idx[..5].iter().map(|&t| t as u32).collect();
            assert_eq!(le.neg[f].iter().map(|x| x.token).collect::<Vec<_>>(), want);
            assert!((le.neg[f][0].value - scores[idx[0]]).abs() < 1e-5);
            let h = &le.hist[f];
            assert_eq!(h.counts.iter().sum::<u64>(), vocab as u64);
            let lo = scores.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert!((h.min - lo).abs() < 1e-5 && (h.max - hi).abs() < 1e-5);
            let width = (hi - lo) / LOGIT_HIST_BINS as f32;
            for (b, &c) in h.counts.iter().enumerate() {
                // Brute force, away from bin edges where rounding may differ.
                let (a, z) = (lo + b as f32 * width, lo + (b + 1) as f32 * width);
                let inside = scores
                    .iter()
                    .filter(|&&v| v > a + 1e-4 && v < z - 1e-4)
                    .count();
                let near = scores
                    .iter()
                    .filter(|&&v| v >= a - 1e-4 && v <= z + 1e-4)
                    .count();
                assert!(
                    inside as u64 <= c && c <= near as u64,
                    "bin {b}: {inside} <= {c} <= {near}"
                );
            }
        }
        let (p, n) = top_logits(&[1.0, 3.0, -2.0, 3.0], 2);
        assert_eq!((p[0].token, p[1].token, n[0].token), (1, 3, 2));
    }
}
