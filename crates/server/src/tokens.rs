//! [`TokenTable`]: token id → readable text, built once per tokenizer.
//!
//! Each id is decoded on its own with the tokenizer's decoder, so byte-level BPE tokens come out
//! as text (`Ġthe` → ` the`, `Ċ` → newline); a token that is only part of a UTF-8 character
//! decodes to U+FFFD. An index carries its vocabulary (`vocab.parquet`), so tokens render
//! wherever the index is moved; for an older index without one the model's tokenizer is
//! loaded, and when that fails too (moved model file, test fixtures), ids render as `<id>`
//! with a warning and the server still answers.
use std::path::{Path, PathBuf};

use scopedex_store::Manifest;

/// Readable text of every token id of one vocabulary.
#[derive(Debug, Default)]
pub struct TokenTable {
    strings: Vec<String>,
    source: Option<PathBuf>,
}

impl TokenTable {
    /// A table that renders every id as `<id>`.
    pub fn placeholder() -> Self {
        TokenTable::default()
    }

    /// Decodes every id of `tok`'s vocabulary (added tokens included).
    pub fn from_tokenizer(tok: &scopedex_model::ModelTokenizer) -> Self {
        let n = tok.tokenizer.get_vocab_size(true) as u32;
        let strings = (0..n)
            .map(|id| match tok.tokenizer.decode(&[id], false) {
                Ok(s) if !s.is_empty() => s,
                _ => tok
                    .tokenizer
                    .id_to_token(id)
                    .unwrap_or_else(|| format!("<{id}>")),
            })
            .collect();
        TokenTable {
            strings,
            source: None,
        }
    }

    /// The index's recorded vocabulary (`vocab.parquet`'s decoded texts).
    pub fn from_vocab(vocab: &[scopedex_store::VocabRecord]) -> Self {
        TokenTable {
            strings: vocab.iter().map(|r| r.text.clone()).collect(),
            source: Some(PathBuf::from(scopedex_store::layout::VOCAB_FILE)),
        }
    }

    /// The tokenizer of the index's manifest (`tokenizer.source` when it is a file, else the
    /// model path), or the placeholder table with a warning when it cannot be loaded.
    pub fn for_manifest(manifest: &Manifest) -> Self {
        let path = tokenizer_path(manifest);
        match scopedex_model::load_tokenizer(&path) {
            Ok(tok) => {
                let mut t = Self::from_tokenizer(&tok);
                t.source = Some(path);
                t
            }
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "tokenizer not loaded; tokens are shown as <id>"
                );
                Self::placeholder()
            }
        }
    }

    /// Where the table came from (`None` for placeholders).
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The text of `id`.
    pub fn text(&self, id: u32) -> String {
        match self.strings.get(id as usize) {
            Some(s) => s.clone(),
            None => format!("<{id}>"),
        }
    }

    /// Number of ids with a decoded text.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True for the placeholder table.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// The tokenizer file or model of a manifest: `tokenizer.source` unless it is `gguf:{path}` (then
/// that path), falling back to `model.path`.
pub fn tokenizer_path(manifest: &Manifest) -> PathBuf {
    let source = manifest.tokenizer.source.as_str();
    if let Some(gguf) = source.strip_prefix("gguf:") {
        return PathBuf::from(gguf);
    }
    let p = Path::new(source);
    if !source.is_empty() && p.exists() {
        return p.to_path_buf();
    }
    PathBuf::from(&manifest.model.path)
}
