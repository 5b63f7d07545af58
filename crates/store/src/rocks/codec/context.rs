//! Values keyed by context id (`contexts`, `context_features`, `context_top`, `similar`), and
//! [`ContextFeaturesView`], which reads a context's features in place.
use super::bytes::{le_f32, le_u32, Dec, Enc};
use crate::error::{Error, Result};
use crate::records::{ContextFeaturesRecord, ContextRecord};
use crate::similar::{SharedFeature, SimilarContext, SimilarList};

pub(crate) fn encode_context(r: &ContextRecord) -> Result<Vec<u8>> {
    let n = r.tokens.len();
    if r.token_starts.len() != n || r.token_ends.len() != n {
        return Err(Error::InvalidInput(format!(
            "context {}: {} tokens but {} starts and {} ends",
            r.context_id,
            n,
            r.token_starts.len(),
            r.token_ends.len()
        )));
    }
    let mut e = Enc::new(16 + r.doc_id.len() + n * 12 + r.text.len());
    e.str(&r.doc_id);
    e.len(n);
    for v in [&r.tokens, &r.token_starts, &r.token_ends] {
        v.iter().for_each(|&t| e.u32(t));
    }
    e.str(&r.text);
    Ok(e.0)
}

pub(crate) fn decode_context(context_id: u64, mut d: Dec<'_>) -> Result<ContextRecord> {
    let doc_id = d.str()?;
    let n = d.count(12)?;
    let read = |d: &mut Dec<'_>| (0..n).map(|_| d.u32()).collect::<Result<Vec<u32>>>();
    let tokens = read(&mut d)?;
    let token_starts = read(&mut d)?;
    let token_ends = read(&mut d)?;
    let text = d.str()?;
    d.end()?;
    Ok(ContextRecord {
        context_id,
        doc_id,
        tokens,
        token_starts,
        token_ends,
        text,
    })
}

pub(crate) fn encode_context_features(r: &ContextFeaturesRecord) -> Result<Vec<u8>> {
    let n = r.features.len();
    if r.max_acts.len() != n || r.max_pos.len() != n {
        return Err(Error::InvalidInput(format!(
            "context {}: {} features but {} max_acts and {} max_pos",
            r.context_id,
            n,
            r.max_acts.len(),
            r.max_pos.len()
        )));
    }
    let mut e = Enc::new(4 + n * 12);
    e.len(n);
    r.features.iter().for_each(|&f| e.u32(f));
    r.max_acts.iter().for_each(|&a| e.f32(a));
    r.max_pos.iter().for_each(|&p| e.u32(p));
    Ok(e.0)
}

pub(crate) fn decode_context_features(
    context_id: u64,
    d: Dec<'_>,
) -> Result<ContextFeaturesRecord> {
    let v = ContextFeaturesView::decode(d)?;
    Ok(ContextFeaturesRecord {
        context_id,
        features: v.features.chunks_exact(4).map(le_u32).collect(),
        max_acts: v.max_acts.chunks_exact(4).map(le_f32).collect(),
        max_pos: v.max_pos.chunks_exact(4).map(le_u32).collect(),
    })
}

/// A context's features read in place from the stored value: what a search hit needs (the
/// strongest few, or a lookup of some features) without decoding the ~hundreds of entries a
/// context holds per SAE.
#[derive(Debug, Clone, Copy)]
pub struct ContextFeaturesView<'a> {
    features: &'a [u8],
    max_acts: &'a [u8],
    max_pos: &'a [u8],
}

impl<'a> ContextFeaturesView<'a> {
    pub(crate) fn decode(mut d: Dec<'a>) -> Result<Self> {
        let n = d.count(12)?;
        let features = d.take(4 * n)?;
        let max_acts = d.take(4 * n)?;
        let max_pos = d.take(4 * n)?;
        d.end()?;
        Ok(ContextFeaturesView {
            features,
            max_acts,
            max_pos,
        })
    }

    /// Number of active features.
    pub fn len(&self) -> usize {
        self.features.len() / 4
    }

    /// Whether no feature is active.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The `i`-th feature (strongest first), its max activation and the position of that max.
    pub fn get(&self, i: usize) -> (u32, f32, u32) {
        let r = 4 * i..4 * i + 4;
        (
            le_u32(&self.features[r.clone()]),
            le_f32(&self.max_acts[r.clone()]),
            le_u32(&self.max_pos[r]),
        )
    }

    /// Every `(feature, max_act, max_pos)`, strongest first.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32, u32)> + 'a {
        let v = *self;
        (0..v.len()).map(move |i| v.get(i))
    }

    /// The index of `feature` in the list, if active.
    pub fn position(&self, feature: u32) -> Option<usize> {
        self.features
            .chunks_exact(4)
            .position(|b| le_u32(b) == feature)
    }
}

/// `per_sae[i]`: the strongest features of the manifest's SAE `i` and their max activations.
pub(crate) fn encode_context_top(per_sae: &[(&[u32], &[f32])]) -> Result<Vec<u8>> {
    let mut e = Enc::new(4 + per_sae.iter().map(|(f, _)| 4 + 8 * f.len()).sum::<usize>());
    e.len(per_sae.len());
    for (features, acts) in per_sae {
        if features.len() != acts.len() {
            return Err(Error::InvalidInput(format!(
                "{} features but {} max_acts",
                features.len(),
                acts.len()
            )));
        }
        e.len(features.len());
        features.iter().for_each(|&f| e.u32(f));
        acts.iter().for_each(|&a| e.f32(a));
    }
    Ok(e.0)
}

