//! Feature terms as the text index stores them: `SAE/F` (active) and `SAE/F>T` per strength
//! bucket T reached, and the strength level of an activation relative to the feature's max.

/// Strength buckets of feature terms, as fractions of the feature's corpus-wide max activation.
pub const STRENGTH_BUCKETS: [f32; 3] = [0.25, 0.5, 0.75];

/// The name of the text index's feature field (and the query prefix `feat:`).
pub const FEATURE_PREFIX: &str = "feat:";

/// The term of feature `feature` of `sae` at strength level `level`: `L15R-8x/1234` for level 0
/// (active at all), `L15R-8x/1234>0.5` for level `i + 1` (bucket [`STRENGTH_BUCKETS`]`[i]`).
pub fn feature_term(sae: &str, feature: u32, level: usize) -> String {
    match level.checked_sub(1).and_then(|i| STRENGTH_BUCKETS.get(i)) {
        None => format!("{sae}/{feature}"),
        Some(t) => format!("{sae}/{feature}>{t}"),
    }
}

/// The inverse of [`feature_term`]: `(sae, feature, level)` of a term.
pub fn parse_feature_term(term: &str) -> Option<(&str, u32, usize)> {
    let (base, level) = match term.split_once('>') {
        None => (term, 0),
        Some((base, t)) => {
            let t: f32 = t.parse().ok()?;
            (base, 1 + STRENGTH_BUCKETS.iter().position(|&b| b == t)?)
        }
    };
    let (sae, f) = base.rsplit_once('/')?;
    Some((sae, f.parse().ok()?, level))
}

/// The strength level of an activation: 0 when only active, `i + 1` when `max_act ≥
/// STRENGTH_BUCKETS[i] × feature_max` for the highest such `i`. A feature whose corpus-wide
/// max is not positive (or not finite) has level 0.
pub fn strength_level(max_act: f32, feature_max: f32) -> usize {
    if !(feature_max > 0.0 && feature_max.is_finite()) {
        return 0;
    }
    // f64 so that `t × max` is exact for the bucket fractions and any f32 max.
    STRENGTH_BUCKETS
        .iter()
        .take_while(|&&t| f64::from(max_act) >= f64::from(t) * f64::from(feature_max))
        .count()
}

/// The feature terms of one context's record for `sae`: per active feature, the base term and
/// one term per strength bucket it reaches ([`feature_term`]), each with the position of the
/// feature's max in the context. `feature_max[f]` is feature `f`'s corpus-wide max activation
/// (missing: 0, i.e. base term only).
pub fn context_feature_terms(
    sae: &str,
    rec: &crate::records::ContextFeaturesRecord,
    feature_max: &[f32],
) -> Vec<(String, u32)> {
    let mut out = Vec::with_capacity(rec.features.len() * 2);
    for ((&f, &act), &pos) in rec.features.iter().zip(&rec.max_acts).zip(&rec.max_pos) {
        let max = feature_max.get(f as usize).copied().unwrap_or(0.0);
        for level in 0..=strength_level(act, max) {
            out.push((feature_term(sae, f, level), pos));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_levels() {
        assert_eq!(strength_level(0.1, 1.0), 0);
        assert_eq!(strength_level(0.25, 1.0), 1);
        assert_eq!(strength_level(0.5, 1.0), 2);
        assert_eq!(strength_level(0.74, 1.0), 2);
        assert_eq!(strength_level(3.0, 4.0), 3);
        assert_eq!(strength_level(3.0, 0.0), 0);
        assert_eq!(feature_term("L1R", 5, 0), "L1R/5");
        assert_eq!(feature_term("L1R", 5, 2), "L1R/5>0.5");
        for level in 0..=3 {
            let t = feature_term("L1R-8x", 77, level);
            assert_eq!(parse_feature_term(&t), Some(("L1R-8x", 77, level)));
        }
        assert_eq!(parse_feature_term("L1R/5>0.3"), None);
        assert_eq!(parse_feature_term("L1R5"), None);
    }
}
