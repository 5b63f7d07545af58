//! `scopedex demo`: prints three example queries (top examples, co-occurrence, text search)
//! that work on a demo index, picking a live, specific feature from the index itself.
use std::path::Path;

use anyhow::Context as _;
use scopedex_store::{ExampleKind, IndexReader};

/// A feature that fires, but on at most this fraction of tokens (dense ones make dull demos).
const MAX_DENSITY: f64 = 0.02;

/// Runs `scopedex demo`.
pub fn run(index: &Path, addr: &str) -> anyhow::Result<()> {
    let reader = IndexReader::open(index)
        .with_context(|| format!("opening the index {}", index.display()))?;
    let sae = reader
        .sae_ids()
        .first()
        .map(|s| s.to_string())
        .context("the index holds no SAE")?;
    let d_sae = reader.sae(&sae)?.d_sae;
    // The most frequent feature among the sparse ones (many examples, still specific).
    let mut best: Option<(u32, u64)> = None;
    for f in 0..d_sae {
        if let Some(rec) = reader.feature(&sae, f)? {
            if rec.n_fired > 0
                && rec.density <= MAX_DENSITY
                && best.is_none_or(|(_, n)| rec.n_fired > n)
            {
                best = Some((f, rec.n_fired));
            }
        }
    }
    let (feature, n_fired) = best.context("no live feature in the index")?;
    // The token it fires most strongly on, as a search word.
    let word = reader
        .examples(&sae, feature, Some(ExampleKind::Top), 1, 0)?
        .first()
        .and_then(|ex| {
            let ctx = reader.context(ex.context_id).ok()??;
            let p = ex.max_pos as usize;
            let (a, b) = (
                *ctx.token_starts.get(p)? as usize,
                *ctx.token_ends.get(p)? as usize,
            );
            let w: String = ctx
                .text
                .get(a..b)?
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect();
            (!w.is_empty()).then_some(w)
        })
        .unwrap_or_else(|| "the".into());
    let partners = reader.cooccurrence(&sae, feature, None, 1)?.len();
    let base = format!("http://{addr}/api");
    println!(
        "# Demo index {} — SAE {sae}, feature {feature} (fired on {n_fired} tokens)",
        index.display()
    );
    let idx = index.display();
    println!("# 1. top: the feature's top-activating contexts, tokens shaded by activation");
    println!("scopedex top {idx} {sae} {feature} --limit 5");
    println!("curl -s '{base}/saes/{sae}/features/{feature}/examples?kind=top&limit=5'");
    println!(
        "# 2. cooc: the features that fire together with it{}",
        if partners == 0 {
            " (none recorded)"
        } else {
            ""
        }
    );
    println!("scopedex cooc {idx} {sae} {feature} --limit 10");
    println!("curl -s '{base}/saes/{sae}/features/{feature}/cooccurrence'");
    println!("# 3. search: contexts containing \"{word}\", with their strongest features");
    println!("scopedex search {idx} '{word}' --limit 5");
    println!("curl -s '{base}/search?q={word}&limit=5'");
    println!("# Web UI: http://{addr}/");
    Ok(())
}
