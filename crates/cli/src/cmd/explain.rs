//! `scopedex explain`, `scopedex score` and `scopedex features`: feature explanations from
//! any OpenAI-compatible endpoint, their detection and fuzzing scores, and the search of
//! features by explanation. The loops live in `scopedex-explain`; this file parses settings,
//! shows progress and prints the reports.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use scopedex_explain::client::{Sampling, API_KEY_VARS};
use scopedex_explain::prompt::PromptConfig;
use scopedex_explain::sample::{SamplingConfig, TrainType};
use scopedex_explain::scorer::ScorerKind;
use scopedex_explain::{ChatClient, EndpointConfig, ExplainConfig, Progress, ScoreConfig};

use super::render;

/// Arguments of `scopedex import-explanations`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id in the index the explanations belong to.
    #[arg(long)]
    pub sae: String,
    /// Neuronpedia explanation files (`explanations/batch-N.jsonl.gz` or `.jsonl`), or folders
    /// holding them (an export's source folder too).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Keep only rows of this Neuronpedia source id (their `layer` column, e.g. `6-res-jb`).
    #[arg(long)]
    pub source: Option<String>,
}

/// Which features, and where to send the requests (shared by explain and score).
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// The index directory.
    pub index: PathBuf,
    /// SAE id in the index, e.g. `L6R-8x`.
    #[arg(long)]
    pub sae: String,
    /// Features: `A-B` (inclusive), `A..B`, `A..=B`, `A..` or `N`.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub features: Option<String>,
    /// Every feature of the SAE.
    #[arg(long)]
    pub all: bool,
    /// OpenAI-compatible endpoint: a base URL (`http://127.0.0.1:8080/v1`) or the full
    /// `.../chat/completions` URL. The API key, if any, is read from SCOPEDEX_LLM_API_KEY or
    /// OPENAI_API_KEY, never from a flag.
    #[arg(long, env = "SCOPEDEX_LLM_ENDPOINT")]
    pub endpoint: String,
    /// Model name sent to the endpoint.
    #[arg(long, env = "SCOPEDEX_LLM_MODEL")]
    pub model: String,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Retries of a request after a 429, a 5xx, a timeout or a dropped connection.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Ask again for features that are already done.
    #[arg(long)]
    pub force: bool,
    /// Tokens per example window (delphi: 32).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Tokens at or above this share of the feature's max are marked (delphi: 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub threshold: f32,
    /// Equal-count activation slices the examples are drawn from (delphi: 10).
    #[arg(long, default_value_t = 10)]
    pub quantiles: usize,
    /// Seed of the draws (delphi: 22).
    #[arg(long, default_value_t = 22)]
    pub seed: u64,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `scopedex explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Examples shown to the explainer (delphi: 40).
    #[arg(long, default_value_t = 40)]
    pub examples: usize,
    /// Examples held out for `score` (sizes the split when the index stores few).
    #[arg(long, default_value_t = 50)]
    pub test_examples: usize,
    /// How the examples are chosen: quantiles (delphi's default), top, mix, random.
    #[arg(long, default_value = "quantiles")]
    pub train_type: TrainType,
    /// Share of top examples with `--train-type mix` (delphi: 0.2).
    #[arg(long, default_value_t = 0.2)]
    pub ratio_top: f32,
    /// Leave out the `Activations:` line after each example.
    #[arg(long)]
    pub no_activations: bool,
    /// Leave out the three few-shot examples.
    #[arg(long)]
    pub no_few_shot: bool,
    /// Ask for three reasoning steps before the explanation (delphi's `cot`).
    #[arg(long)]
    pub chain_of_thought: bool,
    /// Sampling temperature (delphi: 0).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Most tokens of an answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
}

/// Arguments of `scopedex score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Activating test examples per feature (delphi: 50), none of them shown to the explainer.
    #[arg(long, default_value_t = 50)]
    pub test_examples: usize,
    /// Non-activating contexts per feature (delphi: 50).
    #[arg(long, default_value_t = 50)]
    pub non_activating: usize,
    /// Share of the non-activating contexts found by the activating words (tantivy) rather
    /// than at random.
    #[arg(long, default_value_t = 0.0)]
    pub similar: f32,
    /// Examples per request (delphi: 5).
    #[arg(long, default_value_t = 5)]
    pub per_prompt: usize,
    /// Scorers, comma-separated: detection, fuzzing.
    #[arg(long, default_value = "detection,fuzzing")]
    pub scorers: String,
    /// Ask for log probabilities (AUROC; endpoints that ignore it give none).
    #[arg(long)]
    pub logprobs: bool,
    /// Most tokens of an answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
}

