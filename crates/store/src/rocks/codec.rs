//! The versioned binary value encoding of the serving store (hand-written, no dependency).
//!
//! Every value starts with one version byte ([`VALUE_VERSION`]), then fields in a fixed order,
//! little-endian; variable-length parts are a `u32` count then the items; strings are a `u32`
//! byte length then UTF-8. Fields that are part of the key (SAE, feature, kind, rank, context
//! id) are not repeated in the value. Decoding checks every length against the bytes left and
//! that nothing trails, and reports the column family and key (hex) of a bad value.
//!
//! | value | layout after the version byte |
//! |---|---|
//! | feature | n_fired u64, density f64, max_act f32, mean_act f32, act_hist [u64], top_tokens [(u32 token, u64 count)], logit_pos [(u32, f32)], logit_neg [(u32, f32)], then (absent in older stores) logit_hist [u64], logit_hist_min f32, logit_hist_max f32 |
//! | example | context_id u64, max_pos u32, max_act f32, acts: tag u8 = 0 dense: [f32]; tag 1 sparse: len u32, [(u16 pos, f32 value)] of the nonzeros |
//! | cooc | other SAE names [string], partners [(u16 name index, u32 other_feature, u64 n_both, f32 jaccard, f32 npmi)], sorted by n_both desc, then name, feature |
//! | context | doc_id string, tokens [u32], token_starts [u32] and token_ends [u32] (same count as tokens, no count of their own), text string |
//! | context features | features [u32], max_acts [f32] (same count as features, no count of its own) |
//! | context top | per SAE of the manifest [(features [u32], max_acts [f32] (same count, no count of its own))] |
//! | similar | terms u32, hits [(context_id u64, score f32, shared [(u16 SAE index in the manifest, u32 feature, f32 weight, f32 max_act)])] |
//! | summary | sae_id string, d_in u32, d_sae u32, tokens_indexed u64, mean_l0 f64, dead_features u32, explained_variance f64, act_hist_edges [f32], density_hist_edges [f32], density_hist [u64] |
use crate::error::{Error, Result};
use crate::records::{
    ContextFeaturesRecord, ContextRecord, CooccurrenceRecord, ExampleKind, ExampleRecord,
    FeatureRecord, NeighbourRecord, SaeSummary, TokenCount, TokenValue,
};
use crate::similar::{SharedFeature, SimilarContext, SimilarList};

/// Version byte of every value written by this build.
pub(crate) const VALUE_VERSION: u8 = 1;

struct Enc(Vec<u8>);

impl Enc {
    fn new(capacity: usize) -> Self {
        let mut v = Vec::with_capacity(capacity + 1);
        v.push(VALUE_VERSION);
        Enc(v)
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        // Counts come from in-memory Vecs of records far below 4 G items.
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
}

/// Reads a value, turning every short read into [`Error::Corrupt`] naming cf and key.
pub(crate) struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    cf: &'static str,
    key: &'a [u8],
}

impl<'a> Dec<'a> {
    pub(crate) fn new(cf: &'static str, key: &'a [u8], buf: &'a [u8]) -> Result<Self> {
        let mut d = Dec {
            buf,
            pos: 0,
            cf,
            key,
        };
        let v = d.u8()?;
        if v != VALUE_VERSION {
            return Err(d.err(format!(
                "value version {v}, this build reads {VALUE_VERSION}"
            )));
        }
        Ok(d)
    }

    fn err(&self, reason: impl Into<String>) -> Error {
        Error::corrupt(
            format!("rocksdb:{}:{}", self.cf, hex::encode(self.key)),
            reason,
        )
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated: need {n} bytes at offset {}, value has {}",
                self.pos,
                self.buf.len()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.arr()?))
    }
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.arr()?))
    }
    /// A count of items of `item_bytes` each, checked against the bytes left.
    fn count(&mut self, item_bytes: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        let left = self.buf.len() - self.pos;
        if n.saturating_mul(item_bytes.max(1)) > left {
            return Err(self.err(format!("count {n} exceeds the {left} bytes left")));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.count(1)?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }
    fn vec<T>(
        &mut self,
        item_bytes: usize,
        mut f: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.count(item_bytes)?;
        (0..n).map(|_| f(self)).collect()
    }
    fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    fn end(self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(self.err(format!("{} trailing bytes", self.buf.len() - self.pos)))
        }
    }
}

