//! Per-feature scalar statistics: firing count, maximum, exact sum, log-binned histogram.
//!
//! Invariant: every field merges exactly (integer addition or `max`), so any grouping of shards
//! gives bit-identical results. The activation sum is therefore kept in fixed point
//! ([`FIXED_FRAC_BITS`] fractional bits, `u128`) instead of `f64`, whose addition is not
//! associative. The histogram has global edges fixed by the configuration ([`HistEdges`]).
use serde::{Deserialize, Serialize};

/// Fractional bits of the fixed-point activation sum: resolution 2^-40 ≈ 9e-13 per value (finer
/// parts of a value are truncated, deterministically); the `u128` total overflows only past
/// 2^88 ≈ 3e26 (saturating).
pub const FIXED_FRAC_BITS: i32 = 40;

/// `v` (finite, ≥ 0) in fixed point with [`FIXED_FRAC_BITS`] fractional bits, truncated.
#[inline]
pub(crate) fn to_fixed(v: f32) -> u128 {
    // Exact: f32 -> f64 is exact and the scale is a power of two; `as` truncates the fraction.
    (v as f64 * (FIXED_FRAC_BITS as f64).exp2()) as u128
}

/// The fixed-point value `x` as f64 (rounded to nearest).
#[inline]
pub(crate) fn from_fixed(x: u128) -> f64 {
    x as f64 / (FIXED_FRAC_BITS as f64).exp2()
}

/// Log-spaced histogram edges shared by every feature of an SAE (and every shard).
///
/// `edges.len() == bins + 1`, `edges[i] = lo · (hi/lo)^(i/bins)` rounded to f32. A value `v`
/// falls in bin `i` when `edges[i] <= v < edges[i+1]`; values below `edges[0]` count in bin 0 and
/// values at or above `edges[bins]` in the last bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistEdges {
    /// The `bins + 1` edges, ascending.
    pub edges: Vec<f32>,
}

impl HistEdges {
    /// `bins` log-spaced bins between `lo` and `hi` (`0 < lo < hi`, `bins ≥ 1`).
    pub fn log_spaced(lo: f32, hi: f32, bins: usize) -> Self {
        let (l, h) = (lo as f64, hi as f64);
        let edges = (0..=bins)
            .map(|i| (l * (h / l).powf(i as f64 / bins as f64)) as f32)
            .collect();
        HistEdges { edges }
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.edges.len() - 1
    }

    /// The bin of `v` (see the type doc for the clamping at both ends).
    #[inline]
    pub fn bin(&self, v: f32) -> usize {
        // Number of inner edges (1..bins) that are <= v.
        let inner = &self.edges[1..self.edges.len() - 1];
        inner.partition_point(|&e| e <= v)
    }
}

/// Scalar statistics of one feature over the counted positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// Counted positions where the activation was > 0.
    pub n_fired: u64,
    /// Sum of those activations in fixed point (see [`FIXED_FRAC_BITS`]).
    pub sum_fixed: u128,
    /// Maximum activation (0 while dead).
    pub max: f32,
    /// Counts per bin of the SAE's [`HistEdges`].
    pub hist: Vec<u64>,
}

impl FeatureStats {
    /// Empty statistics with `bins` histogram bins.
    pub fn new(bins: usize) -> Self {
        FeatureStats {
            n_fired: 0,
            sum_fixed: 0,
            max: 0.0,
            hist: vec![0; bins],
        }
    }

    /// Adds one firing position with activation `v > 0`.
    #[inline]
    pub fn add(&mut self, v: f32, edges: &HistEdges) {
        self.n_fired += 1;
        self.sum_fixed = self.sum_fixed.saturating_add(to_fixed(v));
        if v > self.max {
            self.max = v;
        }
        self.hist[edges.bin(v)] += 1;
    }

    /// Adds `other` (exact, associative, commutative).
    pub fn merge(&mut self, other: &FeatureStats) {
        self.n_fired += other.n_fired;
        self.sum_fixed = self.sum_fixed.saturating_add(other.sum_fixed);
        self.max = self.max.max(other.max);
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
    }

    /// Mean activation over firing positions (0 for a dead feature).
    pub fn mean(&self) -> f32 {
        if self.n_fired == 0 {
            0.0
        } else {
            (from_fixed(self.sum_fixed) / self.n_fired as f64) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_bins_clamp_and_edges() {
        let h = HistEdges::log_spaced(0.01, 100.0, 4);
        assert_eq!(h.bins(), 4);
        assert_eq!(h.bin(0.001), 0);
        assert_eq!(h.bin(0.05), 0);
        assert_eq!(h.bin(h.edges[1]), 1);
        assert_eq!(h.bin(5.0), 2);
        assert_eq!(h.bin(99.0), 3);
        assert_eq!(h.bin(1e9), 3);
    }

    #[test]
    fn fixed_point_is_exact_for_dyadic_values() {
        let s: u128 = [0.25f32, 1.5, 3.0].iter().map(|&v| to_fixed(v)).sum();
        assert_eq!(from_fixed(s), 4.75);
    }
}
