//! Tokenizers: `tokenizer.json` beside an HF checkpoint, or the same `tokenizers::Tokenizer`
//! rebuilt from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! For GGUF, only gpt2-style byte-level BPE (`tokenizer.ggml.model = gpt2`) is built: vocabulary
//! and merges from the metadata, tokens of type CONTROL (3) / USER_DEFINED (4) as added tokens,
//! and the pre-tokenizer that `tokenizer.ggml.pre` names, written as llama.cpp's
//! `llama-vocab.cpp` defines it (e.g. `smollm`: each `\p{N}` isolated, then the GPT-2 regex;
//! that is the `Digits(individual_digits) + ByteLevel` of SmolLM2's own `tokenizer.json`).
//!
//! Invariant: the tokenizer never adds BOS itself (no template post-processor for GGUF; callers
//! encode with `add_special_tokens = false` and prepend [`ModelTokenizer::bos_id`], see
//! [`ModelTokenizer::encode_with_bos`]).
use std::path::Path;

use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Map};

use crate::gguf::{read_content, Meta};
use crate::weights::read_text;
use crate::{Error, Result};

/// A tokenizer with the model's BOS/EOS ids.
#[derive(Clone)]
pub struct ModelTokenizer {
    /// The HF `tokenizers` tokenizer.
    pub tokenizer: tokenizers::Tokenizer,
    /// Beginning-of-sequence token id, if the model has one.
    pub bos_id: Option<u32>,
    /// End-of-sequence token id, if the model has one.
    pub eos_id: Option<u32>,
}

impl std::fmt::Debug for ModelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .finish()
    }
}

impl ModelTokenizer {
    /// Token ids of `text` without any special token added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer {
                path: "(loaded tokenizer)".into(),
                detail: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// BOS (when the model has one) followed by the ids of `text`, truncated to `max_len` tokens.
    pub fn encode_with_bos(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.bos_id.into_iter().collect();
        ids.extend(self.encode(text)?);
        ids.truncate(max_len);
        Ok(ids)
    }
}

/// Loads the tokenizer of a model: `model_path` is a GGUF file, an HF directory holding
/// `tokenizer.json` (BOS/EOS from its `config.json`), or a `tokenizer.json` file.
pub fn load_tokenizer(model_path: &Path) -> Result<ModelTokenizer> {
    if model_path.is_dir() {
        let tok_path = model_path.join("tokenizer.json");
        let tokenizer = from_json_file(&tok_path)?;
        let (bos_id, eos_id) = hf_special_ids(model_path)?;
        return Ok(ModelTokenizer {
            tokenizer,
            bos_id,
            eos_id,
        });
    }
    if model_path.extension().is_some_and(|e| e == "json") {
        return Ok(ModelTokenizer {
            tokenizer: from_json_file(model_path)?,
            bos_id: None,
            eos_id: None,
        });
    }
    from_gguf(model_path)
}

fn from_json_file(path: &Path) -> Result<tokenizers::Tokenizer> {
    let text = read_text(path)?;
    text.parse::<tokenizers::Tokenizer>()
        .map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// BOS/EOS ids from `dir/config.json`, if present.
fn hf_special_ids(dir: &Path) -> Result<(Option<u32>, Option<u32>)> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok((None, None));
    }
    let v: serde_json::Value =
        serde_json::from_str(&read_text(&path)?).map_err(|e| Error::BadConfig {
            path: path.clone(),
            field: "(json)".into(),
            detail: e.to_string(),
        })?;
    Ok((
        crate::config::first_id(&v.get("bos_token_id").cloned()),
        crate::config::first_id(&v.get("eos_token_id").cloned()),
    ))
}

/// Llama 3's pre-tokenizer regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's pre-tokenizer regex (its `tokenizer.json`; llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`):
/// Llama 3's with single digits.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer JSON for a llama.cpp `tokenizer.ggml.pre` name.
fn pre_tokenizer(pre: &str) -> Option<serde_json::Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    Some(match pre {
        "gpt2" | "default" | "gpt-2" | "olmo" | "jais" => byte_level(true),
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                byte_level(true),
            ]})
        }
        "qwen2" | "deepseek-r1-qwen" => {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": false},
                byte_level(false),
            ]})
        }
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": false},
                byte_level(false),
            ]})
        }
        _ => return None,
    })
}

