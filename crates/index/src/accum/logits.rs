//! Logit effects: for each feature, the tokens whose logits its decoder direction raises and
//! lowers most, `W_dec[f] · W_U[t]` (computed once per SAE, never per token).
//!
//! [`logit_effects`] is the CPU path: features are processed in blocks of [`FEATURE_BLOCK`] by
//! rayon tasks, each scanning the vocabulary in tiles of [`VOCAB_TILE`] rows, so the working
//! memory is `threads × FEATURE_BLOCK × VOCAB_TILE` floats plus the top-n lists, whatever
//! `d_sae × vocab` is (131072 × 128k scores are never materialised). The compute is
//! `2·d_sae·vocab·d_model` flops: seconds for small SAEs, a GPU job for large ones — a caller
//! with a device can compute score rows there in chunks and hand each row to [`top_logits`].
use rayon::prelude::*;
use scopedex_store::records::TokenValue;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

/// Features per rayon task.
pub const FEATURE_BLOCK: usize = 16;
/// Vocabulary rows per tile.
pub const VOCAB_TILE: usize = 256;

/// Top positive and negative logit effects per feature (index = feature).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogitEffects {
    /// Tokens raised most, descending value (ties by token id).
    pub pos: Vec<Vec<TokenValue>>,
    /// Tokens lowered most, ascending value (ties by token id).
    pub neg: Vec<Vec<TokenValue>>,
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

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Top `top_n` logit effects of every feature.
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
    let per_block: Vec<Vec<(Vec<TokenValue>, Vec<TokenValue>)>> = decoder_directions
        .par_chunks(FEATURE_BLOCK * d_model)
        .map(|block| {
            let nf = block.len() / d_model;
            let mut pos: Vec<TopN> = (0..nf).map(|_| TopN::new(top_n)).collect();
            let mut neg: Vec<TopN> = (0..nf).map(|_| TopN::new(top_n)).collect();
            for (ti, tile) in unembedding.chunks(VOCAB_TILE * d_model).enumerate() {
                for (i, w) in block.chunks_exact(d_model).enumerate() {
                    for (k, u) in tile.chunks_exact(d_model).enumerate() {
                        let s = dot(w, u);
                        let t = (ti * VOCAB_TILE + k) as u32;
                        pos[i].offer(s, t);
                        neg[i].offer(-s, t);
                    }
                }
            }
            pos.into_iter()
                .zip(neg)
                .map(|(p, n)| (p.into_sorted(1.0), n.into_sorted(-1.0)))
                .collect()
        })
        .collect();
    let (pos, neg) = per_block.into_iter().flatten().unzip();
    Ok(LogitEffects { pos, neg })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert_eq!(le.neg[f][0].value, scores[idx[0]]);
        }
        let (p, n) = top_logits(&[1.0, 3.0, -2.0, 3.0], 2);
        assert_eq!((p[0].token, p[1].token, n[0].token), (1, 3, 2));
    }
}
