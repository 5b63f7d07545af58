//! The single pass: contexts → one model forward per batch → every attached SAE → accumulators.
//!
//! The model runs once per batch whatever the number of SAEs; SAEs that read the same hook share
//! its activations, and the forward stops after the deepest layer any SAE needs. Reading and
//! tokenizing run on their own thread ahead of the forward (a bounded channel), so the slowest
//! stage — the forward — sets the pace.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use candle_core::Tensor;
use scopedex_model::{CapturePlan, Config, HookPoint, Model};
use scopedex_sae::{ReconTerms, Sae, SparseCodes};
use scopedex_store::ContextFeaturesRecord;

use crate::accum::{AccumConfig, BatchContexts, CrossCooc, SaeAccumulator};
use crate::error::{Error, Result};
use crate::finite::check_finite;

/// One SAE attached to a run, with the hooks it reads and reconstructs.
pub struct AttachedSae {
    /// Id used in the index (`L15R-8x` or the folder name).
    pub id: String,
    /// How to load it again: `PATH` or `REPO:ID` (an `--sae` spec; recorded in the manifest).
    pub source: String,
    /// The loaded SAE.
    pub sae: Sae,
    /// Hook it encodes.
    pub hook_in: HookPoint,
    /// Hook it reconstructs (differs from `hook_in` for transcoders).
    pub hook_out: HookPoint,
}

impl AttachedSae {
    /// Resolves the SAE's hook names against the model's config (unknown hook or layer → error).
    pub fn new(id: String, source: String, mut sae: Sae, model: &Config) -> Result<AttachedSae> {
        if sae.trained_on_centred_residual() {
            let centre = model.family.transformer_lens_centres_residual();
            tracing::info!(
                sae = %id,
                family = %model.family,
                centre,
                "the SAE's config says it read TransformerLens' centred residual stream{}",
                if centre {
                    ": its inputs are centred over d_model"
                } else {
                    ", which equals the plain one for this family"
                }
            );
            sae.set_centre(centre);
        }
        let parse = |h: &str| -> Result<HookPoint> {
            let hook: HookPoint = h.parse().map_err(|e: scopedex_model::Error| {
                Error::InvalidInput(format!("SAE {id}: {e}"))
            })?;
            CapturePlan::new([hook])
                .validate(model.n_layers)
                .map_err(|e| Error::InvalidInput(format!("SAE {id}: {e}")))?;
            Ok(hook)
        };
        let hook_in = parse(sae.hook_in())?;
        let hook_out = parse(sae.hook_out())?;
        sae.check_hook_widths(model.hook_width(hook_in), model.hook_width(hook_out))
            .map_err(|e| Error::InvalidInput(format!("SAE {id}: {e}")))?;
        Ok(AttachedSae {
            id,
            source,
            sae,
            hook_in,
            hook_out,
        })
    }
}

/// Which pairs of SAEs get cross-SAE co-occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrossPairs {
    /// No cross-SAE co-occurrence.
    None,
    /// Pairs whose layers differ by at most one (L15R↔L16R, L15R↔L15M, ...).
    #[default]
    Adjacent,
    /// Every pair.
    All,
}

/// The accumulators of one run: one per SAE, one per cross pair.
pub struct PassState {
    /// Per attached SAE, in attachment order.
    pub saes: Vec<SaeAccumulator>,
    /// `(a, b, counts)`: indexes into `saes`, a < b.
    pub cross: Vec<(usize, usize, CrossCooc)>,
    /// Contexts processed.
    pub contexts: u64,
    /// Positions processed (BOS included).
    pub positions: u64,
}

impl PassState {
    /// Fresh accumulators for `saes`.
    pub fn new(saes: &[AttachedSae], cfg: &AccumConfig, pairs: CrossPairs) -> Result<PassState> {
        let accs = saes
            .iter()
            .map(|s| SaeAccumulator::new(&s.id, s.sae.d_in(), s.sae.d_sae(), cfg))
            .collect::<Result<Vec<_>>>()?;
        let mut cross = Vec::new();
        for a in 0..saes.len() {
            for b in a + 1..saes.len() {
                let near = saes[a].hook_in.layer().abs_diff(saes[b].hook_in.layer()) <= 1;
                let wanted = match pairs {
                    CrossPairs::None => false,
                    CrossPairs::Adjacent => near,
                    CrossPairs::All => true,
                };
                if wanted {
                    let c = CrossCooc::new(
                        &saes[a].id,
                        saes[a].sae.d_sae(),
                        &saes[b].id,
                        saes[b].sae.d_sae(),
                        cfg,
                    )?;
                    cross.push((a, b, c));
                }
            }
        }
        Ok(PassState {
            saes: accs,
            cross,
            contexts: 0,
            positions: 0,
        })
    }

