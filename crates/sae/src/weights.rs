//! Reading SAE weight files (safetensors) into host `f32` buffers.
//!
//! The file is memory-mapped, hashed (sha256, recorded in index manifests) and each tensor is
//! converted from BF16 / F16 / F32 to `f32` in one parallel pass that also rejects NaN / Inf,
//! naming the tensor and the first bad element. Shapes are checked against the config before
//! any conversion.
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A memory-mapped safetensors file.
pub(crate) struct WeightsFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
}

/// Lowercase hex sha256 of the file at `path`.
pub(crate) fn sha256_of(path: &Path) -> Result<String> {
    Ok(WeightsFile::open(path)?.sha256())
}

impl WeightsFile {
    /// Maps `path`; a missing file is an I/O error naming it.
    pub(crate) fn open(path: &Path) -> Result<WeightsFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and lives as long as `self`; a checkpoint modified while
        // it is being loaded yields wrong numbers or a parse error, never memory unsafety in
        // this process beyond what any reader of a concurrently-truncated file risks.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(WeightsFile {
            path: path.to_path_buf(),
            mmap,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Lowercase hex sha256 of the whole file.
    pub(crate) fn sha256(&self) -> String {
        let mut h = Sha256::new();
        h.update(&self.mmap[..]);
        hex::encode(h.finalize())
    }

    /// Parses the header.
    pub(crate) fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.mmap).map_err(|e| Error::Safetensors {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// The shape of tensor `name`, or `None` when absent.
    pub(crate) fn shape(&self, st: &SafeTensors<'_>, name: &str) -> Option<Vec<usize>> {
        st.tensor(name).ok().map(|v| v.shape().to_vec())
    }

    /// Tensor `name` as row-major `f32`, checked to have shape `expected` (a 1-element tensor
    /// also matches `[]` and `[1]` interchangeably) and finite values.
    pub(crate) fn read(
        &self,
        st: &SafeTensors<'_>,
        name: &str,
        expected: &[usize],
    ) -> Result<Vec<f32>> {
        self.read_opt(st, name, expected)?
            .ok_or_else(|| Error::MissingTensor {
                path: self.path.clone(),
                name: name.to_string(),
            })
    }

    /// Like [`WeightsFile::read`], `None` when the tensor is absent.
    pub(crate) fn read_opt(
        &self,
        st: &SafeTensors<'_>,
        name: &str,
        expected: &[usize],
    ) -> Result<Option<Vec<f32>>> {
        let Ok(view) = st.tensor(name) else {
            return Ok(None);
        };
        let found = view.shape().to_vec();
        let numel = |s: &[usize]| s.iter().product::<usize>();
        let scalar_like = numel(expected) == 1 && numel(&found) == 1 && found.len() <= 1;
        if found != expected && !scalar_like {
            return Err(Error::TensorShape {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found,
            });
        }
        let values = convert(view.dtype(), view.data()).ok_or_else(|| Error::TensorDtype {
            path: self.path.clone(),
            name: name.to_string(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        if let Some((index, value)) = first_non_finite(&values) {
            return Err(Error::NonFinite {
                path: self.path.clone(),
                name: name.to_string(),
                index,
                value,
            });
        }
        Ok(Some(values))
    }
}

/// Reads tensor `name` of a safetensors file (BF16 / F16 / F32, any shape, finite) as an f32
/// tensor on `device`; the CLI uses it for activation files.
pub fn read_tensor(
    path: &Path,
    name: &str,
    device: &candle_core::Device,
) -> Result<candle_core::Tensor> {
    let file = WeightsFile::open(path)?;
    let st = file.tensors()?;
    let shape = file.shape(&st, name).ok_or_else(|| Error::MissingTensor {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    let values = file.read(&st, name, &shape)?;
    Ok(candle_core::Tensor::from_vec(values, shape, device)?)
}

const CONVERT_BLOCK: usize = 1 << 16;

/// Little-endian BF16 / F16 / F32 bytes to `f32`; `None` for other dtypes.
fn convert(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        _ => return None,
    };
    let n = bytes.len() / width;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CONVERT_BLOCK)
        .zip(bytes.par_chunks(CONVERT_BLOCK * width))
        .for_each(|(dst, src)| match dtype {
            Dtype::F32 => {
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                    *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                }
            }
            Dtype::F16 => {
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = half::f16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
                }
            }
            _ => {
                for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                    *d = half::bf16::from_bits(u16::from_le_bytes([s[0], s[1]])).to_f32();
                }
            }
        });
    Some(out)
}

/// The first NaN / ±Inf element and its flat index.
pub(crate) fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .par_chunks(CONVERT_BLOCK)
        .enumerate()
        .find_map_first(|(b, chunk)| {
            chunk
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| (b * CONVERT_BLOCK + i, chunk[i]))
        })
}

/// Row-major transpose of a `[rows, cols]` matrix, blocked for cache locality, in parallel over
/// output rows; every element is multiplied by `scale`.
pub(crate) fn transpose_scaled(src: &[f32], rows: usize, cols: usize, scale: f32) -> Vec<f32> {
    debug_assert_eq!(src.len(), rows * cols);
    const B: usize = 32;
    let mut dst = vec![0f32; rows * cols];
    // Output is [cols, rows]; each task fills B output rows.
    dst.par_chunks_mut(B * rows)
        .enumerate()
        .for_each(|(tile, out)| {
            let c0 = tile * B;
            let nc = out.len() / rows.max(1);
            for r0 in (0..rows).step_by(B) {
                let r1 = (r0 + B).min(rows);
                for dc in 0..nc {
                    let c = c0 + dc;
                    for r in r0..r1 {
                        out[dc * rows + r] = src[r * cols + c] * scale;
                    }
                }
            }
        });
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_naive() {
        let (rows, cols) = (37, 70);
        let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let t = transpose_scaled(&src, rows, cols, 2.0);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], 2.0 * src[r * cols + c]);
            }
        }
    }

    #[test]
    fn converts_half_types() {
        let v = [1.5f32, -2.25, 0.0];
        let bf: Vec<u8> = v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
            .collect();
        assert_eq!(convert(Dtype::BF16, &bf).unwrap(), v);
        let f: Vec<u8> = v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_bits().to_le_bytes())
            .collect();
        assert_eq!(convert(Dtype::F16, &f).unwrap(), v);
        assert!(convert(Dtype::I64, &[0; 8]).is_none());
        assert_eq!(first_non_finite(&[0.0, f32::NAN]).map(|x| x.0), Some(1));
        assert_eq!(first_non_finite(&[0.0, 1.0]), None);
    }
}
