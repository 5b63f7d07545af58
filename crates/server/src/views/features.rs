//! Builders of the index, SAE and feature bodies.
use std::sync::atomic::{AtomicU64, Ordering};

use scopedex_store::{ExampleKind, ExampleRecord, IndexReader};

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::{FeatureSort, Snapshot};
use crate::tokens::TokenTable;

/// Top examples on the dashboard (more via `.../examples?kind=top&offset=`).
pub const DASHBOARD_TOP: usize = 16;
/// Examples per interval on the dashboard (more via `.../examples?kind=interval_{i}`).
pub const DASHBOARD_PER_INTERVAL: usize = 4;
/// Co-occurrence partners on the dashboard.
pub const DASHBOARD_COOC: usize = 16;

/// `GET /api/index`.
pub fn index_info(snap: &Snapshot) -> IndexInfo {
    let m = snap.reader.manifest();
    IndexInfo {
        format_version: m.format_version,
        model: ModelBrief {
            id: m.model.id.clone(),
            sha256: m.model.sha256.clone(),
        },
        corpus: CorpusBrief {
            files: m.corpus.iter().map(|c| c.path.clone()).collect(),
        },
        ctx_len: m.ctx_len,
        n_contexts: m.contexts,
        saes: m.saes.iter().map(|s| s.id.clone()).collect(),
        created: m.created.clone(),
    }
}

/// `GET /api/saes/{sae}`: the stored summary, or zeros when the indexer wrote none.
pub fn sae_summary(snap: &Snapshot, sae: &str) -> ApiResult<SaeSummaryView> {
    let entry = snap.reader.sae(sae)?;
    let s = snap.reader.sae_summary(sae)?;
    let mut v = SaeSummaryView {
        sae_id: entry.id.clone(),
        d_in: entry.d_in,
        d_sae: entry.d_sae,
        hook_in: entry.hook_in.clone(),
        hook_out: entry.hook_out.clone(),
        tokens_indexed: 0,
        mean_l0: 0.0,
        dead_features: 0,
        explained_variance: 0.0,
        density_hist: Vec::new(),
        density_hist_edges: Vec::new(),
        warning: None,
    };
    if let Some(s) = s {
        v.tokens_indexed = s.tokens_indexed;
        v.mean_l0 = s.mean_l0;
        v.dead_features = s.dead_features;
        v.explained_variance = s.explained_variance;
        v.density_hist = s.density_hist;
        v.density_hist_edges = s.density_hist_edges;
    }
    if let Some(k) = entry.k.filter(|&k| k > 0 && v.tokens_indexed > 0) {
        let k = f64::from(k);
        if v.mean_l0 < 0.5 * k || v.mean_l0 > 1.5 * k {
            v.warning = Some(format!(
                "mean L0 {:.1} is far from the SAE's k = {k}: check that the hook and input \
                 normalisation match the SAE",
                v.mean_l0
            ));
        }
    }
    Ok(v)
}

/// `GET /api/saes`.
pub fn sae_summaries(snap: &Snapshot) -> ApiResult<SaeList> {
    let saes = snap
        .reader
        .sae_ids()
        .into_iter()
        .map(|id| sae_summary(snap, id))
        .collect::<ApiResult<_>>()?;
    Ok(SaeList { saes })
}

/// Parameters of `GET /api/saes/{sae}/features`.
#[derive(Debug, Clone, Copy)]
pub struct FeatureListParams {
    /// Sort key.
    pub sort: FeatureSort,
    /// Descending when true.
    pub descending: bool,
    /// Only features that fired.
    pub live: bool,
    /// Page size.
    pub limit: usize,
    /// Page start.
    pub offset: usize,
}

