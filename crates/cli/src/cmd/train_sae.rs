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

/// What an activation cache holds (its `.json` sidecar).
#[derive(serde::Serialize, serde::Deserialize)]
struct CacheMeta {
    hooks: Vec<String>,
    d_model: usize,
    rows: u64,
}

/// `acts.bf16` → sidecar extension `bf16.json`.
fn cache_ext(p: &Path) -> String {
    match p.extension() {
        Some(e) => format!("{}.json", e.to_string_lossy()),
        None => "json".into(),
    }
}

/// Runs `scopedex train-sae`.
pub fn run(args: TrainSaeArgs) -> anyhow::Result<()> {
    // Before the model pass: a mistyped --out must not cost the training, or overwrite files.
    scopedex_train::check_output_dir(&args.out)?;
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
    let sidecar = args
        .activation_cache
        .as_ref()
        .map(|p| p.with_extension(cache_ext(p)));
    let cached: Option<CacheMeta> = match &sidecar {
        Some(sc) if sc.is_file() => {
            let text =
                std::fs::read_to_string(sc).with_context(|| format!("reading {}", sc.display()))?;
            let meta: CacheMeta =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", sc.display()))?;
            if meta.hooks == hooks {
                Some(meta)
            } else {
                tracing::warn!(cache = %sc.display(), "the activation cache holds other hooks; re-recording it");
                None
            }
        }
        _ => None,
    };
    let mut model_source = None;
    let mut replay = None;
    let d_model;
    let mut recording = None;
    if let (Some(meta), Some(cache)) = (&cached, &args.activation_cache) {
        d_model = meta.d_model;
        let mut spill = scopedex_train::Spill::open_cache(cache, hooks.len(), d_model)?;
        replay = Some((spill.replay(&hooks)?, spill));
        eprintln!(
            "replaying {} cached rows from {}",
            meta.rows,
            cache.display()
        );
    } else {
        let corpus = CorpusSpec::new(args.corpus.clone());
        let src = ModelSource::open(
            &args.model,
            &corpus,
            &hooks,
            args.ctx_len,
            args.batch_contexts,
            &crate::backend()?,
        )?;
        d_model = scopedex_train::ActivationSource::d_model(&src);
        if let Some(cache) = &args.activation_cache {
            recording = Some(scopedex_train::Spill::create_cache(
                cache,
                hooks.len(),
                d_model,
            )?);
        }
        model_source = Some(src);
    }
    let targets: Vec<SaeTarget> = ids
        .iter()
        .map(|id| SaeTarget {
            name: format!("{prefix}-{id}"),
            hook_in: id.hook_in(),
            hook_out: id.hook_out(),
            d_sae: id.width.d_sae(d_model),
        })
        .collect();
    let cfg = TrainConfig {
        k: args.k,
        tokens: args.tokens,
        epochs: args.epochs,
        spill_dir: args.spill_dir.clone(),
        batch_rows: args.batch_rows,
        lr: args.lr,
        aux_k: args.aux_k,
        aux_coeff: args.aux_coeff,
        dead_after_tokens: args.dead_after_tokens,
        resample_every_tokens: args.resample_every_tokens,
        buffer_rows: args.buffer_rows,
        eval_rows: args.eval_tokens,
        seed: args.seed,
        init: args.init,
        written_activation: args.activation,
        ..TrainConfig::default()
    };
    let pb = ProgressBar::new(args.tokens * args.epochs as u64).with_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} tokens ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("invariant: the template is valid")
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(250));
    crate::progress::report_when_piped(&pb, "training tokens");
    let bar = Bar(pb);
    let (trained, report) = match (&mut replay, &mut model_source) {
        (Some((rs, _)), _) => scopedex_train::train(rs, &targets, &cfg, &bar)?,
        (None, Some(ms)) => match recording.take() {
            Some(spill) => {
                let mut rec = scopedex_train::Recording { inner: ms, spill };
                let out = scopedex_train::train(&mut rec, &targets, &cfg, &bar)?;
                let meta = CacheMeta {
                    hooks: hooks.clone(),
                    d_model,
                    rows: rec.spill.rows(),
                };
                drop(rec);
                let sc = sidecar.as_ref().expect("invariant: a cache has a sidecar");
                std::fs::write(sc, serde_json::to_string(&meta)?)
                    .with_context(|| format!("writing {}", sc.display()))?;
                out
            }
            None => scopedex_train::train(ms, &targets, &cfg, &bar)?,
        },
        (None, None) => unreachable!("one source is always open"),
    };
    bar.0.finish_and_clear();
    scopedex_train::write_outputs(&args.out, &trained, &report)?;
    for s in &report.saes {
        eprintln!(
            "{}: EV {:.3}  MSE {:.4}  L0 {:.1}  dead {:.1}% (held-out {} tokens; as {:?}: EV {:.3}, L0 {:.1})",
            s.target.name,
            s.eval.explained_variance,
            s.eval.mse,
            s.eval.mean_l0,
            100.0 * s.eval.dead_fraction,
            s.eval.n_rows,
            s.alternative.activation,
            s.alternative.eval.explained_variance,
            s.alternative.eval.mean_l0,
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
