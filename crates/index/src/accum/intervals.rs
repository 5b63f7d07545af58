//! Interval ("quantile") samples: a deterministic, exactly mergeable sample per activation band.
//!
//! SAEDashboard/Neuronpedia show examples from N equal-width intervals of `[0, max]`. The max is
//! unknown until the end, so contexts are first filed by their max activation into fixed
//! log-spaced *buckets* and each bucket keeps a bottom-s sample by a hash priority:
//!
//! * bucket of `a` = the top 11 bits of its f32 pattern (exponent + 2 mantissa bits): 4 buckets
//!   per octave with edges `2^e·{1, 1.25, 1.5, 1.75}`, covering every positive f32, computed
//!   exactly on any platform;
//! * priority of a context = [`priority`]`(feature, context_id)` (splitmix64), ties by
//!   `context_id`; a bucket keeps the s contexts of smallest priority. Bottom-s of a union is the
//!   bottom-s of the union of bottom-s's, so merge (union, keep s) is exact, associative and
//!   commutative.
//!
//! At the end, with `max` the feature's max, interval `i` is `[i·max/N, (i+1)·max/N)` (the last
//! also holds `max`; assignment is exact, comparing `a·N` with `i·max` in f64). Each stored sample
//! goes to its interval, and each interval keeps its s smallest priorities. A bucket wholly inside
//! one interval contributes exactly its bottom-s; a bucket straddling an interval edge contributes
//! the part of its bottom-s on each side (so near edges the sample is bottom-s of the bucket
//! restricted to the interval rather than of the interval itself; deterministic all the same).
//! Contexts also in the top-k list are *not* excluded, as in SAEDashboard.
//!
//! Memory stays bounded by collapsing: once a bucket's upper edge × N ≤ the running max, every
//! sample in it can only land in interval 0 (the final max is at least the running max), so it
//! joins a single `low` reservoir. This changes no result (bottom-s composes), whatever the
//! moment of collapse, so shards still merge exactly. What is left is ~4·log2(N)+1 live buckets
//! (≈ 15 for N = 10), each with ≤ s samples.
use serde::{Deserialize, Serialize};

use super::topk::{rank_cmp, Example};

/// splitmix64 finalizer.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sampling priority of a context for a feature (smaller is kept first):
/// `splitmix64(context_id ^ splitmix64(feature))`.
#[inline]
pub fn priority(feature: u32, context_id: u64) -> u64 {
    splitmix64(context_id ^ splitmix64(feature as u64))
}

/// Bucket of a positive finite activation: its f32 bits >> 21.
#[inline]
pub fn bucket_of(a: f32) -> u16 {
    (a.to_bits() >> 21) as u16
}

/// Exclusive upper edge of bucket `b`.
#[inline]
fn bucket_hi(b: u16) -> f32 {
    f32::from_bits((b as u32 + 1) << 21)
}

/// Whether every activation of bucket `b` lies in interval 0 for any final max ≥ `max`.
#[inline]
fn collapsible(b: u16, max: f32, n: usize) -> bool {
    bucket_hi(b) as f64 * n as f64 <= max as f64
}

/// Interval of activation `a` among `n` equal-width intervals of `[0, max]` (exact).
pub fn interval_of(a: f32, max: f32, n: usize) -> usize {
    let (a, m) = (a as f64 * n as f64, max as f64);
    let mut i = ((a / m).floor() as usize).min(n - 1);
    // Products of an f32 and an integer < 2^29 are exact in f64: fix any rounding of the division.
    while i > 0 && a < i as f64 * m {
        i -= 1;
    }
    while i + 1 < n && a >= (i + 1) as f64 * m {
        i += 1;
    }
    i
}

/// A stored sample and its priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sampled {
    pub prio: u64,
    pub ex: Example,
}

#[inline]
fn prio_lt(p: u64, ctx: u64, s: &Sampled) -> bool {
    (p, ctx) < (s.prio, s.ex.context_id)
}

/// Bottom-s reservoir, ascending (priority, context_id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Reservoir(Vec<Sampled>);

impl Reservoir {
    #[inline]
    fn would_enter(&self, s: usize, prio: u64, ctx: u64) -> bool {
        self.0.len() < s || self.0.last().is_some_and(|l| prio_lt(prio, ctx, l))
    }

