//! `scopedex top INDEX SAE FEATURE`: example contexts of one feature.
use crate::args::TopArgs;

use super::render;

/// Runs `scopedex top`.
pub fn run(args: TopArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let body = scopedex_server::views::examples(
        &snap,
        &args.sae,
        args.feature,
        &args.kind,
        args.limit,
        0,
    )?;
    if args.json {
        return render::json(&body);
    }
    println!(
        "{} feature {} — {} examples ({})",
        body.sae,
        body.feature,
        body.examples.len(),
        args.kind
    );
    render::examples(&body.examples);
    Ok(())
}
