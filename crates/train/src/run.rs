//! The training loop: held-out rows, norm estimation, shared shuffled batches for every SAE,
//! evaluation through the loader's own encode, and the written outputs.
use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use scopedex_sae::{reconstruction_metrics, write_llama_scope, write_lm_saes, DatasetNorm};
use serde::Serialize;

use crate::config::{Init, TrainConfig, WrittenActivation};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::sae::TopKSae;
use crate::source::{require_rows, ActivationSource, ShuffleBuffer};
use crate::spill::{Spill, SpillSource};
use crate::step::StepScratch;

/// One SAE to train: a name (its folder), the hooks it reads and reconstructs, its width.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaeTarget {
    /// Folder name, e.g. `SmolLM2-135M-Instruct-L6R-8x`.
    pub name: String,
    /// Hook read (must be one of the source's hooks).
    pub hook_in: String,
    /// Hook reconstructed (= `hook_in` except for transcoders).
    pub hook_out: String,
    /// Number of features.
    pub d_sae: usize,
}

/// Progress callbacks (the CLI draws a bar); all default to doing nothing.
pub trait TrainProgress {
    /// Training starts; `total` training tokens are planned.
    fn start(&self, _total: u64) {}
    /// A phase without a token count (collecting held-out rows, evaluating, ...).
    fn phase(&self, _name: &str) {}
    /// `tokens` trained so far; `message` summarises the loss.
    fn advance(&self, _tokens: u64, _message: &str) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl TrainProgress for NoProgress {}

/// Held-out metrics of one SAE (native scale, through the loader's encode).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// `1 − Σ‖ŷ − y‖² / Σ‖y − ȳ‖²`.
    pub explained_variance: f64,
    /// Mean squared error per element.
    pub mse: f64,
    /// Mean active features per token.
    pub mean_l0: f64,
    /// Features that fired on no held-out token.
    pub dead_features: usize,
    /// `dead_features / d_sae`.
    pub dead_fraction: f64,
    /// Held-out tokens.
    pub n_rows: usize,
}

/// Held-out metrics of the activation not written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlternativeEval {
    /// The activation.
    pub activation: WrittenActivation,
    /// Its held-out metrics.
    #[serde(flatten)]
    pub eval: EvalReport,
}

/// One SAE's part of the training report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaeReport {
    /// The target trained.
    #[serde(flatten)]
    pub target: SaeTarget,
    /// k.
    pub k: usize,
    /// Estimated dataset norms `{in, out}`.
    pub dataset_average_activation_norm: DatasetNorm,
    /// The activation of the written SAE.
    pub activation: WrittenActivation,
    /// Held-out metrics of the written SAE.
    pub eval: EvalReport,
    /// The same SAE's held-out metrics with the other activation (what SAELens' Llama Scope
    /// loader computes from a TopK file, which it reads as the calibrated JumpReLU).
    pub alternative: AlternativeEval,
    /// Explained variance of the last 5 % of training steps (training rows, normalised units).
    pub train_explained_variance: f64,
    /// Fraction of features that did not fire within `dead_after_tokens` at the last step.
    pub train_dead_fraction: f64,
    /// Explained variance of each successive tenth of the training steps (training rows before
    /// their update, normalised units): still rising at the end means more steps would help.
    pub train_ev_curve: Vec<f64>,
    /// Dead features restarted during training (all resampling rounds together).
    pub resampled_features: u64,
}

/// Buffered rows a resampling round draws its restart rows from.
const RESAMPLE_ROWS: usize = 4096;

/// Points of [`SaeReport::train_ev_curve`].
const CURVE_POINTS: usize = 10;

