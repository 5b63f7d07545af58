//! `scopedex explain`: explains features of one SAE of a published index, resumably.
//!
//! Per feature: its stored examples ([`crate::source`]), the training split
//! ([`crate::sample`]), the prompt ([`crate::prompt`]), one chat request ([`crate::client`]),
//! the parsed answer. Every finished feature (explained or failed) goes to the journal
//! ([`crate::journal`]); when every feature was asked, the explanations (the index's earlier
//! ones, then the journal's) are published into the index atomically and the journal removed.
//! A run stopped before that publishes nothing; the same command resumes it, asking only the
//! features not yet explained. Features already explained in the index are not asked again
//! unless `force`.
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use scopedex_store::{ExplanationRecord, ExplanationScores, IndexReader};

use crate::client::{ChatClient, Sampling};
use crate::error::{Error, Result};
use crate::journal::{journal_path, Journal};
use crate::prompt::{explainer_messages, parse_explanation, PromptConfig, PROMPT_VERSION};
use crate::run::{run_parallel, Progress};
use crate::sample::{split, SamplingConfig};
use crate::source::ExampleSource;

/// Settings of an explain run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainConfig {
    /// Which examples, how marked.
    pub sampling: SamplingConfig,
    /// How the prompt is laid out.
    pub prompt: PromptConfig,
    /// Temperature and token limit of the explainer (log probabilities are not asked for).
    pub generation: Sampling,
    /// Requests in flight.
    pub concurrency: usize,
    /// Ask again for features the index already explains.
    pub force: bool,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            sampling: SamplingConfig::default(),
            prompt: PromptConfig::default(),
            generation: Sampling {
                temperature: 0.0,
                max_tokens: 256,
                logprobs: false,
            },
            concurrency: 8,
            force: false,
        }
    }
}

