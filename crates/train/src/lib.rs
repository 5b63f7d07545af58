//! TopK sparse-autoencoder training (Gao et al. 2024, "Scaling and evaluating sparse
//! autoencoders"; Llama Scope, He et al. 2024) on activations streamed from the scopedex model
//! runtime, written in the Llama Scope layout that `scopedex_sae::Sae::load` reads.
//!
//! ```text
//! ModelSource (forward to the deepest hook, BOS rows dropped)
//!   ├─ first eval_rows rows ──────────────────────────────► held-out set
//!   └─ ShuffleBuffer (buffer_rows per hook, half refilled at a time)
//!        └─ batches shared by every SAE ─► TopKSae::train_step (sparse backward + AuxK + Adam)
//! → evaluation through the loader's own encode → hyperparams.json + checkpoints/final.safetensors
//! ```
//!
//! Recipe: dataset-wise normalisation (`s = sqrt(d_model) / mean‖x‖`, estimated on the first
//! buffer; in ≠ out for transcoders), features initialised at training rows with a fitted encoder
//! scale ([`Init::Data`]; or random with encoder = decoder transpose), decoder rows at unit norm
//! (hence `sparsity_include_decoder_norm: false`), Adam with linear warm-up and a final linear
//! decay, AuxK against dead features, optional restarts of dead features at badly reconstructed
//! rows ([`TopKSae::resample`]) and several passes over the drawn tokens through a bf16 spill
//! file ([`TrainConfig::epochs`]), since a model forward costs more than an SAE step. The backward is written by hand: only `k`
//! (plus `k_aux`) features per row have a gradient, so one step costs one dense GEMM (the
//! encoder) plus sparse work, about 3× less than autograd's dense backward.
#![warn(missing_docs)]

mod config;
mod error;
mod rng;
mod run;
mod sae;
mod source;
mod spill;
mod step;

pub use config::{Init, TrainConfig, WrittenActivation};
pub use error::{Error, Result};
pub use rng::Rng;
pub use run::{
    check_output_dir, train, write_outputs, AlternativeEval, EvalReport, NoProgress, SaeReport,
    SaeTarget, TrainProgress, TrainReport, TrainedSae,
};
pub use sae::{Codes, TopKSae};
pub use source::{ActivationSource, ModelSource, Rows, ShuffleBuffer};
pub use spill::{Recording, Spill, SpillSource};
pub use step::{StepScratch, StepStats};