/// Arguments of `scopedex features`.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// The index directory.
    pub index: PathBuf,
    /// Words or "phrases" of the explanations (AND by default, OR / - too).
    pub query: String,
    /// Only this SAE.
    #[arg(long)]
    pub sae: Option<String>,
    /// Hits to show (1..=1000).
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print the JSON of `GET /api/features/search`.
    #[arg(long)]
    pub json: bool,
    /// Rank by meaning as well: an OpenAI-compatible `/embeddings` endpoint (a base URL); the
    /// ranking fuses cosine similarity with the text ranking. Explanation vectors are cached
    /// beside the index.
    #[arg(long, env = "SCOPEDEX_EMBEDDINGS_ENDPOINT")]
    pub embeddings_endpoint: Option<String>,
    /// Embedding model name sent to `--embeddings-endpoint`.
    #[arg(long, env = "SCOPEDEX_EMBEDDINGS_MODEL", default_value = "default")]
    pub embeddings_model: String,
}

fn features_of(index: &Path, t: &TargetArgs) -> anyhow::Result<Vec<u32>> {
    let manifest = scopedex_store::Manifest::load(index)
        .with_context(|| format!("opening the index {}", index.display()))?;
    let d_sae = manifest.sae(&t.sae)?.d_sae;
    let range = match &t.features {
        Some(s) => scopedex_export::range::parse_feature_range(s, d_sae)?,
        None => 0..d_sae,
    };
    Ok(range.collect())
}

fn client(t: &TargetArgs) -> anyhow::Result<ChatClient> {
    let mut c = EndpointConfig::new(&t.endpoint, &t.model);
    c.timeout = Duration::from_secs(t.timeout.max(1));
    c.max_retries = t.retries;
    let client = ChatClient::new(c)?;
    let key = API_KEY_VARS.iter().find(|v| std::env::var_os(v).is_some());
    tracing::info!(endpoint = %t.endpoint, model = %t.model, key_from = ?key, "endpoint");
    Ok(client)
}

fn sampling(t: &TargetArgs) -> SamplingConfig {
    SamplingConfig {
        window: t.window,
        threshold: t.threshold,
        n_quantiles: t.quantiles,
        seed: t.seed,
        ..SamplingConfig::default()
    }
}

/// The stop flag, raised by Ctrl-C: requests in flight finish, no new one starts, nothing is
/// published, and the journal keeps what was done.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            eprintln!("stopping: waiting for the requests in flight (Ctrl-C again to quit now)");
            flag.store(true, Ordering::Relaxed);
            if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
                std::process::exit(130);
            }
        }
    });
    stop
}

fn progress_bar(what: &'static str) -> ProgressBar {
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what);
    crate::progress::report_when_piped(&pb, what);
    pb
}

fn update(pb: &ProgressBar, p: &Progress) {
    pb.set_length(p.total as u64);
    pb.set_position(p.done as u64);
    pb.set_message(format!(
        "{} failed, tokens {} in / {} out",
        p.failed, p.prompt_tokens, p.completion_tokens
    ));
}

/// Runs `scopedex explain`.
pub fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let t = &args.target;
    let features = features_of(&t.index, t)?;
    let client = client(t)?;
    let config = ExplainConfig {
        sampling: SamplingConfig {
            n_train: args.examples,
            n_test: args.test_examples,
            train_type: args.train_type,
            ratio_top: args.ratio_top,
            ..sampling(t)
        },
        prompt: PromptConfig {
            activations: !args.no_activations,
            chain_of_thought: args.chain_of_thought,
            few_shot: !args.no_few_shot,
        },
        generation: Sampling {
            temperature: args.temperature,
            max_tokens: args.max_tokens,
            logprobs: false,
        },
        concurrency: t.concurrency,
        force: t.force,
    };
    let stop = stop_on_ctrl_c();
    let pb = progress_bar("explain");
    let report = scopedex_explain::explain(
        &t.index,
        &t.sae,
        &features,
        &client,
        &config,
        &mut |p| update(&pb, p),
        &stop,
    )?;
    pb.finish_and_clear();
    if t.json {
        render::json(&report)?;
    } else {
        eprintln!(
            "explain {}: {} explained, {} already done, {} without examples, {} endpoint failures, {} unparsed answers; {} + {} tokens; {:.1} s ({:.1} s waiting on the model over all requests){}",
            t.sae,
            report.explained,
            report.already_done,
            report.no_examples,
            report.endpoint_failures,
            report.unparsed,
            report.prompt_tokens,
            report.completion_tokens,
            report.wall_seconds,
            report.model_seconds,
            if report.published {
                format!("; {} explanations published in {}", report.total_explained, t.index.display())
            } else {
                String::new()
            }
        );
        for (f, why) in &report.failures {
            eprintln!("  feature {f}: {why}");
        }
    }
    if !report.published {
        anyhow::bail!(
            "stopped before the end: nothing was published; run the same command to resume"
        );
    }
    Ok(())
}

