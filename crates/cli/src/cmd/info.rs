//! `scopedex info`: print a model file's shape facts.
use std::path::Path;

/// Prints the GGUF summary of `model` as JSON on stdout.
pub fn run(model: &Path) -> anyhow::Result<()> {
    let summary = scopedex_model::gguf::summarize(model)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
