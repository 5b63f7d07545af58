//! Feature ranges (`--features`) and SAEDashboard's split into batches.
use std::ops::Range;

use crate::error::{Error, Result};

/// Parses `A..B` (end exclusive), `A..=B`, `A..`, `..B`, `A-B` (inclusive) or a single `N`,
/// against an SAE of `d_sae` features. Empty or out-of-range ranges are errors.
pub fn parse_feature_range(s: &str, d_sae: u32) -> Result<Range<u32>> {
    let bad = |why: &str| Error::Usage(format!("--features {s:?}: {why}"));
    let num = |t: &str| -> Result<u32> {
        t.trim()
            .parse::<u32>()
            .map_err(|_| bad("expected START..END, START..=END, START-END or N"))
    };
    let t = s.trim();
    let (start, end) = if let Some((a, b)) = t.split_once("..=") {
        let a = if a.trim().is_empty() { 0 } else { num(a)? };
        (a, u64::from(num(b)?) + 1)
    } else if let Some((a, b)) = t.split_once("..") {
        let a = if a.trim().is_empty() { 0 } else { num(a)? };
        let b = if b.trim().is_empty() {
            u64::from(d_sae)
        } else {
            u64::from(num(b)?)
        };
        (a, b)
    } else if let Some((a, b)) = t.split_once('-') {
        (num(a)?, u64::from(num(b)?) + 1)
    } else {
        let n = num(t)?;
        (n, u64::from(n) + 1)
    };
    check_range(u64::from(start)..end, d_sae).map_err(|e| match e {
        Error::Usage(why) => bad(&why),
        other => other,
    })
}

/// Checks that `r` is non-empty and within `0..d_sae`.
pub fn check_range(r: Range<u64>, d_sae: u32) -> Result<Range<u32>> {
    if r.start >= r.end {
        return Err(Error::Usage(format!(
            "empty feature range {}..{}",
            r.start, r.end
        )));
    }
    if r.end > u64::from(d_sae) {
        return Err(Error::Usage(format!(
            "feature range {}..{} exceeds the SAE's {d_sae} features",
            r.start, r.end
        )));
    }
    Ok(r.start as u32..r.end as u32)
}

/// SAEDashboard's `get_feature_batches`: `np.array_split(features, ceil(n / batch_size))`, i.e.
/// `ceil(n / batch_size)` consecutive chunks whose sizes differ by at most one, the larger
/// first (so 300 features at 128 per batch are 3 batches of 100, not 128 + 128 + 44).
pub fn batches(range: Range<u32>, batch_size: usize) -> Vec<Range<u32>> {
    let n = u64::from(range.end - range.start);
    if n == 0 {
        return Vec::new();
    }
    let k = n.div_ceil(batch_size.max(1) as u64);
    let (base, extra) = (n / k, n % k);
    let mut out = Vec::with_capacity(k as usize);
    let mut at = u64::from(range.start);
    for i in 0..k {
        let len = base + u64::from(i < extra);
        out.push(at as u32..(at + len) as u32);
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_range_forms() {
        assert_eq!(parse_feature_range("3..7", 10).unwrap(), 3..7);
        assert_eq!(parse_feature_range("3..=7", 10).unwrap(), 3..8);
        assert_eq!(parse_feature_range("3-7", 10).unwrap(), 3..8);
        assert_eq!(parse_feature_range("4..", 10).unwrap(), 4..10);
        assert_eq!(parse_feature_range("..4", 10).unwrap(), 0..4);
        assert_eq!(parse_feature_range("9", 10).unwrap(), 9..10);
        for bad in ["7..7", "8..3", "0..11", "10", "x", "1..y", ""] {
            assert!(
                matches!(parse_feature_range(bad, 10), Err(Error::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn batches_follow_array_split() {
        assert_eq!(batches(0..96, 128), vec![0..96]);
        assert_eq!(batches(0..300, 128), vec![0..100, 100..200, 200..300]);
        assert_eq!(batches(5..15, 4), vec![5..9, 9..12, 12..15]);
        assert_eq!(batches(0..256, 128), vec![0..128, 128..256]);
        let b = batches(0..131_072, 128);
        assert_eq!(b.len(), 1024);
        assert!(b.iter().all(|r| r.len() == 128));
    }
}
