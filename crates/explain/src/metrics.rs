//! Classification metrics of a scorer's predictions, as delphi computes them
//! (`log/result_analysis.py`): precision, recall, F1, balanced accuracy ((TPR + TNR) / 2), and
//! AUROC from per-example probabilities where the endpoint returned log probabilities.
use serde::{Deserialize, Serialize};

/// One scored example: the truth and what the model said.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The example activates the feature (detection) / its marks are right (fuzzing).
    pub actual: bool,
    /// The model's 0/1 answer (`None`: the answer did not say, counted as wrong).
    pub predicted: Option<bool>,
    /// P(1) / (P(0) + P(1)) from the answer token's top log probabilities, when returned.
    pub probability: Option<f32>,
}

/// Metrics of one scorer on one feature. Undefined ratios (no positives, no predictions) are
/// `None`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples scored.
    pub n: u32,
    /// Examples whose answer could not be read.
    pub n_unanswered: u32,
    /// TP / (TP + FP).
    pub precision: Option<f32>,
    /// TP / (TP + FN).
    pub recall: Option<f32>,
    /// Harmonic mean of precision and recall.
    pub f1: Option<f32>,
    /// (TPR + TNR) / 2 (delphi's `accuracy`).
    pub balanced_accuracy: Option<f32>,
    /// Area under the ROC curve of `probability`, when every example has one and both
    /// classes occur.
    pub auroc: Option<f32>,
}

/// Computes [`Metrics`]; an unanswered example counts as the wrong answer.
pub fn metrics(predictions: &[Prediction]) -> Metrics {
    let (mut tp, mut fp, mut tn, mut fnn, mut unanswered) = (0u32, 0u32, 0u32, 0u32, 0u32);
    for p in predictions {
        let said = match p.predicted {
            Some(s) => s,
            None => {
                unanswered += 1;
                !p.actual
            }
        };
        match (p.actual, said) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (false, false) => tn += 1,
            (true, false) => fnn += 1,
        }
    }
    let ratio = |a: u32, b: u32| (a + b > 0).then(|| a as f32 / (a + b) as f32);
    let precision = ratio(tp, fp);
    let recall = ratio(tp, fnn);
    let tnr = ratio(tn, fp);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let balanced_accuracy = match (recall, tnr) {
        (Some(r), Some(t)) => Some((r + t) / 2.0),
        _ => None,
    };
    Metrics {
        n: predictions.len() as u32,
        n_unanswered: unanswered,
        precision,
        recall,
        f1,
        balanced_accuracy,
        auroc: auroc(predictions),
    }
}

/// AUROC by the rank-sum (Mann-Whitney) formula, ties counted half.
pub fn auroc(predictions: &[Prediction]) -> Option<f32> {
    let mut scored: Vec<(f32, bool)> = Vec::with_capacity(predictions.len());
    for p in predictions {
        scored.push((p.probability?, p.actual));
    }
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties (1-based).
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < scored.len() {
        let mut j = i;
        while j + 1 < scored.len() && scored[j + 1].0 == scored[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg_rank * scored[i..=j].iter().filter(|s| s.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (pos * (pos + 1)) as f64 / 2.0;
    Some((u / (pos * neg) as f64) as f32)
}

/// Quartiles and mean of a score over the features that have one (the per-SAE distribution).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Distribution {
    /// Features with a value.
    pub n: usize,
    /// Mean.
    pub mean: f32,
    /// Minimum.
    pub min: f32,
    /// 25th percentile.
    pub p25: f32,
    /// Median.
    pub median: f32,
    /// 75th percentile.
    pub p75: f32,
    /// Maximum.
    pub max: f32,
}

/// The distribution of `values` (NaNs left out); `None` when none is left.
pub fn distribution(values: impl IntoIterator<Item = f32>) -> Option<Distribution> {
    let mut v: Vec<f32> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let q = |p: f32| {
        let x = p * (v.len() - 1) as f32;
        let lo = x.floor() as usize;
        let hi = x.ceil() as usize;
        v[lo] + (v[hi] - v[lo]) * (x - lo as f32)
    };
    Some(Distribution {
        n: v.len(),
        mean: v.iter().sum::<f32>() / v.len() as f32,
        min: v[0],
        p25: q(0.25),
        median: q(0.5),
        p75: q(0.75),
        max: v[v.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(actual: bool, predicted: Option<bool>, probability: Option<f32>) -> Prediction {
        Prediction {
            actual,
            predicted,
            probability,
        }
    }

    #[test]
    fn confusion_counts_give_delphis_metrics() {
        // TP 3, FN 1, FP 1, TN 4, one unanswered positive (counted as FN).
        let mut v = vec![p(true, Some(true), None); 3];
        v.push(p(true, Some(false), None));
        v.push(p(false, Some(true), None));
        v.extend(vec![p(false, Some(false), None); 4]);
        v.push(p(true, None, None));
        let m = metrics(&v);
        assert_eq!((m.n, m.n_unanswered), (10, 1));
        assert_eq!(m.precision, Some(0.75));
        assert_eq!(m.recall, Some(0.6));
        let f1 = 2.0 * 0.75 * 0.6 / 1.35;
        assert!((m.f1.unwrap() - f1).abs() < 1e-6);
        assert!((m.balanced_accuracy.unwrap() - (0.6 + 0.8) / 2.0).abs() < 1e-6);
        assert_eq!(m.auroc, None);
        let none = metrics(&[p(false, Some(false), None)]);
        assert_eq!((none.precision, none.recall, none.f1), (None, None, None));
    }

    #[test]
    fn auroc_by_ranks_with_ties() {
        let perfect = [p(true, None, Some(0.9)), p(false, None, Some(0.1))];
        assert_eq!(auroc(&perfect), Some(1.0));
        let inverted = [p(true, None, Some(0.1)), p(false, None, Some(0.9))];
        assert_eq!(auroc(&inverted), Some(0.0));
        let tied = [p(true, None, Some(0.5)), p(false, None, Some(0.5))];
        assert_eq!(auroc(&tied), Some(0.5));
        // 2 positives, 2 negatives: pairs (0.8>0.3, 0.8>0.6, 0.4>0.3, 0.4<0.6) = 3/4.
        let v = [
            p(true, None, Some(0.8)),
            p(true, None, Some(0.4)),
            p(false, None, Some(0.3)),
            p(false, None, Some(0.6)),
        ];
        assert_eq!(auroc(&v), Some(0.75));
        assert_eq!(
            auroc(&[p(true, None, Some(0.8)), p(false, None, None)]),
            None
        );
    }

    #[test]
    fn distribution_quartiles() {
        let d = distribution([4.0, 1.0, f32::NAN, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!((d.n, d.min, d.median, d.max), (5, 1.0, 3.0, 5.0));
        assert_eq!((d.p25, d.p75, d.mean), (2.0, 4.0, 3.0));
        assert!(distribution([f32::NAN]).is_none());
    }
}
