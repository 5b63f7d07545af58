//! Locating the workspace and its fetched assets.
use std::path::PathBuf;

/// The workspace root (two levels above the cli crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("invariant: the cli crate sits two levels below the workspace root")
}

/// The default model file; panics with the fix when it has not been fetched.
pub fn default_model() -> PathBuf {
    let path = workspace_root().join("assets/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-assets.sh first",
        path.display()
    );
    path
}

/// Path of the built `scopedex` binary.
pub fn scopedex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scopedex"))
}
