//! Neuronpedia's histograms from what the index holds.
//!
//! Neuronpedia draws (and labels) SAEDashboard's histograms: `HistogramData.from_data`
//! (`sae_dashboard/utils_fns.py`) puts the data in [`DASHBOARD_BINS`] **equal-width** bins
//! between its minimum and maximum (`torch.histc`: bin `⌊(x − min)·n / (max − min)⌋`, the
//! maximum in the last bin) and reports each bar at its centre, `min + (i + ½)·w`, rounded to 5
//! decimals. The activation histogram covers the feature's positive activations at counted
//! positions; the logit histogram the feature's effect on every vocabulary logit.
//!
//! The index keeps a **log-spaced** activation histogram per feature (its own bins are left as
//! they are). The export builds the equal-width one in one of two ways ([`ActHistSource`]):
//! - **exact**, from the sparse activation log when the index has one (`index
//!   --keep-activations`): the feature's logged positive values at counted positions, binned
//!   as above (values carry the log's rounding, bf16 precision by default);
//! - **re-binned** otherwise ([`rebin_log_hist`]): each log-spaced bin's count is spread over
//!   the equal-width bins in proportion to their overlap, assuming a **uniform density within
//!   each log-spaced bin** (linear in the activation), over `[lower edge of the first non-empty
//!   bin, max_act]`; the fractional heights are rounded to integers by largest remainder, so
//!   they still sum to the feature's firing count. Which one was used is written in the
//!   export's `scopedex-export.json` (`activation_histogram`).
use scopedex_store::{FeatureRecord, SaeSummary};

use crate::batch::round5;

/// Bars of an activation or logit histogram (SAEDashboard's `ActsHistogramConfig` /
/// `LogitsHistogramConfig` `n_bins`).
pub const DASHBOARD_BINS: usize = 50;

/// How the equal-width activation histogram was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActHistSource {
    /// Binned from the sparse activation log.
    ActivationLog,
    /// Re-binned from the index's log-spaced histogram ([`rebin_log_hist`]).
    RebinnedLogHistogram,
    /// Neither the log nor the SAE summary (bin edges) is there: empty histograms.
    Missing,
}

impl ActHistSource {
    /// How the export report names it.
    pub fn describe(self) -> &'static str {
        match self {
            ActHistSource::ActivationLog => {
                "exact: 50 equal-width bins between the feature's smallest and largest positive \
                 activation in the sparse activation log (counted positions)"
            }
            ActHistSource::RebinnedLogHistogram => {
                "re-binned: the index's log-spaced histogram spread over 50 equal-width bins \
                 in [lower edge of the first non-empty bin, max_act], assuming uniform density \
                 within each log-spaced bin; heights rounded by largest remainder (the index \
                 has no activation log: index with --keep-activations for exact bins)"
            }
            ActHistSource::Missing => {
                "missing: the index has neither an activation log nor an SAE summary"
            }
        }
    }
}

/// Bar centres and heights of `n` equal-width bins over `[lo, hi]` from per-bin masses.
fn centres(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let w = (hi - lo) / n as f64;
    (0..n).map(|i| round5(lo + (i as f64 + 0.5) * w)).collect()
}

/// `torch.histc`'s bin of `x` among `n` bins over `[lo, hi]` (`lo < hi`).
fn histc_bin(x: f64, lo: f64, hi: f64, n: usize) -> usize {
    let b = ((x - lo) * n as f64 / (hi - lo)).floor();
    if b <= 0.0 {
        0
    } else {
        (b as usize).min(n - 1)
    }
}

