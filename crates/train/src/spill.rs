//! A bf16 spill file of the first pass's training rows, replayed by the later passes
//! ([`TrainConfig::epochs`](crate::TrainConfig::epochs)).
//!
//! The model forward costs far more per token than one SAE step, so short runs get more
//! optimiser steps per forwarded token by revisiting rows. Rows are written in the order they
//! were served (already shuffled), each as every hook's `d` values in bf16 (round to nearest
//! even; 8 significant bits, relative error ≤ 2⁻⁹ per value, far below what an SAE
//! reconstructs), so memory stays bounded by the shuffle buffer and the page cache holds the
//! file. The file is removed when the [`Spill`] is dropped.
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::source::{ActivationSource, Rows};

/// f32 → bf16 bits, round to nearest even (NaN stays NaN).
pub fn to_bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1));
    (rounded >> 16) as u16
}

/// bf16 bits → f32 (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// An append-only spill file of rows of `n_hooks` hooks of width `d`.
pub struct Spill {
    path: PathBuf,
    /// Keep the file when dropped (an activation cache) instead of removing it.
    keep: bool,
    writer: Option<BufWriter<File>>,
    n_hooks: usize,
    d: usize,
    rows: u64,
    bytes: Vec<u8>,
}

impl Spill {
    /// Creates a fresh spill file in `dir`.
    pub fn create(dir: &Path, n_hooks: usize, d: usize) -> Result<Spill> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            "scopedex-train-spill-{}-{nanos:09}.bf16",
            std::process::id()
        ));
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        Ok(Spill {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            path,
            keep: false,
            n_hooks,
            d,
            rows: 0,
            bytes: Vec::new(),
        })
    }

    /// Creates (or truncates) the activation cache `path`, kept after the drop.
    pub fn create_cache(path: &Path, n_hooks: usize, d: usize) -> Result<Spill> {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Spill {
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            path: path.to_path_buf(),
            keep: true,
            n_hooks,
            d,
            rows: 0,
            bytes: Vec::new(),
        })
    }

    /// Opens an existing activation cache written by [`Spill::create_cache`] (read-only, kept).
    pub fn open_cache(path: &Path, n_hooks: usize, d: usize) -> Result<Spill> {
        let len = std::fs::metadata(path)
            .map_err(|source| Error::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let row_bytes = (n_hooks * d * 2) as u64;
        if row_bytes == 0 || len % row_bytes != 0 {
            return Err(Error::InvalidConfig(format!(
                "{}: {len} bytes is not a whole number of rows of {n_hooks} hooks × {d} bf16",
                path.display()
            )));
        }
        Ok(Spill {
            writer: None,
            path: path.to_path_buf(),
            keep: true,
            n_hooks,
            d,
            rows: len / row_bytes,
            bytes: Vec::new(),
        })
    }

    /// Appends a chunk of rows (every hook of [`Rows::data`], row-interleaved on disk).
    pub fn append(&mut self, rows: &Rows) -> Result<()> {
        assert_eq!(rows.data.len(), self.n_hooks, "one array per hook");
        let d = self.d;
        self.bytes.clear();
        self.bytes.reserve(rows.n * self.n_hooks * d * 2);
        for r in 0..rows.n {
            for h in &rows.data {
                for &v in &h[r * d..(r + 1) * d] {
                    self.bytes.extend_from_slice(&to_bf16(v).to_le_bytes());
                }
            }
        }
        let w = self
            .writer
            .as_mut()
            .expect("invariant: append is called before the first replay");
        w.write_all(&self.bytes).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })?;
        self.rows += rows.n as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A source replaying every written row once, in writing order, as `hooks`. Writing ends
    /// with the first replay.
    pub fn replay(&mut self, hooks: &[String]) -> Result<SpillSource> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(mut w) = self.writer.take() {
            w.flush().map_err(io)?;
        }
        assert_eq!(hooks.len(), self.n_hooks, "one name per hook");
        let file = File::open(&self.path).map_err(io)?;
        Ok(SpillSource {
            reader: BufReader::with_capacity(1 << 20, file),
            path: self.path.clone(),
            hooks: hooks.to_vec(),
            d: self.d,
            left: self.rows,
            bytes: Vec::new(),
        })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(mut w) = self.writer.take() {
            let _ = w.flush();
        }
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A source that writes every chunk it passes on to a [`Spill`] (an activation cache for
/// hyperparameter sweeps: replayed with [`Spill::replay`], the same rows arrive in the same order
/// without running the model).
pub struct Recording<'a> {
    /// The wrapped source.
    pub inner: &'a mut dyn ActivationSource,
    /// Where the rows go.
    pub spill: Spill,
}