// ---------------------------------------------------------------------------------------------

pub(crate) fn encode_feature(r: &FeatureRecord) -> Vec<u8> {
    let mut e = Enc::new(
        40 + r.act_hist.len() * 8
            + r.top_tokens.len() * 12
            + (r.logit_pos.len() + r.logit_neg.len()) * 8,
    );
    e.u64(r.n_fired);
    e.f64(r.density);
    e.f32(r.max_act);
    e.f32(r.mean_act);
    e.len(r.act_hist.len());
    r.act_hist.iter().for_each(|&v| e.u64(v));
    e.len(r.top_tokens.len());
    for t in &r.top_tokens {
        e.u32(t.token);
        e.u64(t.count);
    }
    for list in [&r.logit_pos, &r.logit_neg] {
        e.len(list.len());
        for t in list {
            e.u32(t.token);
            e.f32(t.value);
        }
    }
    // Appended later: a value that ends before it (older stores) decodes with no histogram.
    e.len(r.logit_hist.len());
    r.logit_hist.iter().for_each(|&v| e.u64(v));
    e.f32(r.logit_hist_min);
    e.f32(r.logit_hist_max);
    e.0
}

pub(crate) fn decode_feature(feature: u32, mut d: Dec<'_>) -> Result<FeatureRecord> {
    let token_value = |d: &mut Dec<'_>| {
        Ok(TokenValue {
            token: d.u32()?,
            value: d.f32()?,
        })
    };
    let r = FeatureRecord {
        feature,
        n_fired: d.u64()?,
        density: d.f64()?,
        max_act: d.f32()?,
        mean_act: d.f32()?,
        act_hist: d.vec(8, Dec::u64)?,
        top_tokens: d.vec(12, |d| {
            Ok(TokenCount {
                token: d.u32()?,
                count: d.u64()?,
            })
        })?,
        logit_pos: d.vec(8, token_value)?,
        logit_neg: d.vec(8, token_value)?,
        logit_hist: Vec::new(),
        logit_hist_min: 0.0,
        logit_hist_max: 0.0,
    };
    let mut r = r;
    if !d.at_end() {
        r.logit_hist = d.vec(8, Dec::u64)?;
        r.logit_hist_min = d.f32()?;
        r.logit_hist_max = d.f32()?;
    }
    d.end()?;
    Ok(r)
}

pub(crate) fn encode_example(r: &ExampleRecord) -> Vec<u8> {
    let nonzero = r.acts.iter().filter(|&&a| a != 0.0).count();
    // Sparse costs 6 bytes per nonzero, dense 4 per position.
    let sparse = r.acts.len() <= usize::from(u16::MAX) + 1 && nonzero * 6 + 4 < r.acts.len() * 4;
    let mut e = Enc::new(
        24 + if sparse {
            nonzero * 6
        } else {
            r.acts.len() * 4
        },
    );
    e.u64(r.context_id);
    e.u32(r.max_pos);
    e.f32(r.max_act);
    if sparse {
        e.u8(1);
        e.len(r.acts.len());
        e.len(nonzero);
        for (p, &a) in r.acts.iter().enumerate() {
            if a != 0.0 {
                e.u16(p as u16);
                e.f32(a);
            }
        }
    } else {
        e.u8(0);
        e.len(r.acts.len());
        r.acts.iter().for_each(|&a| e.f32(a));
    }
    e.0
}

