//! `scopedex dump-activations`: activations of a text file's lines at chosen hooks, written as
//! safetensors (`tokens`, `text_index`, one `[T, d_model]` tensor per hook). Used to inspect or
//! train on activations, and to check the forward against other implementations.
use std::path::Path;

use anyhow::Context;
use scopedex_model::dump::Activations;
use scopedex_model::{load_tokenizer, HookPoint, Model};

/// Runs the subcommand: one text per line of `input`, BOS prepended, truncated to `ctx_len`.
pub fn run(
    model: &Path,
    hooks: &str,
    input: &Path,
    ctx_len: usize,
    out: &Path,
) -> anyhow::Result<()> {
    let hooks = HookPoint::parse_list(hooks)?;
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("cannot read input file {}", input.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let tokenizer = load_tokenizer(model)?;
    let model = Model::load(model, &crate::backend()?)?;
    let acts = Activations::collect(&model, &tokenizer, &lines, &hooks, ctx_len)?;
    acts.save(out)?;
    tracing::info!(
        tokens = acts.tokens.len(),
        texts = lines.len(),
        out = %out.display(),
        "wrote activations"
    );
    Ok(())
}
