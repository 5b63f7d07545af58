//! `scopedex score`: scores the explanations of one SAE by detection and fuzzing (see
//! [`crate::scorer`]), resumably, and publishes the scores into the index like
//! [`crate::explain`] publishes explanations.
//!
//! The activating test examples are the feature's stored examples whose contexts the
//! explainer was not shown (the explanation's `train_contexts`), drawn across the activation
//! range; the non-activating ones are contexts where the feature never fires, at random and,
//! with `similar_share > 0`, that share of them among contexts with the activating words.
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use scopedex_store::{ExplanationRecord, ExplanationScores, IndexReader};

use crate::client::{ChatClient, Sampling};
use crate::error::{Error, Result};
use crate::journal::{journal_path, Journal};
use crate::metrics::{distribution, metrics, Distribution, Metrics, Prediction};
use crate::run::{run_parallel, Progress};
use crate::sample::{split, Example, Rng, SamplingConfig};
use crate::scorer::{
    answer_probabilities, detection_examples, fuzzing_examples, parse_answers, scorer_messages,
    ScoredExample, ScorerKind,
};
use crate::source::{activating_words, ExampleSource};

/// Settings of a score run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreConfig {
    /// Test-set sizes (`n_test`, `n_non_activating`), quantiles, window, threshold, seed.
    pub sampling: SamplingConfig,
    /// Examples per request (delphi's CLI: 5).
    pub per_prompt: usize,
    /// Share of the non-activating contexts found by the activating words (0: all random).
    pub similar_share: f32,
    /// Which scorers.
    pub scorers: Vec<ScorerKind>,
    /// Ask for log probabilities (AUROC where the endpoint returns them).
    pub logprobs: bool,
    /// Token limit of an answer.
    pub max_tokens: u32,
    /// Requests in flight (one feature per worker).
    pub concurrency: usize,
    /// Score again explanations that have scores.
    pub force: bool,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            sampling: SamplingConfig::default(),
            per_prompt: 5,
            similar_share: 0.0,
            scorers: vec![ScorerKind::Detection, ScorerKind::Fuzzing],
            logprobs: false,
            max_tokens: 64,
            concurrency: 8,
            force: false,
        }
    }
}

