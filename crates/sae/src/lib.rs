//! Sparse-autoencoder formats (Llama Scope, SAELens), `SaeId` parsing and batched sparse encoding.
//!
//! ```no_run
//! # fn main() -> scopedex_sae::Result<()> {
//! use candle_core::{Device, Tensor};
//! let sae = scopedex_sae::Sae::load("assets/L15R-8x".as_ref(), &Device::Cpu)?;
//! let x = Tensor::zeros((4, sae.d_in()), candle_core::DType::F32, &Device::Cpu)?;
//! let codes = sae.encode(&x)?; // CSR, one row per token
//! let y = sae.decode(&codes)?; // [4, d_out], native scale
//! # let _ = y; Ok(()) }
//! ```
//!
//! Module map: `id` (ids and hooks), `params` (activation, format tag and the resolved parameter
//! bundle: the leaf shared by loaders and `sae`), `formats/{llamascope,saelens}` (on-disk
//! layouts, each resolved into `params::Resolved`), `sae` (the loaded SAE: detection, fold,
//! accessors, decode), `encode` (GEMM + fused selection), `device_select` (selection on a GPU),
//! `metrics`, `recon_terms` (a batch's explained-variance sums, on the GPU when there is one),
//! `codes` (CSR output), `weights` (safetensors reading), `json` (config fields with named
//! errors).
#![warn(missing_docs)]

mod codes;
mod device_select;
mod encode;
mod error;
mod fabricate;
mod formats;
mod id;
mod json;
mod metrics;
mod npz;
mod params;
mod recon_terms;
mod sae;
mod weights;

pub use codes::SparseCodes;
pub use error::{Error, Result};
pub use fabricate::{fabricate_llama_scope, FabricateSpec};
pub use formats::llamascope::{
    list_repo, write_llama_scope, DatasetNorm, LlamaScopeHyperparams, LlamaScopeTensors,
};
pub use formats::lm_saes::{write_lm_saes, LM_SAES_CONFIG, LM_SAES_WEIGHTS};
pub use id::{Position, SaeId, Width};
pub use metrics::{reconstruction_metrics, ReconstructionMetrics};
pub use params::{Activation, InputNorm, SaeFormat, ThresholdKind};
pub use recon_terms::{dim_fixed, ReconTerms, DIM_SUM_FRAC_BITS};
pub use sae::Sae;
pub use weights::read_tensor;