/// The whole run's report (`train-report.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainReport {
    /// Settings used.
    pub config: TrainConfig,
    /// Training tokens each SAE saw (all passes).
    pub tokens_trained: u64,
    /// Distinct training tokens drawn from the source (the first pass).
    pub tokens_drawn: u64,
    /// Optimiser steps.
    pub steps: u64,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
    /// Of which producing activations (model forward, buffer), seconds.
    pub source_seconds: f64,
    /// Of which SAE optimiser steps, seconds.
    pub sae_seconds: f64,
    /// `tokens_trained / seconds` (all SAEs together).
    pub tokens_per_second: f64,
    /// `tokens_trained × n_saes / sae_seconds`: SAE-steps throughput alone.
    pub sae_tokens_per_second: f64,
    /// Per-SAE results.
    pub saes: Vec<SaeReport>,
}

/// A trained SAE with its target.
#[derive(Debug, Clone)]
pub struct TrainedSae {
    /// What it was trained for.
    pub target: SaeTarget,
    /// The parameters.
    pub sae: TopKSae,
    /// The activation it is written with.
    pub activation: WrittenActivation,
}

/// Trains one TopK SAE per target on `src`'s rows (all targets see the same shuffled batches),
/// then evaluates each on the held-out rows taken first from the stream.
pub fn train(
    src: &mut dyn ActivationSource,
    targets: &[SaeTarget],
    cfg: &TrainConfig,
    progress: &dyn TrainProgress,
) -> Result<(Vec<TrainedSae>, TrainReport)> {
    let started = Instant::now();
    if targets.is_empty() {
        return Err(Error::InvalidConfig("no SAE to train".into()));
    }
    let hooks = src.hooks().to_vec();
    let d = src.d_model();
    let hook_index = |h: &str| {
        hooks.iter().position(|x| x == h).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "hook {h} is not captured (have {})",
                hooks.join(", ")
            ))
        })
    };
    let mut io = Vec::with_capacity(targets.len());
    for t in targets {
        cfg.validate(t.d_sae)?;
        io.push((hook_index(&t.hook_in)?, hook_index(&t.hook_out)?));
    }

    let mut source_seconds = 0.0;
    let t0 = Instant::now();
    progress.phase("collecting held-out rows");
    let mut buffer = ShuffleBuffer::new(hooks.len(), d, cfg.buffer_rows, cfg.seed);
    let eval = buffer.take_direct(src, cfg.eval_rows)?;
    require_rows(&eval, "held-out evaluation")?;
    progress.phase("filling the shuffle buffer");
    buffer.refill(src)?;
    source_seconds += t0.elapsed().as_secs_f64();
    if buffer.unserved() == 0 {
        return Err(Error::NoData(
            "the stream ended within the held-out rows; nothing left to train on".into(),
        ));
    }

    // Dataset-wise norms and means (native scale) from the first buffer.
    let mut norms = Vec::with_capacity(hooks.len());
    let mut means = Vec::with_capacity(hooks.len());
    for (h, hook) in hooks.iter().enumerate() {
        let mut sum_norm = 0f64;
        let mut mean = vec![0f64; d];
        let mut n = 0usize;
        for row in buffer.peek_rows(h) {
            sum_norm += row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
            n += 1;
        }
        let norm = (sum_norm / n as f64) as f32;
        if !(norm.is_finite() && norm > 0.0) {
            return Err(Error::NoData(format!(
                "hook {hook}: mean activation norm is {norm}"
            )));
        }
        norms.push(norm);
        means.push(
            mean.iter()
                .map(|m| (*m / n as f64) as f32)
                .collect::<Vec<f32>>(),
        );
    }
    let root = (d as f32).sqrt();
    let mut rng = Rng::new(cfg.seed);
    let mut saes = Vec::with_capacity(targets.len());
    let mut ref_means = Vec::with_capacity(targets.len());
    let mut in_means = Vec::with_capacity(targets.len());
    for (t, &(hi, ho)) in targets.iter().zip(&io) {
        let norm = DatasetNorm {
            input: norms[hi],
            output: norms[ho],
        };
        let mean_in: Vec<f32> = means[hi].iter().map(|m| m * root / norm.input).collect();
        let mean_out: Vec<f32> = means[ho].iter().map(|m| m * root / norm.output).collect();
        saes.push(match cfg.init {
            Init::Random => TopKSae::init(d, t.d_sae, cfg.k, norm, &mean_in, &mean_out, &mut rng),
            Init::Data => {
                // A distinct random buffered row per feature (rows repeat only when the buffer
                // holds fewer rows than there are features).
                let xs: Vec<&[f32]> = buffer.peek_rows(hi).collect();
                let ys: Vec<&[f32]> = buffer.peek_rows(ho).collect();
                let mut order: Vec<usize> = (0..xs.len()).collect();
                rng.shuffle(&mut order);
                let samples: Vec<(&[f32], &[f32])> = (0..t.d_sae)
                    .map(|j| {
                        let r = order[j % order.len()];
                        (xs[r], ys[r])
                    })
                    .collect();
                let mut sae = TopKSae::init_from_samples(
                    d, t.d_sae, cfg.k, norm, &mean_in, &mean_out, &samples, &mut rng,
                );
                let take = xs.len().min(RESAMPLE_ROWS);
                let flat = |rows: &[&[f32]]| -> Vec<f32> {
                    rows[..take]
                        .iter()
                        .flat_map(|r| r.iter().copied())
                        .collect()
                };
                let c = sae.calibrate_encoder_scale(&flat(&xs), &flat(&ys));
                tracing::debug!(sae = %t.name, c, "data init: encoder scale calibrated");
                sae
            }
        });
        ref_means.push(mean_out);
        in_means.push(mean_in);
    }

    // Training: pass 1 serves rows from the source (spilling them when more passes follow),
    // later passes replay the spill through a fresh shuffle buffer.
    let total_steps = cfg.total_steps();
    progress.start(cfg.tokens * cfg.epochs as u64);
    let mut spill = if cfg.epochs > 1 {
        let dir = cfg.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
        Some(Spill::create(&dir, hooks.len(), d)?)
    } else {
        None
    };
    let mut replay: Option<SpillSource> = None;
    let mut epoch = 0u32;
    let mut first_pass_rows = 0u64;
    let mut scratch: Vec<StepScratch> = targets.iter().map(|_| StepScratch::default()).collect();
    let mut tail: Vec<(f64, f64)> = vec![(0.0, 0.0); targets.len()];
    let mut curve: Vec<Vec<(f64, f64)>> = vec![vec![(0.0, 0.0); CURVE_POINTS]; targets.len()];
    let mut ema: Vec<f64> = vec![1.0; targets.len()];
    let mut last_dead = vec![0usize; targets.len()];
    let mut resampled = vec![0u64; targets.len()];
    let tail_from = total_steps - (total_steps / 20).max(1);
    let mut tokens = 0u64;
    let mut step = 0u64;
    let mut sae_seconds = 0.0;
    while step < total_steps {
        let t0 = Instant::now();
        let batch = match replay.as_mut() {
            None => {
                let want = (cfg.tokens - first_pass_rows).min(cfg.batch_rows as u64) as usize;
                let b = if want == 0 {
                    None
                } else {
                    buffer.next_batch(src, want)?
                };
                match b {
                    Some(b) => {
                        if let Some(sp) = spill.as_mut() {
                            sp.append(&b)?;
                        }
                        first_pass_rows += b.n as u64;
                        Some(b)
                    }
                    None => {
                        if want > 0 {
                            tracing::warn!(tokens, "the corpus ran out before the token budget");
                        }
                        None
                    }
                }
            }
            Some(rs) => buffer.next_batch(rs, cfg.batch_rows)?,
        };
        let Some(batch) = batch else {
            // The pass is over: start the next one from the spill, if any.
            epoch += 1;
            match spill.as_mut() {
                Some(sp) if epoch < cfg.epochs && sp.rows() > 0 => {
                    let mut rs = sp.replay(&hooks)?;
                    buffer = ShuffleBuffer::new(
                        hooks.len(),
                        d,
                        cfg.buffer_rows,
                        cfg.seed.wrapping_add(epoch as u64),
                    );
                    buffer.refill(&mut rs)?;
                    replay = Some(rs);
                    source_seconds += t0.elapsed().as_secs_f64();
                    continue;
                }
                _ => break,
            }
        };
        source_seconds += t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let lr = cfg.lr_at(step);
        let point = (step * CURVE_POINTS as u64 / total_steps) as usize;
        for (i, sae) in saes.iter_mut().enumerate() {
            let (hi, ho) = io[i];
            let st = sae.train_step(
                &batch.data[hi],
                &batch.data[ho],
                lr,
                cfg,
                tokens,
                &ref_means[i],
                &mut scratch[i],
            );
            let fvu = st.sq_err / st.sq_total.max(1e-30);
            ema[i] = if step == 0 {
                fvu
            } else {
                0.9 * ema[i] + 0.1 * fvu
            };
            if step >= tail_from {
                tail[i].0 += st.sq_err;
                tail[i].1 += st.sq_total;
            }
            curve[i][point].0 += st.sq_err;
            curve[i][point].1 += st.sq_total;
            last_dead[i] = st.dead;
        }
        tokens += batch.n as u64;
        step += 1;
        let every = cfg.resample_every_tokens;
        if every > 0
            && tokens / every > (tokens - batch.n as u64) / every
            && (step as f64) < total_steps as f64 * (1.0 - cfg.decay_frac as f64)
        {
            // Candidate rows: up to RESAMPLE_ROWS rows waiting in the buffer (shuffled).
            let take = buffer.unserved().min(RESAMPLE_ROWS);
            let mut rows_of = |h: usize| -> Vec<f32> {
                buffer.peek_rows(h).take(take).flatten().copied().collect()
            };
            let cand: Vec<Vec<f32>> = (0..hooks.len()).map(&mut rows_of).collect();
            for (i, sae) in saes.iter_mut().enumerate() {
                let (hi, ho) = io[i];
                let dead = sae.dead_features(tokens, cfg.dead_after_tokens);
                if dead.is_empty() {
                    continue;
                }
                let n = sae.resample(&dead, &cand[hi], &cand[ho], &in_means[i], tokens, &mut rng);
                resampled[i] += n as u64;
                tracing::debug!(
                    sae = i,
                    tokens,
                    dead = dead.len(),
                    "resampled dead features"
                );
            }
        }
        sae_seconds += t1.elapsed().as_secs_f64();
        let worst_ev = ema.iter().map(|f| 1.0 - f).fold(f64::INFINITY, f64::min);
        let worst_dead = targets
            .iter()
            .zip(&last_dead)
            .map(|(t, &n)| n as f64 / t.d_sae as f64)
            .fold(0.0, f64::max);
        progress.advance(
            tokens,
            &format!(
                "EV(min) {worst_ev:.3}  dead(max) {:.1}%  lr {lr:.1e}",
                100.0 * worst_dead
            ),
        );
    }
    drop(spill);
    if tokens == 0 {
        return Err(Error::NoData(
            "no training rows after the held-out set".into(),
        ));
    }

    // Evaluation with the loader's encode.
    progress.phase("evaluating on held-out tokens");
    let cpu = Device::Cpu;
    let eval_t: Vec<Tensor> = eval
        .data
        .iter()
        .map(|v| Tensor::from_slice(v, (eval.n, d), &cpu))
        .collect::<candle_core::Result<_>>()?;
    let mut reports = Vec::with_capacity(targets.len());
    let mut trained = Vec::with_capacity(targets.len());
    for (i, (t, mut sae)) in targets.iter().zip(saes).enumerate() {
        let (hi, ho) = io[i];
        let theta = sae.calibrate_jump_threshold(&eval.data[hi]);
        tracing::info!(sae = %t.name, threshold = theta, "JumpReLU threshold calibrated to mean L0 = k on the held-out rows");
        let other = match cfg.written_activation {
            WrittenActivation::TopK => WrittenActivation::JumpRelu,
            WrittenActivation::JumpRelu => WrittenActivation::TopK,
        };
        let mut evals = [cfg.written_activation, other].into_iter().map(|a| {
            let loaded = sae.to_sae(&t.name, &t.hook_in, &t.hook_out, a)?;
            let m = reconstruction_metrics(&loaded, &eval_t[hi], &eval_t[ho])?;
            Ok::<_, Error>(EvalReport {
                explained_variance: m.explained_variance,
                mse: m.mse,
                mean_l0: m.mean_l0,
                dead_features: m.dead_features,
                dead_fraction: m.dead_features as f64 / t.d_sae as f64,
                n_rows: m.n_rows,
            })
        });
        let written = evals.next().expect("two activations")?;
        let alternative = evals.next().expect("two activations")?;
        reports.push(SaeReport {
            target: t.clone(),
            k: cfg.k,
            dataset_average_activation_norm: sae.norm(),
            activation: cfg.written_activation,
            eval: written,
            alternative: AlternativeEval {
                activation: other,
                eval: alternative,
            },
            train_explained_variance: 1.0 - tail[i].0 / tail[i].1.max(1e-30),
            train_dead_fraction: last_dead[i] as f64 / t.d_sae as f64,
            resampled_features: resampled[i],
            train_ev_curve: curve[i]
                .iter()
                .map(|&(e, t)| if t > 0.0 { 1.0 - e / t } else { f64::NAN })
                .collect(),
        });
        trained.push(TrainedSae {
            target: t.clone(),
            sae,
            activation: cfg.written_activation,
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let report = TrainReport {
        config: cfg.clone(),
        tokens_trained: tokens,
        tokens_drawn: first_pass_rows,
        steps: step,
        seconds,
        source_seconds,
        sae_seconds,
        tokens_per_second: tokens as f64 / seconds.max(1e-9),
        sae_tokens_per_second: (tokens * targets.len() as u64) as f64 / sae_seconds.max(1e-9),
        saes: reports,
    };
    Ok((trained, report))
}

/// Report file name under `--out`; its presence marks a directory as a previous training output.
pub const REPORT_FILE: &str = "train-report.json";

/// Checks, before any training, that `out` can receive the outputs: missing, an empty
/// directory, or a previous training output (it has [`REPORT_FILE`]). A user's folder or a
/// regular file is refused, so a mistyped `--out` overwrites nothing.
pub fn check_output_dir(out: &Path) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::InvalidConfig(format!(
            "refusing to write to --out {}: {what}; choose a new path, an empty directory or \
             an earlier train-sae output (one with {REPORT_FILE}); nothing was changed",
            out.display()
        )))
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io {
            path: out.to_path_buf(),
            source,
        }),
        Ok(m) if !m.is_dir() => refuse("it exists and is not a directory"),
        Ok(_) if out.join(REPORT_FILE).is_file() => Ok(()),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(|source| Error::Io {
                path: out.to_path_buf(),
                source,
            })?;
            if entries.next().is_none() {
                Ok(())
            } else {
                refuse("it is a directory that holds files not written by train-sae")
            }
        }
    }
}

/// Writes each SAE to `out/<name>/` (Llama Scope layout: `hyperparams.json`,
/// `checkpoints/final.safetensors`; and lm_saes' `config.json`, `sae_weights.safetensors`) and
/// the report to `out/train-report.json`.
pub fn write_outputs(out: &Path, trained: &[TrainedSae], report: &TrainReport) -> Result<()> {
    check_output_dir(out)?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    for t in trained {
        let dir = out.join(&t.target.name);
        let params = t
            .sae
            .hyperparams(&t.target.hook_in, &t.target.hook_out, t.activation)?;
        let tensors = t.sae.tensors()?;
        write_llama_scope(&dir, &params, &tensors)?;
        // The same SAE in lm_saes' own layout, so lm_saes loads the folder as it is.
        write_lm_saes(&dir, &params, &tensors)?;
    }
    let path = out.join(REPORT_FILE);
    let json = serde_json::to_string_pretty(report).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, json + "\n").map_err(|source| Error::Io { path, source })?;
    Ok(())
}