pub(crate) fn decode_example(
    feature: u32,
    kind: ExampleKind,
    rank: u16,
    mut d: Dec<'_>,
) -> Result<ExampleRecord> {
    let context_id = d.u64()?;
    let max_pos = d.u32()?;
    let max_act = d.f32()?;
    let acts = match d.u8()? {
        0 => d.vec(4, Dec::f32)?,
        1 => {
            let len = d.u32()? as usize;
            if len > usize::from(u16::MAX) + 1 {
                return Err(d.err(format!("sparse acts of length {len}")));
            }
            let mut acts = vec![0.0f32; len];
            for _ in 0..d.count(6)? {
                let p = usize::from(d.u16()?);
                let v = d.f32()?;
                *acts
                    .get_mut(p)
                    .ok_or_else(|| d.err(format!("position {p} >= length {len}")))? = v;
            }
            acts
        }
        t => return Err(d.err(format!("unknown acts tag {t}"))),
    };
    d.end()?;
    Ok(ExampleRecord {
        feature,
        kind,
        rank,
        context_id,
        max_pos,
        max_act,
        acts,
    })
}

/// The distinct SAE names of a list, in first-seen order: partner and neighbour values store
/// each name once and refer to it by position.
fn name_table<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut table: Vec<&str> = Vec::new();
    for n in names {
        if !table.contains(&n) {
            table.push(n);
        }
    }
    table
}

/// Encodes one feature's partners; `partners` must already be in serving order.
pub(crate) fn encode_cooc(partners: &[CooccurrenceRecord]) -> Vec<u8> {
    let names = name_table(partners.iter().map(|p| p.other_sae.as_str()));
    let mut e =
        Enc::new(8 + names.iter().map(|n| n.len() + 4).sum::<usize>() + partners.len() * 22);
    e.len(names.len());
    names.iter().for_each(|n| e.str(n));
    e.len(partners.len());
    for p in partners {
        // At most a handful of SAEs per index: the position always fits.
        let idx = names.iter().position(|n| *n == p.other_sae).unwrap_or(0);
        e.u16(idx as u16);
        e.u32(p.other_feature);
        e.u64(p.n_both);
        e.f32(p.jaccard);
        e.f32(p.npmi);
    }
    e.0
}

pub(crate) fn decode_cooc(feature: u32, mut d: Dec<'_>) -> Result<Vec<CooccurrenceRecord>> {
    let names = d.vec(4, Dec::str)?;
    let out = d.vec(22, |d| {
        let idx = usize::from(d.u16()?);
        let other_sae = names
            .get(idx)
            .ok_or_else(|| d.err(format!("SAE name index {idx} of {}", names.len())))?
            .clone();
        Ok(CooccurrenceRecord {
            feature,
            other_sae,
            other_feature: d.u32()?,
            n_both: d.u64()?,
            jaccard: d.f32()?,
            npmi: d.f32()?,
        })
    })?;
    d.end()?;
    Ok(out)
}

/// Encodes one feature's decoder neighbours (in serving order): SAE names, then
/// `(u16 name index, u32 feature, f32 cosine)`.
pub(crate) fn encode_neighbours(list: &[NeighbourRecord]) -> Vec<u8> {
    let names = name_table(list.iter().map(|p| p.other_sae.as_str()));
    let mut e = Enc::new(8 + names.iter().map(|n| n.len() + 4).sum::<usize>() + list.len() * 10);
    e.len(names.len());
    names.iter().for_each(|n| e.str(n));
    e.len(list.len());
    for p in list {
        let idx = names.iter().position(|n| *n == p.other_sae).unwrap_or(0);
        e.u16(idx as u16);
        e.u32(p.other_feature);
        e.f32(p.cosine);
    }
    e.0
}