/// SAEDashboard's histogram of `data` (values and heights; both empty for no data). When all
/// values are equal, `torch.histc` widens the range to `[v − 1, v + 1]`, so every value lands
/// in the middle bar, and every bar is reported at `v` (the bin width of `linspace(v, v)` is 0).
pub fn equal_width(data: &[f64]) -> (Vec<f64>, Vec<u64>) {
    let n = DASHBOARD_BINS;
    let Some(lo) = data.iter().copied().reduce(f64::min) else {
        return (Vec::new(), Vec::new());
    };
    let hi = data.iter().copied().fold(lo, f64::max);
    let mut heights = vec![0u64; n];
    if hi > lo {
        for &x in data {
            heights[histc_bin(x, lo, hi, n)] += 1;
        }
        (centres(lo, hi, n), heights)
    } else {
        heights[histc_bin(lo, lo - 1.0, lo + 1.0, n)] = data.len() as u64;
        (vec![round5(lo); n], heights)
    }
}

/// The activation histogram re-binned from the feature's log-spaced one (module doc): bars
/// over `[lo, max_act]`, `lo` the lower edge of the first non-empty log bin (values below the
/// first edge, which the index counts in bin 0, are taken to start there). Empty for a dead
/// feature.
pub fn rebin_log_hist(rec: &FeatureRecord, edges: &[f32]) -> (Vec<f64>, Vec<u64>) {
    let n = DASHBOARD_BINS;
    let bins = rec.act_hist.len().min(edges.len().saturating_sub(1));
    let counts = &rec.act_hist[..bins];
    let (Some(first), Some(last)) = (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) else {
        return (Vec::new(), Vec::new());
    };
    let hi = f64::from(rec.max_act);
    let lo = f64::from(edges[first]).min(hi);
    let total: u64 = counts.iter().sum();
    if hi <= lo {
        // One value (as histc: the middle bar; every bar at that value).
        let mut heights = vec![0u64; n];
        heights[n / 2] = total;
        return (vec![round5(lo); n], heights);
    }
    let w = (hi - lo) / n as f64;
    let mut mass = vec![0f64; n];
    for (j, &c) in counts.iter().enumerate().take(last + 1).skip(first) {
        if c == 0 {
            continue;
        }
        let a = f64::from(edges[j]).clamp(lo, hi);
        let b = if j == last {
            hi
        } else {
            f64::from(edges[j + 1]).clamp(lo, hi)
        };
        if b <= a {
            mass[histc_bin(a, lo, hi, n)] += c as f64;
            continue;
        }
        let (ia, ib) = (histc_bin(a, lo, hi, n), histc_bin(b, lo, hi, n));
        for (i, m) in mass.iter_mut().enumerate().take(ib + 1).skip(ia) {
            let (x, y) = (lo + i as f64 * w, lo + (i + 1) as f64 * w);
            let overlap = (b.min(y) - a.max(x)).max(0.0);
            *m += c as f64 * overlap / (b - a);
        }
    }
    (centres(lo, hi, n), round_preserving_sum(&mass, total))
}

