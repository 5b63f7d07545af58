//! The language-model runtime of scopedex.
//!
//! Owns the model file formats (GGUF, HF safetensors directories), the tokenizer and the forward
//! pass with hook points (`blocks.{L}.hook_resid_post`, ...) for every supported [`Family`].
//! It knows nothing of SAEs or storage.
//!
//! Layout: [`Model`] is the one decoder (embedding, packing, hook capture, early stop, logits);
//! `families/` holds one file per family (config resolution, GGUF names, which blocks its
//! weights build); `layers/` the blocks they share; `backend/` how tensor work runs (the fused
//! CPU kernels or candle's ops), chosen once at load as a [`Backend`].
//!
//! ```no_run
//! # fn main() -> scopedex_model::Result<()> {
//! use scopedex_model::{load_tokenizer, Backend, CapturePlan, HookPoint, Model};
//! let path = std::path::Path::new("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
//! let model = Model::load(path, &Backend::cpu())?;
//! let tok = load_tokenizer(path)?;
//! let ids = tok.encode_with_bos("Hello world", 128)?;
//! let hook: HookPoint = "blocks.15.hook_resid_post".parse()?;
//! let out = model.forward_capture(&[&ids], &CapturePlan::new([hook]))?;
//! let rows = out.valid_rows(hook)?; // [ids.len(), 576]
//! # let _ = rows; Ok(()) }
//! ```
#![warn(missing_docs)]

mod backend;
mod config;
pub mod dump;
mod error;
mod families;
pub mod gguf;
mod hook;
mod layers;
mod model;
mod tokenizer;
mod vocab;
mod weights;

pub use backend::Backend;
pub use config::{Config, RopeScaling};
pub use error::{Error, Result};
pub use families::Family;
pub use hook::{hook_sites, CapturePlan, Captured, HookPoint, HookSite};
pub use model::Model;
pub use tokenizer::{load_tokenizer, ModelTokenizer};
pub use vocab::TokenSpelling;