/// Runs `scopedex score`.
pub fn run_score(args: ScoreArgs) -> anyhow::Result<()> {
    let t = &args.target;
    let features = features_of(&t.index, t)?;
    let client = client(t)?;
    let scorers = args
        .scorers
        .split(',')
        .map(|s| match s.trim() {
            "detection" => Ok(ScorerKind::Detection),
            "fuzzing" => Ok(ScorerKind::Fuzzing),
            other => anyhow::bail!("--scorers: unknown scorer {other:?} (detection, fuzzing)"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = ScoreConfig {
        sampling: SamplingConfig {
            n_test: args.test_examples,
            n_non_activating: args.non_activating,
            ..sampling(t)
        },
        per_prompt: args.per_prompt,
        similar_share: args.similar,
        scorers,
        logprobs: args.logprobs,
        max_tokens: args.max_tokens,
        concurrency: t.concurrency,
        force: t.force,
    };
    let stop = stop_on_ctrl_c();
    let pb = progress_bar("score");
    let report = scopedex_explain::score(
        &t.index,
        &t.sae,
        &features,
        &client,
        &config,
        &mut |p| update(&pb, p),
        &stop,
    )?;
    pb.finish_and_clear();
    if t.json {
        render::json(&report)?;
    } else {
        eprintln!(
            "score {}: {} scored, {} already scored, {} unexplained, {} failed, {} requests ({} unreadable answers); {:.1} s",
            t.sae,
            report.scored,
            report.already_done,
            report.unexplained,
            report.failed,
            report.requests,
            report.unreadable_answers,
            report.wall_seconds
        );
        for (f, why) in &report.failures {
            eprintln!("  feature {f}: {why}");
        }
        if !report.distributions.is_empty() {
            println!(
                "{:<30} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6}",
                "score", "n", "mean", "p25", "median", "p75", "max"
            );
            for (name, d) in &report.distributions {
                println!(
                    "{name:<30} {:>5} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3}",
                    d.n, d.mean, d.p25, d.median, d.p75, d.max
                );
            }
        }
    }
    if !report.published {
        anyhow::bail!(
            "stopped before the end: nothing was published; run the same command to resume"
        );
    }
    Ok(())
}

/// Runs `scopedex features`.
pub fn run_features(args: FeaturesArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let body = match &args.embeddings_endpoint {
        None => scopedex_server::views::feature_search(
            &snap,
            &args.query,
            args.sae.as_deref(),
            args.limit,
        )?,
        Some(url) => by_meaning(&snap, &args, url)?,
    };
    if args.json {
        return render::json(&body);
    }
    println!("{} features for {:?}", body.hits.len(), body.query);
    for h in &body.hits {
        let score = h
            .explanation
            .score
            .map(|s| format!(" (score {s:.2})"))
            .unwrap_or_default();
        println!(
            "{:>7.2}  {}/{}  {}{score}",
            h.score, h.sae, h.feature, h.explanation.text
        );
    }
    Ok(())
}

/// Runs `scopedex import-explanations`: Neuronpedia explanation rows into the index (the last
/// row of a feature wins over the index's own), published atomically.
pub fn run_import(args: ImportArgs) -> anyhow::Result<()> {
    let manifest = scopedex_store::Manifest::load(&args.index)
        .with_context(|| format!("opening the index {}", args.index.display()))?;
    let d_sae = manifest.sae(&args.sae)?.d_sae;
    let mut files = Vec::new();
    for p in &args.files {
        files.extend(scopedex_export::explanations::explanation_files(p)?);
    }
    let imported = scopedex_export::explanations::import(&files, args.source.as_deref(), d_sae)?;
    let layout = scopedex_store::IndexLayout::new(&args.index);
    let mut rows = scopedex_store::explanations::read(&layout, &args.sae)?;
    let n = imported.rows.len();
    rows.extend(imported.rows);
    scopedex_store::explanations::publish(&args.index, &args.sae, rows)?;
    eprintln!(
        "imported {n} explanations from {} files into {} {}{}",
        files.len(),
        args.index.display(),
        args.sae,
        if imported.other_sources > 0 {
            format!(
                " ({} rows of other sources left out)",
                imported.other_sources
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `scopedex features --embeddings-endpoint`: the API's ranking by meaning.
fn by_meaning(
    snap: &scopedex_server::Snapshot,
    args: &FeaturesArgs,
    url: &str,
) -> anyhow::Result<scopedex_server::views::FeatureSearchResults> {
    let client = ChatClient::new(EndpointConfig::new(url, &args.embeddings_model))?;
    Ok(scopedex_server::views::feature_search_by_meaning(
        snap,
        &args.query,
        args.sae.as_deref(),
        args.limit,
        &client,
    )?)
}