/// `GET /api/saes/{sae}/features`: a page of the precomputed order.
pub fn feature_list(snap: &Snapshot, sae: &str, p: FeatureListParams) -> ApiResult<FeatureList> {
    check_page(p.limit, p.offset)?;
    let table = snap.feature_table(sae)?;
    let order = table.order(p.sort, p.live);
    let page = |ids: &mut dyn Iterator<Item = &u32>| -> Vec<FeatureBrief> {
        ids.skip(p.offset)
            .take(p.limit)
            .map(|&f| {
                let b = &table.briefs[f as usize];
                FeatureBrief {
                    feature: b.feature,
                    density: b.density,
                    max_act: b.max_act,
                    mean_act: b.mean_act,
                    explanation: None,
                    explanation_score: None,
                }
            })
            .collect()
    };
    let mut features = if p.descending {
        page(&mut order.iter().rev())
    } else {
        page(&mut order.iter())
    };
    let ids: Vec<u32> = features.iter().map(|f| f.feature).collect();
    for (brief, e) in features
        .iter_mut()
        .zip(snap.reader.explanations_many(sae, &ids)?)
    {
        if let Some(e) = e {
            brief.explanation_score = super::headline_score(&e);
            brief.explanation = Some(e.text);
        }
    }
    Ok(FeatureList {
        sae: sae.to_string(),
        total: order.len(),
        features,
    })
}

/// `GET /api/saes/{sae}/random`: a uniformly drawn live feature (404 when none fired).
pub fn random_feature(snap: &Snapshot, sae: &str) -> ApiResult<RandomFeature> {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let table = snap.feature_table(sae)?;
    let live = table.order(FeatureSort::Feature, true);
    if live.is_empty() {
        return Err(ApiError::not_found(
            "no_live_feature",
            format!("no feature of SAE {sae:?} fired on the indexed corpus"),
        ));
    }
    let seed = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let i = (scopedex_store::fixture::mix(seed) % live.len() as u64) as usize;
    Ok(RandomFeature {
        sae: sae.to_string(),
        feature: live[i],
    })
}

/// Parses an examples `kind`: `top`, `interval` (every interval: `None` inside) or
/// `interval_{i}`.
fn parse_kind(kind: &str) -> ApiResult<Option<ExampleKind>> {
    if kind == "interval" {
        return Ok(None);
    }
    ExampleKind::parse(kind).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_kind",
            format!("kind must be `top`, `interval` or `interval_{{i}}`, got {kind:?}"),
        )
    })
}

/// `GET .../examples?kind=&limit=&offset=` and `scopedex top`.
pub fn examples(
    snap: &Snapshot,
    sae: &str,
    feature: u32,
    kind: &str,
    limit: usize,
    offset: usize,
) -> ApiResult<Examples> {
    check_page(limit, offset)?;
    let kind = parse_kind(kind)?;
    let records = match kind {
        Some(k) => snap.reader.examples(sae, feature, Some(k), limit, offset)?,
        None => {
            // All intervals: every example of the feature (a bounded list), minus the top ones.
            let all = snap.reader.examples(sae, feature, None, usize::MAX, 0)?;
            all.into_iter()
                .filter(|e| e.kind != ExampleKind::Top)
                .skip(offset)
                .take(limit)
                .collect()
        }
    };
    Ok(Examples {
        sae: sae.to_string(),
        feature,
        examples: example_views(&snap.reader, snap.tokens(), &records)?,
    })
}

/// Joins examples with their contexts (one batched read); examples whose context is missing
/// are left out.
fn example_views(
    reader: &IndexReader,
    tokens: &TokenTable,
    records: &[ExampleRecord],
) -> ApiResult<Vec<ExampleView>> {
    let ids: Vec<u64> = records.iter().map(|r| r.context_id).collect();
    let contexts = reader.contexts(&ids)?;
    Ok(records
        .iter()
        .zip(contexts)
        .filter_map(|(r, c)| {
            let c = c?;
            let n = c.tokens.len();
            let mut acts = r.acts.clone();
            acts.resize(n, 0.0);
            Some(ExampleView {
                kind: r.kind.as_string(),
                rank: r.rank,
                context_id: r.context_id,
                doc_id: c.doc_id,
                max_act: r.max_act,
                max_pos: r.max_pos,
                tokens: c.tokens.iter().map(|&t| tokens.text(t)).collect(),
                token_ids: c.tokens,
                acts,
            })
        })
        .collect())
}

/// `GET .../cooccurrence` and `scopedex cooc`.
pub fn cooccurrence(
    snap: &Snapshot,
    sae: &str,
    feature: u32,
    other_sae: Option<&str>,
    limit: usize,
) -> ApiResult<Cooccurrence> {
    check_page(limit, 0)?;
    let partners = snap
        .reader
        .cooccurrence(sae, feature, other_sae, limit)?
        .into_iter()
        .map(|r| Partner {
            other_sae: r.other_sae,
            other_feature: r.other_feature,
            n_both: r.n_both,
            jaccard: r.jaccard,
            npmi: r.npmi,
        })
        .collect();
    Ok(Cooccurrence {
        sae: sae.to_string(),
        feature,
        partners,
    })
}