/// Calls `f(sae index, feature, max_act)` for every stored feature, strongest first per SAE.
pub(crate) fn decode_context_top(mut d: Dec<'_>, mut f: impl FnMut(usize, u32, f32)) -> Result<()> {
    let n_saes = d.count(4)?;
    for sae in 0..n_saes {
        let n = d.count(8)?;
        let features = d.take(4 * n)?;
        let acts = d.take(4 * n)?;
        for (fb, ab) in features.chunks_exact(4).zip(acts.chunks_exact(4)) {
            f(sae, le_u32(fb), le_f32(ab));
        }
    }
    d.end()
}

/// `saes`: the manifest's SAE ids, which the shared features are stored as indices into.
pub(crate) fn encode_similar(l: &SimilarList, saes: &[String]) -> Vec<u8> {
    let shared: usize = l.hits.iter().map(|h| h.shared.len()).sum();
    let mut e = Enc::new(8 + l.hits.len() * 16 + shared * 14);
    e.len(l.terms);
    e.len(l.hits.len());
    for h in &l.hits {
        e.u64(h.context_id);
        e.f32(h.score);
        e.len(h.shared.len());
        for s in &h.shared {
            // Shared features come from the manifest's SAEs (fewer than 65536).
            let i = saes.iter().position(|x| *x == s.sae).unwrap_or(usize::MAX);
            e.u16(u16::try_from(i).unwrap_or(u16::MAX));
            e.u32(s.feature);
            e.f32(s.weight);
            e.f32(s.max_act);
        }
    }
    e.0
}

pub(crate) fn decode_similar(mut d: Dec<'_>, saes: &[&str]) -> Result<SimilarList> {
    let terms = d.u32()? as usize;
    let hits = d.vec(16, |d| {
        let context_id = d.u64()?;
        let score = d.f32()?;
        let shared = d.vec(14, |d| {
            let i = d.u16()? as usize;
            let sae = saes
                .get(i)
                .ok_or_else(|| d.err(format!("SAE index {i}, the manifest has {}", saes.len())))?;
            Ok(SharedFeature {
                sae: sae.to_string(),
                feature: d.u32()?,
                weight: d.f32()?,
                max_act: d.f32()?,
            })
        })?;
        Ok(SimilarContext {
            context_id,
            score,
            shared,
        })
    })?;
    d.end()?;
    Ok(SimilarList { terms, hits })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec<'a>(buf: &'a [u8]) -> Dec<'a> {
        Dec::new("test", b"k", buf).unwrap()
    }

    #[test]
    fn context_features_round_trip() {
        let r = ContextFeaturesRecord {
            context_id: 9,
            features: vec![3, 1, 7],
            max_acts: vec![2.5, 1.0, 0.25],
            max_pos: vec![4, 1, 9],
        };
        let bytes = encode_context_features(&r).unwrap();
        assert_eq!(decode_context_features(9, dec(&bytes)).unwrap(), r);
        for cut in 1..bytes.len() {
            assert!(decode_context_features(9, dec(&bytes[..cut])).is_err());
        }
        let bad = ContextFeaturesRecord {
            max_acts: vec![1.0],
            ..r
        };
        assert!(encode_context_features(&bad).is_err());
    }

    #[test]
    fn context_top_round_trips() {
        let bytes =
            encode_context_top(&[(&[5, 1], &[2.0, 1.0]), (&[], &[]), (&[9], &[0.5])]).unwrap();
        let mut got = Vec::new();
        decode_context_top(dec(&bytes), |s, f, a| got.push((s, f, a))).unwrap();
        assert_eq!(got, vec![(0, 5, 2.0), (0, 1, 1.0), (2, 9, 0.5)]);
        for cut in 1..bytes.len() {
            assert!(decode_context_top(dec(&bytes[..cut]), |_, _, _| ()).is_err());
        }
        assert!(encode_context_top(&[(&[1], &[])]).is_err());
    }

    #[test]
    fn similar_lists_round_trip() {
        let saes = ["a".to_string(), "b-8x".to_string()];
        let l = SimilarList {
            terms: 300,
            hits: vec![
                SimilarContext {
                    context_id: 1 << 33,
                    score: 9.5,
                    shared: vec![
                        SharedFeature {
                            sae: "b-8x".into(),
                            feature: 70_000,
                            weight: 4.0,
                            max_act: 1.25,
                        },
                        SharedFeature {
                            sae: "a".into(),
                            feature: 2,
                            weight: 3.0,
                            max_act: 0.5,
                        },
                    ],
                },
                SimilarContext {
                    context_id: 4,
                    score: 1.0,
                    shared: vec![],
                },
            ],
        };
        let bytes = encode_similar(&l, &saes);
        assert_eq!(decode_similar(dec(&bytes), &["a", "b-8x"]).unwrap(), l);
        for cut in 1..bytes.len() {
            assert!(decode_similar(dec(&bytes[..cut]), &["a", "b-8x"]).is_err());
        }
        // An SAE index beyond the manifest is corruption, not a panic.
        let err = decode_similar(dec(&bytes), &["a"]).unwrap_err().to_string();
        assert!(err.contains("SAE index 1"), "{err}");
    }
}
