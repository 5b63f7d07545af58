//! Export to the Llama Scope layout: the hyperparams and `nn.Linear`-oriented tensors that make
//! `scopedex_sae`'s loader reproduce the trained SAE (its TopK selection, or the JumpReLU that
//! [`TopKSae::calibrate_jump_threshold`] calibrated), and the loaded [`Sae`] itself.
use candle_core::{Device, Tensor};
use scopedex_sae::{LlamaScopeHyperparams, LlamaScopeTensors, Sae};

use super::TopKSae;
use crate::config::WrittenActivation;
use crate::error::{Error, Result};

impl TopKSae {
    /// The Llama Scope hyperparams that make the loader reproduce `activation`: the trained
    /// TopK selection, or the calibrated JumpReLU. The threshold is written whenever it was
    /// calibrated, in the release's units `gate / s_in` (what lm_saes' inference mode and SAELens
    /// compare it with): SAELens' Llama Scope loader needs the field even for a TopK file and
    /// then reads it as that JumpReLU. `top_k` records the trained k either way, as the release
    /// does.
    pub fn hyperparams(
        &self,
        hook_in: &str,
        hook_out: &str,
        activation: WrittenActivation,
    ) -> Result<LlamaScopeHyperparams> {
        let jump_relu_threshold = self.jump_threshold.map(|theta| theta / self.s_in);
        let act_fn = match (activation, jump_relu_threshold) {
            (WrittenActivation::TopK, _) => "topk",
            (WrittenActivation::JumpRelu, Some(_)) => "jumprelu",
            (WrittenActivation::JumpRelu, None) => {
                return Err(Error::InvalidConfig(
                    "a JumpReLU SAE needs its threshold calibrated first".into(),
                ))
            }
        };
        Ok(LlamaScopeHyperparams {
            d_model: self.d,
            d_sae: self.d_sae,
            expansion_factor: (self.d_sae / self.d) as u32,
            hook_point_in: hook_in.into(),
            hook_point_out: hook_out.into(),
            act_fn: act_fn.into(),
            jump_relu_threshold,
            top_k: Some(self.k),
            norm_activation: "dataset-wise".into(),
            dataset_average_activation_norm: Some(self.norm),
            sparsity_include_decoder_norm: false,
            use_decoder_bias: true,
            apply_decoder_bias_to_pre_encoder: false,
        })
    }

    /// The four tensors, f32, in `nn.Linear` orientation.
    pub fn tensors(&self) -> Result<LlamaScopeTensors> {
        let (d, s) = (self.d, self.d_sae);
        let cpu = Device::Cpu;
        let mut dec_t = vec![0f32; d * s];
        for (j, row) in self.dec.chunks_exact(d).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                dec_t[i * s + j] = v;
            }
        }
        Ok(LlamaScopeTensors {
            encoder_weight: Tensor::from_slice(&self.enc, (s, d), &cpu)?,
            encoder_bias: Tensor::from_slice(&self.b_enc, s, &cpu)?,
            decoder_weight: Tensor::from_vec(dec_t, (d, s), &cpu)?,
            decoder_bias: Tensor::from_slice(&self.b_dec, d, &cpu)?,
        })
    }

    /// The SAE as the loader would build it from the written files.
    pub fn to_sae(
        &self,
        name: &str,
        hook_in: &str,
        hook_out: &str,
        activation: WrittenActivation,
    ) -> Result<Sae> {
        Ok(Sae::from_llama_scope(
            name,
            &self.hyperparams(hook_in, hook_out, activation)?,
            &self.tensors()?,
            &Device::Cpu,
        )?)
    }
}
