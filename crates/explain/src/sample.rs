//! Which examples the explainer sees and which the scorers test on.
//!
//! The pool is a feature's stored examples (top list and interval samples), one per context.
//! The training set follows delphi's `train_type` (default `quantiles`: the interval samples
//! sorted by max activation, cut into equal-count slices, the same number drawn at random from
//! each). The test set is drawn the same way from the contexts the training set does not
//! hold, so the two are disjoint by construction (delphi's overlap; see
//! `../shared/reference/autointerp.md`, 1b). Draws are seeded per feature: a run repeated with
//! the same settings shows the model the same examples.
use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use scopedex_store::ExampleKind;

/// One example window, ready for a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The context it was cut from.
    pub context_id: u64,
    /// Top list or interval sample (`None` for a non-activating context).
    pub kind: Option<ExampleKind>,
    /// Max activation in the window (0 for a non-activating context).
    pub max_act: f32,
    /// Token strings of the window, as they appear in the text.
    pub tokens: Vec<String>,
    /// The feature's activation per token of the window.
    pub acts: Vec<f32>,
}

/// How the training examples are chosen (delphi's `train_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrainType {
    /// Equal-count slices of the interval samples by activation, the same number from each.
    #[default]
    Quantiles,
    /// The top list, strongest first.
    Top,
    /// `ratio_top` of the examples from the top list, the rest as `Quantiles`.
    Mix,
    /// Uniformly at random from every stored example.
    Random,
}

impl std::str::FromStr for TrainType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quantiles" => Ok(TrainType::Quantiles),
            "top" => Ok(TrainType::Top),
            "mix" => Ok(TrainType::Mix),
            "random" => Ok(TrainType::Random),
            _ => Err(format!(
                "unknown train type {s:?} (quantiles, top, mix or random)"
            )),
        }
    }
}

/// Every sampling choice; recorded with each explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Examples shown to the explainer (delphi: 40).
    pub n_train: usize,
    /// Activating examples the scorers test on (delphi: 50).
    pub n_test: usize,
    /// Non-activating contexts the scorers test on (delphi: 50).
    pub n_non_activating: usize,
    /// Equal-count activation slices (delphi: 10).
    pub n_quantiles: usize,
    /// How the training examples are chosen.
    pub train_type: TrainType,
    /// Share of top examples with [`TrainType::Mix`] (delphi: 0.2).
    pub ratio_top: f32,
    /// Tokens per example window around the maximum (delphi: 32).
    pub window: usize,
    /// Tokens at or above `threshold` x the feature's max are marked `<<like this>>`
    /// (delphi: 0.3; Neuronpedia's server: 0.6).
    pub threshold: f32,
    /// Seed of the draws (delphi: 22), mixed with the feature index.
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            n_train: 40,
            n_test: 50,
            n_non_activating: 50,
            n_quantiles: 10,
            train_type: TrainType::Quantiles,
            ratio_top: 0.2,
            window: 32,
            threshold: 0.3,
            seed: 22,
        }
    }
}

/// A small deterministic generator (SplitMix64): the draws must not depend on a library's
/// version to stay reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed` and `stream` (the feature).
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `k` distinct indices of `0..n`, in draw order (all of them when `k >= n`).
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below(n - i);
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }
}

/// Draws `k` from `pool` (sorted strongest first) spread over `n_quantiles` equal-count
/// slices: `k / n` from each, the remainder from the strongest slices; a slice with too few
/// gives what it has and the others make up the difference where they can.
fn quantile_draw(pool: &[usize], k: usize, n_quantiles: usize, rng: &mut Rng) -> Vec<usize> {
    if pool.len() <= k {
        return pool.to_vec();
    }
    let q = n_quantiles.clamp(1, pool.len());
    let slices: Vec<&[usize]> = (0..q)
        .map(|i| &pool[i * pool.len() / q..(i + 1) * pool.len() / q])
        .collect();
    let mut want: Vec<usize> = (0..q).map(|i| k / q + usize::from(i < k % q)).collect();
    let mut chosen = Vec::with_capacity(k);
    let mut left: Vec<Vec<usize>> = Vec::with_capacity(q);
    for (slice, w) in slices.iter().zip(&mut want) {
        let picks = rng.sample(slice.len(), *w);
        let taken: HashSet<usize> = picks.iter().copied().collect();
        chosen.extend(picks.iter().map(|&p| slice[p]));
        left.push(
            (0..slice.len())
                .filter(|p| !taken.contains(p))
                .map(|p| slice[p])
                .collect(),
        );
        *w = w.saturating_sub(slice.len());
    }
    // Slices that were short: top up from the others, strongest slices first.
    let mut missing = k - chosen.len();
    for rest in &left {
        if missing == 0 {
            break;
        }
        let take = rest.len().min(missing);
        chosen.extend(&rest[..take]);
        missing -= take;
    }
    chosen
}

/// The training and test examples of one feature.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// Shown to the explainer.
    pub train: Vec<Example>,
    /// Held out for the scorers; no context in common with `train`.
    pub test: Vec<Example>,
}