/// Rounds non-negative `mass` to integers summing to `total` (largest remainder; ties to the
/// lower bin).
fn round_preserving_sum(mass: &[f64], total: u64) -> Vec<u64> {
    let mut out: Vec<u64> = mass.iter().map(|m| m.max(0.0).floor() as u64).collect();
    let assigned: u64 = out.iter().sum();
    let mut order: Vec<usize> = (0..mass.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (mass[a] - mass[a].floor(), mass[b] - mass[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().take(total.saturating_sub(assigned) as usize) {
        out[i] += 1;
    }
    out
}

/// The logit histogram (heights, values) from the index's equal-width bins over
/// `[logit_hist_min, logit_hist_max]`: heights as stored, values at the bar centres (5
/// decimals). Empty when the index has none (written before it recorded them).
pub fn logit_hist(rec: &FeatureRecord) -> (Vec<u64>, Vec<f64>) {
    let n = rec.logit_hist.len();
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let (lo, hi) = (f64::from(rec.logit_hist_min), f64::from(rec.logit_hist_max));
    (rec.logit_hist.clone(), centres(lo, hi, n))
}

/// Fraction of the counted positions (`total`) whose activation lies in `[lo, hi]` (zeros
/// count in an interval starting at or below 0), from the feature's logged positive values:
/// exact up to the log's rounding. Values are capped at `max` (the exact maximum) so one that
/// the log rounded above it stays in the top interval.
pub fn interval_fraction_exact(
    values: &[f32],
    n_fired: u64,
    total: u64,
    max: f64,
    lo: f64,
    hi: f64,
) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let mut mass = values
        .iter()
        .filter(|&&v| v > 0.0 && (lo..=hi).contains(&f64::from(v).min(max)))
        .count() as f64;
    if lo <= 0.0 {
        mass += total.saturating_sub(n_fired) as f64;
    }
    (mass / total as f64).clamp(0.0, 1.0)
}

/// Estimated fraction of the counted positions (`tokens_indexed`) with activation in
/// `[lo, hi]`, from the feature's log-binned histogram: each bin's count is spread
/// log-uniformly over its edges clipped to `[.., max_act]` (the last bin, which also holds
/// values above its upper edge, reaches `max_act`); positions where the feature did not fire
/// (`tokens_indexed - n_fired`) count as activation 0. Exact when interval edges fall on bin
/// edges; otherwise off by at most the two straddling bins' mass.
pub fn interval_fraction(rec: &FeatureRecord, summary: &SaeSummary, lo: f64, hi: f64) -> f64 {
    let total = summary.tokens_indexed;
    if total == 0 {
        return 0.0;
    }
    let max = f64::from(rec.max_act);
    let edges = &summary.act_hist_edges;
    let bins = rec.act_hist.len().min(edges.len().saturating_sub(1));
    let mut mass = 0.0;
    if lo <= 0.0 {
        mass += total.saturating_sub(rec.n_fired) as f64;
    }
    for (j, &c) in rec.act_hist[..bins].iter().enumerate() {
        if c == 0 {
            continue;
        }
        let a = f64::from(edges[j]).min(max);
        let b = if j + 1 == bins {
            max.max(a)
        } else {
            f64::from(edges[j + 1]).min(max)
        };
        let share = if b <= a || a <= 0.0 {
            // A degenerate bin (everything at `b`): all or nothing.
            if (lo..=hi).contains(&b) {
                1.0
            } else {
                0.0
            }
        } else {
            let (x, y) = (lo.max(a), hi.min(b));
            if y <= x {
                0.0
            } else {
                (y.ln() - x.ln()) / (b.ln() - a.ln())
            }
        };
        mass += c as f64 * share;
    }
    (mass / total as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(act_hist: Vec<u64>, max_act: f32) -> FeatureRecord {
        FeatureRecord {
            feature: 0,
            n_fired: act_hist.iter().sum(),
            density: 0.1,
            max_act,
            mean_act: 1.0,
            act_hist,
            top_tokens: vec![],
            logit_pos: vec![],
            logit_neg: vec![],
            logit_hist: vec![],
            logit_hist_min: 0.0,
            logit_hist_max: 0.0,
        }
    }

    #[test]
    fn equal_width_matches_histc() {
        let data = [1.0, 2.0, 3.0, 5.0, 5.0];
        let (values, heights) = equal_width(&data);
        assert_eq!(values.len(), 50);
        assert_eq!(values[0], 1.04);
        assert_eq!(values[49], 4.96);
        assert_eq!(heights.iter().sum::<u64>(), 5);
        assert_eq!((heights[0], heights[25], heights[49]), (1, 1, 2));
        assert_eq!(heights[12], 1); // 2.0: (2 - 1)·50/4 = 12.5
        let (v, h) = equal_width(&[0.5, 0.5]);
        assert_eq!(
            (v[0], v[49], h[25], h.iter().sum::<u64>()),
            (0.5, 0.5, 2, 2)
        );
        assert_eq!(equal_width(&[]), (vec![], vec![]));
    }

    #[test]
    fn rebinning_keeps_the_count_and_spreads_uniformly() {
        // Log edges 0.1, 1, 10, 100; 4 firings in [1, 10), max 5: all land in [1, 5].
        let edges = [0.1f32, 1.0, 10.0, 100.0];
        let (values, heights) = rebin_log_hist(&rec(vec![0, 4, 0], 5.0), &edges);
        assert_eq!(values[0], 1.04);
        assert_eq!(heights.iter().sum::<u64>(), 4);
        // 25 firings in [0.1, 1) and 50 in [1, 10), max 1.9: the first spread over [0.1, 1]
        // (25 bars of 0.036), the others over [1, 1.9] (25 bars).
        let (_, heights) = rebin_log_hist(&rec(vec![25, 50, 0], 1.9), &edges);
        assert_eq!(heights[..25], [1; 25], "{heights:?}");
        assert_eq!(heights[25..], [2; 25], "{heights:?}");
        assert!(rebin_log_hist(&rec(vec![0, 0, 0], 0.0), &edges)
            .1
            .is_empty());
        // A single value: the middle bar, as histc.
        let (v, h) = rebin_log_hist(&rec(vec![0, 3, 0], 1.0), &edges);
        assert_eq!((v[0], h[25], h.iter().sum::<u64>()), (1.0, 3, 3));
    }

    #[test]
    fn logit_bars_at_centres() {
        let mut r = rec(vec![], 0.0);
        assert_eq!(logit_hist(&r), (vec![], vec![]));
        r.logit_hist = vec![1, 0, 3, 2];
        r.logit_hist_min = -1.0;
        r.logit_hist_max = 1.0;
        assert_eq!(
            logit_hist(&r),
            (vec![1, 0, 3, 2], vec![-0.75, -0.25, 0.25, 0.75])
        );
    }

    #[test]
    fn exact_fractions_count_zeros_low() {
        let values = [0.5f32, 1.0, 2.0];
        assert_eq!(interval_fraction_exact(&values, 3, 10, 2.0, 0.0, 1.0), 0.9);
        assert_eq!(interval_fraction_exact(&values, 3, 10, 2.0, 1.0, 2.0), 0.2);
        assert_eq!(interval_fraction_exact(&values, 3, 0, 2.0, 1.0, 2.0), 0.0);
        // 2.0 logged above the exact max 1.99 still counts in the top interval.
        assert_eq!(
            interval_fraction_exact(&values, 3, 10, 1.99, 1.5, 1.99),
            0.1
        );
    }

    #[test]
    fn interval_fractions_sum_to_one() {
        let summary = SaeSummary {
            sae_id: "s".into(),
            d_in: 1,
            d_sae: 1,
            tokens_indexed: 1000,
            mean_l0: 0.0,
            dead_features: 0,
            explained_variance: 0.0,
            act_hist_edges: (0..9).map(|i| 10f32.powi(i - 4)).collect(),
            density_hist_edges: vec![],
            density_hist: vec![],
        };
        let rec = rec(vec![0, 0, 10, 20, 70, 0, 0, 0], 7.5);
        let n = 5;
        let parts: Vec<f64> = (0..n)
            .map(|i| {
                let m = 7.5f64;
                interval_fraction(
                    &rec,
                    &summary,
                    i as f64 * m / n as f64,
                    (i + 1) as f64 * m / n as f64,
                )
            })
            .collect();
        let sum: f64 = parts.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "{parts:?}");
        // Interval 0 holds the 900 zeros and the 30 firings below 1 (and a share of [1, 7.5]).
        assert!(parts[0] > 0.93 && parts[0] < 0.96, "{parts:?}");
        // Bin [1, 10) holds 70 of 1000, spread log-uniformly over [1, 7.5].
        let expect = 0.07 * (7.5f64 / 6.0).ln() / 7.5f64.ln();
        assert!((parts[4] - expect).abs() < 1e-9, "{parts:?}");
    }
}
