//! Training settings, with the defaults used for the demo SAEs.
use serde::Serialize;

use crate::error::{Error, Result};

/// How to train a set of TopK SAEs that share one activation stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Active features per token.
    pub k: usize,
    /// Training tokens (rows) drawn from the source; every SAE sees every one `epochs` times.
    pub tokens: u64,
    /// Passes over the training tokens. Passes after the first replay a bf16 spill file of the
    /// first (in a fresh shuffle), so optimiser steps grow without more model forwards.
    pub epochs: u32,
    /// Folder of the spill file when `epochs > 1` (default: the system's temporary folder).
    #[serde(skip)]
    pub spill_dir: Option<std::path::PathBuf>,
    /// Rows per optimiser step.
    pub batch_rows: usize,
    /// Peak Adam learning rate (after warm-up).
    pub lr: f32,
    /// Fraction of the steps spent warming the learning rate up linearly from 0.
    pub warmup_frac: f32,
    /// Fraction of the steps, at the end, over which the learning rate decays linearly to 0.
    pub decay_frac: f32,
    /// Adam β₁.
    pub beta1: f32,
    /// Adam β₂.
    pub beta2: f32,
    /// Adam ε.
    pub eps: f32,
    /// AuxK (Gao et al. 2024): dead features reconstructing the residual, `k_aux` per row.
    pub aux_k: usize,
    /// Weight α of the AuxK loss (Gao et al.: 1/32).
    pub aux_coeff: f32,
    /// A feature is dead when it has not fired in this many training tokens.
    pub dead_after_tokens: u64,
    /// Every this many training tokens (0: never), dead features restart at rows the SAE
    /// reconstructs worst ([`TopKSae::resample`](crate::TopKSae::resample)); only before the
    /// final learning-rate decay.
    pub resample_every_tokens: u64,
    /// Rows held in the shuffle buffer (per hook); half is refilled at a time.
    pub buffer_rows: usize,
    /// Held-out rows (taken first from the stream, never trained on) for evaluation.
    pub eval_rows: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// How the feature directions start.
    pub init: Init,
    /// The activation the written SAE uses.
    pub written_activation: WrittenActivation,
}

/// The activation function of the written SAE. Training is TopK either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WrittenActivation {
    /// A scalar JumpReLU threshold calibrated on the held-out rows so the mean L0 there is k,
    /// as the Llama Scope release did: SAELens' Llama Scope loader and lm_saes read only this.
    JumpRelu,
    /// The TopK selection itself (exactly k per token); scopedex reads it, SAELens does not.
    TopK,
}

impl std::str::FromStr for WrittenActivation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "jumprelu" => Ok(WrittenActivation::JumpRelu),
            "topk" => Ok(WrittenActivation::TopK),
            other => Err(format!(
                "activation must be jumprelu or topk, got {other:?}"
            )),
        }
    }
}

/// Initial feature directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Random unit decoder rows, encoder = decoder (Gao et al. 2024).
    Random,
    /// Each feature starts at one random training row: decoder row = that row's centred,
    /// normalised target, encoder row = its centred, normalised input, then every encoder row is
    /// scaled by one least-squares factor so the reconstruction is not k-fold too large
    /// ([`TopKSae::calibrate_encoder_scale`](crate::TopKSae::calibrate_encoder_scale)). On
    /// anisotropic hooks (attention and MLP outputs, transcoders) random directions rarely win a
    /// TopK against the few aligned with the data's main directions, and most of them die; rows
    /// drawn from the data cover where the data is. Measured on the demo's L6 A/M/TC (200k
    /// tokens, one pass) against `Random`: EV 0.762/0.512/0.345 → 0.777/0.562/0.421, dead
    /// 73/2/60 % → 78/13/16 % (without the scale fit, EV was 0.04–0.10 *lower* than `Random`).
    Data,
}

impl std::str::FromStr for Init {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "random" => Ok(Init::Random),
            "data" => Ok(Init::Data),
            other => Err(format!("init must be random or data, got {other:?}")),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            k: 32,
            tokens: 1_000_000,
            epochs: 1,
            spill_dir: None,
            batch_rows: 2048,
            lr: 1e-3,
            warmup_frac: 0.03,
            decay_frac: 0.2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            aux_k: 256,
            aux_coeff: 1.0 / 32.0,
            dead_after_tokens: 100_000,
            resample_every_tokens: 0,
            buffer_rows: 32_768,
            eval_rows: 8192,
            seed: 42,
            init: Init::Data,
            written_activation: WrittenActivation::TopK,
        }
    }
}

impl TrainConfig {
    /// Checks ranges; the error names the bad setting.
    pub fn validate(&self, d_sae: usize) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.k == 0 || self.k > d_sae {
            return bad(format!("k = {} must be in 1..={d_sae} (d_sae)", self.k));
        }
        if self.batch_rows == 0 {
            return bad("batch_rows must be positive".into());
        }
        if self.buffer_rows < 2 * self.batch_rows {
            return bad(format!(
                "buffer_rows = {} must hold at least two batches of {}",
                self.buffer_rows, self.batch_rows
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr = {} must be a positive number", self.lr));
        }
        let frac = |f: f32| (0.0..=1.0).contains(&f);
        if !frac(self.warmup_frac)
            || !frac(self.decay_frac)
            || self.warmup_frac + self.decay_frac > 1.0
        {
            return bad(format!(
                "warmup_frac = {} and decay_frac = {} must be in [0, 1] and sum to at most 1",
                self.warmup_frac, self.decay_frac
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("Adam betas must be in [0, 1)".into());
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.tokens < self.batch_rows as u64 {
            return bad(format!(
                "tokens = {} is less than one batch ({})",
                self.tokens, self.batch_rows
            ));
        }
        Ok(())
    }

    /// Optimiser steps of one pass over the training tokens.
    pub fn steps_per_epoch(&self) -> u64 {
        self.tokens.div_ceil(self.batch_rows as u64)
    }

    /// Optimiser steps of the whole run (all passes).
    pub fn total_steps(&self) -> u64 {
        self.steps_per_epoch() * self.epochs as u64
    }

    /// Learning rate at `step` (0-based): linear warm-up, constant, linear decay to 0.
    pub fn lr_at(&self, step: u64) -> f32 {
        let total = self.total_steps().max(1) as f32;
        let s = step as f32;
        let warm = (self.warmup_frac * total).max(1.0);
        let decay_start = total * (1.0 - self.decay_frac);
        let w = if s < warm { (s + 1.0) / warm } else { 1.0 };
        let d = if self.decay_frac > 0.0 && s >= decay_start {
            ((total - s) / (total - decay_start)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        self.lr * w.min(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_and_decays() {
        let c = TrainConfig {
            tokens: 100 * 2048,
            ..TrainConfig::default()
        };
        assert_eq!(c.total_steps(), 100);
        assert!(c.lr_at(0) < c.lr * 0.5);
        assert_eq!(c.lr_at(50), c.lr);
        assert!(c.lr_at(99) < c.lr * 0.1);
        c.validate(4608).unwrap();
        assert!(TrainConfig { k: 0, ..c.clone() }.validate(4608).is_err());
    }
}
