//! Builders of the search, "more like this" and occurrences bodies: tantivy hits, precomputed
//! similar lists or activation log pages joined with their contexts and per-context features
//! (a page of search hits: one batched read of every hit's strongest features per SAE, plus
//! one batched read of the full lists per SAE the query names, to place the match).
use std::sync::Arc;

use scopedex_store::{ContextRecord, QueryNode, SimilarList, STRENGTH_BUCKETS};

use super::*;
use crate::error::{ApiError, ApiResult};
use crate::snapshot::Snapshot;

/// Strongest features listed per SAE in each hit.
pub const SEARCH_FEATURES_PER_SAE: usize = 5;
// Hits read them from the store's short per-context lists.
const _: () = assert!(SEARCH_FEATURES_PER_SAE <= scopedex_store::rocks::CONTEXT_TOP_FEATURES);
/// Most SAEs whose strongest features a hit lists: an index of all 256 Llama Scope SAEs would
/// otherwise list 1,280 features per hit.
pub const MAX_HIT_SAES: usize = 16;
/// Longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Most terms (words, phrase words, features) in one query (400 `too_many_terms` beyond).
pub const MAX_QUERY_TERMS: usize = 64;
/// Shared features listed per similar context.
pub use scopedex_store::SIMILAR_SHARED_FEATURES;

/// Features an `expl:` term stands for (the best matches of its text among the explanations).
pub const EXPL_TERM_FEATURES: usize = 8;

/// Rewrites every `expl:word` / `expl:"some words"` term of a context query into the features
/// whose explanation matches it best, `(feat:SAE/F OR ...)`, so explanations combine with words
/// and `feat:` terms (`expl:"legal documents" court -feat:L6R-8x/12`). A term no explanation
/// matches is a 400 naming it.
fn expand_explanation_terms(snap: &Snapshot, query: &str) -> ApiResult<String> {
    const TAG: &str = "expl:";
    if !query.contains(TAG) {
        return Ok(query.to_string());
    }
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(at) = rest.find(TAG) {
        // Only at the start of a term: after whitespace, a parenthesis or a `-`.
        let boundary = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '(' || c == '-' || c == '+');
        out.push_str(&rest[..at]);
        let after = &rest[at + TAG.len()..];
        if !boundary {
            out.push_str(TAG);
            rest = after;
            continue;
        }
        let (text, len) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], end + 2),
                None => {
                    return Err(ApiError::bad_request(
                        "invalid_query",
                        "an expl:\"...\" term has no closing quote",
                    ))
                }
            }
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == '(' || c == ')')
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "an expl: term is empty",
            ));
        }
        let hits = snap
            .reader
            .search_explanations(text, None, EXPL_TERM_FEATURES)?;
        if hits.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("no feature explanation matches expl:{text:?}"),
            ));
        }
        let terms: Vec<String> = hits
            .iter()
            .map(|h| format!("feat:{}/{}", h.sae, h.feature))
            .collect();
        out.push_str(&format!("({})", terms.join(" OR ")));
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The words a hit must (or may) contain: every text token not under a negation.
fn positive_words(n: &QueryNode, negated: bool, out: &mut std::collections::HashSet<String>) {
    match n {
        QueryNode::Text { tokens, .. } => {
            if !negated {
                out.extend(tokens.iter().cloned());
            }
        }
        QueryNode::Feature(_) => {}
        QueryNode::And(c) | QueryNode::Or(c) => {
            c.iter().for_each(|c| positive_words(c, negated, out))
        }
        QueryNode::Not(c) => positive_words(c, !negated, out),
    }
}