/// A metadata array of strings.
fn strings<'a>(m: &Meta<'a>, key: &str) -> Result<Vec<&'a str>> {
    m.get(key)?
        .to_vec()
        .map_err(|e| m.bad(key, e.to_string()))?
        .iter()
        .map(|v| {
            v.to_string()
                .map(String::as_str)
                .map_err(|e| m.bad(key, e.to_string()))
        })
        .collect()
}

fn from_gguf(path: &Path) -> Result<ModelTokenizer> {
    let content = read_content(path)?;
    let m = Meta {
        path,
        content: &content,
    };
    let model = m.string("tokenizer.ggml.model")?;
    let arch = m.string("general.architecture")?;
    let tokens = strings(&m, "tokenizer.ggml.tokens")?;
    let types = token_types(&m, tokens.len())?;
    let spec = match model {
        "gpt2" => byte_level_spec(&m, &tokens, &types)?,
        "llama" if arch.starts_with("gemma") => gemma_spec(&tokens, &types),
        _ => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: "tokenizer (tokenizer.ggml.model)".into(),
                detail: format!(
                    "{model} for architecture {arch} (supported: gpt2-style byte-level BPE, and \
                     Gemma's SentencePiece vocabulary)"
                ),
            })
        }
    };
    let tokenizer = spec
        .to_string()
        .parse::<tokenizers::Tokenizer>()
        .map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let id = |key: &str| -> Result<Option<u32>> {
        Ok(m.opt_usize(key)?.and_then(|x| u32::try_from(x).ok()))
    };
    Ok(ModelTokenizer {
        tokenizer,
        bos_id: id("tokenizer.ggml.bos_token_id")?,
        eos_id: id("tokenizer.ggml.eos_token_id")?,
    })
}

/// `tokenizer.ggml.token_type`, one per token (all normal when absent).
fn token_types(m: &Meta, n_tokens: usize) -> Result<Vec<i64>> {
    let types: Vec<i64> = match m.opt("tokenizer.ggml.token_type") {
        None => vec![1; n_tokens],
        Some(v) => v
            .to_vec()
            .map_err(|e| m.bad("tokenizer.ggml.token_type", e.to_string()))?
            .iter()
            .map(|t| match t {
                Value::I32(x) => Ok(*x as i64),
                Value::U32(x) => Ok(*x as i64),
                Value::I8(x) => Ok(*x as i64),
                Value::U8(x) => Ok(*x as i64),
                Value::I64(x) => Ok(*x),
                _ => Err(m.bad("tokenizer.ggml.token_type", "holds a non-integer")),
            })
            .collect::<Result<_>>()?,
    };
    if types.len() != n_tokens {
        return Err(m.bad(
            "tokenizer.ggml.token_type",
            format!("has {} entries for {} tokens", types.len(), n_tokens),
        ));
    }
    Ok(types)
}

/// Added tokens: CONTROL (3) as special, USER_DEFINED (4) as plain, both matched whole.
fn added_tokens(tokens: &[String], types: &[i64]) -> Vec<serde_json::Value> {
    tokens
        .iter()
        .zip(types)
        .enumerate()
        .filter(|(_, (_, ty))| **ty == 3 || **ty == 4)
        .map(|(id, (tok, ty))| {
            json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": *ty == 3})
        })
        .collect()
}

/// Gemma's SentencePiece vocabulary as transformers rebuilds it from a GGUF file
/// (`gemma_tokenizer` in its `gguf_tokenizer_mapping.py`): tokens of spaces respelled with `▁`,
/// BPE merges derived from the vocabulary with the file order as rank (Gemma's scores do not
/// follow its merge order), byte fallback, spaces turned into `▁` by the normalizer.
fn gemma_spec(tokens: &[&str], types: &[i64]) -> serde_json::Value {
    let respelled: Vec<String> = tokens
        .iter()
        .map(|t| {
            if t.contains(' ') && t.trim().is_empty() {
                "\u{2581}".repeat(t.chars().count())
            } else {
                (*t).to_string()
            }
        })
        .collect();
    let merges = derive_merges(&respelled);
    let mut vocab = Map::with_capacity(respelled.len());
    for (id, tok) in respelled.iter().enumerate() {
        vocab.insert(tok.clone(), json!(id));
    }
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens(&respelled, types),
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": false},
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
        ]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    })
}

