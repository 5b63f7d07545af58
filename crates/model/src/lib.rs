//! Llama-family language-model runtime for scopedex.
//!
//! Owns the model file formats (GGUF, HF safetensors directories), the tokenizer and the forward
//! pass with hook points (`blocks.{L}.hook_resid_post`, ...). It knows nothing of SAEs or storage.
//!
//! ```no_run
//! # fn main() -> scopedex_model::Result<()> {
//! use scopedex_model::{load_tokenizer, CapturePlan, HookPoint, Llama};
//! let path = std::path::Path::new("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
//! let model = Llama::load(path, &candle_core::Device::Cpu)?;
//! let tok = load_tokenizer(path)?;
//! let ids = tok.encode_with_bos("Hello world", 128)?;
//! let hook: HookPoint = "blocks.15.hook_resid_post".parse()?;
//! let out = model.forward_capture(&[&ids], &CapturePlan::new([hook]))?;
//! let rows = out.valid_rows(hook)?; // [ids.len(), 576]
//! # let _ = rows; Ok(()) }
//! ```
#![warn(missing_docs)]

mod attention;
mod block;
mod config;
mod cpu_kernels;
pub mod dump;
mod error;
pub mod gguf;
mod hook;
mod linear;
mod llama;
mod mlp;
mod rope;
mod tokenizer;
mod vocab;
mod weights;

pub use config::{Config, LlamaConfig, RopeScaling};
pub use error::{Error, Result};
pub use hook::{CapturePlan, Captured, HookPoint};
pub use llama::Llama;
pub use tokenizer::{load_tokenizer, ModelTokenizer};
pub use vocab::TokenSpelling;