/// Positions of the model tokens that overlap a word of `words` in the context's text (words
/// as the text index cuts them: runs of letters and digits, lower-cased).
fn word_positions(ctx: &ContextRecord, words: &std::collections::HashSet<String>) -> Vec<u32> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut start: Option<usize> = None;
    let text = &ctx.text;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if words.contains(&text[s..i].to_lowercase()) {
                    ranges.push((s as u32, i as u32));
                }
                start = None;
            }
            _ => {}
        }
    }
    (0..ctx.tokens.len() as u32)
        .filter(|&p| {
            let (s, e) = token_range(ctx, p);
            e > s && ranges.iter().any(|&(ws, we)| s < we && e > ws)
        })
        .collect()
}

fn token_range(ctx: &ContextRecord, pos: u32) -> (u32, u32) {
    let i = pos as usize;
    match (ctx.token_starts.get(i), ctx.token_ends.get(i)) {
        (Some(&s), Some(&e)) => (s, e),
        _ => (0, 0),
    }
}

fn query_features(node: &QueryNode) -> Vec<QueryFeature> {
    fn walk(n: &QueryNode, negated: bool, out: &mut Vec<QueryFeature>) {
        match n {
            QueryNode::Text { .. } => {}
            QueryNode::Feature(f) => out.push(QueryFeature {
                sae: f.sae.clone(),
                feature: f.feature,
                min_strength: f.level.checked_sub(1).map_or(0.0, |i| STRENGTH_BUCKETS[i]),
                negated,
            }),
            QueryNode::And(c) | QueryNode::Or(c) => c.iter().for_each(|c| walk(c, negated, out)),
            QueryNode::Not(c) => walk(c, !negated, out),
        }
    }
    let mut out = Vec::new();
    walk(node, false, &mut out);
    out
}

/// Which SAEs' strongest features each hit lists, in index order: `requested` (comma-separated
/// ids, at most [`MAX_HIT_SAES`]) or by default every SAE the query names plus the others in
/// index order, [`MAX_HIT_SAES`] in all.
pub fn hit_saes<'a>(
    all: &[&'a str],
    named: &[&str],
    requested: Option<&str>,
) -> ApiResult<Vec<&'a str>> {
    let chosen: Vec<bool> = match requested.map(str::trim).filter(|r| !r.is_empty()) {
        Some(list) => {
            let mut chosen = vec![false; all.len()];
            for id in list.split(',').map(str::trim).filter(|id| !id.is_empty()) {
                let i = all.iter().position(|s| *s == id).ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_sae",
                        format!(
                            "sae: no SAE {id:?} in this index (it has {})",
                            all.join(", ")
                        ),
                    )
                })?;
                chosen[i] = true;
            }
            if chosen.iter().filter(|&&c| c).count() > MAX_HIT_SAES {
                return Err(ApiError::bad_request(
                    "too_many_saes",
                    format!("sae: at most {MAX_HIT_SAES} SAEs"),
                ));
            }
            chosen
        }
        None => {
            let mut chosen: Vec<bool> = all.iter().map(|s| named.contains(s)).collect();
            let mut room = MAX_HIT_SAES.saturating_sub(chosen.iter().filter(|&&c| c).count());
            for c in chosen.iter_mut().filter(|c| !**c) {
                if room == 0 {
                    break;
                }
                *c = true;
                room -= 1;
            }
            chosen
        }
    };
    Ok(all
        .iter()
        .zip(chosen)
        .filter_map(|(s, c)| c.then_some(*s))
        .collect())
}

/// `GET /api/search?q=&limit=` and `scopedex search`: the query language of
/// `scopedex_store::query` (words, phrases, `feat:SAE/F[>T]`, AND / OR / NOT, parentheses); each
/// hit lists the strongest features of the SAEs [`hit_saes`] picks by default.
pub fn search(snap: &Snapshot, query: &str, limit: usize) -> ApiResult<SearchResults> {
    search_listing(snap, query, limit, None)
}

