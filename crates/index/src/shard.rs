//! `--shard I/N`: which contexts a shard owns.
//!
//! Contexts are grouped into batches by global id (batch `b` = ids `b·B .. (b+1)·B` for batch size
//! `B`), and batches are dealt round-robin (`b % N == I`). Every shard reads and tokenizes the
//! whole corpus (cheap next to the forward) so that context ids stay global and dense, and every
//! batch holds exactly the contexts it holds in a single pass: the forward's floating-point
//! results depend on a batch's composition (padding, GEMM blocking), so this is what makes the
//! merged index equal a single pass bit for bit. Shards of one run must use the same batch size.
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The `I`-th of `N` deterministic slices of the contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 0-based shard index, `< count`.
    pub index: u32,
    /// Number of shards, ≥ 1.
    pub count: u32,
}

impl Shard {
    /// The whole corpus.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// The batch that context `context_id` belongs to, for batches of `batch_size` contexts.
    pub fn batch_of(context_id: u64, batch_size: usize) -> u64 {
        context_id / batch_size.max(1) as u64
    }

    /// Whether this shard owns context `context_id` (i.e. its batch).
    pub fn owns(&self, context_id: u64, batch_size: usize) -> bool {
        Shard::batch_of(context_id, batch_size) % self.count as u64 == self.index as u64
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::ALL
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::InvalidInput(format!(
                "bad shard `{s}`: expected I/N with 0 <= I < N, e.g. 0/4"
            ))
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_deals_round_robin() {
        let s: Shard = "1/4".parse().unwrap();
        assert_eq!(s.to_string(), "1/4");
        let owned: Vec<u64> = (0..10).filter(|&c| s.owns(c, 1)).collect();
        assert_eq!(owned, vec![1, 5, 9]);
        let owned: Vec<u64> = (0..20).filter(|&c| s.owns(c, 2)).collect();
        assert_eq!(owned, vec![2, 3, 10, 11, 18, 19]);
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3"] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
    }
}
