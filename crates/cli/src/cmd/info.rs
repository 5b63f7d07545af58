//! `scopedex info`: print a model's family, shape and hook points.
use std::path::Path;

/// Prints, as JSON on stdout: the family and resolved config of `model` (a GGUF file or an HF
/// directory), every hook point with its width and meaning in that family, and for a GGUF file
/// its header summary.
pub fn run(model: &Path) -> anyhow::Result<()> {
    let config = scopedex_model::Model::read_config(model)?;
    let gguf = if model.is_dir() {
        None
    } else {
        Some(scopedex_model::gguf::summarize(model)?)
    };
    let out = serde_json::json!({
        "family": config.family,
        "n_layers": config.n_layers,
        "d_model": config.d_model,
        "vocab_size": config.vocab_size,
        "hooks": scopedex_model::hook_sites(&config),
        "config": config,
        "gguf": gguf,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
