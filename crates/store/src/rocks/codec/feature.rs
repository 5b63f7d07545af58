//! Values keyed by SAE and feature (`features`, `examples`, `cooc`, `neighbours`) and the
//! per-SAE summary (`meta`).
use super::bytes::{name_table, Dec, Enc};
use crate::error::Result;
use crate::records::{
    CooccurrenceRecord, ExampleKind, ExampleRecord, FeatureRecord, NeighbourRecord, SaeSummary,
    TokenCount, TokenValue,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

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
