//! Rotary position embeddings (RoPE), rotate-half convention as in HF transformers'
//! `LlamaRotaryEmbedding`, with Llama 3.1's `llama3` frequency scaling
//! (`_compute_llama3_parameters` in transformers' `modeling_rope_utils.py`).
//!
//! GGUF files store `attn_q`/`attn_k` rows permuted for llama.cpp's interleaved-pair RoPE;
//! the GGUF loader un-permutes them, so this module only implements rotate-half.
use candle_core::{Device, Tensor};

use crate::config::Config;
#[cfg(test)]
use crate::families::Family;
use crate::Result;

/// The RoPE tables of a model: the global one first (the `rope_theta` base, `rope_scaling`,
/// frequency factors and linear factor applied), then the sliding-window layers' one when
/// their base differs (Gemma 3). Returns the tables and the table of each layer.
pub(crate) fn tables(cfg: &Config) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut global = inv_freq(cfg);
    if let Some(f) = cfg.rope_linear_factor {
        global.iter_mut().for_each(|x| *x /= f);
    }
    let mut tables = vec![global];
    let mut of_layer = vec![0; cfg.n_layers];
    if let Some(theta) = cfg.rope_local_theta {
        tables.push(plain_inv_freq(theta, cfg.head_dim));
        for (l, t) in of_layer.iter_mut().enumerate() {
            if cfg.is_sliding(l) {
                *t = 1;
            }
        }
    }
    (tables, of_layer)
}

/// `1 / theta^(2i / dim)` for `i < dim / 2`, in f32 as transformers computes it.
fn plain_inv_freq(theta: f32, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|i| 1.0 / theta.powf(i as f32 / dim as f32))
        .collect()
}

/// Inverse frequencies, `head_dim / 2` values, computed in f32 as transformers does.
pub(crate) fn inv_freq(cfg: &Config) -> Vec<f32> {
    let mut inv = plain_inv_freq(cfg.rope_theta, cfg.head_dim);
    if let Some(s) = &cfg.rope_scaling {
        let old_ctx = s.original_max_position_embeddings as f32;
        let low_freq_wavelen = old_ctx / s.low_freq_factor;
        let high_freq_wavelen = old_ctx / s.high_freq_factor;
        for f in inv.iter_mut() {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            let scaled = if wavelen > low_freq_wavelen {
                *f / s.factor
            } else {
                *f
            };
            let is_medium = wavelen >= high_freq_wavelen && wavelen <= low_freq_wavelen;
            *f = if is_medium {
                let smooth = (old_ctx / wavelen - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                (1.0 - smooth) * scaled / s.factor + smooth * scaled
            } else {
                scaled
            };
        }
    }
    if let Some(factors) = &cfg.rope_freq_factors {
        for (f, k) in inv.iter_mut().zip(factors) {
            *f /= *k;
        }
    }
    inv
}

/// `(cos, sin)`, each f32 `[seq_len, head_dim / 2]` row-major, for positions `0..seq_len`.
pub(crate) fn cos_sin_vecs(inv_freq: &[f32], seq_len: usize) -> (Vec<f32>, Vec<f32>) {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(seq_len * half);
    let mut sin = Vec::with_capacity(seq_len * half);
    for pos in 0..seq_len {
        for &f in inv_freq {
            let angle = pos as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// [`cos_sin_vecs`] as tensors on `device`.
pub(crate) fn cos_sin(
    inv_freq: &[f32],
    seq_len: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let (cos, sin) = cos_sin_vecs(inv_freq, seq_len);
    Ok((
        Tensor::from_vec(cos, (seq_len, half), device)?,
        Tensor::from_vec(sin, (seq_len, half), device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RopeScaling;

    fn cfg(scaling: Option<RopeScaling>) -> Config {
        Config {
            family: Family::Llama,
            n_layers: 1,
            d_model: 128,
            n_heads: 1,
            n_kv_heads: 1,
            head_dim: 128,
            d_mlp: 4,
            vocab_size: 4,
            rms_norm_eps: 1e-5,
            rope_theta: 500_000.0,
            rope_scaling: scaling,
            rope_freq_factors: None,
            tied_embeddings: true,
            max_position: 128,
            bos_token_id: None,
            eos_token_id: None,
            ..Config::empty(Family::Llama)
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let plain = inv_freq(&cfg(None));
        let scaled = inv_freq(&cfg(Some(RopeScaling {
            rope_type: "llama3".into(),
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        })));
        assert_eq!(plain.len(), 64);
        assert_eq!(plain[0], scaled[0]);
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() < 1e-12);
        // Medium band: strictly between the two.
        assert!(plain
            .iter()
            .zip(&scaled)
            .any(|(p, s)| *s < *p && *s > *p / 8.0));
    }
}
