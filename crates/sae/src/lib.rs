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
//! Module map: `id` (ids and hooks), `llamascope` / `saelens` (formats, resolved into one set of
//! f32 parameters in `sae`), `encode` (GEMM + fused selection), `metrics`, `codes` (CSR output),
//! `weights` (safetensors reading), `json` (config fields with named errors).
#![warn(missing_docs)]

mod codes;
mod encode;
mod error;
mod fabricate;
mod id;
mod json;
mod llamascope;
mod metrics;
mod sae;
mod saelens;
mod weights;

pub use codes::SparseCodes;
pub use error::{Error, Result};
pub use fabricate::{fabricate_llama_scope, FabricateSpec};
pub use id::{Position, SaeId};
pub use llamascope::{
    list_repo, write_llama_scope, DatasetNorm, LlamaScopeHyperparams, LlamaScopeTensors,
};
pub use metrics::{reconstruction_metrics, ReconstructionMetrics};
pub use sae::{Activation, Sae, SaeFormat, ThresholdKind};
pub use weights::read_tensor;
