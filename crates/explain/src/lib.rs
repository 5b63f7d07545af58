//! Feature explanations: scopedex's auto-interpretability loop over an index's stored
//! examples, after EleutherAI's delphi and OpenAI's automated-interpretability
//! (`../shared/reference/autointerp.md` summarizes both, with sources).
//!
//! - [`sample`]: which examples the explainer sees and which the scorers test on (disjoint by
//!   construction), seeded per feature.
//! - [`prompt`]: the explainer's prompt (delphi's shape, scopedex's wording) and the parsing of
//!   its answer.
//! - [`scorer`], [`metrics`]: detection and fuzzing prompts, answers, and their metrics.
//! - [`client`]: any OpenAI-compatible chat-completions endpoint, with retries and backoff.
//! - [`source`]: examples and non-activating contexts from a published index.
//! - [`explain`], [`score`]: the resumable runs ([`journal`]) that publish into the index.
//! - [`semantic`]: feature search by meaning through an embeddings endpoint.
//!
//! Library crate: typed errors ([`Error`]), `tracing` for logs; the CLI drives it.
#![warn(missing_docs)]

pub mod client;
mod error;
pub mod explain;
pub mod journal;
pub mod metrics;
pub mod prompt;
mod run;
pub mod sample;
pub mod score;
pub mod scorer;
pub mod semantic;
pub mod source;

pub use client::{ChatClient, EndpointConfig};
pub use error::{Error, Result};
pub use explain::{explain, ExplainConfig, ExplainReport};
pub use run::Progress;
pub use score::{score, ScoreConfig, ScoreReport};
