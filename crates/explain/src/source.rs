//! Examples from a published index: a feature's stored examples (top list and interval
//! samples) cut to windows around their maximum, and contexts where the feature never fires
//! (at random, or similar in words through the text index). A context is non-activating when
//! the feature is absent from its `context_features` row, which lists every active feature
//! (see [`scopedex_store::ContextFeaturesRecord`]).
use std::collections::{HashMap, HashSet};

use scopedex_store::{ContextRecord, IndexReader};

use crate::error::{Error, Result};
use crate::sample::{Example, Rng};

/// Reads examples of one SAE's features.
#[derive(Debug, Clone)]
pub struct ExampleSource {
    reader: IndexReader,
    sae: String,
    window: usize,
}

/// Most stored examples read per feature (top list and every interval).
const MAX_STORED_EXAMPLES: usize = 4096;

impl ExampleSource {
    /// A source over `sae` of `reader`, cutting windows of `window` tokens.
    pub fn new(reader: IndexReader, sae: &str, window: usize) -> Result<Self> {
        reader.sae(sae)?;
        if window == 0 {
            return Err(Error::InvalidInput(
                "the example window must be at least 1 token".into(),
            ));
        }
        Ok(ExampleSource {
            reader,
            sae: sae.to_string(),
            window,
        })
    }

    /// The index.
    pub fn reader(&self) -> &IndexReader {
        &self.reader
    }

    /// The SAE.
    pub fn sae(&self) -> &str {
        &self.sae
    }

    /// Every stored example of `feature` as a window, and the feature's max activation (from
    /// its statistics; the examples' max when it has none). Empty when it has no examples.
    pub fn feature_examples(&self, feature: u32) -> Result<(Vec<Example>, f32)> {
        let records = self
            .reader
            .examples(&self.sae, feature, None, MAX_STORED_EXAMPLES, 0)?;
        let ids: Vec<u64> = records.iter().map(|r| r.context_id).collect();
        let contexts = self.reader.contexts(&ids)?;
        let mut out = Vec::with_capacity(records.len());
        for (r, c) in records.iter().zip(contexts) {
            let Some(c) = c else {
                return Err(Error::InvalidInput(format!(
                    "SAE {} feature {feature}: example context {} is not in the index",
                    self.sae, r.context_id
                )));
            };
            let (tokens, acts) = window(&c, &r.acts, r.max_pos as usize, self.window);
            out.push(Example {
                context_id: r.context_id,
                kind: Some(r.kind),
                max_act: r.max_act,
                tokens,
                acts,
            });
        }
        let stat_max = self
            .reader
            .feature(&self.sae, feature)?
            .map(|f| f.max_act)
            .unwrap_or(0.0);
        let max = out.iter().map(|e| e.max_act).fold(stat_max, f32::max);
        Ok((out, max))
    }

    /// Whether `feature` fires anywhere in each of `ids`.
    fn fires_in(&self, feature: u32, ids: &[u64]) -> Result<Vec<bool>> {
        let mut fires = vec![false; ids.len()];
        self.reader
            .with_context_features_many(&self.sae, ids, |i, view| {
                fires[i] = view.position(feature).is_some();
            })?;
        Ok(fires)
    }

    /// Up to `n` contexts where `feature` never fires and that are not in `exclude`, drawn at
    /// random (`similar_words == false`) or among the contexts the text index finds for the
    /// words `words` (the rest at random when those run out). Each is a random window.
    pub fn non_activating(
        &self,
        feature: u32,
        n: usize,
        exclude: &HashSet<u64>,
        similar_words: &[String],
        rng: &mut Rng,
    ) -> Result<Vec<Example>> {
        let mut chosen: Vec<u64> = Vec::with_capacity(n);
        let mut seen: HashSet<u64> = exclude.clone();
        if !similar_words.is_empty() && n > 0 {
            let query = format!(
                "({}) -feat:{}/{feature}",
                similar_words.join(" OR "),
                self.sae
            );
            let hits = self.reader.search(&query, n.saturating_mul(4).max(16))?;
            let ids: Vec<u64> = hits.iter().map(|h| h.context_id).collect();
            let fires = self.fires_in(feature, &ids)?;
            for (id, f) in ids.into_iter().zip(fires) {
                if chosen.len() < n && !f && seen.insert(id) {
                    chosen.push(id);
                }
            }
        }
        let total = self.reader.num_contexts();
        let mut tries = 0;
        while chosen.len() < n && total > 0 && tries < 20 {
            tries += 1;
            let ids: Vec<u64> = (0..(n - chosen.len()) * 2)
                .map(|_| rng.next_u64() % total)
                .collect();
            let fires = self.fires_in(feature, &ids)?;
            for (id, f) in ids.into_iter().zip(fires) {
                if chosen.len() < n && !f && seen.insert(id) {
                    chosen.push(id);
                }
            }
        }
        let contexts = self.reader.contexts(&chosen)?;
        let mut out = Vec::with_capacity(chosen.len());
        for (id, c) in chosen.into_iter().zip(contexts) {
            let Some(c) = c else { continue };
            let len = c.tokens.len().max(1);
            let center = rng.below(len);
            let zeros = vec![0.0; c.tokens.len()];
            let (tokens, acts) = window(&c, &zeros, center, self.window);
            out.push(Example {
                context_id: id,
                kind: None,
                max_act: 0.0,
                tokens,
                acts,
            });
        }
        Ok(out)
    }
}

