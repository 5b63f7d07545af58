//! The end of a run: accumulators → records → the index writer, feature chunk by feature chunk.
//!
//! Logit effects (`W_dec[f] · W_U`) are computed here once per SAE. Cross-SAE partners are
//! interleaved with each feature's same-SAE partners, so a feature's co-occurrence rows stay
//! consecutive as the writer requires.
use std::path::Path;

use scopedex_model::Model;
use scopedex_store::{CooccurrenceRecord, IndexWriter};

use crate::accum::{logit_effects, ResultsChunk};
use crate::checkpoint::write_state;
use crate::error::{Error, Result};
use crate::neighbours::{comparable, neighbours_of, unit_decoder};
use crate::pass::{AttachedSae, PassState};

/// Features finished per chunk (bounds the memory of dense example windows).
const FEATURES_PER_CHUNK: usize = 2048;

/// Saves the final state into `{index}/state/` for `scopedex merge`.
pub fn save_state(index_tmp_dir: &Path, state: &PassState) -> Result<()> {
    write_state(&index_tmp_dir.join("state"), state, None, state.contexts)
}

/// Finishes every accumulator of `state` into `writer`; returns warnings for the user.
pub fn finish_into(
    writer: &mut IndexWriter,
    model: &Model,
    saes: &[AttachedSae],
    state: PassState,
    logit_top_n: usize,
) -> Result<Vec<String>> {
    let d_model = model.config().d_model;
    let unembedding: Vec<f32> = model.unembedding()?.flatten_all()?.to_vec1()?;
    // Cross-SAE partners, per SAE, sorted by feature.
    let mut cross: Vec<Vec<CooccurrenceRecord>> = vec![Vec::new(); saes.len()];
    for (a, b, counts) in state.cross {
        let res = counts.finish();
        cross[a].extend(res.a);
        cross[b].extend(res.b);
    }
    for c in &mut cross {
        c.sort_by_key(|r| r.feature); // stable: per-pair order kept
    }
    let mut warnings = Vec::new();
    // Decoder neighbours: unit decoder rows of every SAE compared with another (or itself).
    let with: Vec<Vec<usize>> = (0..saes.len()).map(|i| comparable(saes, i)).collect();
    let mut unit: Vec<Option<Vec<f32>>> = vec![None; saes.len()];
    for (i, s) in saes.iter().enumerate() {
        if with.iter().any(|w| w.contains(&i)) {
            unit[i] = Some(unit_decoder(s)?);
        } else {
            tracing::info!(
                sae = %s.id,
                "decoder neighbours skipped: d_sae² × d is beyond a CPU's budget (a GPU job)"
            );
        }
    }
    for (i, ((s, acc), cross)) in saes.iter().zip(state.saes).zip(cross).enumerate() {
        let _span = tracing::info_span!("finish", sae = %s.id).entered();
        writer.write_neighbours(&s.id, &neighbours_of(i, saes, &unit, &with[i]))?;
        // Logit effects read the decoder as residual-stream directions; an SAE writing
        // elsewhere (`attn.hook_z`) has none to show.
        let logits = if s.sae.d_out() == d_model {
            let directions: Vec<f32> = s.sae.decoder_directions()?.flatten_all()?.to_vec1()?;
            Some(logit_effects(
                &directions,
                &unembedding,
                d_model,
                logit_top_n,
            )?)
        } else {
            tracing::info!(
                sae = %s.id,
                hook = %s.hook_out,
                "logit effects skipped: the decoder does not write to the residual stream"
            );
            None
        };
        let mut cross = cross.into_iter().peekable();
        let (summary, sketch) = acc.finish_streaming(
            logits.as_ref(),
            FEATURES_PER_CHUNK,
            |chunk: ResultsChunk| {
                let hi = chunk.features.last().map(|f| f.feature).unwrap_or(0);
                let mut cooc = chunk.cooccurrence;
                while let Some(r) = cross.next_if(|r| r.feature <= hi) {
                    cooc.push(r);
                }
                cooc.sort_by_key(|r| r.feature); // stable: same-SAE partners first
                writer.write_features(&s.id, &chunk.features)?;
                writer.write_examples(&s.id, &chunk.examples)?;
                writer.write_cooccurrence(&s.id, &cooc)?;
                Ok::<(), Error>(())
            },
        )?;
        if !sketch.cooc_exact {
            tracing::info!(
                max_error = sketch.cooc_max_error,
                "co-occurrence counted by a sketch"
            );
        }
        if let Some(w) = s.sae.check_mean_l0(summary.mean_l0) {
            warnings.push(format!("{}: {w}", s.id));
        }
        writer.write_summary(&s.id, &summary)?;
    }
    Ok(warnings)
}
