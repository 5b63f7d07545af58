//! lm_saes' own checkpoint layout, written next to a Llama Scope folder so that lm_saes 2.x
//! (PyPI `lm-saes`, now `llamascopium`) loads the folder as it is:
//! `SparseAutoEncoder.from_pretrained(folder)` reads `config.json` (never `hyperparams.json`)
//! and takes `sae_weights.safetensors` before `checkpoints/final.safetensors`, with its own
//! tensor names (`W_E [d_model, d_sae]`, `b_E`, `W_D [d_sae, d_model]`, `b_D` and, for JumpReLU,
//! `activation_function.log_jumprelu_threshold`, one natural log per feature).
//!
//! The dataset-norm scaling is folded into the weights and the config says
//! `norm_activation: "inference"`: lm_saes' `"dataset-wise"` mode compares the gate with the
//! raw threshold where the release (and SAELens, and our reader) compares it with `thr · s_in`,
//! and its folding step leaves the threshold unscaled. Folded, lm_saes gives exactly the codes
//! lm_saes gives for the official releases through SAELens (checked by
//! `scripts/test-saelens.sh`). Our reader keeps reading `hyperparams.json` and
//! `checkpoints/final.safetensors`; these two files are only for lm_saes.
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::llamascope::{LlamaScopeHyperparams, LlamaScopeTensors};
use crate::error::{Error, Result};

/// lm_saes' config file, relative to the SAE folder.
pub const LM_SAES_CONFIG: &str = "config.json";
/// lm_saes' weights file, relative to the SAE folder.
pub const LM_SAES_WEIGHTS: &str = "sae_weights.safetensors";

/// Writes `dir/config.json` and `dir/sae_weights.safetensors` for the SAE that
/// `params`/`tensors` describe in the Llama Scope layout (see the module doc).
pub fn write_lm_saes(
    dir: &Path,
    params: &LlamaScopeHyperparams,
    tensors: &LlamaScopeTensors,
) -> Result<()> {
    let config_path = dir.join(LM_SAES_CONFIG);
    let weights_path = dir.join(LM_SAES_WEIGHTS);
    let (s_in, s_out) = match (
        &params.dataset_average_activation_norm,
        params.norm_activation.as_str(),
    ) {
        (Some(n), "dataset-wise") => {
            let root = (params.d_model as f64).sqrt();
            (root / n.input as f64, root / n.output as f64)
        }
        _ => (1.0, 1.0),
    };
    let f32_of = |t: &Tensor| t.to_dtype(DType::F32);
    let mut map = HashMap::new();
    map.insert(
        "W_E".to_string(),
        (f32_of(&tensors.encoder_weight)?.t()? * s_in)?.contiguous()?,
    );
    map.insert("b_E".to_string(), f32_of(&tensors.encoder_bias)?);
    map.insert(
        "W_D".to_string(),
        (f32_of(&tensors.decoder_weight)?.t()? / s_out)?.contiguous()?,
    );
    map.insert("b_D".to_string(), (f32_of(&tensors.decoder_bias)? / s_out)?);
    if params.act_fn == "jumprelu" {
        let thr = params.jump_relu_threshold.ok_or_else(|| {
            Error::invalid(
                &config_path,
                "jump_relu_threshold",
                "is required for jumprelu",
            )
        })? as f64;
        let log_thr = (thr * s_in).ln() as f32;
        map.insert(
            "activation_function.log_jumprelu_threshold".to_string(),
            Tensor::full(log_thr, params.d_sae, &candle_core::Device::Cpu)?,
        );
    }
    let mut config = serde_json::json!({
        "sae_type": "sae",
        "d_model": params.d_model,
        "expansion_factor": params.expansion_factor,
        "hook_point_in": params.hook_point_in,
        "hook_point_out": params.hook_point_out,
        "act_fn": params.act_fn,
        "norm_activation": "inference",
        "sparsity_include_decoder_norm": params.sparsity_include_decoder_norm,
        "use_decoder_bias": params.use_decoder_bias,
        "apply_decoder_bias_to_pre_encoder": params.apply_decoder_bias_to_pre_encoder,
    });
    if let Some(k) = params.top_k {
        config["top_k"] = k.into();
    }
    let json = serde_json::to_string_pretty(&config).map_err(|source| Error::Json {
        path: config_path.clone(),
        source,
    })?;
    std::fs::write(&config_path, json + "\n").map_err(|e| Error::io(&config_path, e))?;
    candle_core::safetensors::save(&map, &weights_path).map_err(|e| Error::Safetensors {
        path: weights_path.clone(),
        reason: e.to_string(),
    })?;
    super::llamascope::set_default_file_mode(&weights_path)
}
