//! `scopedex index`, `merge` and `reindex`: argument plumbing around `scopedex_index`.
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use scopedex_corpus::CorpusSpec;
use scopedex_index::{
    run_index, run_merge, AccumConfig, CrossPairs, IndexOptions, Progress, SaeSpec, Shard,
};

use crate::args::IndexArgs;

/// Logit effects kept per feature and sign.
const LOGIT_TOP_N: usize = 16;

/// A progress bar of token positions (total known only with --max-tokens).
struct Bar(ProgressBar);

impl Progress for Bar {
    fn advance(&self, positions: u64, contexts: u64) {
        self.0.set_position(positions);
        self.0.set_message(format!("{contexts} contexts"));
    }

    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
}

fn bar(total: Option<u64>) -> Bar {
    let pb = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} tokens ({per_sec}, ETA {eta}) {msg}",
            )
            .expect("invariant: the template is valid")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{elapsed_precise} {spinner} {human_pos} tokens ({per_sec}) {msg}")
                .expect("invariant: the template is valid"),
        ),
    };
    pb.enable_steady_tick(Duration::from_millis(250));
    crate::progress::report_when_piped(&pb, "tokens");
    Bar(pb)
}

fn set_threads(threads: usize) -> anyhow::Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("configuring the thread pool")?;
    }
    Ok(())
}

/// Runs `scopedex index`.
pub fn run(args: IndexArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let saes = args
        .saes
        .iter()
        .map(|s| s.parse::<SaeSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let cross_pairs = match args.cross_cooc.as_str() {
        "adjacent" => CrossPairs::Adjacent,
        "all" => CrossPairs::All,
        "none" => CrossPairs::None,
        other => anyhow::bail!(scopedex_index::Error::InvalidInput(format!(
            "--cross-cooc {other}: expected adjacent, all or none"
        ))),
    };
    let mut corpus = CorpusSpec::new(args.corpus.clone());
    corpus.txt_lines = args.txt_lines;
    corpus.text_column = args.text_column.clone();
    corpus.max_docs = args.max_docs;
    corpus.strict = args.strict;
    let accum = AccumConfig {
        top_k: args.top_k,
        intervals: args.intervals,
        samples_per_interval: args.samples_per_interval,
        exclude_bos: !args.include_bos,
        token_counters: args.token_counters,
        ..AccumConfig::default()
    };
    let opts = IndexOptions {
        model: args.model.clone(),
        saes,
        corpus,
        ctx_len: args.ctx_len,
        batch_size: args.batch_size,
        max_tokens: args.max_tokens,
        accum,
        cross_pairs,
        shard: args.shard.parse::<Shard>()?,
        keep_activations: args.keep_activations,
        activation_mantissa_bits: args.activation_bits,
        logit_top_n: LOGIT_TOP_N,
        out: args.out.clone(),
        resume: args.resume,
        checkpoint_every: args.checkpoint_every,
        keep_state: args.keep_state,
        backend: crate::backend()?,
    };
    let progress = bar(args.max_tokens);
    let report = run_index(&opts, &progress)?;
    progress.0.finish_and_clear();
    if !report.skipped.is_empty() {
        eprintln!("{}", report.skipped);
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "indexed {} contexts, {} positions in {:.1} s ({:.0} tokens/s) -> {}",
        report.contexts,
        report.positions,
        report.pass_seconds,
        report.positions as f64 / report.pass_seconds.max(1e-9),
        report.publish.path.display()
    );
    // Where the time went: load, each pass stage (share of the pass), finish.
    let pass = report.pass_seconds.max(1e-9);
    let stages: Vec<String> = report
        .stages
        .stages()
        .iter()
        .map(|(name, s)| format!("{name} {s:.1} s ({:.0} %)", 100.0 * s / pass))
        .collect();
    eprintln!(
        "time: load {:.1} s; pass: {}; finish {:.1} s",
        report.load_seconds,
        stages.join(", "),
        report.finish_seconds
    );
    if args.json {
        let mut v = publish_json(&report.publish, &report.warnings);
        v["positions"] = report.positions.into();
        v["seconds"] = serde_json::json!({
            "load": report.load_seconds,
            "pass": report.pass_seconds,
            "finish": report.finish_seconds,
        });
        v["tokens_per_second"] = (report.positions as f64 / pass).into();
        v["skipped"] = report.skipped.to_string().into();
        println!("{v}");
    }
    Ok(())
}

/// The JSON summary of a publish (`--json`): path, contexts, per-SAE row counts, bytes.
fn publish_json(p: &scopedex_store::PublishReport, warnings: &[String]) -> serde_json::Value {
    let saes: serde_json::Map<String, serde_json::Value> = p
        .saes
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                serde_json::json!({
                    "features": c.features,
                    "examples": c.examples,
                    "cooccurrence": c.cooccurrence,
                    "context_features": c.context_features,
                    "activations": c.activations,
                }),
            )
        })
        .collect();
    serde_json::json!({
        "path": p.path,
        "contexts": p.contexts,
        "parquet_bytes": p.parquet_bytes,
        "saes": saes,
        "warnings": warnings,
    })
}

/// Runs `scopedex merge`.
pub fn merge(out: &Path, shards: &[PathBuf], keep_state: bool, json: bool) -> anyhow::Result<()> {
    let report = run_merge(out, shards, LOGIT_TOP_N, keep_state)?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "merged {} shards ({} contexts) -> {}",
        report.shards,
        report.publish.contexts,
        report.publish.path.display()
    );
    if json {
        let mut v = publish_json(&report.publish, &report.warnings);
        v["shards"] = report.shards.into();
        println!("{v}");
    }
    Ok(())
}

/// Runs `scopedex reindex`.
pub fn reindex(index: &Path, json: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    scopedex_store::rebuild_serving(index)?;
    eprintln!(
        "rebuilt the serving store and text index of {}",
        index.display()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "path": index,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    }
    Ok(())
}

/// Runs `scopedex drop-state`.
pub fn drop_state(index: &Path) -> anyhow::Result<()> {
    // Only inside something that is an index of ours.
    scopedex_store::Manifest::load(index)?;
    let state = index.join("state");
    let bytes = dir_bytes(&state);
    match std::fs::remove_dir_all(&state) {
        Ok(()) => eprintln!(
            "removed {} ({:.1} MB); {} can no longer be merged",
            state.display(),
            bytes as f64 / 1e6,
            index.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{} has no state/ (nothing to remove)", index.display())
        }
        Err(e) => return Err(e).with_context(|| format!("removing {}", state.display())),
    }
    Ok(())
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}
