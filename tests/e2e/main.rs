//! End-to-end tests: drive the real `scopedex` binary on the fetched assets.
//!
//! Tests that need the embedded-default assets (`scripts/fetch-assets.sh`) fail with a message
//! saying how to fetch them, rather than silently passing.
mod assets;
mod explain;
mod export;
mod families;
mod index;
mod info;
mod movable;
mod query;
mod safety;