/// [`search`] with the SAEs whose strongest features each hit lists (`sae`: comma-separated
/// ids, see [`hit_saes`]).
pub fn search_listing(
    snap: &Snapshot,
    query: &str,
    limit: usize,
    sae: Option<&str>,
) -> ApiResult<SearchResults> {
    check_page(limit, 0)?;
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_request(
            "query_too_long",
            format!("the query must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    if query.trim().is_empty() {
        return Err(ApiError::bad_request("empty_query", "the query is empty"));
    }
    let reader = &snap.reader;
    let expanded = expand_explanation_terms(snap, query)?;
    let node = reader.parse_query(&expanded)?;
    let terms = node.term_count();
    if terms > MAX_QUERY_TERMS {
        return Err(ApiError::bad_request(
            "too_many_terms",
            format!("the query has {terms} terms; at most {MAX_QUERY_TERMS} are accepted"),
        ));
    }
    let positive = node.positive_features();
    let hits = reader.search_parsed(&node, limit)?;
    let ids: Vec<u64> = hits.iter().map(|h| h.context_id).collect();
    let contexts = reader.contexts(&ids)?;
    let saes = reader.sae_ids();
    let features = query_features(&node);
    let named: Vec<&str> = features.iter().map(|f| f.sae.as_str()).collect();
    let listed = hit_saes(&saes, &named, sae)?;
    // Per SAE (index order): its name, when the hits list its strongest features.
    let sae_names: Vec<Option<Arc<str>>> = saes
        .iter()
        .map(|&s| listed.contains(&s).then(|| Arc::from(s)))
        .collect();
    let tops = reader.context_top_features_many(&ids)?;
    // Where the query's features fire: the full lists, only for SAEs the query names.
    let mut matches: Vec<Vec<(usize, FeatureMatch)>> = vec![Vec::new(); hits.len()];
    for sae in &saes {
        let in_query: Vec<_> = positive.iter().filter(|f| f.sae == *sae).collect();
        if in_query.is_empty() {
            continue;
        }
        reader.with_context_features_many(sae, &ids, |j, cf| {
            let Some(Some(ctx)) = contexts.get(j) else {
                return;
            };
            for f in &in_query {
                if let Some(i) = cf.position(f.feature) {
                    let (_, max_act, pos) = cf.get(i);
                    let (start, end) = token_range(ctx, pos);
                    matches[j].push((
                        f.position,
                        FeatureMatch {
                            sae: sae.to_string(),
                            feature: f.feature,
                            max_act,
                            pos,
                            start,
                            end,
                            explanation: None,
                        },
                    ));
                }
            }
        })?;
    }
    // Features whose strongest token is a matched word, from the full per-context lists.
    let mut words = std::collections::HashSet::new();
    positive_words(&node, false, &mut words);
    let mut at_words: Vec<Vec<HitFeature>> = vec![Vec::new(); hits.len()];
    if !words.is_empty() {
        let positions: Vec<Vec<u32>> = contexts
            .iter()
            .map(|c| {
                c.as_ref()
                    .map(|c| word_positions(c, &words))
                    .unwrap_or_default()
            })
            .collect();
        for name in sae_names.iter().flatten() {
            reader.with_context_features_many(name, &ids, |j, cf| {
                for (feature, max_act, pos) in cf.iter() {
                    if positions[j].contains(&pos) {
                        at_words[j].push(HitFeature {
                            sae: Arc::clone(name),
                            feature,
                            max_act,
                            explanation: None,
                        });
                    }
                }
            })?;
        }
        for list in &mut at_words {
            list.sort_by(|a, b| b.max_act.total_cmp(&a.max_act));
            list.truncate(AT_WORDS_FEATURES);
        }
    }
    let mut out = Vec::with_capacity(hits.len());
    for ((((hit, ctx), top), mut matches), at_words) in hits
        .iter()
        .zip(contexts)
        .zip(tops)
        .zip(matches)
        .zip(at_words)
    {
        let Some(ctx) = ctx else { continue };
        let mut features = Vec::new();
        for (sae, top) in sae_names.iter().zip(&top) {
            let Some(sae) = sae else { continue };
            features.extend(
                top.iter()
                    .take(SEARCH_FEATURES_PER_SAE)
                    .map(|&(feature, max_act)| HitFeature {
                        sae: Arc::clone(sae),
                        feature,
                        max_act,
                        explanation: None,
                    }),
            );
        }
        matches.sort_by_key(|m| m.0);
        matches.dedup_by(|a, b| a.1.sae == b.1.sae && a.1.feature == b.1.feature);
        out.push(SearchHitView {
            context_id: hit.context_id,
            doc_id: ctx.doc_id,
            score: hit.score,
            text: ctx.text,
            features,
            matches: matches.into_iter().map(|m| m.1).collect(),
            at_words,
        });
    }
    // Explanations of every feature listed, one batched read per SAE.
    let pairs = out.iter().flat_map(|h| {
        h.features
            .iter()
            .chain(&h.at_words)
            .map(|f| (f.sae.to_string(), f.feature))
            .chain(h.matches.iter().map(|m| (m.sae.clone(), m.feature)))
    });
    let explained = super::short_explanations(snap, pairs.collect::<Vec<_>>())?;
    for h in &mut out {
        for f in h.features.iter_mut().chain(h.at_words.iter_mut()) {
            f.explanation = explained
                .get(&(f.sae.to_string(), f.feature))
                .map(|e| e.0.clone());
        }
        for m in &mut h.matches {
            m.explanation = explained
                .get(&(m.sae.clone(), m.feature))
                .map(|e| e.0.clone());
        }
    }
    Ok(SearchResults {
        query: query.to_string(),
        features,
        feature_saes: listed.iter().map(|s| s.to_string()).collect(),
        hits: out,
    })
}

/// Joins a "more like this" list with the contexts' texts.
fn similar_body(
    snap: &Snapshot,
    list: SimilarList,
    context_id: Option<u64>,
    sae: Option<&str>,
) -> ApiResult<SimilarResults> {
    let ids: Vec<u64> = list.hits.iter().map(|h| h.context_id).collect();
    let contexts = snap.reader.contexts(&ids)?;
    let hits = list
        .hits
        .into_iter()
        .zip(contexts)
        .filter_map(|(hit, ctx)| {
            let ctx = ctx?;
            Some(SimilarHit {
                context_id: hit.context_id,
                doc_id: ctx.doc_id,
                score: hit.score,
                text: ctx.text,
                shared: hit
                    .shared
                    .into_iter()
                    .map(|f| SharedFeature {
                        sae: f.sae,
                        feature: f.feature,
                        weight: f.weight,
                        max_act: f.max_act,
                    })
                    .collect(),
            })
        })
        .collect();
    Ok(SimilarResults {
        context_id,
        sae: sae.map(str::to_string),
        terms: list.terms,
        hits,
    })
}

/// `GET /api/contexts/{id}/similar?sae=&limit=` and `scopedex similar`: contexts ranked by the
/// features they share with context `context_id`, weighted by rarity (precomputed at publish
/// for every SAE and up to [`scopedex_store::SIMILAR_LIST_LEN`] hits).
pub fn similar_to_context(
    snap: &Snapshot,
    context_id: u64,
    sae: Option<&str>,
    limit: usize,
) -> ApiResult<SimilarResults> {
    check_page(limit, 0)?;
    let list = snap
        .reader
        .similar_list(context_id, sae, limit)?
        .ok_or_else(|| {
            ApiError::not_found(
                "unknown_context",
                format!(
                    "no context {context_id} (the index has {})",
                    snap.reader.manifest().contexts
                ),
            )
        })?;
    similar_body(snap, list, Some(context_id), sae)
}

/// "More like this" for feature terms computed elsewhere (free text through the live model).
pub fn similar_to_terms(
    snap: &Snapshot,
    terms: &[String],
    sae: Option<&str>,
    limit: usize,
) -> ApiResult<SimilarResults> {
    check_page(limit, 0)?;
    let list = snap.reader.similar_list_to_terms(terms, sae, limit)?;
    similar_body(snap, list, None, sae)
}

/// `GET /api/saes/{sae}/features/{feature}/occurrences?cursor=&limit=`: every context where the
/// feature fires, from the activation log (`--keep-activations`), by increasing context id.
pub fn occurrences(
    snap: &Snapshot,
    sae: &str,
    feature: u32,
    cursor: Option<&str>,
    limit: usize,
) -> ApiResult<Occurrences> {
    check_page(limit, 0)?;
    let reader = &snap.reader;
    reader.feature(sae, feature)?; // unknown SAE / feature out of range first
    if !reader.manifest().parameters.keep_activations {
        return Err(ApiError::not_found(
            "no_activation_log",
            "this index kept no activation log; rebuild it with `scopedex index \
             --keep-activations` to page through every occurrence (the dashboard's top \
             examples are available)",
        ));
    }
    let after = match cursor {
        None | Some("") => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_cursor",
                format!("cursor must be a `next_cursor` of an earlier page, got {c:?}"),
            )
        })?),
    };
    let page = reader.occurrences(sae, feature, after, limit)?;
    let ids: Vec<u64> = page.occurrences.iter().map(|o| o.context_id).collect();
    let contexts = reader.contexts(&ids)?;
    let occurrences = page
        .occurrences
        .iter()
        .zip(contexts)
        .map(|(o, ctx)| {
            let ctx = ctx.unwrap_or_else(|| ContextRecord {
                context_id: o.context_id,
                doc_id: String::new(),
                tokens: Vec::new(),
                token_starts: Vec::new(),
                token_ends: Vec::new(),
                text: String::new(),
            });
            let (start, end) = token_range(&ctx, o.max_pos);
            OccurrenceView {
                context_id: o.context_id,
                doc_id: ctx.doc_id,
                n_positions: o.n_positions,
                max_act: o.max_act,
                max_pos: o.max_pos,
                text: ctx.text,
                start,
                end,
            }
        })
        .collect();
    Ok(Occurrences {
        sae: sae.to_string(),
        feature,
        occurrences,
        next_cursor: page.next_after.map(|a| a.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_saes_of_a_large_index_keep_the_query_saes_and_fill_in_index_order() {
        let names: Vec<String> = (0..40).map(|l| format!("L{l}R-8x")).collect();
        let all: Vec<&str> = names.iter().map(String::as_str).collect();
        // Default, no SAE named: the first MAX_HIT_SAES.
        assert_eq!(
            hit_saes(&all, &[], None).unwrap(),
            all[..MAX_HIT_SAES].to_vec()
        );
        // Named SAEs beyond the first ones are kept; the rest fill in, in index order.
        let got = hit_saes(&all, &["L30R-8x", "L2R-8x"], None).unwrap();
        assert_eq!(got.len(), MAX_HIT_SAES);
        assert!(got.contains(&"L30R-8x") && got.contains(&"L2R-8x"));
        assert_eq!(got[..MAX_HIT_SAES - 1], all[..MAX_HIT_SAES - 1]);
        assert_eq!(got[MAX_HIT_SAES - 1], "L30R-8x");
        // A small index: every SAE.
        assert_eq!(hit_saes(&all[..3], &[], None).unwrap(), all[..3].to_vec());
        // Requested: in index order, spaces and empty items ignored, blank = default.
        assert_eq!(
            hit_saes(&all, &[], Some(" L5R-8x, ,L1R-8x ")).unwrap(),
            vec!["L1R-8x", "L5R-8x"]
        );
        assert_eq!(hit_saes(&all, &[], Some(" ")).unwrap().len(), MAX_HIT_SAES);
        let e = hit_saes(&all, &[], Some("L1R-8x,nope")).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        let many = all[..MAX_HIT_SAES + 1].join(",");
        let e = hit_saes(&all, &[], Some(&many)).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
