//! `scopedex similar INDEX CONTEXT_ID` (or `--text "..."`): "more like this" by shared
//! features, each weighted by its rarity.
use anyhow::Context as _;

use crate::args::SimilarArgs;

use super::render;

/// Runs `scopedex similar`.
pub fn run(args: SimilarArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let body = match (&args.text, args.context_id) {
        (Some(text), _) => {
            let live = scopedex_server::LiveModel::load_with(
                snap.reader.manifest(),
                &scopedex_server::live::ModelOverride {
                    backend: crate::backend()?,
                    ..Default::default()
                },
            )
            .context("loading the index's model and SAEs")?;
            let only = args.sae.clone().map(|s| vec![s]);
            let which = live.check(text, only.as_deref(), 1)?;
            let mut terms = Vec::new();
            for (sae, rec) in live.text_features(text, &which)? {
                terms.extend(snap.reader.feature_terms(&sae, &rec)?);
            }
            scopedex_server::views::similar_to_terms(
                &snap,
                &terms,
                args.sae.as_deref(),
                args.limit,
            )?
        }
        (None, Some(id)) => {
            scopedex_server::views::similar_to_context(&snap, id, args.sae.as_deref(), args.limit)?
        }
        (None, None) => anyhow::bail!("give a CONTEXT_ID or --text"),
    };
    if args.json {
        return render::json(&body);
    }
    let source = match body.context_id {
        Some(id) => format!("context {id}"),
        None => "the text".to_string(),
    };
    println!(
        "{} contexts like {source} ({} feature terms{})",
        body.hits.len(),
        body.terms,
        body.sae
            .as_deref()
            .map(|s| format!(" of {s}"))
            .unwrap_or_default()
    );
    for h in &body.hits {
        render::print_hit_header(h.score, h.context_id, &h.doc_id, &h.text);
        let shared: Vec<String> = h
            .shared
            .iter()
            .map(|f| format!("{}/{} (w {:.2})", f.sae, f.feature, f.weight))
            .collect();
        if !shared.is_empty() {
            println!("    shared: {}", shared.join(", "));
        }
    }
    Ok(())
}