/// The words (lower-case, letters and digits) of the tokens where `examples` fire, most
/// frequent first, at most `k`: the query for non-activating contexts similar in words.
pub fn activating_words(examples: &[Example], k: usize) -> Vec<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for e in examples {
        for (t, &a) in e.tokens.iter().zip(&e.acts) {
            if a > 0.0 {
                let w: String = t
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_lowercase)
                    .collect();
                // Words the query language reads as operators are left out.
                if w.len() >= 2 && !matches!(w.as_str(), "or" | "and" | "not") {
                    *counts.entry(w).or_default() += 1;
                }
            }
        }
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(k).map(|(w, _)| w).collect()
}

/// The token strings of a context as they appear in its text (a gap before the next token
/// goes with the token before it), and the activations, for `len` tokens around `center`:
/// three quarters before it, as a causal model reads the context before the token. Tokens
/// with no text (BOS) are left out.
pub fn window(
    c: &ContextRecord,
    acts: &[f32],
    center: usize,
    len: usize,
) -> (Vec<String>, Vec<f32>) {
    let n = c.tokens.len();
    if n == 0 {
        return (Vec::new(), Vec::new());
    }
    let center = center.min(n - 1);
    let before = len - len / 4 - 1;
    let mut start = center.saturating_sub(before);
    let end = (start + len).min(n);
    start = end.saturating_sub(len);
    let bytes = c.text.as_bytes();
    let mut tokens = Vec::with_capacity(end - start);
    let mut values = Vec::with_capacity(end - start);
    for i in start..end {
        let s = c.token_starts.get(i).copied().unwrap_or(0) as usize;
        let e = c.token_ends.get(i).copied().unwrap_or(0) as usize;
        if e <= s || e > bytes.len() {
            continue;
        }
        let next = c
            .token_starts
            .get(i + 1)
            .map(|&x| x as usize)
            .filter(|&x| x > e && x <= bytes.len())
            .unwrap_or(e);
        tokens.push(String::from_utf8_lossy(&bytes[s..next]).into_owned());
        values.push(acts.get(i).copied().unwrap_or(0.0));
    }
    (tokens, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ContextRecord {
        // BOS, "The", " cat", " sat", "." with a gap of two spaces before "sat".
        let text = "The cat  sat.".to_string();
        ContextRecord {
            context_id: 0,
            doc_id: "d".into(),
            tokens: vec![1, 2, 3, 4, 5],
            token_starts: vec![0, 0, 3, 8, 12],
            token_ends: vec![0, 3, 7, 12, 13],
            text,
        }
    }

    #[test]
    fn windows_follow_the_text_and_skip_bos() {
        let acts = [0.0, 0.1, 0.2, 0.3, 0.4];
        let (t, a) = window(&ctx(), &acts, 3, 8);
        assert_eq!(t, vec!["The", " cat ", " sat", "."]);
        assert_eq!(a, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(t.concat(), "The cat  sat.");
        // Three tokens ending at the max: two before it.
        let (t, _) = window(&ctx(), &acts, 3, 3);
        assert_eq!(t, vec!["The", " cat ", " sat"]);
        let (t, _) = window(&ctx(), &acts, 2, 4);
        assert_eq!(t, vec!["The", " cat ", " sat"], "two before, one after");
        let (t, _) = window(&ctx(), &acts, 0, 2);
        assert_eq!(t, vec!["The"], "BOS is dropped from the window [0, 2)");
    }

    #[test]
    fn activating_words_skip_operators_and_short_tokens() {
        let e = Example {
            context_id: 0,
            kind: None,
            max_act: 1.0,
            tokens: vec![
                " Court".into(),
                " or".into(),
                " court".into(),
                ",".into(),
                " law".into(),
            ],
            acts: vec![1.0, 1.0, 1.0, 1.0, 0.0],
        };
        assert_eq!(activating_words(&[e], 5), vec!["court".to_string()]);
    }
}
