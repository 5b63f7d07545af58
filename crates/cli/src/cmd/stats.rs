//! `scopedex stats INDEX SAE [FEATURE]`: an SAE's corpus-wide statistics, or a feature's.
use crate::args::StatsArgs;

use super::render;

/// Runs `scopedex stats`.
pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let Some(feature) = args.feature else {
        let s = scopedex_server::views::sae_summary(&snap, &args.sae)?;
        if args.json {
            return render::json(&s);
        }
        println!("SAE {} ({} → {})", s.sae_id, s.hook_in, s.hook_out);
        println!("  d_in {}  d_sae {}", s.d_in, s.d_sae);
        println!("  tokens indexed      {}", s.tokens_indexed);
        println!("  mean L0             {:.2}", s.mean_l0);
        println!("  dead features       {}", s.dead_features);
        println!("  explained variance  {:.4}", s.explained_variance);
        println!("  log10 density histogram:");
        for (i, n) in s.density_hist.iter().enumerate() {
            let lo = s.density_hist_edges.get(i).copied().unwrap_or(f32::NAN);
            println!("    ≥ {lo:>6.2}  {n}");
        }
        if let Some(w) = &s.warning {
            println!("  warning: {w}");
        }
        return Ok(());
    };
    let d = scopedex_server::views::dashboard(&snap, &args.sae, feature)?;
    if args.json {
        return render::json(&d);
    }
    println!("{} feature {} (of {})", d.sae, d.feature, d.d_sae);
    if let Some(e) = &d.explanation {
        let score = e
            .score
            .map(|s| format!(" (score {s:.2})"))
            .unwrap_or_default();
        println!("  explanation  {}{score}  [{}]", e.text, e.model);
    }
    println!("  density   {:.3e}  ({} tokens)", d.density, d.n_fired);
    println!("  max act   {:.4}", d.max_act);
    println!("  mean act  {:.4}", d.mean_act);
    println!("  activation histogram:");
    let peak = d.act_hist.iter().copied().max().unwrap_or(0).max(1);
    for (i, n) in d.act_hist.iter().enumerate() {
        let lo = d.act_hist_edges.get(i).copied().unwrap_or(f32::NAN);
        let bar = "█".repeat((n * 40 / peak) as usize);
        println!("    ≥ {lo:>9.3e} {n:>8} {bar}");
    }
    let toks = |v: Vec<(String, String)>| {
        v.into_iter()
            .map(|(t, x)| format!("{:?} {x}", render::visible(&t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  top tokens:      {}",
        toks(
            d.top_tokens
                .iter()
                .map(|t| (t.token.clone(), t.count.to_string()))
                .collect()
        )
    );
    println!(
        "  logits raised:   {}",
        toks(
            d.logit_pos
                .iter()
                .map(|t| (t.token.clone(), format!("{:+.3}", t.value)))
                .collect()
        )
    );
    println!(
        "  logits lowered:  {}",
        toks(
            d.logit_neg
                .iter()
                .map(|t| (t.token.clone(), format!("{:+.3}", t.value)))
                .collect()
        )
    );
    Ok(())
}
