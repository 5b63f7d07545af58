//! The on-disk SAE formats, one file each. Every loader reads its layout and resolves it into
//! [`Resolved`](crate::params::Resolved), the one set of `f32` parameters that
//! [`Sae`](crate::Sae) folds and encodes with.
//!
//! Loaders depend only on the leaf modules (`params`, `id`, `json`, `weights`, `error`), never on
//! `sae`, so a new format (e.g. Gemma Scope `params.npz`, OpenAI TopK `.pt`) is one more sibling
//! file here plus one branch of format detection in [`Sae::load`](crate::Sae::load).
pub(crate) mod gemmascope;
pub(crate) mod llamascope;
pub(crate) mod lm_saes;
pub(crate) mod openai;
pub(crate) mod saelens;
