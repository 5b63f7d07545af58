//! Random SAEs in exactly the Llama Scope layout, for tests and benchmarks.
//!
//! The real Llama Scope checkpoints cannot be downloaded everywhere; these exercise the same
//! loading and encoding code. Weights come from a seeded splitmix64 stream (deterministic across
//! machines); the decoder is the encoder's transpose, as TopK SAEs are initialised.
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::formats::llamascope::{
    write_llama_scope, DatasetNorm, LlamaScopeHyperparams, LlamaScopeTensors,
};
use crate::Result;

/// What to fabricate.
#[derive(Debug, Clone, PartialEq)]
pub struct FabricateSpec {
    /// Input / output width (the model's d_model).
    pub d_model: usize,
    /// Number of features.
    pub d_sae: usize,
    /// TopK's k.
    pub k: usize,
    /// Hook read, e.g. `blocks.3.hook_resid_post`.
    pub hook_in: String,
    /// Hook reconstructed (differs for transcoders).
    pub hook_out: String,
    /// `dataset_average_activation_norm` {in, out}.
    pub norm: (f32, f32),
    /// Seed of the weights.
    pub seed: u64,
}

/// Uniform values in [-1, 1) from a seeded splitmix64 stream.
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Writes a random TopK SAE (`act_fn` "topk", dataset-wise norm, decoder-norm gate) to `dir`.
pub fn fabricate_llama_scope(dir: &Path, spec: &FabricateSpec) -> Result<()> {
    let (m, s) = (spec.d_model, spec.d_sae);
    let dev = Device::Cpu;
    let enc = Tensor::from_vec(uniform(s * m, spec.seed ^ 1), (s, m), &dev)?;
    let dec = enc.t()?.contiguous()?;
    let bias = Tensor::from_vec(uniform(s, spec.seed ^ 2), s, &dev)?.affine(0.1, 0.0)?;
    let params = LlamaScopeHyperparams {
        d_model: m,
        d_sae: s,
        expansion_factor: (s / m).max(1) as u32,
        hook_point_in: spec.hook_in.clone(),
        hook_point_out: spec.hook_out.clone(),
        act_fn: "topk".into(),
        jump_relu_threshold: None,
        top_k: Some(spec.k),
        norm_activation: "dataset-wise".into(),
        dataset_average_activation_norm: Some(DatasetNorm {
            input: spec.norm.0,
            output: spec.norm.1,
        }),
        sparsity_include_decoder_norm: true,
        use_decoder_bias: true,
        apply_decoder_bias_to_pre_encoder: false,
    };
    let tensors = LlamaScopeTensors {
        encoder_weight: enc,
        encoder_bias: bias,
        decoder_weight: dec,
        decoder_bias: Tensor::zeros(m, DType::F32, &dev)?,
    };
    write_llama_scope(dir, &params, &tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fabricated_sae_loads_and_encodes_k_features() {
        let dir = tempfile::tempdir().unwrap();
        let spec = FabricateSpec {
            d_model: 16,
            d_sae: 64,
            k: 4,
            hook_in: "blocks.2.hook_resid_post".into(),
            hook_out: "blocks.2.hook_resid_post".into(),
            norm: (4.0, 4.0),
            seed: 3,
        };
        fabricate_llama_scope(dir.path(), &spec).unwrap();
        let sae = crate::Sae::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(sae.id().unwrap().to_string(), "L2R-4x");
        let x = Tensor::from_vec(uniform(3 * 16, 9), (3, 16), &Device::Cpu).unwrap();
        let codes = sae.encode(&x).unwrap();
        assert_eq!(codes.n_rows(), 3);
        assert!((0..3).all(|r| codes.row(r).0.len() <= 4 && !codes.row(r).0.is_empty()));
    }
}
