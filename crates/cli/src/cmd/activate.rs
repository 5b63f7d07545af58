//! `scopedex activate INDEX "text"`: runs the index's model and SAEs on a text.
use anyhow::Context as _;

use crate::args::ActivateArgs;

use super::render;

/// Runs `scopedex activate`.
pub fn run(args: ActivateArgs) -> anyhow::Result<()> {
    let reader = scopedex_store::IndexReader::open(&args.index)
        .with_context(|| format!("opening the index {}", args.index.display()))?;
    let live = scopedex_server::LiveModel::load_with(
        reader.manifest(),
        &scopedex_server::live::ModelOverride {
            backend: crate::backend()?,
            ..Default::default()
        },
    )
    .context("loading the index's model and SAEs")?;
    let saes: Option<Vec<String>> = args
        .saes
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
    let body = live.activate(&args.text, saes.as_deref(), args.top_n)?;
    if args.json {
        return render::json(&body);
    }
    let colour = render::colour();
    let max = body
        .tokens
        .iter()
        .flat_map(|t| t.features.iter().map(|f| f.act))
        .fold(0.0f32, f32::max);
    for t in &body.tokens {
        let strongest = t.features.iter().map(|f| f.act).fold(0.0f32, f32::max);
        let features: Vec<String> = t
            .features
            .iter()
            .map(|f| format!("{}/{} {:.2}", f.sae, f.feature, f.act))
            .collect();
        println!(
            "{:>4} {:<20} {}",
            t.pos,
            render::token(&format!("{:?}", t.token), strongest, max, false, colour),
            features.join("  ")
        );
    }
    Ok(())
}