pub(crate) fn decode_neighbours(feature: u32, mut d: Dec<'_>) -> Result<Vec<NeighbourRecord>> {
    let names = d.vec(4, Dec::str)?;
    let out = d.vec(10, |d| {
        let idx = usize::from(d.u16()?);
        let other_sae = names
            .get(idx)
            .ok_or_else(|| d.err(format!("SAE name index {idx} of {}", names.len())))?
            .clone();
        Ok(NeighbourRecord {
            feature,
            other_sae,
            other_feature: d.u32()?,
            cosine: d.f32()?,
        })
    })?;
    d.end()?;
    Ok(out)
}

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

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_f32(b: &[u8]) -> f32 {
    f32::from_bits(le_u32(b))
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

pub(crate) fn encode_summary(s: &SaeSummary) -> Vec<u8> {
    let mut e = Enc::new(64 + s.sae_id.len());
    e.str(&s.sae_id);
    e.u32(s.d_in);
    e.u32(s.d_sae);
    e.u64(s.tokens_indexed);
    e.f64(s.mean_l0);
    e.u32(s.dead_features);
    e.f64(s.explained_variance);
    for v in [&s.act_hist_edges, &s.density_hist_edges] {
        e.len(v.len());
        v.iter().for_each(|&x| e.f32(x));
    }
    e.len(s.density_hist.len());
    s.density_hist.iter().for_each(|&x| e.u64(x));
    e.0
}

pub(crate) fn decode_summary(mut d: Dec<'_>) -> Result<SaeSummary> {
    let s = SaeSummary {
        sae_id: d.str()?,
        d_in: d.u32()?,
        d_sae: d.u32()?,
        tokens_indexed: d.u64()?,
        mean_l0: d.f64()?,
        dead_features: d.u32()?,
        explained_variance: d.f64()?,
        act_hist_edges: d.vec(4, Dec::f32)?,
        density_hist_edges: d.vec(4, Dec::f32)?,
        density_hist: d.vec(8, Dec::u64)?,
    };
    d.end()?;
    Ok(s)
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
    fn example_dense_and_sparse_round_trip() {
        for acts in [vec![0.0; 128], (0..128).map(|i| i as f32).collect(), {
            let mut v = vec![0.0; 128];
            v[5] = 1.5;
            v[127] = -2.0;
            v
        }] {
            let r = ExampleRecord {
                feature: 3,
                kind: ExampleKind::Interval(2),
                rank: 7,
                context_id: 1 << 40,
                max_pos: 5,
                max_act: 1.5,
                acts,
            };
            let bytes = encode_example(&r);
            assert_eq!(decode_example(3, r.kind, 7, dec(&bytes)).unwrap(), r);
        }
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

    #[test]
    fn corrupt_values_are_reported_not_panicking() {
        let f = FeatureRecord {
            feature: 1,
            n_fired: 2,
            density: 0.5,
            max_act: 1.0,
            mean_act: 0.5,
            act_hist: vec![1, 2, 3],
            top_tokens: vec![TokenCount { token: 4, count: 5 }],
            logit_pos: vec![TokenValue {
                token: 6,
                value: 0.1,
            }],
            logit_neg: vec![],
            logit_hist: vec![7, 8],
            logit_hist_min: -1.5,
            logit_hist_max: 2.5,
        };
        let bytes = encode_feature(&f);
        assert_eq!(decode_feature(1, dec(&bytes)).unwrap(), f);
        // A value of an older store ends before the logit histogram: read without one.
        let old_end = bytes.len() - (4 + 2 * 8 + 4 + 4);
        let old = decode_feature(1, dec(&bytes[..old_end])).unwrap();
        assert!(old.logit_hist.is_empty() && old.logit_hist_max == 0.0);
        for cut in (1..bytes.len()).filter(|&c| c != old_end) {
            let err = decode_feature(1, dec(&bytes[..cut])).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_feature(1, dec(&long)).is_err());
        let mut huge = bytes.clone();
        huge[25..29].copy_from_slice(&u32::MAX.to_le_bytes()); // act_hist count
        assert!(decode_feature(1, dec(&huge)).is_err());
        let mut other_version = bytes;
        other_version[0] = 9;
        let err = Dec::new("features", b"\x01", &other_version).err().unwrap();
        assert!(err.to_string().contains("rocksdb:features:01"), "{err}");
    }
}
