//! The axum query server and the static web UI.
#![warn(missing_docs)]
