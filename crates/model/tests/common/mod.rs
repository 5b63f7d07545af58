//! Helpers shared by the model's test files (each test file uses a part of them).
#![allow(dead_code)]
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Relative L2 distance `|ours − reference| / |reference|`, accumulated in f64.
pub fn rel_l2(ours: &Tensor, reference: &Tensor) -> f64 {
    assert_eq!(ours.dims(), reference.dims());
    let ours = ours.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (mut err, mut norm) = (0f64, 0f64);
    for (a, b) in ours.iter().zip(&reference) {
        err += (*a as f64 - *b as f64).powi(2);
        norm += (*b as f64).powi(2);
    }
    (err / norm.max(1e-30)).sqrt()
}

/// A reference file of `scripts/make-*-fixtures.py`: the texts (its `texts` metadata) and the
/// tensors (`t{i}.tokens`, `t{i}.{hook}`, ...).
pub struct Fixture {
    pub texts: Vec<String>,
    pub tensors: HashMap<String, Tensor>,
}

/// Reads a reference safetensors file with `texts` metadata.
pub fn fixture(path: &Path) -> Fixture {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
    let texts = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("texts"))
        .expect("`texts` metadata");
    Fixture {
        texts: serde_json::from_str(texts).expect("texts JSON"),
        tensors: candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).expect("tensors"),
    }
}

impl Fixture {
    /// Token ids of text `i` (`t{i}.tokens`).
    pub fn tokens(&self, i: usize) -> Vec<u32> {
        self.tensors[&format!("t{i}.tokens")]
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|t| t as u32)
            .collect()
    }

    /// (hook, reference `[T, width]`) of text `i`.
    pub fn hooks(&self, i: usize) -> Vec<(scopedex_model::HookPoint, Tensor)> {
        let prefix = format!("t{i}.");
        self.tensors
            .iter()
            .filter_map(|(k, v)| {
                let h = k.strip_prefix(&prefix)?.parse().ok()?;
                Some((h, v.clone()))
            })
            .collect()
    }
}
