//! Sparse SAE codes in CSR form: the hand-off between the encoder and the indexer.
//!
//! Row `i` (one token position) holds features `features[row_ptr[i]..row_ptr[i+1]]` with the
//! matching `values`; within a row, features are sorted ascending and every value is > 0.
//!
//! On disk (`scopedex encode`): a safetensors file with `row_ptr` I64 [T+1], `features` I64
//! [nnz] and `values` F32 [nnz].
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

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

    /// Mean number of active features per row (0 for no rows).
    pub fn mean_l0(&self) -> f64 {
        match self.n_rows() {
            0 => 0.0,
            n => self.nnz() as f64 / n as f64,
        }
    }

    /// The dense `[rows, d_sae]` f32 matrix (zeros where inactive); for tests and small batches.
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.n_rows() * self.d_sae];
        for r in 0..self.n_rows() {
            let (f, v) = self.row(r);
            for (&f, &v) in f.iter().zip(v) {
                out[r * self.d_sae + f as usize] = v;
            }
        }
        out
    }

    /// Writes `row_ptr` (I64 [T+1]), `features` (I64 [nnz]) and `values` (F32 [nnz]) to a
    /// safetensors file, with `d_sae` in the file's metadata-free tensor `d_sae` (I64 [1]).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let dev = Device::Cpu;
        let to_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        let feats: Vec<i64> = self.features.iter().map(|&f| f as i64).collect();
        let mut map = HashMap::new();
        let rp = to_i64(&self.row_ptr);
        map.insert("row_ptr", Tensor::from_vec(rp, self.row_ptr.len(), &dev)?);
        map.insert("features", Tensor::from_vec(feats, self.nnz(), &dev)?);
        let values = Tensor::from_slice(&self.values, self.nnz(), &dev)?;
        map.insert("values", values);
        let d_sae = Tensor::from_vec(vec![self.d_sae as i64], 1, &dev)?;
        map.insert("d_sae", d_sae);
        candle_core::safetensors::save(&map, path).map_err(|e| Error::Safetensors {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Reads a file written by [`SparseCodes::save_safetensors`].
    pub fn load_safetensors(path: &Path) -> Result<SparseCodes> {
        let bad = |reason: String| Error::Safetensors {
            path: path.to_path_buf(),
            reason,
        };
        let map =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| bad(e.to_string()))?;
        let get = |name: &str| {
            map.get(name).ok_or_else(|| Error::MissingTensor {
                path: path.to_path_buf(),
                name: name.into(),
            })
        };
        let ints = |name: &str| -> Result<Vec<i64>> {
            Ok(get(name)?.flatten_all()?.to_dtype(DType::I64)?.to_vec1()?)
        };
        let row_ptr: Vec<usize> = ints("row_ptr")?.into_iter().map(|x| x as usize).collect();
        let features: Vec<u32> = ints("features")?.into_iter().map(|x| x as u32).collect();
        let values: Vec<f32> = get("values")?
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1()?;
        let d_sae = ints("d_sae")?.first().copied().unwrap_or(0) as usize;
        let ok = row_ptr.first() == Some(&0)
            && row_ptr.windows(2).all(|w| w[0] <= w[1])
            && row_ptr.last() == Some(&features.len())
            && features.len() == values.len();
        if !ok {
            return Err(bad("row_ptr / features / values are inconsistent".into()));
        }
        Ok(SparseCodes {
            d_sae,
            row_ptr,
            features,
            values,
        })
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
