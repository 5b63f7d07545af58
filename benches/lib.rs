//! Shared helpers for the benchmark binaries (none yet).
