//! The `explanations` value: text, model, prompt_version, settings, created, scorer_model,
//! scored (strings), train_contexts [u64], then detection and fuzzing scores (n u32,
//! precision, recall, f1, balanced_accuracy, auroc: f32 each).
use super::bytes::{Dec, Enc};
use crate::error::Result;
use crate::records::{ExplanationRecord, ExplanationScores};

pub(crate) fn encode_explanation(r: &ExplanationRecord) -> Vec<u8> {
    let strings = [
        &r.text,
        &r.model,
        &r.prompt_version,
        &r.settings,
        &r.created,
        &r.scorer_model,
        &r.scored,
    ];
    let mut e = Enc::new(
        strings.iter().map(|s| s.len() + 4).sum::<usize>() + 8 * r.train_contexts.len() + 60,
    );
    strings.iter().for_each(|s| e.str(s));
    e.len(r.train_contexts.len());
    r.train_contexts.iter().for_each(|&c| e.u64(c));
    for s in [&r.detection, &r.fuzzing] {
        e.u32(s.n);
        for v in [s.precision, s.recall, s.f1, s.balanced_accuracy, s.auroc] {
            e.f32(v);
        }
    }
    e.0
}

fn scores(d: &mut Dec<'_>) -> Result<ExplanationScores> {
    Ok(ExplanationScores {
        n: d.u32()?,
        precision: d.f32()?,
        recall: d.f32()?,
        f1: d.f32()?,
        balanced_accuracy: d.f32()?,
        auroc: d.f32()?,
    })
}

pub(crate) fn decode_explanation(feature: u32, mut d: Dec<'_>) -> Result<ExplanationRecord> {
    let text = d.str()?;
    let model = d.str()?;
    let prompt_version = d.str()?;
    let settings = d.str()?;
    let created = d.str()?;
    let scorer_model = d.str()?;
    let scored = d.str()?;
    let train_contexts = d.vec(8, Dec::u64)?;
    let detection = scores(&mut d)?;
    let fuzzing = scores(&mut d)?;
    d.end()?;
    Ok(ExplanationRecord {
        feature,
        text,
        model,
        prompt_version,
        settings,
        train_contexts,
        created,
        scorer_model,
        scored,
        detection,
        fuzzing,
    })
}
