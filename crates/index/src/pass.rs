//! The single pass: contexts → one model forward per batch → every attached SAE → accumulators.
//!
//! The model runs once per batch whatever the number of SAEs; SAEs that read the same hook share
//! its activations, and the forward stops after the deepest layer any SAE needs. Reading and
//! tokenizing run on their own thread ahead of the forward (a bounded channel), so the slowest
//! stage — the forward — sets the pace.
use std::collections::{BTreeMap, BTreeSet};

use candle_core::Tensor;
use scopedex_model::{CapturePlan, HookPoint, Llama};
use scopedex_sae::{Sae, SparseCodes};
use scopedex_store::ContextFeaturesRecord;

use crate::accum::{row_sse, AccumConfig, BatchContexts, CrossCooc, SaeAccumulator};
use crate::error::{Error, Result};

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
    /// Resolves the SAE's hook names against the model (unknown hook or layer → error).
    pub fn new(id: String, source: String, sae: Sae, model: &Llama) -> Result<AttachedSae> {
        let parse = |h: &str| -> Result<HookPoint> {
            let hook: HookPoint = h.parse().map_err(|e: scopedex_model::Error| {
                Error::InvalidInput(format!("SAE {id}: {e}"))
            })?;
            CapturePlan::new([hook])
                .validate(model.config().n_layers)
                .map_err(|e| Error::InvalidInput(format!("SAE {id}: {e}")))?;
            Ok(hook)
        };
        let hook_in = parse(sae.hook_in())?;
        let hook_out = parse(sae.hook_out())?;
        sae.check_d_model(model.config().d_model)
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
    /// Per attached SAE, each context's strongest features (for search hits).
    pub context_features: Vec<Vec<ContextFeaturesRecord>>,
}

/// Features kept per context and SAE in `context_features`.
pub const CONTEXT_FEATURES: usize = 16;

/// Each context's strongest features: max activation over its positions (position 0 skipped
/// when `exclude_bos`), strongest first, ties by lower feature id, at most `limit`.
pub fn context_features(
    context_ids: &[u64],
    tokens: &[&[u32]],
    codes: &SparseCodes,
    exclude_bos: bool,
    limit: usize,
) -> Vec<ContextFeaturesRecord> {
    let mut out = Vec::with_capacity(context_ids.len());
    let mut row = 0usize;
    let mut best: BTreeMap<u32, f32> = BTreeMap::new();
    for (&context_id, toks) in context_ids.iter().zip(tokens) {
        best.clear();
        for pos in 0..toks.len() {
            if !(exclude_bos && pos == 0) {
                let (fs, vs) = codes.row(row + pos);
                for (&f, &v) in fs.iter().zip(vs) {
                    let m = best.entry(f).or_insert(0.0);
                    *m = m.max(v);
                }
            }
        }
        row += toks.len();
        let mut ranked: Vec<(u32, f32)> = best.iter().map(|(&f, &v)| (f, v)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        out.push(ContextFeaturesRecord {
            context_id,
            features: ranked.iter().map(|r| r.0).collect(),
            max_acts: ranked.iter().map(|r| r.1).collect(),
        });
    }
    out
}

/// Runs the model and every SAE on one batch of contexts and updates `state`.
///
/// `context_ids[i]` and `tokens[i]` describe context `i`; all positions (BOS included) are fed
/// to the accumulators, which skip BOS when configured to.
pub fn process_batch(
    model: &Llama,
    saes: &[AttachedSae],
    state: &mut PassState,
    context_ids: &[u64],
    tokens: &[&[u32]],
) -> Result<BatchOutput> {
    let _span = tracing::debug_span!("batch", contexts = context_ids.len()).entered();
    let hooks: BTreeSet<HookPoint> = saes.iter().flat_map(|s| [s.hook_in, s.hook_out]).collect();
    let captured = model.forward_capture(tokens, &CapturePlan::new(hooks.iter().copied()))?;
    // Each hook's valid rows once, shared by every SAE that reads it.
    let mut rows: BTreeMap<HookPoint, Tensor> = BTreeMap::new();
    for &h in &hooks {
        rows.insert(h, captured.valid_rows(h)?);
    }
    drop(captured);
    let batch = BatchContexts {
        context_ids,
        tokens,
    };
    let mut codes_all = Vec::with_capacity(saes.len());
    let mut features_all = Vec::with_capacity(saes.len());
    for (s, acc) in saes.iter().zip(state.saes.iter_mut()) {
        let x = &rows[&s.hook_in];
        let codes = s.sae.encode(x)?;
        acc.add_batch(&batch, &codes)?;
        // Explained variance against the hook the SAE reconstructs (mlp_out for transcoders).
        let target = &rows[&s.hook_out];
        let recon = s.sae.decode(&codes)?;
        let target_host: Vec<f32> = target.flatten_all()?.to_vec1()?;
        let recon_host: Vec<f32> = recon.flatten_all()?.to_vec1()?;
        let sse = row_sse(&target_host, &recon_host, s.sae.d_out());
        acc.add_reconstruction(&batch, &target_host, &sse)?;
        let exclude_bos = acc.config().exclude_bos;
        features_all.push(context_features(
            context_ids,
            tokens,
            &codes,
            exclude_bos,
            CONTEXT_FEATURES,
        ));
        codes_all.push(codes);
    }
    for (a, b, cross) in state.cross.iter_mut() {
        cross.add_batch(&batch, &codes_all[*a], &codes_all[*b])?;
    }
    state.contexts += context_ids.len() as u64;
    state.positions += batch.n_rows() as u64;
    Ok(BatchOutput {
        codes: codes_all,
        context_features: features_all,
    })
}
