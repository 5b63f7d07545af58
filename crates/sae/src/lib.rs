//! Sparse-autoencoder formats (Llama Scope, SAELens), `SaeId` parsing and batched sparse encoding.
#![warn(missing_docs)]

mod codes;

pub use codes::SparseCodes;
