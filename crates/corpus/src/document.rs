//! [`Document`]: one record of the corpus, the unit the readers produce and [`Documents`]
//! yields. A leaf module (no crate imports), so `readers` and `documents` both depend on it and
//! `documents` → `readers` is the only edge between those two.
//!
//! [`Documents`]: crate::Documents

/// One document of the corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `{file id prefix}:{record index}`: the file's path relative to the argument that found it,
    /// and the record's 0-based index (line number for JSONL and `.txt` lines, element or row
    /// index for `.json` and `.parquet`, `0` for a whole `.txt` file).
    pub doc_id: String,
    /// The text, as stored in the file (a `.txt` file's UTF-8 BOM excepted).
    pub text: String,
    /// The record's other fields (JSONL only), e.g. SlimPajama's `{"meta": {"redpajama_set_name":
    /// ...}}`; `None` when there are none.
    pub meta: Option<serde_json::Value>,
}