impl ActivationSource for Recording<'_> {
    fn hooks(&self) -> &[String] {
        self.inner.hooks()
    }

    fn d_model(&self) -> usize {
        self.inner.d_model()
    }

    fn next_rows(&mut self) -> Result<Option<Rows>> {
        let rows = self.inner.next_rows()?;
        if let Some(r) = &rows {
            self.spill.append(r)?;
        }
        Ok(rows)
    }
}

/// One pass over a [`Spill`]'s rows.
pub struct SpillSource {
    reader: BufReader<File>,
    path: PathBuf,
    hooks: Vec<String>,
    d: usize,
    left: u64,
    bytes: Vec<u8>,
}

/// Rows per chunk read back.
const CHUNK_ROWS: usize = 4096;

impl ActivationSource for SpillSource {
    fn hooks(&self) -> &[String] {
        &self.hooks
    }

    fn d_model(&self) -> usize {
        self.d
    }

    fn next_rows(&mut self) -> Result<Option<Rows>> {
        if self.left == 0 {
            return Ok(None);
        }
        let n = (self.left as usize).min(CHUNK_ROWS);
        let (nh, d) = (self.hooks.len(), self.d);
        self.bytes.resize(n * nh * d * 2, 0);
        self.reader
            .read_exact(&mut self.bytes)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })?;
        self.left -= n as u64;
        let mut data = vec![Vec::with_capacity(n * d); nh];
        for (i, pair) in self.bytes.chunks_exact(2).enumerate() {
            let h = (i / d) % nh;
            data[h].push(from_bf16(u16::from_le_bytes([pair[0], pair[1]])));
        }
        Ok(Some(Rows { n, data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        for v in [
            0.0f32,
            1.0,
            -2.5,
            2f32.powi(-100),
            -(2f32.powi(100)),
            f32::INFINITY,
        ] {
            assert_eq!(from_bf16(to_bf16(v)), v, "{v} is exact in bf16");
        }
        // 1 + 2⁻⁸ is halfway between bf16 1 and 1 + 2⁻⁷: ties go to the even 1.
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // Just above halfway rounds up.
        assert_eq!(
            from_bf16(to_bf16(1.0 + 1.0 / 256.0 + 1.0 / 65536.0)),
            1.0 + 1.0 / 128.0
        );
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        let x = 123.456f32;
        assert!((from_bf16(to_bf16(x)) - x).abs() <= x / 512.0);
    }

    #[test]
    fn replays_every_row_in_order_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let hooks = vec!["a".to_string(), "b".to_string()];
        let d = 3;
        let mut spill = Spill::create(dir.path(), 2, d).unwrap();
        let mut expect = (Vec::new(), Vec::new());
        for chunk in 0..3 {
            // 5000 rows in all: the replay crosses its chunk size.
            let n = [2000, 1, 2999][chunk];
            let a: Vec<f32> = (0..n * d).map(|i| (chunk * 10_000 + i) as f32).collect();
            let b: Vec<f32> = a.iter().map(|v| -v / 4.0).collect();
            expect.0.extend(a.iter().map(|v| from_bf16(to_bf16(*v))));
            expect.1.extend(b.iter().map(|v| from_bf16(to_bf16(*v))));
            spill
                .append(&Rows {
                    n,
                    data: vec![a, b],
                })
                .unwrap();
        }
        assert_eq!(spill.rows(), 5000);
        for _pass in 0..2 {
            let mut src = spill.replay(&hooks).unwrap();
            let mut got = (Vec::new(), Vec::new());
            let mut n = 0;
            while let Some(r) = src.next_rows().unwrap() {
                assert_eq!(r.data[0].len(), r.n * d);
                got.0.extend_from_slice(&r.data[0]);
                got.1.extend_from_slice(&r.data[1]);
                n += r.n;
            }
            assert_eq!(n, 5000);
            assert_eq!(got, expect);
        }
        let path = spill.path.clone();
        assert!(path.is_file());
        drop(spill);
        assert!(!path.exists(), "the spill file is removed on drop");
    }
}