/// Splits a feature's examples (any order; duplicates of a context are dropped, the first
/// kept) into training and test sets, as the module docs say. Examples that never fire are
/// dropped.
pub fn split(examples: Vec<Example>, config: &SamplingConfig, feature: u32) -> Split {
    let mut rng = Rng::new(config.seed, u64::from(feature));
    let mut seen = HashSet::new();
    let mut pool: Vec<Example> = examples
        .into_iter()
        .filter(|e| e.max_act > 0.0 && seen.insert(e.context_id))
        .collect();
    // Strongest first; ties by context id, so the order never depends on the input's.
    pool.sort_by(|a, b| {
        b.max_act
            .total_cmp(&a.max_act)
            .then(a.context_id.cmp(&b.context_id))
    });
    let is_top = |e: &Example| e.kind == Some(ExampleKind::Top);
    let all: Vec<usize> = (0..pool.len()).collect();
    let intervals: Vec<usize> = all.iter().copied().filter(|&i| !is_top(&pool[i])).collect();
    let tops: Vec<usize> = all.iter().copied().filter(|&i| is_top(&pool[i])).collect();
    // Interval samples are the quantile pool; an index with only a top list uses that.
    let quantile_pool = if intervals.is_empty() {
        &all
    } else {
        &intervals
    };
    // A pool smaller than both sets is shared in their proportion, so a small index still
    // leaves the scorers something to test on.
    let n = if pool.len() < config.n_train + config.n_test {
        (pool.len() * config.n_train).div_ceil((config.n_train + config.n_test).max(1))
    } else {
        config.n_train
    };
    let train_idx: Vec<usize> = match config.train_type {
        TrainType::Quantiles => quantile_draw(quantile_pool, n, config.n_quantiles, &mut rng),
        TrainType::Top => {
            let mut t = tops.clone();
            t.extend(intervals.iter().copied());
            t.truncate(n);
            t
        }
        TrainType::Mix => {
            let n_top = ((n as f32 * config.ratio_top).round() as usize).min(tops.len());
            let mut t: Vec<usize> = tops[..n_top].to_vec();
            let rest: Vec<usize> = quantile_pool
                .iter()
                .copied()
                .filter(|i| !t.contains(i))
                .collect();
            t.extend(quantile_draw(
                &rest,
                n - n_top,
                config.n_quantiles,
                &mut rng,
            ));
            t
        }
        TrainType::Random => rng.sample(pool.len(), n).into_iter().collect(),
    };
    let train_set: HashSet<usize> = train_idx.iter().copied().collect();
    let remaining: Vec<usize> = all.into_iter().filter(|i| !train_set.contains(i)).collect();
    let mut test_idx = quantile_draw(&remaining, config.n_test, config.n_quantiles, &mut rng);
    test_idx.sort_unstable();
    let mut train_idx = train_idx;
    train_idx.sort_unstable();
    let mut slots: Vec<Option<Example>> = pool.into_iter().map(Some).collect();
    let mut take =
        |idx: &[usize]| -> Vec<Example> { idx.iter().filter_map(|&i| slots[i].take()).collect() };
    let train = take(&train_idx);
    let test = take(&test_idx);
    Split { train, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(context_id: u64, kind: ExampleKind, max_act: f32) -> Example {
        Example {
            context_id,
            kind: Some(kind),
            max_act,
            tokens: vec!["a".into()],
            acts: vec![max_act],
        }
    }

    fn pool() -> Vec<Example> {
        let mut v: Vec<Example> = (0..32)
            .map(|i| ex(i, ExampleKind::Top, 100.0 - i as f32))
            .collect();
        for i in 0..10u16 {
            for r in 0..10u64 {
                let id = 1000 + u64::from(i) * 10 + r;
                v.push(ex(
                    id,
                    ExampleKind::Interval(i),
                    f32::from(i) + 0.05 * r as f32 + 0.01,
                ));
            }
        }
        // A context in both lists appears once.
        v.push(ex(5, ExampleKind::Interval(9), 95.0));
        v
    }

    #[test]
    fn train_and_test_are_disjoint_and_cover_every_quantile() {
        for train_type in [
            TrainType::Quantiles,
            TrainType::Top,
            TrainType::Mix,
            TrainType::Random,
        ] {
            let config = SamplingConfig {
                train_type,
                ..Default::default()
            };
            let s = split(pool(), &config, 7);
            assert_eq!(s.train.len(), 40, "{train_type:?}");
            assert_eq!(s.test.len(), 50, "{train_type:?}");
            let train: HashSet<u64> = s.train.iter().map(|e| e.context_id).collect();
            assert_eq!(train.len(), 40);
            assert!(
                s.test.iter().all(|e| !train.contains(&e.context_id)),
                "{train_type:?}"
            );
        }
        let s = split(pool(), &SamplingConfig::default(), 7);
        // Quantiles: 4 from each of the 10 interval slices, no top example.
        assert!(s.train.iter().all(|e| e.kind != Some(ExampleKind::Top)));
        for i in 0..10u16 {
            let n = s
                .train
                .iter()
                .filter(|e| e.kind == Some(ExampleKind::Interval(i)))
                .count();
            assert_eq!(n, 4, "interval {i}");
        }
        let mix = split(
            pool(),
            &SamplingConfig {
                train_type: TrainType::Mix,
                ..Default::default()
            },
            7,
        );
        assert_eq!(
            mix.train
                .iter()
                .filter(|e| e.kind == Some(ExampleKind::Top))
                .count(),
            8
        );
    }

    #[test]
    fn draws_are_reproducible_per_feature() {
        let c = SamplingConfig::default();
        let ids = |f| -> Vec<u64> {
            split(pool(), &c, f)
                .train
                .iter()
                .map(|e| e.context_id)
                .collect()
        };
        assert_eq!(ids(3), ids(3));
        assert_ne!(ids(3), ids(4));
    }

    #[test]
    fn a_small_pool_is_shared_in_proportion_and_none_is_invented() {
        let v: Vec<Example> = (0..9)
            .map(|i| ex(i, ExampleKind::Top, 1.0 + i as f32))
            .collect();
        let s = split(v, &SamplingConfig::default(), 0);
        assert_eq!((s.train.len(), s.test.len()), (4, 5));
        assert!(split(Vec::new(), &SamplingConfig::default(), 0)
            .train
            .is_empty());
    }
}
