//! Llama-family language-model runtime for scopedex.
//!
//! Owns the model file formats (GGUF, HF safetensors directories), the tokenizer and the forward
//! pass with hook points (`blocks.{L}.hook_resid_post`, ...). It knows nothing of SAEs or storage.
#![warn(missing_docs)]

mod error;
pub mod gguf;

pub use error::{Error, Result};
