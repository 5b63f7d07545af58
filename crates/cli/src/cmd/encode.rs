//! `scopedex encode`: encode an activations file with one SAE into sparse codes.
//!
//! Writes `row_ptr` (I64 [T+1]), `features` (I64 [nnz]) and `values` (F32 [nnz]) to `--out`;
//! with `--metrics`, prints reconstruction metrics as JSON on stdout. Warns when the mean L0 is
//! far from the SAE's trained k (a wrong hook, scale or threshold convention).
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use scopedex_sae::{read_tensor, reconstruction_metrics, Position, Sae, SaeId};

/// Runs `scopedex encode`.
pub fn run(
    sae_path: &Path,
    id: Option<&str>,
    input: &Path,
    tensor: &str,
    target: Option<&str>,
    out: &Path,
    metrics: bool,
) -> anyhow::Result<()> {
    let backend = crate::backend()?;
    let device = backend.device().clone();
    let sae = match id {
        Some(id) => Sae::load_from_repo(sae_path, &id.parse::<SaeId>()?, &device)?,
        None => Sae::load(sae_path, &device)?,
    };
    let is_transcoder =
        sae.id().is_some_and(|i| i.position == Position::TC) || sae.hook_in() != sae.hook_out();
    if metrics && is_transcoder && target.is_none() {
        anyhow::bail!(
            "{} is a transcoder ({} → {}): --metrics needs --target naming the output tensor",
            sae.name(),
            sae.hook_in(),
            sae.hook_out()
        );
    }
    let x = read_tensor(input, tensor, &device)?;
    let started = Instant::now();
    let codes = sae
        .encode(&x)
        .with_context(|| format!("encoding {}:{tensor} with {}", input.display(), sae.name()))?;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        sae = sae.name(),
        rows = codes.n_rows(),
        nnz = codes.nnz(),
        mean_l0 = codes.mean_l0(),
        tokens_per_s = codes.n_rows() as f64 / secs.max(1e-9),
        "encoded"
    );
    if let Some(warning) = sae.check_mean_l0(codes.mean_l0()) {
        tracing::warn!("{warning}");
    }
    codes.save_safetensors(out)?;
    if metrics {
        let y = match target {
            Some(name) => read_tensor(input, name, &device)?,
            None => x.clone(),
        };
        let m = reconstruction_metrics(&sae, &x, &y)?;
        println!("{}", serde_json::to_string_pretty(&m)?);
    }
    Ok(())
}