/// What the journal records per feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ExplainEntry {
    /// Explained.
    Explained {
        /// The feature.
        feature: u32,
        /// The explanation.
        text: String,
        /// Explainer model.
        model: String,
        /// Prompt version.
        prompt_version: String,
        /// The run's settings (JSON).
        settings: String,
        /// Contexts shown.
        train_contexts: Vec<u64>,
        /// When.
        created: String,
    },
    /// Not explained (asked again by the next run).
    Failed {
        /// The feature.
        feature: u32,
        /// `no_examples`, `endpoint`, `unparsed` or `index`.
        kind: String,
        /// Why.
        reason: String,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExplainReport {
    /// Features asked for.
    pub requested: usize,
    /// Already explained (in the index or an earlier run's journal), not asked again.
    pub already_done: usize,
    /// Explained by this run.
    pub explained: usize,
    /// Features with no stored example.
    pub no_examples: usize,
    /// Requests that failed after every retry.
    pub endpoint_failures: usize,
    /// Answers that held no explanation.
    pub unparsed: usize,
    /// Features whose examples could not be read from the index.
    pub index_errors: usize,
    /// The first few failures, `(feature, reason)`.
    pub failures: Vec<(u32, String)>,
    /// Prompt tokens (as the endpoint counts them).
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Sum over requests of the time waiting for the endpoint (retries included).
    pub model_seconds: f64,
    /// Wall time of the run.
    pub wall_seconds: f64,
    /// Whether the explanations were published (false: stopped before the end).
    pub published: bool,
    /// Explanations of the SAE in the index after the run.
    pub total_explained: usize,
}

struct Outcome {
    entry: ExplainEntry,
    prompt_tokens: u64,
    completion_tokens: u64,
    model_time: Duration,
}

/// Most failures listed in the report.
const LISTED_FAILURES: usize = 20;

/// Explains `features` of `sae` in the index at `index` (see the module docs). `progress` is
/// called after each finished feature; `stop` (Ctrl-C) ends the run early, unpublished.
pub fn explain(
    index: &Path,
    sae: &str,
    features: &[u32],
    client: &ChatClient,
    config: &ExplainConfig,
    progress: &mut dyn FnMut(&Progress),
    stop: &AtomicBool,
) -> Result<ExplainReport> {
    let start = Instant::now();
    let reader = IndexReader::open(index)?;
    let d_sae = reader.sae(sae)?.d_sae;
    if let Some(&f) = features.iter().find(|&&f| f >= d_sae) {
        return Err(Error::InvalidInput(format!(
            "feature {f} is out of range: SAE {sae} has {d_sae} features"
        )));
    }
    let source = ExampleSource::new(reader.clone(), sae, config.sampling.window)?;
    let existing = reader.explanations(sae)?;
    let path = journal_path(index, "explain", sae);
    let (mut journal, entries) = Journal::<ExplainEntry>::open(&path)?;
    let mut journaled: BTreeMap<u32, ExplainEntry> = BTreeMap::new();
    for e in entries {
        if let ExplainEntry::Explained { feature, .. } = &e {
            journaled.insert(*feature, e);
        }
    }
    let mut done: HashSet<u32> = journaled.keys().copied().collect();
    if !config.force {
        done.extend(existing.iter().map(|e| e.feature));
    }
    let mut seen = HashSet::new();
    let todo: Vec<u32> = features
        .iter()
        .copied()
        .filter(|f| seen.insert(*f) && !done.contains(f))
        .collect();
    let mut report = ExplainReport {
        requested: seen.len(),
        already_done: seen.len() - todo.len(),
        ..Default::default()
    };
    tracing::info!(sae, todo = todo.len(), already = report.already_done, journal = %path.display(), "explaining");
    let settings = serde_json::to_string(config).unwrap_or_else(|_| "{}".into());
    let model = client.config().model.clone();
    let work = |feature: u32| explain_one(&source, client, config, &settings, &model, feature);
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
        report.prompt_tokens += o.prompt_tokens;
        report.completion_tokens += o.completion_tokens;
        report.model_seconds += o.model_time.as_secs_f64();
        match &o.entry {
            ExplainEntry::Explained { feature, .. } => {
                report.explained += 1;
                journaled.insert(*feature, o.entry.clone());
            }
            ExplainEntry::Failed {
                feature,
                kind,
                reason,
            } => {
                p.failed += 1;
                match kind.as_str() {
                    "no_examples" => report.no_examples += 1,
                    "endpoint" => report.endpoint_failures += 1,
                    "unparsed" => report.unparsed += 1,
                    _ => report.index_errors += 1,
                }
                if report.failures.len() < LISTED_FAILURES {
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
    let mut rows: BTreeMap<u32, ExplanationRecord> =
        existing.into_iter().map(|r| (r.feature, r)).collect();
    for e in journaled.into_values() {
        if let ExplainEntry::Explained {
            feature,
            text,
            model,
            prompt_version,
            settings,
            train_contexts,
            created,
        } = e
        {
            rows.insert(
                feature,
                ExplanationRecord {
                    feature,
                    text,
                    model,
                    prompt_version,
                    settings,
                    train_contexts,
                    created,
                    scorer_model: String::new(),
                    scored: String::new(),
                    detection: ExplanationScores::default(),
                    fuzzing: ExplanationScores::default(),
                },
            );
        }
    }
    report.total_explained = rows.len();
    drop(reader);
    drop(source);
    scopedex_store::explanations::publish(index, sae, rows.into_values().collect())?;
    journal.remove()?;
    report.published = true;
    report.wall_seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

fn explain_one(
    source: &ExampleSource,
    client: &ChatClient,
    config: &ExplainConfig,
    settings: &str,
    model: &str,
    feature: u32,
) -> Outcome {
    let failed = |kind: &str, reason: String| Outcome {
        entry: ExplainEntry::Failed {
            feature,
            kind: kind.into(),
            reason,
        },
        prompt_tokens: 0,
        completion_tokens: 0,
        model_time: Duration::ZERO,
    };
    let (examples, max) = match source.feature_examples(feature) {
        Ok(x) => x,
        Err(e) => return failed("index", e.to_string()),
    };
    let split = split(examples, &config.sampling, feature);
    if split.train.is_empty() {
        return failed(
            "no_examples",
            format!("feature {feature} has no stored example that fires"),
        );
    }
    let messages = explainer_messages(&split.train, &config.prompt, config.sampling.threshold, max);
    let c = match client.chat(&messages, config.generation) {
        Ok(c) => c,
        Err(e) => return failed("endpoint", e.to_string()),
    };
    let mut out = match parse_explanation(&c.text, c.finish_reason == "length") {
        Ok(text) => Outcome {
            entry: ExplainEntry::Explained {
                feature,
                text,
                model: model.to_string(),
                prompt_version: PROMPT_VERSION.to_string(),
                settings: settings.to_string(),
                train_contexts: split.train.iter().map(|e| e.context_id).collect(),
                created: scopedex_store::now_rfc3339(),
            },
            prompt_tokens: 0,
            completion_tokens: 0,
            model_time: Duration::ZERO,
        },
        Err(e) => failed("unparsed", e.to_string()),
    };
    out.prompt_tokens = c.prompt_tokens;
    out.completion_tokens = c.completion_tokens;
    out.model_time = c.elapsed;
    out
}
