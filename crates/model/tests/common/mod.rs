//! Helpers shared by the model's test files (each test file uses a part of them).
#![allow(dead_code)]
use std::path::{Path, PathBuf};

use candle_core::Tensor;

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
