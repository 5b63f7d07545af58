//! `scopedex search INDEX "query"`: contexts by words, phrases and features (`feat:SAE/F`),
//! with their strongest features and where the query's features fire.
use crate::args::SearchArgs;

use super::render;

/// Runs `scopedex search`.
pub fn run(args: SearchArgs) -> anyhow::Result<()> {
    let snap = render::open(&args.index)?;
    let body = scopedex_server::views::search_listing(
        &snap,
        &args.query,
        args.limit,
        args.sae.as_deref(),
    )?;
    if args.json {
        return render::json(&body);
    }
    println!("{} hits for {:?}", body.hits.len(), body.query);
    for h in &body.hits {
        render::print_hit_header(h.score, h.context_id, &h.doc_id, &h.text);
        let features: Vec<String> = h
            .features
            .iter()
            .map(|f| format!("{}/{} ({:.2})", f.sae, f.feature, f.max_act))
            .collect();
        if !features.is_empty() {
            println!("    features: {}", features.join(", "));
        }
        for m in &h.matches {
            let token = h.text.get(m.start as usize..m.end as usize).unwrap_or("");
            println!(
                "    {}/{} fires {:.2} at token {} {:?}",
                m.sae, m.feature, m.max_act, m.pos, token
            );
        }
    }
    Ok(())
}
