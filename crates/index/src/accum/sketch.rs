//! Bounded heavy-hitter counts: a mergeable Misra–Gries summary (Agarwal et al., "Mergeable
//! Summaries", 2012), used for top tokens and for co-occurrence partners of large SAEs.
//!
//! The summary holds at most `m` (item, count) pairs. Adding a batch (exact batch-local counts)
//! and merging two summaries are the same operation: add counts item-wise, and if more than `m`
//! items remain, subtract the (m+1)-th largest count `t` from all and drop those ≤ 0.
//!
//! Guarantee, whatever the grouping or order of merges: for every item,
//! `est ≤ true ≤ est + err`, where `err` (tracked exactly, [`MisraGries::err`]) is the sum of the
//! `t`s subtracted along the way and `err ≤ N / (m + 1)` for a stream of total weight `N`
//! (each subtraction of `t` removes at least `(m+1)·t` of mass). While no subtraction happened
//! (`err == 0`, always the case when an item set has ≤ m distinct items), the counts are exact
//! and merging is exactly associative and commutative, so shards give the single-pass result.
//! After a subtraction, results are deterministic for a given merge tree and within the bound,
//! but may differ between groupings.
use serde::{Deserialize, Serialize};

/// Scratch vectors for [`MisraGries::add_sorted_with`].
#[derive(Debug, Default)]
pub(crate) struct MgBuf {
    items: Vec<u32>,
    counts: Vec<u64>,
    tmp: Vec<u64>,
}

/// Misra–Gries summary: `items` ascending, `counts` parallel and > 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MisraGries {
    items: Vec<u32>,
    counts: Vec<u64>,
    err: u64,
}

impl MisraGries {
    /// Adds exact counts (`items` strictly ascending, parallel `counts`) carrying error `err`,
    /// keeping at most `m` items.
    pub fn add_sorted(&mut self, items: &[u32], counts: &[u64], err: u64, m: usize) {
        self.add_sorted_with(items, counts, err, m, &mut MgBuf::default());
    }

    /// [`MisraGries::add_sorted`] with reusable buffers (no allocation once they are warm; the
    /// summary's own vectors never grow past `m`).
    pub fn add_sorted_with(
        &mut self,
        items: &[u32],
        counts: &[u64],
        err: u64,
        m: usize,
        buf: &mut MgBuf,
    ) {
        if items.is_empty() && err == 0 {
            return;
        }
        let (it, ct) = (&mut buf.items, &mut buf.counts);
        it.clear();
        ct.clear();
        let (a_it, a_ct) = (&self.items, &self.counts);
        let (mut i, mut j) = (0, 0);
        while i < a_it.len() && j < items.len() {
            match a_it[i].cmp(&items[j]) {
                std::cmp::Ordering::Less => {
                    it.push(a_it[i]);
                    ct.push(a_ct[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    it.push(items[j]);
                    ct.push(counts[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    it.push(items[j]);
                    ct.push(a_ct[i] + counts[j]);
                    i += 1;
                    j += 1;
                }
            }
        }
        it.extend_from_slice(&a_it[i..]);
        ct.extend_from_slice(&a_ct[i..]);
        it.extend_from_slice(&items[j..]);
        ct.extend_from_slice(&counts[j..]);
        self.err += err;
        if it.len() > m {
            buf.tmp.clear();
            buf.tmp.extend_from_slice(ct);
            // (m+1)-th largest count.
            let (_, t, _) = buf.tmp.select_nth_unstable_by(m, |a, b| b.cmp(a));
            let t = *t;
            let mut w = 0;
            for r in 0..it.len() {
                if ct[r] > t {
                    it[w] = it[r];
                    ct[w] = ct[r] - t;
                    w += 1;
                }
            }
            it.truncate(w);
            ct.truncate(w);
            self.err += t;
        }
        self.items.clear();
        self.items.extend_from_slice(it);
        self.counts.clear();
        self.counts.extend_from_slice(ct);
    }

    /// Merges another summary.
    pub fn merge(&mut self, other: &MisraGries, m: usize) {
        self.add_sorted(&other.items, &other.counts, other.err, m);
    }

    /// Upper bound on `true − est` for every item.
    pub fn err(&self) -> u64 {
        self.err
    }

    /// Estimated count of `item` (0 if not kept).
    #[cfg(test)]
    pub fn get(&self, item: u32) -> u64 {
        self.items
            .binary_search(&item)
            .map(|i| self.counts[i])
            .unwrap_or(0)
    }

    /// The kept (item, estimate) pairs, ascending item.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.items.iter().copied().zip(self.counts.iter().copied())
    }

    /// The `n` largest estimates, count descending, ties by item ascending.
    pub fn top(&self, n: usize) -> Vec<(u32, u64)> {
        top_by_count(self.iter(), n)
    }
}

/// The `n` largest `(item, count)` pairs: count descending, ties by item ascending.
pub(crate) fn top_by_count(it: impl Iterator<Item = (u32, u64)>, n: usize) -> Vec<(u32, u64)> {
    let mut v: Vec<(u32, u64)> = it.filter(|x| x.1 > 0).collect();
    let ord = |a: &(u32, u64), b: &(u32, u64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
    if v.len() > n && n > 0 {
        v.select_nth_unstable_by(n - 1, ord);
        v.truncate(n);
    }
    v.truncate(n);
    v.sort_by(ord);
    v
}

/// Sorts `xs` and writes its distinct values and their multiplicities into `items`/`counts`.
pub(crate) fn count_runs(xs: &mut [u32], items: &mut Vec<u32>, counts: &mut Vec<u64>) {
    items.clear();
    counts.clear();
    xs.sort_unstable();
    for &x in xs.iter() {
        if items.last() == Some(&x) {
            if let Some(c) = counts.last_mut() {
                *c += 1;
            }
        } else {
            items.push(x);
            counts.push(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_until_full_then_bounded() {
        let mut mg = MisraGries::default();
        mg.add_sorted(&[1, 2, 3], &[5, 1, 2], 0, 3);
        assert_eq!((mg.get(1), mg.get(3), mg.err()), (5, 2, 0));
        mg.add_sorted(&[4], &[1], 0, 3);
        // 4 items > m=3: subtract the 4th largest (1).
        assert_eq!(mg.err(), 1);
        assert_eq!(mg.top(10), vec![(1, 4), (3, 1)]);
    }

    #[test]
    fn error_bound_holds_on_a_skewed_stream() {
        let m = 8;
        let mut mg = MisraGries::default();
        let mut truth = std::collections::BTreeMap::new();
        let mut n = 0u64;
        for round in 0..200u32 {
            let mut xs: Vec<u32> = (0..20)
                .map(|i| (i * i + round) % 37 % (1 + i % 11))
                .collect();
            for &x in &xs {
                *truth.entry(x).or_insert(0u64) += 1;
            }
            n += xs.len() as u64;
            let (mut it, mut ct) = (Vec::new(), Vec::new());
            count_runs(&mut xs, &mut it, &mut ct);
            mg.add_sorted(&it, &ct, 0, m);
        }
        assert!(mg.err() <= n / (m as u64 + 1));
        for (&x, &t) in &truth {
            let e = mg.get(x);
            assert!(e <= t && t <= e + mg.err(), "item {x}: est {e} true {t}");
        }
    }
}
