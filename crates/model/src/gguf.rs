//! Reading GGUF metadata: architecture, shapes and tokenizer size, without loading tensors.
//!
//! Used to describe a model file cheaply (manifest, `scopedex info`) and to validate a file
//! before the heavier weight loader runs.
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};

use crate::{Error, Result};

/// Shape facts about a GGUF model, read from its metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GgufSummary {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name` when present.
    pub name: Option<String>,
    /// Number of transformer blocks (`{arch}.block_count`).
    pub n_layers: usize,
    /// Width of the residual stream (`{arch}.embedding_length`).
    pub d_model: usize,
    /// Number of tokens in `tokenizer.ggml.tokens`.
    pub vocab_size: usize,
    /// `tokenizer.ggml.model`, e.g. `gpt2`.
    pub tokenizer_model: Option<String>,
    /// Number of tensors stored in the file.
    pub n_tensors: usize,
}

/// Opens a GGUF file and parses its header and metadata (no tensor data is read).
pub fn read_content(path: &Path) -> Result<Content> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    Content::read(&mut reader).map_err(|e| Error::BadGguf {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Reads the summary of a GGUF model file.
pub fn summarize(path: &Path) -> Result<GgufSummary> {
    let content = read_content(path)?;
    let md = &content.metadata;
    let field = |key: &str| -> Result<&Value> {
        md.get(key).ok_or_else(|| Error::BadField {
            path: path.to_path_buf(),
            field: key.to_string(),
            detail: "is missing".into(),
        })
    };
    let bad = |key: &str, e: candle_core::Error| Error::BadField {
        path: path.to_path_buf(),
        field: key.to_string(),
        detail: e.to_string(),
    };
    let architecture = field("general.architecture")?
        .to_string()
        .map_err(|e| bad("general.architecture", e))?
        .clone();
    let as_usize = |key: String| -> Result<usize> {
        let v = field(&key)?;
        v.to_u64()
            .map(|x| x as usize)
            .or_else(|_| v.to_u32().map(|x| x as usize))
            .map_err(|e| bad(&key, e))
    };
    let n_layers = as_usize(format!("{architecture}.block_count"))?;
    let d_model = as_usize(format!("{architecture}.embedding_length"))?;
    let vocab_size = field("tokenizer.ggml.tokens")?
        .to_vec()
        .map_err(|e| bad("tokenizer.ggml.tokens", e))?
        .len();
    let opt_string = |key: &str| md.get(key).and_then(|v| v.to_string().ok()).cloned();
    Ok(GgufSummary {
        name: opt_string("general.name"),
        tokenizer_model: opt_string("tokenizer.ggml.model"),
        architecture,
        n_layers,
        d_model,
        vocab_size,
        n_tensors: content.tensor_infos.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.gguf");
        std::fs::write(&path, b"GGUF\x03\x00").unwrap();
        let err = summarize(&path).unwrap_err().to_string();
        assert!(err.contains("broken.gguf"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = summarize(Path::new("/nonexistent/m.gguf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/m.gguf"), "{err}");
    }
}