    /// Combines the states of two disjoint slices of the same run (associative, commutative).
    pub fn merge(self, other: PassState) -> Result<PassState> {
        if self.saes.len() != other.saes.len() || self.cross.len() != other.cross.len() {
            return Err(Error::Mismatch(
                "cannot merge runs with different SAEs or cross pairs".into(),
            ));
        }
        let saes = self
            .saes
            .into_iter()
            .zip(other.saes)
            .map(|(a, b)| a.merge(b))
            .collect::<Result<Vec<_>>>()?;
        let cross = self
            .cross
            .into_iter()
            .zip(other.cross)
            .map(|((a, b, x), (a2, b2, y))| {
                if (a, b) != (a2, b2) {
                    return Err(Error::Mismatch("cross pairs differ between runs".into()));
                }
                Ok((a, b, x.merge(y)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PassState {
            saes,
            cross,
            contexts: self.contexts + other.contexts,
            positions: self.positions + other.positions,
        })
    }
}

/// What one batch produced besides the accumulator updates.
pub struct BatchOutput {
    /// Per attached SAE, one row per position of the batch (contexts concatenated), for the
    /// optional activation log.
    pub codes: Vec<SparseCodes>,
    /// Per attached SAE, each context's active features (search terms, hits' features).
    pub context_features: Vec<Vec<ContextFeaturesRecord>>,
    /// Where the batch's time went.
    pub times: StageTimes,
}

/// Seconds spent per stage of the pass, summed over batches (the run's report prints them, so
/// a user sees whether the model, the SAEs or the statistics set the pace).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Model forward to the deepest hook.
    pub forward: f64,
    /// SAE encoders (GEMM + selection).
    pub encode: f64,
    /// Per-feature accumulators (top-k, intervals, histograms, tokens, co-occurrence).
    pub accumulate: f64,
    /// Decode and explained variance.
    pub reconstruction: f64,
    /// Each context's active features.
    pub context_features: f64,
    /// Writing contexts, context features and the activation log (measured by the caller).
    pub write: f64,
}

impl StageTimes {
    /// Adds `o` stage by stage.
    pub fn add(&mut self, o: &StageTimes) {
        self.forward += o.forward;
        self.encode += o.encode;
        self.accumulate += o.accumulate;
        self.reconstruction += o.reconstruction;
        self.context_features += o.context_features;
        self.write += o.write;
    }

    /// `(name, seconds)` in pipeline order.
    pub fn stages(&self) -> [(&'static str, f64); 6] {
        [
            ("forward", self.forward),
            ("encode", self.encode),
            ("accumulate", self.accumulate),
            ("reconstruction", self.reconstruction),
            ("context features", self.context_features),
            ("write", self.write),
        ]
    }
}

/// Every feature active in each context (activation > 0 at a counted position: position 0 is
/// skipped when `exclude_bos`), strongest first by max activation, ties by lower feature id,
/// with the first position of the max. Not capped: the text index's feature terms and "more
/// like this" need every active feature (see `schemas/index.md`).
pub fn context_features(
    context_ids: &[u64],
    tokens: &[&[u32]],
    codes: &SparseCodes,
    exclude_bos: bool,
) -> Vec<ContextFeaturesRecord> {
    let mut out = Vec::with_capacity(context_ids.len());
    let mut row = 0usize;
    // feature → (max activation, its first position)
    let mut best: BTreeMap<u32, (f32, u32)> = BTreeMap::new();
    for (&context_id, toks) in context_ids.iter().zip(tokens) {
        best.clear();
        for pos in 0..toks.len() {
            if !(exclude_bos && pos == 0) {
                let (fs, vs) = codes.row(row + pos);
                for (&f, &v) in fs.iter().zip(vs) {
                    if v > 0.0 {
                        let b = best.entry(f).or_insert((0.0, 0));
                        if v > b.0 {
                            *b = (v, pos as u32);
                        }
                    }
                }
            }
        }
        row += toks.len();
        let mut ranked: Vec<(u32, f32, u32)> = best.iter().map(|(&f, &(v, p))| (f, v, p)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.push(ContextFeaturesRecord {
            context_id,
            features: ranked.iter().map(|r| r.0).collect(),
            max_acts: ranked.iter().map(|r| r.1).collect(),
            max_pos: ranked.iter().map(|r| r.2).collect(),
        });
    }
    out
}

/// Runs the model and every SAE on one batch of contexts and updates `state`:
/// [`encode_batch`] then [`accumulate_batch`].
///
/// `context_ids[i]` and `tokens[i]` describe context `i`; all positions (BOS included) are fed
/// to the accumulators, which skip BOS when configured to.
pub fn process_batch(
    model: &Model,
    saes: &[AttachedSae],
    state: &mut PassState,
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<BatchOutput> {
    let encoded = encode_batch(model, saes, context_ids, tokens)?;
    accumulate_batch(saes, state, encoded, context_ids, tokens)
}

/// One batch through the model and every SAE: what [`accumulate_batch`] needs, on the host.
/// The device's part of a batch; it touches no accumulator, so it can run while the host
/// accumulates the batch before (see `job.rs`).
pub struct EncodedBatch {
    /// Per attached SAE, its codes.
    codes: Vec<SparseCodes>,
    /// Per attached SAE, its reconstruction terms (reduced on the device when there is one).
    reconstruction: Vec<ReconTerms>,
    times: StageTimes,
}

/// The forward, every SAE's encode and its reconstruction error on one batch.
pub fn encode_batch(
    model: &Model,
    saes: &[AttachedSae],
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<EncodedBatch> {
    let _span = tracing::debug_span!("encode_batch", contexts = context_ids.len()).entered();
    let mut times = StageTimes::default();
    let mut lap = lap_timer();
    let hooks: BTreeSet<HookPoint> = saes.iter().flat_map(|s| [s.hook_in, s.hook_out]).collect();
    let captured = model.forward_capture(tokens, &CapturePlan::new(hooks.iter().copied()))?;
    // Each hook's valid rows once, shared by every SAE that reads it.
    let mut rows: BTreeMap<HookPoint, Tensor> = BTreeMap::new();
    for &h in &hooks {
        let r = captured.valid_rows(h)?;
        check_finite(h, &r, context_ids, tokens)?;
        rows.insert(h, r);
    }
    drop(captured);
    times.forward += lap();
    let mut codes = Vec::with_capacity(saes.len());
    let mut reconstruction = Vec::with_capacity(saes.len());
    let first_rows = first_rows(tokens);
    for s in saes {
        let c = s.sae.encode(&rows[&s.hook_in])?;
        times.encode += lap();
        // Explained variance against the hook the SAE reconstructs (mlp_out for transcoders).
        reconstruction.push(
            s.sae
                .reconstruction_terms(&rows[&s.hook_out], &c, &first_rows)?,
        );
        times.reconstruction += lap();
        codes.push(c);
    }
    Ok(EncodedBatch {
        codes,
        reconstruction,
        times,
    })
}

/// The row of each context's position 0 in a batch's concatenated rows (an empty context has
/// none).
fn first_rows(tokens: &[&[u32]]) -> Vec<usize> {
    tokens
        .iter()
        .scan(0, |row, t| {
            let first = (!t.is_empty()).then_some(*row);
            *row += t.len();
            Some(first)
        })
        .flatten()
        .collect()
}

/// [`encode_batch`], run in halves (recursively) when the device runs out of memory, so a batch
/// too large for the GPU still completes; the halves' outputs are joined in order, so the
/// accumulators see exactly what one batch gives. Each split is logged with the sizes it tries,
/// for `--batch-size`. A single context that does not fit is an error.
pub fn encode_batch_fitting(
    model: &Model,
    saes: &[AttachedSae],
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<EncodedBatch> {
    encode_fitting(context_ids, tokens, &mut |ids, toks| {
        encode_batch(model, saes, ids, toks)
    })
}

/// Whether `e` is a device's out-of-memory error (candle reports CUDA's
/// `CUDA_ERROR_OUT_OF_MEMORY` as text).
fn is_out_of_memory(e: &Error) -> bool {
    let text = e.to_string();
    text.contains("OUT_OF_MEMORY") || text.contains("out of memory")
}

/// What [`encode_fitting`] runs on each part: contexts' ids and tokens → their encoded batch.
type EncodeParts<'a> = dyn FnMut(&[u64], &[&[u32]]) -> Result<EncodedBatch> + 'a;

fn encode_fitting(
    context_ids: &[u64],
    tokens: &[&[u32]],
    encode: &mut EncodeParts<'_>,
) -> Result<EncodedBatch> {
    match encode(context_ids, tokens) {
        Err(e) if is_out_of_memory(&e) && context_ids.len() > 1 => {
            let half = context_ids.len().div_ceil(2);
            tracing::warn!(
                contexts = context_ids.len(),
                "the device ran out of memory on a batch of {} contexts; running it as two of \
                 {half} and {} (pass --batch-size {half} or smaller to avoid the retry)",
                context_ids.len(),
                context_ids.len() - half
            );
            let first = encode_fitting(&context_ids[..half], &tokens[..half], encode)?;
            let second = encode_fitting(&context_ids[half..], &tokens[half..], encode)?;
            Ok(first.joined(second))
        }
        other => other,
    }
}

impl EncodedBatch {
    /// This batch's rows followed by `next`'s.
    fn joined(mut self, next: EncodedBatch) -> EncodedBatch {
        for (codes, more) in self.codes.iter_mut().zip(&next.codes) {
            codes.extend(more);
        }
        for (terms, more) in self.reconstruction.iter_mut().zip(next.reconstruction) {
            terms.append(more);
        }
        self.times.add(&next.times);
        self
    }
}

/// Adds an encoded batch to every accumulator (the host's part of a batch).
pub fn accumulate_batch(
    saes: &[AttachedSae],
    state: &mut PassState,
    encoded: EncodedBatch,
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<BatchOutput> {
    let _span = tracing::debug_span!("accumulate_batch", contexts = context_ids.len()).entered();
    let EncodedBatch {
        codes: codes_all,
        reconstruction,
        mut times,
    } = encoded;
    let mut lap = lap_timer();
    let batch = BatchContexts {
        context_ids,
        tokens,
    };
    let mut features_all = Vec::with_capacity(saes.len());
    for ((codes, terms), acc) in codes_all
        .iter()
        .zip(&reconstruction)
        .zip(state.saes.iter_mut())
    {
        acc.add_batch(&batch, codes)?;
        acc.add_reconstruction(&batch, terms)?;
        times.accumulate += lap();
        let exclude_bos = acc.config().exclude_bos;
        features_all.push(context_features(context_ids, tokens, codes, exclude_bos));
        times.context_features += lap();
    }
    for (a, b, cross) in state.cross.iter_mut() {
        cross.add_batch(&batch, &codes_all[*a], &codes_all[*b])?;
    }
    times.accumulate += lap();
    state.contexts += context_ids.len() as u64;
    state.positions += batch.n_rows() as u64;
    Ok(BatchOutput {
        codes: codes_all,
        context_features: features_all,
        times,
    })
}

/// A stopwatch: each call returns the seconds since the previous one (or since creation).
fn lap_timer() -> impl FnMut() -> f64 {
    let mut clock = Instant::now();
    move || {
        let now = Instant::now();
        let s = now.duration_since(clock).as_secs_f64();
        clock = now;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `context_features` against a dense brute force: every feature with a positive value at
    /// a counted position, its max and the first position of it.
    #[test]
    fn context_features_are_every_active_feature_with_its_max_position() {
        let d_sae = 20u32;
        let lens = [5usize, 1, 7];
        let ids = [10u64, 11, 12];
        let toks: Vec<Vec<u32>> = lens.iter().map(|&n| vec![1; n]).collect();
        let tok_refs: Vec<&[u32]> = toks.iter().map(Vec::as_slice).collect();
        let mut codes = SparseCodes::new(d_sae as usize);
        let mut dense: Vec<Vec<f32>> = Vec::new();
        let mut seed = 7u64;
        for _ in 0..lens.iter().sum::<usize>() {
            let mut row = vec![0.0f32; d_sae as usize];
            let (mut fs, mut vs) = (Vec::new(), Vec::new());
            for f in 0..d_sae {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (seed >> 33) % 10;
                if r < 3 {
                    // Quantised values so that ties happen; some zeros and negatives too.
                    let v = (r as f32) - 1.0 + ((seed >> 40) % 3) as f32;
                    fs.push(f);
                    vs.push(v);
                    row[f as usize] = v;
                }
            }
            codes.push_row(&fs, &vs);
            dense.push(row);
        }
        for exclude_bos in [false, true] {
            let got = context_features(&ids, &tok_refs, &codes, exclude_bos);
            let mut start = 0;
            for ((rec, &id), &n) in got.iter().zip(&ids).zip(&lens) {
                assert_eq!(rec.context_id, id);
                let mut want: Vec<(u32, f32, u32)> = Vec::new();
                for f in 0..d_sae {
                    let mut best: Option<(f32, u32)> = None;
                    for pos in 0..n {
                        let v = dense[start + pos][f as usize];
                        if (exclude_bos && pos == 0) || v <= 0.0 {
                            continue;
                        }
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, pos as u32));
                        }
                    }
                    if let Some((v, p)) = best {
                        want.push((f, v, p));
                    }
                }
                want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let got: Vec<(u32, f32, u32)> = rec
                    .features
                    .iter()
                    .zip(&rec.max_acts)
                    .zip(&rec.max_pos)
                    .map(|((&f, &v), &p)| (f, v, p))
                    .collect();
                assert_eq!(got, want, "context {id}, exclude_bos {exclude_bos}");
                start += n;
            }
        }
    }

    #[test]
    fn first_rows_are_each_nonempty_contexts_position_0() {
        let (a, b, c): (&[u32], &[u32], &[u32]) = (&[5, 6, 7], &[], &[8, 9]);
        assert_eq!(first_rows(&[a, b, c, b]), [0, 3]);
        assert_eq!(first_rows(&[]), Vec::<usize>::new());
    }

    /// A batch that does not fit is run in halves, and the joined halves equal the batch.
    #[test]
    fn out_of_memory_runs_the_batch_in_halves() {
        // A stand-in for the device: one row per context (feature = context id), target rows
        // of the id, and out of memory above `fits` contexts.
        let fake = |fits: usize, calls: &mut Vec<usize>, ids: &[u64]| -> Result<EncodedBatch> {
            calls.push(ids.len());
            if ids.len() > fits {
                return Err(Error::Mismatch(
                    "CUDA_ERROR_OUT_OF_MEMORY, out of memory".into(),
                ));
            }
            let mut codes = SparseCodes::new(100);
            for &id in ids {
                codes.push_row(&[id as u32], &[id as f32 + 0.5]);
            }
            let target: Vec<f32> = ids.iter().flat_map(|&i| [i as f32, -(i as f32)]).collect();
            let recon: Vec<f32> = target.iter().map(|v| v * 0.5).collect();
            let first_rows: Vec<usize> = (0..ids.len()).collect();
            let terms = ReconTerms::from_rows(&target, &recon, 2, &first_rows).unwrap();
            Ok(EncodedBatch {
                codes: vec![codes],
                reconstruction: vec![terms],
                times: StageTimes::default(),
            })
        };
        let ids: Vec<u64> = (0..7).collect();
        let toks: Vec<&[u32]> = vec![&[1]; 7];
        let whole = fake(usize::MAX, &mut Vec::new(), &ids).unwrap();
        let mut calls = Vec::new();
        let split = encode_fitting(&ids, &toks, &mut |i, _| fake(2, &mut calls, i)).unwrap();
        assert_eq!(split.codes, whole.codes);
        assert_eq!(split.reconstruction, whole.reconstruction);
        assert_eq!(calls, [7, 4, 2, 2, 3, 2, 1]);
        // One context that does not fit, and any other error, are errors.
        assert!(encode_fitting(&ids[..1], &toks[..1], &mut |i, _| fake(
            0,
            &mut Vec::new(),
            i
        ))
        .is_err());
        let mut n = 0;
        let other = encode_fitting(&ids, &toks, &mut |_, _| {
            n += 1;
            Err(Error::Mismatch("a bad file".into()))
        });
        assert!(other.is_err() && n == 1);
    }
}
