//! Paths inside an index directory. The only place file names are spelled out; see the crate
//! docs for what each file holds.
use std::path::{Path, PathBuf};

/// `contexts.parquet`
pub const CONTEXTS_FILE: &str = "contexts.parquet";
/// `vocab.parquet`
pub const VOCAB_FILE: &str = "vocab.parquet";
/// `saes/`
pub const SAES_DIR: &str = "saes";
/// `saes/{sae}/features.parquet`
pub const FEATURES_FILE: &str = "features.parquet";
/// `saes/{sae}/examples.parquet`
pub const EXAMPLES_FILE: &str = "examples.parquet";
/// `saes/{sae}/cooccurrence.parquet`
pub const COOCCURRENCE_FILE: &str = "cooccurrence.parquet";
/// `saes/{sae}/neighbours.parquet`
pub const NEIGHBOURS_FILE: &str = "neighbours.parquet";
/// `saes/{sae}/summary.parquet`
pub const SUMMARY_FILE: &str = "summary.parquet";
/// `saes/{sae}/context_features.parquet`
pub const CONTEXT_FEATURES_FILE: &str = "context_features.parquet";
/// `saes/{sae}/explanations.parquet`
pub const EXPLANATIONS_FILE: &str = "explanations.parquet";
/// `explanations/`: the tantivy index of explanation texts.
pub const EXPLANATIONS_TEXT_DIR: &str = "explanations";
/// `saes/{sae}/activations/`
pub const ACTIVATIONS_DIR: &str = "activations";
/// `rocksdb/`
pub const ROCKSDB_DIR: &str = "rocksdb";
/// `tantivy/`
pub const TANTIVY_DIR: &str = "tantivy";

/// The paths of one index directory. SAE ids must already be validated
/// ([`crate::validate_sae_id`]); they are used as path components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLayout {
    root: PathBuf,
}

impl IndexLayout {
    /// Layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        IndexLayout { root: root.into() }
    }

    /// The index directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `manifest.json`
    pub fn manifest(&self) -> PathBuf {
        self.root.join(crate::manifest::MANIFEST_FILE)
    }

    /// `contexts.parquet`
    pub fn contexts(&self) -> PathBuf {
        self.root.join(CONTEXTS_FILE)
    }

    /// `vocab.parquet`
    pub fn vocab(&self) -> PathBuf {
        self.root.join(VOCAB_FILE)
    }

    /// `saes/{sae}/`
    pub fn sae_dir(&self, sae: &str) -> PathBuf {
        self.root.join(SAES_DIR).join(sae)
    }

    /// `saes/{sae}/features.parquet`
    pub fn features(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(FEATURES_FILE)
    }

    /// `saes/{sae}/examples.parquet`
    pub fn examples(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(EXAMPLES_FILE)
    }

    /// `saes/{sae}/cooccurrence.parquet`
    pub fn cooccurrence(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(COOCCURRENCE_FILE)
    }

    /// `saes/{sae}/neighbours.parquet`
    pub fn neighbours(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(NEIGHBOURS_FILE)
    }

    /// `saes/{sae}/summary.parquet`
    pub fn summary(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(SUMMARY_FILE)
    }

    /// `saes/{sae}/context_features.parquet`
    pub fn context_features(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(CONTEXT_FEATURES_FILE)
    }

    /// `saes/{sae}/explanations.parquet` (absent until features are explained)
    pub fn explanations(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(EXPLANATIONS_FILE)
    }

    /// `explanations/`: tantivy index of every SAE's explanation texts (absent while none)
    pub fn explanations_text(&self) -> PathBuf {
        self.root.join(EXPLANATIONS_TEXT_DIR)
    }

    /// `saes/{sae}/activations/` (holds `part-{shard:05}-{seq:06}.parquet`).
    pub fn activations_dir(&self, sae: &str) -> PathBuf {
        self.sae_dir(sae).join(ACTIVATIONS_DIR)
    }

    /// `rocksdb/`
    pub fn rocksdb(&self) -> PathBuf {
        self.root.join(ROCKSDB_DIR)
    }

    /// `tantivy/`
    pub fn tantivy(&self) -> PathBuf {
        self.root.join(TANTIVY_DIR)
    }
}
