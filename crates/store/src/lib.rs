//! Storage of an index: Parquet (source of truth), RocksDB (serving) and tantivy (context text).
#![warn(missing_docs)]

pub mod records;
