//! The scopedex query server: an axum JSON API over one index directory, plus the static web UI.
//!
//! Run it with `scopedex serve INDEX [--addr 127.0.0.1:8080] [--web web/dist] [--no-model]`;
//! `RUST_LOG`-style filters go in `SCOPEDEX_LOG` (e.g. `SCOPEDEX_LOG=tower_http=debug` logs
//! every request with its status and latency; `info` shows startup, reloads and 5xx).
//!
//! - [`router::router`] lists every route (see `schemas/openapi.yaml` for the contract);
//! - [`state::AppState`] holds the [`snapshot::IndexHandle`] (current index version, swapped
//!   when the directory is republished) and the optional [`live::LiveModel`];
//! - handlers validate, take one snapshot, call a [`views`] builder and serialize; the CLI's
//!   query commands call the same builders, so `--json` equals the API bodies;
//! - [`error::ApiError`] is the only error: JSON `{error, detail}` with 400/404/413/422/503, and
//!   500 only for internal faults, never for bad input ([`extract`] maps extractor rejections).
//!
//! Reads come from RocksDB and tantivy only; the features overview's sort orders are built once
//! per index version and SAE ([`snapshot::FeatureTable`]).
#![warn(missing_docs)]

mod admission;
mod blocking;
pub mod error;
pub mod extract;
mod handlers;
mod http;
pub mod live;
pub mod router;
pub mod serve;
pub mod snapshot;
pub mod state;
pub mod tokens;
pub mod views;
pub mod web;

pub use error::{ApiError, ApiResult};
pub use live::LiveModel;
pub use router::router;
pub use serve::serve;
pub use snapshot::{IndexHandle, Snapshot};
pub use state::AppState;
pub use tokens::TokenTable;
