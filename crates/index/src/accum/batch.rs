//! Validation of a batch and its per-feature (CSC) view.
//!
//! The codes arrive row-major (CSR: one row per token position). Every per-feature accumulator
//! wants the transpose: for feature `f`, its counted entries in row order, so the positions of one
//! context are contiguous. [`BatchView`] builds that transpose with one counting sort
//! (O(nnz + d_sae)) and maps each row to its context and position. Rows of excluded positions
//! (position 0 when BOS is excluded) are left out of the transpose, so nothing downstream sees them.
use scopedex_sae::SparseCodes;

use crate::error::{Error, Result};

/// One batch as seen by all SAEs of a run.
///
/// The rows of the codes are the positions of these contexts concatenated in order (context 0
/// positions `0..len0`, then context 1 positions `0..len1`, ...), BOS position 0 included.
/// Every context id must be given once per run (across batches and shards): results are defined
/// over the set of contexts, and a context fed twice would be counted twice.
#[derive(Debug, Clone, Copy)]
pub struct BatchContexts<'a> {
    /// Context ids, one per context, in row order.
    pub context_ids: &'a [u64],
    /// Token ids of each context (`tokens[i].len()` = positions of context `i`).
    pub tokens: &'a [&'a [u32]],
}

impl BatchContexts<'_> {
    /// Total number of positions (rows).
    pub fn n_rows(&self) -> usize {
        self.tokens.iter().map(|t| t.len()).sum()
    }
}

/// One counted nonzero: its row and its index into `codes.features` / `codes.values`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub row: u32,
    pub j: u32,
}

/// Row → (context, position) maps and the per-feature transpose of the counted rows.
pub(crate) struct BatchView {
    /// Context index (into the batch) of each row.
    pub row_ctx: Vec<u32>,
    /// Position within its context of each row.
    pub row_pos: Vec<u32>,
    /// Token id of each row.
    pub row_tok: Vec<u32>,
    /// Whether each row is counted (not an excluded BOS position).
    pub counted: Vec<bool>,
    /// Number of counted rows.
    pub n_counted: u64,
    /// Sum of the L0 of the counted rows.
    pub l0_sum: u64,
    /// `entries[col_ptr[f]..col_ptr[f+1]]` are feature `f`'s counted entries, in row order.
    pub col_ptr: Vec<u32>,
    /// See `col_ptr`.
    pub entries: Vec<Entry>,
}

impl BatchView {
    /// Row maps only (no transpose), after checking the batch's shape.
    pub fn rows(batch: &BatchContexts, exclude_bos: bool) -> Result<BatchView> {
        if batch.context_ids.len() != batch.tokens.len() {
            return Err(Error::InvalidBatch(format!(
                "{} context ids but {} token lists",
                batch.context_ids.len(),
                batch.tokens.len()
            )));
        }
        let n = batch.n_rows();
        if n > u32::MAX as usize {
            return Err(Error::InvalidBatch(format!("{n} rows exceed u32")));
        }
        let mut v = BatchView {
            row_ctx: Vec::with_capacity(n),
            row_pos: Vec::with_capacity(n),
            row_tok: Vec::with_capacity(n),
            counted: Vec::with_capacity(n),
            n_counted: 0,
            l0_sum: 0,
            col_ptr: Vec::new(),
            entries: Vec::new(),
        };
        for (c, toks) in batch.tokens.iter().enumerate() {
            for (p, &t) in toks.iter().enumerate() {
                v.row_ctx.push(c as u32);
                v.row_pos.push(p as u32);
                v.row_tok.push(t);
                let counted = !(exclude_bos && p == 0);
                v.counted.push(counted);
                v.n_counted += counted as u64;
            }
        }
        Ok(v)
    }

    /// Row maps plus the transpose of `codes` (validated against the batch and `d_sae`).
    pub fn new(
        batch: &BatchContexts,
        codes: &SparseCodes,
        d_sae: usize,
        exclude_bos: bool,
    ) -> Result<BatchView> {
        let mut v = Self::rows(batch, exclude_bos)?;
        validate_codes(codes, d_sae, v.row_ctx.len())?;
        let mut col_ptr = vec![0u32; d_sae + 1];
        for r in 0..codes.n_rows() {
            if !v.counted[r] {
                continue;
            }
            let (a, b) = (codes.row_ptr[r], codes.row_ptr[r + 1]);
            v.l0_sum += (b - a) as u64;
            for &f in &codes.features[a..b] {
                col_ptr[f as usize + 1] += 1;
            }
        }
        for f in 0..d_sae {
            col_ptr[f + 1] += col_ptr[f];
        }
        let nnz = col_ptr[d_sae] as usize;
        let mut next: Vec<u32> = col_ptr[..d_sae].to_vec();
        let mut entries = vec![Entry { row: 0, j: 0 }; nnz];
        for r in 0..codes.n_rows() {
            if !v.counted[r] {
                continue;
            }
            for j in codes.row_ptr[r]..codes.row_ptr[r + 1] {
                let f = codes.features[j] as usize;
                entries[next[f] as usize] = Entry {
                    row: r as u32,
                    j: j as u32,
                };
                next[f] += 1;
            }
        }
        v.col_ptr = col_ptr;
        v.entries = entries;
        Ok(v)
    }

    /// Feature `f`'s counted entries, in row order.
    #[inline]
    pub fn column(&self, f: usize) -> &[Entry] {
        &self.entries[self.col_ptr[f] as usize..self.col_ptr[f + 1] as usize]
    }
}

/// Checks the CSR invariants of `codes` (see [`SparseCodes`]) and that it has `n_rows` rows.
pub(crate) fn validate_codes(codes: &SparseCodes, d_sae: usize, n_rows: usize) -> Result<()> {
    if codes.d_sae != d_sae {
        return Err(Error::InvalidBatch(format!(
            "codes have d_sae {} but the accumulator has {d_sae}",
            codes.d_sae
        )));
    }
    if codes.n_rows() != n_rows {
        return Err(Error::InvalidBatch(format!(
            "codes have {} rows but the contexts have {n_rows} positions",
            codes.n_rows()
        )));
    }
    let nnz = codes.features.len();
    if codes.row_ptr.first() != Some(&0)
        || codes.row_ptr.last() != Some(&nnz)
        || codes.values.len() != nnz
    {
        return Err(Error::InvalidBatch(format!(
            "row_ptr must run from 0 to nnz {nnz} (values: {})",
            codes.values.len()
        )));
    }
    if nnz > u32::MAX as usize {
        return Err(Error::InvalidBatch(format!("{nnz} nonzeros exceed u32")));
    }
    for r in 0..n_rows {
        let (a, b) = (codes.row_ptr[r], codes.row_ptr[r + 1]);
        if a > b {
            return Err(Error::InvalidBatch(format!("row_ptr decreases at row {r}")));
        }
        let feats = &codes.features[a..b];
        for (i, &f) in feats.iter().enumerate() {
            if f as usize >= d_sae || (i > 0 && feats[i - 1] >= f) {
                return Err(Error::InvalidBatch(format!(
                    "row {r}: feature {f} out of range or not strictly ascending"
                )));
            }
        }
        for (i, &x) in codes.values[a..b].iter().enumerate() {
            if !(x > 0.0 && x.is_finite()) {
                return Err(Error::InvalidBatch(format!(
                    "row {r}, feature {}: activation {x} is not finite and > 0",
                    feats[i]
                )));
            }
        }
    }
    Ok(())
}