/// BPE merges implied by a vocabulary ranked by position (transformers' `generate_merges` with
/// scores `-index`): every split of a token into two vocabulary tokens, ordered by the merged
/// token's rank, then by longer left and right pieces, then by the pieces' ids.
fn derive_merges(tokens: &[String]) -> Vec<serde_json::Value> {
    // Python dicts: a repeated token keeps its first position, its last id.
    let mut id_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut first_rank: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut order: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        id_of.insert(t.as_str(), i);
        if first_rank.insert(t.as_str(), i).is_none() {
            order.push(t.as_str());
        }
    }
    struct Merge<'a> {
        left: &'a str,
        right: &'a str,
        score: i64,
        left_len: usize,
        right_len: usize,
    }
    let mut merges: Vec<Merge> = Vec::new();
    for merged in order {
        // The score of a repeated token is its last position's.
        let score = -(id_of[merged] as i64);
        let start = merges.len();
        for (cut, _) in merged.char_indices().skip(1) {
            let (l, r) = merged.split_at(cut);
            if let (Some(_), Some(_)) = (id_of.get(l), id_of.get(r)) {
                merges.push(Merge {
                    left: l,
                    right: r,
                    score,
                    left_len: l.chars().count(),
                    right_len: r.chars().count(),
                });
            }
        }
        merges[start..].sort_by_key(|m| (id_of[m.left], id_of[m.right]));
    }
    // Stable, descending, as Python's `sorted(..., reverse=True)`.
    merges.sort_by(|a, b| {
        (b.score, b.left_len, b.right_len).cmp(&(a.score, a.left_len, a.right_len))
    });
    merges
        .into_iter()
        .map(|m| json!([m.left, m.right]))
        .collect()
}

/// gpt2-style byte-level BPE: vocabulary and merges from the metadata, the pre-tokenizer that
/// `tokenizer.ggml.pre` names.
fn byte_level_spec(m: &Meta, tokens: &[&str], types: &[i64]) -> Result<serde_json::Value> {
    let path = m.path;
    let pre_name = match m.opt("tokenizer.ggml.pre") {
        Some(v) => v
            .to_string()
            .map_err(|e| m.bad("tokenizer.ggml.pre", e.to_string()))?
            .clone(),
        None => "default".to_string(),
    };
    let pre = pre_tokenizer(&pre_name).ok_or_else(|| Error::Unsupported {
        path: path.to_path_buf(),
        what: "pre-tokenizer (tokenizer.ggml.pre)".into(),
        detail: pre_name.clone(),
    })?;
    let merges = strings(m, "tokenizer.ggml.merges")?;
    let mut vocab = Map::with_capacity(tokens.len());
    for (id, tok) in tokens.iter().enumerate() {
        vocab.insert((*tok).to_string(), json!(id));
    }
    let owned: Vec<String> = tokens.iter().map(|t| (*t).to_string()).collect();
    let added = added_tokens(&owned, types);
    let merges: Vec<serde_json::Value> = merges
        .iter()
        .map(|s| {
            s.split_once(' ')
                .map(|(a, b)| json!([a, b]))
                .ok_or_else(|| m.bad("tokenizer.ggml.merges", format!("entry `{s}` is not `a b`")))
        })
        .collect::<Result<_>>()?;
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges},
    }))
}

#[cfg(test)]
mod tests {
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    use super::*;

    /// The pieces `pre` splits `text` into.
    fn split(pre: &str, text: &str) -> Vec<String> {
        let json = pre_tokenizer(pre).unwrap().to_string();
        let pre: tokenizers::PreTokenizerWrapper = serde_json::from_str(&json).unwrap();
        let mut s = PreTokenizedString::from(text);
        pre.pre_tokenize(&mut s).unwrap();
        s.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(piece, _, _)| piece.to_string())
            .collect()
    }

    /// Qwen2 isolates every digit where Llama 3 keeps runs of up to three (the only difference
    /// of their regexes). Checked once against transformers on a GGUF with `pre = qwen2`: the
    /// ids of six texts (digits, contractions, unicode, whitespace runs) were identical.
    #[test]
    fn qwen2_splits_single_digits_where_llama3_keeps_three() {
        assert_eq!(
            split("qwen2", "x=12345"),
            ["x", "=", "1", "2", "3", "4", "5"]
        );
        assert_eq!(split("llama3", "x=12345"), ["x", "=", "123", "45"]);
        assert_eq!(split("qwen2", "I'm ok"), ["I", "'m", "Ġok"]);
    }
}