/// `GET /api/saes/{sae}/features/{feature}` and `scopedex stats SAE FEATURE`: statistics, the
/// first top examples, a few examples per interval, logits and co-occurrence, from one feature
/// read, one examples scan, one batched context read and one co-occurrence read.
pub fn dashboard(snap: &Snapshot, sae: &str, feature: u32) -> ApiResult<FeatureDashboard> {
    let reader = &snap.reader;
    let entry = reader.sae(sae)?;
    let d_sae = entry.d_sae;
    let f = reader.feature(sae, feature)?.ok_or_else(|| {
        ApiError::not_found(
            "feature_not_indexed",
            format!("feature {feature} of SAE {sae:?} has no statistics in this index"),
        )
    })?;
    let n_intervals = reader.manifest().parameters.intervals as usize;
    let act_hist_edges = reader
        .sae_summary(sae)?
        .map(|s| s.act_hist_edges)
        .unwrap_or_default();

    let all = reader.examples(sae, feature, None, usize::MAX, 0)?;
    let mut per_interval = vec![0usize; n_intervals];
    let mut top_count = 0usize;
    let chosen: Vec<ExampleRecord> = all
        .into_iter()
        .filter(|e| match e.kind {
            ExampleKind::Top => {
                top_count += 1;
                top_count <= DASHBOARD_TOP
            }
            ExampleKind::Interval(i) => per_interval.get_mut(usize::from(i)).is_some_and(|n| {
                *n += 1;
                *n <= DASHBOARD_PER_INTERVAL
            }),
        })
        .collect();
    let views = example_views(reader, snap.tokens(), &chosen)?;
    let mut top_examples = Vec::new();
    let width = f.max_act / n_intervals.max(1) as f32;
    let mut intervals: Vec<Interval> = (0..n_intervals)
        .map(|i| Interval {
            interval: i as u16,
            min: width * i as f32,
            max: if i + 1 == n_intervals {
                f.max_act
            } else {
                width * (i + 1) as f32
            },
            examples: Vec::new(),
        })
        .collect();
    for (v, r) in views.into_iter().zip(chosen.iter().map(|r| r.kind)) {
        match r {
            ExampleKind::Top => top_examples.push(v),
            ExampleKind::Interval(i) => {
                if let Some(iv) = intervals.get_mut(usize::from(i)) {
                    iv.examples.push(v);
                }
            }
        }
    }
    let cooc = cooccurrence(snap, sae, feature, None, DASHBOARD_COOC)?.partners;
    let decoder_neighbours = snap
        .reader
        .neighbours(sae, feature)?
        .into_iter()
        .map(|n| super::Neighbour {
            other_sae: n.other_sae,
            other_feature: n.other_feature,
            cosine: n.cosine,
        })
        .collect();
    let tv = |v: &[scopedex_store::TokenValue]| -> Vec<TokenValueView> {
        v.iter()
            .map(|t| TokenValueView {
                token_id: t.token,
                token: snap.tokens().text(t.token),
                value: t.value,
            })
            .collect()
    };
    Ok(FeatureDashboard {
        sae: sae.to_string(),
        feature,
        d_sae,
        density: f.density,
        n_fired: f.n_fired,
        max_act: f.max_act,
        mean_act: f.mean_act,
        top_tokens: f
            .top_tokens
            .iter()
            .map(|t| TokenCountView {
                token_id: t.token,
                token: snap.tokens().text(t.token),
                count: t.count,
            })
            .collect(),
        logit_pos: tv(&f.logit_pos),
        logit_neg: tv(&f.logit_neg),
        logit_hist: f.logit_hist,
        logit_hist_range: [f.logit_hist_min, f.logit_hist_max],
        act_hist: f.act_hist,
        act_hist_edges,
        top_examples,
        intervals,
        cooccurrence: cooc,
        decoder_neighbours,
        explanation: reader
            .explanation(sae, feature)?
            .map(super::explanation_view),
    })
}