    fn insert(&mut self, s: usize, x: Sampled) {
        if !self.would_enter(s, x.prio, x.ex.context_id) {
            return;
        }
        let at = self
            .0
            .partition_point(|y| !prio_lt(x.prio, x.ex.context_id, y));
        self.0.insert(at, x);
        self.0.truncate(s);
    }

    fn absorb(&mut self, s: usize, other: Reservoir) {
        for x in other.0 {
            self.insert(s, x);
        }
    }
}

/// Interval samples of one feature (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct IntervalSampler {
    /// Samples of collapsed buckets (all in interval 0).
    low: Reservoir,
    /// Live buckets, ascending bucket id.
    buckets: Vec<(u16, Reservoir)>,
}

impl IntervalSampler {
    fn target(&mut self, a: f32, max: f32, n: usize) -> &mut Reservoir {
        let b = bucket_of(a);
        if collapsible(b, max, n) {
            return &mut self.low;
        }
        let i = match self.buckets.binary_search_by_key(&b, |x| x.0) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(i, (b, Reservoir::default()));
                i
            }
        };
        &mut self.buckets[i].1
    }

    /// Offers a context whose max activation is `a`; `make` builds the example only if it enters.
    /// `max` is the feature's running max (≥ `a`), `n` intervals, `s` samples per bucket.
    #[inline]
    /// `key` is (priority, context_id).
    pub fn offer(
        &mut self,
        a: f32,
        key: (u64, u64),
        max: f32,
        n: usize,
        s: usize,
        make: impl FnOnce() -> Example,
    ) {
        if s == 0 {
            return;
        }
        let (prio, ctx) = key;
        let r = self.target(a, max, n);
        if r.would_enter(s, prio, ctx) {
            r.insert(s, Sampled { prio, ex: make() });
        }
    }

    /// Moves buckets that can only fall in interval 0 into the low reservoir.
    pub fn collapse(&mut self, max: f32, n: usize, s: usize) {
        let k = self
            .buckets
            .iter()
            .take_while(|(b, _)| collapsible(*b, max, n))
            .count();
        for (_, r) in self.buckets.drain(..k) {
            self.low.absorb(s, r);
        }
    }

    /// Union with `other`, then collapse under the merged `max`.
    pub fn merge(&mut self, other: IntervalSampler, max: f32, n: usize, s: usize) {
        self.low.absorb(s, other.low);
        for (b, r) in other.buckets {
            match self.buckets.binary_search_by_key(&b, |x| x.0) {
                Ok(i) => self.buckets[i].1.absorb(s, r),
                Err(i) => self.buckets.insert(i, (b, r)),
            }
        }
        self.collapse(max, n, s);
    }

    /// Up to `s` samples per interval (index = interval), each list in display order
    /// (higher max_act first, then lower context_id). `max` is the feature's final max (> 0).
    pub fn select(&self, max: f32, n: usize, s: usize) -> Vec<Vec<&Example>> {
        let mut per: Vec<Vec<&Sampled>> = vec![Vec::new(); n];
        per[0].extend(self.low.0.iter());
        for (_, r) in &self.buckets {
            for x in &r.0 {
                per[interval_of(x.ex.max_act, max, n)].push(x);
            }
        }
        per.into_iter()
            .map(|mut v| {
                v.sort_by_key(|x| (x.prio, x.ex.context_id));
                v.truncate(s);
                let mut e: Vec<&Example> = v.into_iter().map(|x| &x.ex).collect();
                e.sort_by(|a, b| rank_cmp(a.max_act, a.context_id, b.max_act, b.context_id));
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotone_quarter_octaves() {
        assert_eq!(bucket_of(1.0) + 1, bucket_of(1.25));
        assert_eq!(bucket_of(1.2499), bucket_of(1.0));
        assert_eq!(bucket_of(2.0), bucket_of(1.75) + 1);
        assert_eq!(bucket_hi(bucket_of(1.0)), 1.25);
        let mut last = 0;
        for i in 1..2000 {
            let b = bucket_of(i as f32 * 0.013);
            assert!(b >= last);
            last = b;
        }
    }

    #[test]
    fn interval_assignment_is_exact_at_edges() {
        assert_eq!(interval_of(1.0, 10.0, 10), 1);
        assert_eq!(interval_of(0.99999, 10.0, 10), 0);
        assert_eq!(interval_of(10.0, 10.0, 10), 9);
        assert_eq!(interval_of(0.3, 3.0, 10), 1);
        assert_eq!(interval_of(0.7, 0.7, 3), 2);
    }
}
