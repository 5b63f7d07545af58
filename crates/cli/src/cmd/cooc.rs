//! `scopedex cooc INDEX SAE FEATURE`: features firing on the same tokens.
use crate::args::CoocArgs;

use super::render;

/// Runs `scopedex cooc`.
pub fn run(args: CoocArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let body = scopedex_server::views::cooccurrence(
        &snap,
        &args.sae,
        args.feature,
        args.other_sae.as_deref(),
        args.limit,
    )?;
    if args.json {
        return render::json(&body);
    }
    println!(
        "{} feature {} — co-occurring features",
        body.sae, body.feature
    );
    println!(
        "{:>12} {:>8} {:>10} {:>8} {:>7}",
        "sae", "feature", "n_both", "jaccard", "npmi"
    );
    for p in &body.partners {
        println!(
            "{:>12} {:>8} {:>10} {:>8.4} {:>7.3}",
            p.other_sae, p.other_feature, p.n_both, p.jaccard, p.npmi
        );
    }
    Ok(())
}
