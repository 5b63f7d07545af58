//! Stored example contexts and the bounded top-k list per feature.
//!
//! An [`Example`] keeps the feature's activations over one context *sparsely* (positions and
//! values where > 0): a dense window × k × d_sae would not fit memory for 131072-feature SAEs.
//! It is expanded to the dense `acts` of [`ExampleRecord`] only in `finish`.
//!
//! [`TopK`] keeps the k best contexts under the strict total order "higher max_act first, then
//! lower context_id" in a binary heap whose top is the current worst, so an insertion costs one
//! comparison against the k-th value when the candidate does not enter (the common case).
//! Because the order is total and a context appears once, the kept set is the unique top-k of
//! everything offered, so merge (offer the other's entries) is associative and commutative.
use std::cmp::Ordering;
use std::collections::BinaryHeap;

use scopedex_store::records::{ExampleKind, ExampleRecord};
use serde::{Deserialize, Serialize};

/// One nonzero activation inside a context window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct SparseAct {
    /// Position in the window.
    pub pos: u32,
    /// Activation (> 0).
    pub act: f32,
}

/// A context and the feature's activations in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Example {
    /// The context.
    pub context_id: u64,
    /// Maximum activation over the counted positions.
    pub max_act: f32,
    /// First counted position holding `max_act`.
    pub max_pos: u32,
    /// Number of positions of the window.
    pub len: u32,
    /// Nonzero activations at counted positions, ascending `pos`.
    pub acts: Box<[SparseAct]>,
}

impl Example {
    /// The record with dense `acts` (zeros where the feature did not fire).
    pub fn to_record(&self, feature: u32, kind: ExampleKind, rank: u16) -> ExampleRecord {
        let mut acts = vec![0f32; self.len as usize];
        for a in self.acts.iter() {
            acts[a.pos as usize] = a.act;
        }
        ExampleRecord {
            feature,
            kind,
            rank,
            context_id: self.context_id,
            max_pos: self.max_pos,
            max_act: self.max_act,
            acts,
        }
    }
}

/// Display order of examples: higher `max_act` first, then lower `context_id`.
/// `Less` means `a` ranks before `b`.
#[inline]
pub(crate) fn rank_cmp(a_act: f32, a_ctx: u64, b_act: f32, b_ctx: u64) -> Ordering {
    b_act.total_cmp(&a_act).then(a_ctx.cmp(&b_ctx))
}

/// Heap element ordered so that the worst-ranked example is the heap's maximum.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
struct Ranked(Example);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank_cmp(
            self.0.max_act,
            self.0.context_id,
            other.0.max_act,
            other.0.context_id,
        )
    }
}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ranked {}

/// The k best contexts of one feature (see the module doc).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TopK {
    heap: BinaryHeap<Ranked>,
}

impl TopK {
    /// Whether a context with this max and id would enter a list of capacity `k`.
    #[inline]
    pub fn would_enter(&self, k: usize, max_act: f32, context_id: u64) -> bool {
        if self.heap.len() < k {
            return k > 0;
        }
        match self.heap.peek() {
            Some(w) => rank_cmp(max_act, context_id, w.0.max_act, w.0.context_id).is_lt(),
            None => false,
        }
    }

    /// Offers `ex`; keeps at most `k`.
    pub fn push(&mut self, k: usize, ex: Example) {
        if self.would_enter(k, ex.max_act, ex.context_id) {
            self.heap.push(Ranked(ex));
            if self.heap.len() > k {
                self.heap.pop();
            }
        }
    }

    /// Offers every example of `other`.
    pub fn merge(&mut self, other: TopK, k: usize) {
        for r in other.heap {
            self.push(k, r.0);
        }
    }

    /// Number kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// The kept examples, best first.
    pub fn sorted(&self) -> Vec<&Example> {
        let mut v: Vec<&Example> = self.heap.iter().map(|r| &r.0).collect();
        v.sort_by(|a, b| rank_cmp(a.max_act, a.context_id, b.max_act, b.context_id));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(act: f32, ctx: u64) -> Example {
        Example {
            context_id: ctx,
            max_act: act,
            max_pos: 0,
            len: 1,
            acts: vec![SparseAct { pos: 0, act }].into(),
        }
    }

    #[test]
    fn keeps_best_with_ties_by_context_id() {
        let mut t = TopK::default();
        for (a, c) in [(1.0, 5), (2.0, 9), (2.0, 3), (0.5, 1), (2.0, 7), (3.0, 8)] {
            t.push(3, ex(a, c));
        }
        let got: Vec<(f32, u64)> = t
            .sorted()
            .iter()
            .map(|e| (e.max_act, e.context_id))
            .collect();
        assert_eq!(got, vec![(3.0, 8), (2.0, 3), (2.0, 7)]);
        assert!(!t.would_enter(3, 2.0, 7));
        assert!(t.would_enter(3, 2.0, 4));
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn dense_expansion() {
        let e = Example {
            context_id: 1,
            max_act: 2.0,
            max_pos: 3,
            len: 5,
            acts: vec![
                SparseAct { pos: 1, act: 1.0 },
                SparseAct { pos: 3, act: 2.0 },
            ]
            .into(),
        };
        let r = e.to_record(4, ExampleKind::Top, 0);
        assert_eq!(r.acts, vec![0.0, 1.0, 0.0, 2.0, 0.0]);
    }
}
