//! Sparse SAE codes in CSR form: the hand-off between the encoder and the indexer.
//!
//! Row `i` (one token position) holds features `features[row_ptr[i]..row_ptr[i+1]]` with the
//! matching `values`; within a row, features are sorted ascending and every value is > 0.

/// Sparse feature activations of a batch of token positions (CSR).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseCodes {
    /// Number of features of the SAE (exclusive upper bound of `features`).
    pub d_sae: usize,
    /// Row offsets, length = rows + 1, `row_ptr[0] == 0`, non-decreasing.
    pub row_ptr: Vec<usize>,
    /// Active feature ids, ascending within each row.
    pub features: Vec<u32>,
    /// Activations (> 0), parallel to `features`.
    pub values: Vec<f32>,
}

impl SparseCodes {
    /// Empty codes with zero rows.
    pub fn new(d_sae: usize) -> Self {
        SparseCodes {
            d_sae,
            row_ptr: vec![0],
            features: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Number of rows (token positions).
    pub fn n_rows(&self) -> usize {
        self.row_ptr.len().saturating_sub(1)
    }

    /// Number of stored (active) entries.
    pub fn nnz(&self) -> usize {
        self.features.len()
    }

    /// The active features and values of row `i`.
    ///
    /// # Panics
    /// When `i >= n_rows()`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.row_ptr[i], self.row_ptr[i + 1]);
        (&self.features[a..b], &self.values[a..b])
    }

    /// Appends one row; `features` must be ascending and parallel to `values`.
    pub fn push_row(&mut self, features: &[u32], values: &[f32]) {
        debug_assert_eq!(features.len(), values.len());
        self.features.extend_from_slice(features);
        self.values.extend_from_slice(values);
        self.row_ptr.push(self.features.len());
    }

    /// Appends all rows of `other` (same `d_sae`).
    pub fn extend(&mut self, other: &SparseCodes) {
        debug_assert_eq!(self.d_sae, other.d_sae);
        let base = self.features.len();
        self.features.extend_from_slice(&other.features);
        self.values.extend_from_slice(&other.values);
        self.row_ptr
            .extend(other.row_ptr.iter().skip(1).map(|&p| p + base));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_extend_and_rows() {
        let mut a = SparseCodes::new(10);
        a.push_row(&[1, 5], &[0.5, 2.0]);
        a.push_row(&[], &[]);
        let mut b = SparseCodes::new(10);
        b.push_row(&[9], &[1.0]);
        a.extend(&b);
        assert_eq!(a.n_rows(), 3);
        assert_eq!(a.nnz(), 3);
        assert_eq!(a.row(0), (&[1u32, 5][..], &[0.5f32, 2.0][..]));
        assert_eq!(a.row(1).0.len(), 0);
        assert_eq!(a.row(2), (&[9u32][..], &[1.0f32][..]));
    }
}