/// What the journal records per feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ScoreEntry {
    /// Scored.
    Scored {
        /// The feature.
        feature: u32,
        /// The explanation scored (a later explanation is not given these scores).
        text: String,
        /// Detection metrics.
        detection: Option<Metrics>,
        /// Fuzzing metrics.
        fuzzing: Option<Metrics>,
        /// Scorer model.
        scorer_model: String,
        /// When.
        scored: String,
    },
    /// Not scored (asked again by the next run).
    Failed {
        /// The feature.
        feature: u32,
        /// Why.
        reason: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScoreReport {
    /// Features asked for.
    pub requested: usize,
    /// Features without an explanation (not scored).
    pub unexplained: usize,
    /// Already scored, not asked again.
    pub already_done: usize,
    /// Scored by this run.
    pub scored: usize,
    /// Features that could not be scored (no test examples, endpoint failures).
    pub failed: usize,
    /// The first few failures.
    pub failures: Vec<(u32, String)>,
    /// Batches whose answer held no readable list (their examples count as wrong).
    pub unreadable_answers: usize,
    /// Requests sent.
    pub requests: usize,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Sum of request times.
    pub model_seconds: f64,
    /// Wall time.
    pub wall_seconds: f64,
    /// Whether the scores were published.
    pub published: bool,
    /// Per-SAE distribution of each score over its scored features
    /// (`detection_f1`, `detection_balanced_accuracy`, `fuzzing_...`, `..._auroc`).
    pub distributions: BTreeMap<String, Distribution>,
}

struct Outcome {
    entry: ScoreEntry,
    requests: usize,
    unreadable: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    model_time: Duration,
}

fn to_scores(m: Option<&Metrics>) -> ExplanationScores {
    let Some(m) = m else {
        return ExplanationScores::default();
    };
    let v = |x: Option<f32>| x.unwrap_or(f32::NAN);
    ExplanationScores {
        n: m.n,
        precision: v(m.precision),
        recall: v(m.recall),
        f1: v(m.f1),
        balanced_accuracy: v(m.balanced_accuracy),
        auroc: v(m.auroc),
    }
}

/// The per-score distributions over `rows`.
pub fn score_distributions(rows: &[ExplanationRecord]) -> BTreeMap<String, Distribution> {
    let mut out = BTreeMap::new();
    for (name, pick) in [
        (
            "detection",
            (|r: &ExplanationRecord| r.detection) as fn(&ExplanationRecord) -> ExplanationScores,
        ),
        ("fuzzing", |r: &ExplanationRecord| r.fuzzing),
    ] {
        let scored: Vec<ExplanationScores> = rows.iter().map(pick).filter(|s| s.n > 0).collect();
        for (metric, get) in [
            (
                "f1",
                (|s: &ExplanationScores| s.f1) as fn(&ExplanationScores) -> f32,
            ),
            ("balanced_accuracy", |s| s.balanced_accuracy),
            ("precision", |s| s.precision),
            ("recall", |s| s.recall),
            ("auroc", |s| s.auroc),
        ] {
            if let Some(d) = distribution(scored.iter().map(get)) {
                out.insert(format!("{name}_{metric}"), d);
            }
        }
    }
    out
}

/// Scores the explanations of `features` of `sae` (see the module docs).
pub fn score(
    index: &Path,
    sae: &str,
    features: &[u32],
    client: &ChatClient,
    config: &ScoreConfig,
    progress: &mut dyn FnMut(&Progress),
    stop: &AtomicBool,
) -> Result<ScoreReport> {
    let start = Instant::now();
    if config.per_prompt == 0 || config.scorers.is_empty() {
        return Err(Error::InvalidInput(
            "score: at least one scorer and one example per prompt".into(),
        ));
    }
    let reader = IndexReader::open(index)?;
    reader.sae(sae)?;
    let source = ExampleSource::new(reader.clone(), sae, config.sampling.window)?;
    let explained: BTreeMap<u32, ExplanationRecord> = reader
        .explanations(sae)?
        .into_iter()
        .map(|r| (r.feature, r))
        .collect();
    let path = journal_path(index, "score", sae);
    let (mut journal, entries) = Journal::<ScoreEntry>::open(&path)?;
    let mut journaled: BTreeMap<u32, ScoreEntry> = BTreeMap::new();
    for e in entries {
        if let ScoreEntry::Scored { feature, .. } = &e {
            journaled.insert(*feature, e);
        }
    }
    let mut report = ScoreReport::default();
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for &f in features {
        if !seen.insert(f) {
            continue;
        }
        report.requested += 1;
        match explained.get(&f) {
            None => report.unexplained += 1,
            Some(r)
                if journaled.contains_key(&f)
                    || (!config.force && r.detection.n + r.fuzzing.n > 0) =>
            {
                report.already_done += 1
            }
            Some(r) => todo.push(r.clone()),
        }
    }
    tracing::info!(sae, todo = todo.len(), journal = %path.display(), "scoring");
    let model = client.config().model.clone();
    let work = |r: ExplanationRecord| score_one(&source, client, config, &model, &r);
    let mut p = Progress {
        total: todo.len(),
        ..Default::default()
    };
    progress(&p);
    let complete = run_parallel(todo, config.concurrency, stop, work, |o: Outcome| {
        journal.append(&o.entry)?;
        p.done += 1;
        p.prompt_tokens += o.prompt_tokens;
        p.completion_tokens += o.completion_tokens;
        report.requests += o.requests;
        report.unreadable_answers += o.unreadable;
        report.prompt_tokens += o.prompt_tokens;
        report.completion_tokens += o.completion_tokens;
        report.model_seconds += o.model_time.as_secs_f64();
        match &o.entry {
            ScoreEntry::Scored { feature, .. } => {
                report.scored += 1;
                journaled.insert(*feature, o.entry.clone());
            }
            ScoreEntry::Failed { feature, reason } => {
                p.failed += 1;
                report.failed += 1;
                if report.failures.len() < 20 {
                    report.failures.push((*feature, reason.clone()));
                }
            }
        }
        progress(&p);
        Ok(())
    })?;
    journal.sync()?;
    if !complete {
        report.wall_seconds = start.elapsed().as_secs_f64();
        return Ok(report);
    }
    let mut rows = explained;
    for e in journaled.into_values() {
        if let ScoreEntry::Scored {
            feature,
            text,
            detection,
            fuzzing,
            scorer_model,
            scored,
        } = e
        {
            // Scores of an explanation that was replaced since are dropped.
            if let Some(r) = rows.get_mut(&feature).filter(|r| r.text == text) {
                r.detection = to_scores(detection.as_ref());
                r.fuzzing = to_scores(fuzzing.as_ref());
                r.scorer_model = scorer_model;
                r.scored = scored;
            }
        }
    }
    let rows: Vec<ExplanationRecord> = rows.into_values().collect();
    report.distributions = score_distributions(&rows);
    drop(reader);
    drop(source);
    scopedex_store::explanations::publish(index, sae, rows)?;
    journal.remove()?;
    report.published = true;
    report.wall_seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The activating test examples: stored examples outside `train_contexts`, drawn across the
/// activation range.
fn test_examples(
    examples: Vec<Example>,
    train: &[u64],
    config: &SamplingConfig,
    feature: u32,
) -> Vec<Example> {
    let train: HashSet<u64> = train.iter().copied().collect();
    let held_out: Vec<Example> = examples
        .into_iter()
        .filter(|e| !train.contains(&e.context_id))
        .collect();
    // Every held-out example is a candidate: no second training draw.
    let c = SamplingConfig {
        n_train: 0,
        ..config.clone()
    };
    split(held_out, &c, feature).test
}

fn score_one(
    source: &ExampleSource,
    client: &ChatClient,
    config: &ScoreConfig,
    model: &str,
    r: &ExplanationRecord,
) -> Outcome {
    let mut out = Outcome {
        entry: ScoreEntry::Failed {
            feature: r.feature,
            reason: String::new(),
        },
        requests: 0,
        unreadable: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        model_time: Duration::ZERO,
    };
    let fail = |out: &mut Outcome, reason: String| {
        out.entry = ScoreEntry::Failed {
            feature: r.feature,
            reason,
        };
    };
    let (examples, max) = match source.feature_examples(r.feature) {
        Ok(x) => x,
        Err(e) => {
            fail(&mut out, e.to_string());
            return out;
        }
    };
    let activating = test_examples(examples, &r.train_contexts, &config.sampling, r.feature);
    if activating.is_empty() {
        fail(
            &mut out,
            format!(
                "feature {}: no stored example outside the ones the explainer saw",
                r.feature
            ),
        );
        return out;
    }
    let mut rng = Rng::new(config.sampling.seed ^ 0x5c0e, u64::from(r.feature));
    let exclude: HashSet<u64> = r
        .train_contexts
        .iter()
        .chain(activating.iter().map(|e| &e.context_id))
        .copied()
        .collect();
    let n_non = config.sampling.n_non_activating;
    let n_similar = ((n_non as f32) * config.similar_share.clamp(0.0, 1.0)).round() as usize;
    let mut non = Vec::new();
    if n_similar > 0 {
        let words = activating_words(&activating, 8);
        match source.non_activating(r.feature, n_similar, &exclude, &words, &mut rng) {
            Ok(v) => non.extend(v),
            Err(e) => {
                fail(&mut out, e.to_string());
                return out;
            }
        }
    }
    let mut exclude = exclude;
    exclude.extend(non.iter().map(|e| e.context_id));
    match source.non_activating(
        r.feature,
        n_non - non.len().min(n_non),
        &exclude,
        &[],
        &mut rng,
    ) {
        Ok(v) => non.extend(v),
        Err(e) => {
            fail(&mut out, e.to_string());
            return out;
        }
    }
    let mut results: BTreeMap<ScorerKind, Metrics> = BTreeMap::new();
    for &kind in &config.scorers {
        let mut shown = match kind {
            ScorerKind::Detection => detection_examples(&activating, &non),
            ScorerKind::Fuzzing => {
                fuzzing_examples(&activating, &non, config.sampling.threshold, max, &mut rng)
            }
        };
        // Shuffled so a batch mixes both classes in no fixed order.
        let order = rng.sample(shown.len(), shown.len());
        let mut slots: Vec<Option<ScoredExample>> = shown.drain(..).map(Some).collect();
        let shown: Vec<ScoredExample> = order.into_iter().filter_map(|i| slots[i].take()).collect();
        let mut predictions = Vec::with_capacity(shown.len());
        for batch in shown.chunks(config.per_prompt) {
            let messages = scorer_messages(kind, &r.text, batch);
            let sampling = Sampling {
                temperature: 0.0,
                max_tokens: config.max_tokens,
                logprobs: config.logprobs,
            };
            out.requests += 1;
            let c = match client.chat(&messages, sampling) {
                Ok(c) => c,
                Err(e) => {
                    fail(&mut out, e.to_string());
                    return out;
                }
            };
            out.prompt_tokens += c.prompt_tokens;
            out.completion_tokens += c.completion_tokens;
            out.model_time += c.elapsed;
            let answers = parse_answers(&c.text, batch.len());
            if answers.is_none() {
                out.unreadable += 1;
            }
            let probs = answers
                .as_ref()
                .and_then(|_| answer_probabilities(&c.logprobs, batch.len()));
            for (i, e) in batch.iter().enumerate() {
                predictions.push(Prediction {
                    actual: e.actual,
                    predicted: answers.as_ref().map(|a| a[i]),
                    probability: probs.as_ref().map(|p| p[i]),
                });
            }
        }
        results.insert(kind, metrics(&predictions));
    }
    out.entry = ScoreEntry::Scored {
        feature: r.feature,
        text: r.text.clone(),
        detection: results.get(&ScorerKind::Detection).copied(),
        fuzzing: results.get(&ScorerKind::Fuzzing).copied(),
        scorer_model: model.to_string(),
        scored: scopedex_store::now_rfc3339(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scopedex_store::ExampleKind;

    #[test]
    fn the_test_set_never_holds_a_context_the_explainer_saw() {
        let examples: Vec<Example> = (0..120u64)
            .map(|i| Example {
                context_id: i,
                kind: Some(if i < 20 {
                    ExampleKind::Top
                } else {
                    ExampleKind::Interval((i % 10) as u16)
                }),
                max_act: 1.0 + i as f32,
                tokens: vec!["a".into()],
                acts: vec![1.0],
            })
            .collect();
        let config = SamplingConfig::default();
        let train: Vec<u64> = split(examples.clone(), &config, 9)
            .train
            .iter()
            .map(|e| e.context_id)
            .collect();
        assert_eq!(train.len(), 40);
        let test = test_examples(examples, &train, &config, 9);
        assert_eq!(test.len(), 50);
        assert!(test.iter().all(|e| !train.contains(&e.context_id)));
    }
}
