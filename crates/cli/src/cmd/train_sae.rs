//! `scopedex train-sae`: argument plumbing around `scopedex_train` (one model pass feeds every
//! SAE; one Llama Scope folder per SAE under `--out`, plus `train-report.json`).
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use scopedex_corpus::CorpusSpec;
use scopedex_sae::SaeId;
use scopedex_train::{ModelSource, SaeTarget, TrainConfig, TrainProgress};

use crate::args::TrainSaeArgs;

/// A progress bar over training tokens, with the loss summary as its message.
struct Bar(ProgressBar);

impl TrainProgress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.reset_eta();
    }
    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
    fn advance(&self, tokens: u64, message: &str) {
        self.0.set_position(tokens);
        self.0.set_message(message.to_string());
    }
}

/// `SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct`.
fn model_stem(model: &Path) -> String {
    let name = model
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    name.split('.').next().unwrap_or("model").to_string()
}

/// Runs `scopedex train-sae`.
pub fn run(args: TrainSaeArgs) -> anyhow::Result<()> {
    if args.threads > 0 {
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
            .context("configuring the thread pool")?;
    }
    let ids = args
        .sae_ids
        .iter()
        .map(|s| s.parse::<SaeId>())
        .collect::<Result<Vec<_>, _>>()?;
    let prefix = args
        .name_prefix
        .clone()
        .unwrap_or_else(|| model_stem(&args.model));
    // Every hook any SAE reads or writes, captured once per forward.
    let mut hooks: Vec<String> = Vec::new();
    for id in &ids {
        for h in [id.hook_in(), id.hook_out()] {
            if !hooks.contains(&h) {
                hooks.push(h);
            }
        }
    }
    let corpus = CorpusSpec::new(args.corpus.clone());
    let mut source = ModelSource::open(
        &args.model,
        &corpus,
        &hooks,
        args.ctx_len,
        args.batch_contexts,
    )?;
    let d_model = scopedex_train::ActivationSource::d_model(&source);
    let targets: Vec<SaeTarget> = ids
        .iter()
        .map(|id| SaeTarget {
            name: format!("{prefix}-{id}"),
            hook_in: id.hook_in(),
            hook_out: id.hook_out(),
            d_sae: id.expansion as usize * d_model,
        })
        .collect();
    let cfg = TrainConfig {
        k: args.k,
        tokens: args.tokens,
        batch_rows: args.batch_rows,
        lr: args.lr,
        aux_k: args.aux_k,
        dead_after_tokens: args.dead_after_tokens,
        buffer_rows: args.buffer_rows,
        eval_rows: args.eval_tokens,
        seed: args.seed,
        init: args.init,
        ..TrainConfig::default()
    };
    let pb = ProgressBar::new(args.tokens).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} tokens ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("invariant: the template is valid")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(250));
    let bar = Bar(pb);
    let (trained, report) = scopedex_train::train(&mut source, &targets, &cfg, &bar)?;
    bar.0.finish_and_clear();
    scopedex_train::write_outputs(&args.out, &trained, &report)?;
    for s in &report.saes {
        eprintln!(
            "{}: EV {:.3}  MSE {:.4}  L0 {:.1}  dead {:.1}% (held-out {} tokens)",
            s.target.name,
            s.eval.explained_variance,
            s.eval.mse,
            s.eval.mean_l0,
            100.0 * s.eval.dead_fraction,
            s.eval.n_rows
        );
    }
    eprintln!(
        "trained {} SAEs on {} tokens in {:.1} s ({:.0} tokens/s; model {:.1} s, SAE steps {:.1} s) -> {}",
        report.saes.len(),
        report.tokens_trained,
        report.seconds,
        report.tokens_per_second,
        report.source_seconds,
        report.sae_seconds,
        args.out.display()
    );
    Ok(())
}
