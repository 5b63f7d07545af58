//! Fixtures shared by the integration tests: small tokenizers and corpus files written to
//! temporary directories.
#![allow(dead_code)]
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// Id of `<bos>` in [`byte_bpe`].
pub fn bos_id(tok: &Tokenizer) -> u32 {
    tok.token_to_id("<bos>")
        .expect("fixture tokenizer has <bos>")
}

/// A GPT-2-style byte-level BPE: the 256 byte symbols, a few merges, a `<bos>` special token,
/// and a ByteLevel post-processor with `trim_offsets` (which the context stream must bypass).
pub fn byte_bpe() -> Arc<Tokenizer> {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort();
    let mut vocab = Map::new();
    for c in &alphabet {
        vocab.insert(c.to_string(), json!(vocab.len()));
    }
    let merges = [
        "Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "Ġ s", "o n", "Ġ w", "o r", "Ġw or", "l d",
        "Ġwor ld", "Ã ©", "l l", "Ġ h", "Ġh e", "Ġhe ll", "Ġhell o",
    ];
    for m in merges {
        let joined = m.replace(' ', "");
        if !vocab.contains_key(&joined) {
            vocab.insert(joined, json!(vocab.len()));
        }
    }
    let bos = vocab.len();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": bos, "content": "<bos>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": byte_level,
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    Arc::new(Tokenizer::from_str(&spec.to_string()).expect("valid fixture tokenizer"))
}

/// A word-level tokenizer over whitespace-split words (offsets do not cover the spaces).
pub fn word_level(words: &[&str]) -> Arc<Tokenizer> {
    let mut vocab = Map::new();
    vocab.insert("[UNK]".into(), json!(0));
    for w in words {
        vocab.insert((*w).into(), json!(vocab.len()));
    }
    let spec = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    });
    Arc::new(Tokenizer::from_str(&spec.to_string()).expect("valid fixture tokenizer"))
}

/// Writes `bytes` to `dir/name` (creating parents) and returns the path.
pub fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// SlimPajama-style JSONL lines: `{"text": ..., "meta": {"redpajama_set_name": ...}}`.
pub fn slimpajama_lines(texts: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (text, set) in texts {
        let v = json!({"text": text, "meta": {"redpajama_set_name": set}});
        writeln!(out, "{v}").unwrap();
    }
    out
}

/// zstd-compresses `bytes` (level 3).
pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// A `.json` list of strings, as the nlp-corpus asset.
pub fn json_list(texts: &[&str]) -> Vec<u8> {
    serde_json::to_vec_pretty(&Value::from(texts.to_vec())).unwrap()
}

/// A Parquet file with a nullable `text` column (and an `id` column), `rows_per_group` rows per
/// row group.
pub fn parquet(texts: &[Option<&str>], rows_per_group: usize) -> Vec<u8> {
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    let text: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
    let id: ArrayRef = Arc::new(Int64Array::from_iter_values(0..texts.len() as i64));
    let batch = RecordBatch::try_from_iter([("id", id), ("text", text)]).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}
