//! Parquet tables: the durable source of truth of an index.
//!
//! Every file is zstd-compressed Parquet with plain types (unsigned integers, float32/64, UTF-8
//! strings, lists, lists of structs; no nulls, no dictionary-typed columns, no extension types),
//! readable by DuckDB, pandas/pyarrow and Spark. The Arrow schema is also embedded (Parquet's
//! `ARROW:schema` key) so Arrow readers get the exact unsigned widths back. Each table's columns
//! are documented in `schemas/index.md`; a test compares that file with [`Table::schema`].
//!
//! | file | record | rows per row group |
//! |---|---|---|
//! | `contexts.parquet` | [`ContextRecord`](crate::records::ContextRecord) | 4 096 |
//! | `saes/{sae}/features.parquet` | [`FeatureRecord`](crate::records::FeatureRecord) | 8 192 |
//! | `saes/{sae}/examples.parquet` | [`ExampleRecord`](crate::records::ExampleRecord) | 4 096 |
//! | `saes/{sae}/cooccurrence.parquet` | [`CooccurrenceRecord`](crate::records::CooccurrenceRecord) | 65 536 |
//! | `saes/{sae}/summary.parquet` | [`SaeSummary`](crate::records::SaeSummary) | 1 |
//! | `saes/{sae}/context_features.parquet` | [`ContextFeaturesRecord`](crate::records::ContextFeaturesRecord) | 16 384 |
//! | `saes/{sae}/explanations.parquet` | [`ExplanationRecord`](crate::records::ExplanationRecord) | 8 192 |
//! | `saes/{sae}/activations/part-*.parquet` | [`ActivationEntry`](crate::records::ActivationEntry) | 1 048 576 |
//!
//! Row groups are also capped at 64 MiB of encoded data, so writers hold at most one row group
//! in memory; readers yield one batch of at most a row group's rows at a time.
//!
//! Most callers want [`crate::IndexWriter`] and [`crate::IndexReader`]; use [`TableWriter`] and
//! [`TableReader`] directly for export or analysis tools.
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::file::properties::WriterPropertiesBuilder;

use crate::error::Result;

pub(crate) mod columns;
mod explanations;
mod tables;

pub mod activations;
mod reader;
mod writer;

pub use activations::{ActivationReader, ActivationWriter, ActivationWriterOptions};
pub use reader::{read_all, TableReader};
pub use writer::TableWriter;

/// A record type stored as one Parquet table.
pub trait Table: Sized {
    /// Short table name (`contexts`, `features`, ...), used in docs and errors.
    const NAME: &'static str;
    /// Rows per row group (and per batch when reading).
    const ROWS_PER_GROUP: usize;

    /// The Arrow schema of the table; all fields non-null.
    fn schema() -> SchemaRef;

    /// Converts rows to one batch with [`Table::schema`].
    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, arrow::error::ArrowError>;

    /// Converts a batch back to rows; `location` (the file) is used in error messages.
    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>>;

    /// Table-specific writer settings (column encodings); the default keeps the common ones.
    fn tune(props: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        props
    }
}

/// Renders an Arrow schema as the text used in `schemas/index.md`: one `name: type` line per
/// column, types in lower case (`uint32`, `string`, `list<float32>`, `list<struct<token: uint32,
/// count: uint64>>`).
pub fn describe_schema(schema: &arrow::datatypes::Schema) -> String {
    let mut out = String::new();
    for f in schema.fields() {
        out.push_str(&format!(
            "{}: {}{}\n",
            f.name(),
            describe_type(f.data_type()),
            if f.is_nullable() { " (nullable)" } else { "" }
        ));
    }
    out
}

fn describe_type(t: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType as D;
    match t {
        D::List(item) => format!("list<{}>", describe_type(item.data_type())),
        D::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), describe_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        D::Utf8 => "string".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// `(table name, schema)` of every table, in the order `schemas/index.md` lists them.
pub fn all_schemas() -> Vec<(&'static str, SchemaRef)> {
    use crate::records::*;
    vec![
        (ContextRecord::NAME, ContextRecord::schema()),
        (VocabRecord::NAME, VocabRecord::schema()),
        (FeatureRecord::NAME, FeatureRecord::schema()),
        (ExampleRecord::NAME, ExampleRecord::schema()),
        (CooccurrenceRecord::NAME, CooccurrenceRecord::schema()),
        (NeighbourRecord::NAME, NeighbourRecord::schema()),
        (SaeSummary::NAME, SaeSummary::schema()),
        (ContextFeaturesRecord::NAME, ContextFeaturesRecord::schema()),
        (ActivationEntry::NAME, ActivationEntry::schema()),
        (ExplanationRecord::NAME, ExplanationRecord::schema()),
    ]
}
