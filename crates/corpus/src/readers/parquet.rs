//! `.parquet` with a string text column, row `i` being record `i`.
//!
//! Only the text column is decoded (projection), in record batches of [`BATCH_ROWS`] rows that
//! the Parquet reader produces row group by row group, so memory is bounded by one batch plus one
//! column chunk's pages. Accepted column types: `Utf8`, `LargeUtf8`, `Utf8View`, and binary
//! columns holding UTF-8 (an invalid value is one [`SkipKind::InvalidUtf8`]). A missing or
//! non-string column, or a file the reader rejects (corrupt, or a codec not compiled in: the
//! workspace enables zstd only), is one skip for the file; a decode error mid-file skips the rest
//! of the file at the row being read. Parquet files carry no per-record metadata here.
use std::fs::File;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::{FileCtx, Item, Source};
use crate::skip::{Location, Skip, SkipKind};

/// Rows decoded per batch.
pub(crate) const BATCH_ROWS: usize = 1024;

/// Reader of a `.parquet` file's text column.
pub(crate) struct ParquetSource {
    ctx: FileCtx,
    pending: Option<Skip>,
    reader: Option<ParquetRecordBatchReader>,
    batch: Option<ArrayRef>,
    /// Index of the next row within `batch`.
    pos: usize,
    /// Index of the next row in the file.
    row: u64,
    produced: u64,
}

impl ParquetSource {
    pub(crate) fn open(file: File, ctx: FileCtx, column: &str) -> Self {
        let mut src = ParquetSource {
            ctx,
            pending: None,
            reader: None,
            batch: None,
            pos: 0,
            row: 0,
            produced: 0,
        };
        match src.build(file, column) {
            Ok(reader) => src.reader = Some(reader),
            Err(skip) => src.pending = Some(skip),
        }
        src
    }

    fn build(&self, file: File, column: &str) -> Result<ParquetRecordBatchReader, Skip> {
        let file_loc = Location::File;
        let len = file.metadata().map(|m| m.len()).unwrap_or(1);
        if len == 0 {
            return Err(self.ctx.skip(file_loc, SkipKind::EmptyFile, "no bytes"));
        }
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
            self.ctx.skip(
                file_loc,
                SkipKind::Corrupt,
                format!("not a readable Parquet file: {e}"),
            )
        })?;
        let schema = builder.schema().clone();
        let Ok(index) = schema.index_of(column) else {
            let names: Vec<&str> = schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .take(8)
                .collect();
            return Err(self.ctx.skip(
                file_loc,
                SkipKind::MissingText,
                format!("no column `{column}` (columns: {})", names.join(", ")),
            ));
        };
        let ty = schema.field(index).data_type();
        if !matches!(
            ty,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
        ) {
            return Err(self.ctx.skip(
                file_loc,
                SkipKind::NonStringText,
                format!("column `{column}` is {ty}, not a string column"),
            ));
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| self.ctx.skip(file_loc, SkipKind::Corrupt, e.to_string()))
    }

    /// The value at `pos` of `col` as bytes, or `None` when null.
    fn value(col: &ArrayRef, pos: usize) -> Option<&[u8]> {
        if col.is_null(pos) {
            return None;
        }
        Some(match col.data_type() {
            DataType::Utf8 => col.as_string::<i32>().value(pos).as_bytes(),
            DataType::LargeUtf8 => col.as_string::<i64>().value(pos).as_bytes(),
            DataType::Utf8View => col.as_string_view().value(pos).as_bytes(),
            DataType::Binary => col.as_binary::<i32>().value(pos),
            DataType::LargeBinary => col.as_binary::<i64>().value(pos),
            DataType::BinaryView => col.as_binary_view().value(pos),
            // build() admits only the types above.
            _ => return None,
        })
    }

    fn next_inner(&mut self) -> Option<Item> {
        if let Some(skip) = self.pending.take() {
            return Some(Err(skip));
        }
        loop {
            if let Some(col) = &self.batch {
                if self.pos < col.len() {
                    let (pos, row) = (self.pos, self.row);
                    self.pos += 1;
                    self.row += 1;
                    return Some(self.row_item(pos, row));
                }
            }
            self.batch = None;
            let reader = self.reader.as_mut()?;
            match reader.next() {
                Some(Ok(batch)) => {
                    self.batch = Some(batch.column(0).clone());
                    self.pos = 0;
                }
                Some(Err(e)) => {
                    self.reader = None;
                    return Some(Err(self.ctx.skip(
                        Location::Record(self.row),
                        SkipKind::Corrupt,
                        format!("decode error ({e}); rest of the file skipped"),
                    )));
                }
                None => {
                    self.reader = None;
                    if self.produced == 0 {
                        return Some(Err(self.ctx.skip(
                            Location::File,
                            SkipKind::EmptyFile,
                            "no rows",
                        )));
                    }
                    return None;
                }
            }
        }
    }

    fn row_item(&self, pos: usize, row: u64) -> Item {
        let loc = Location::Record(row);
        // `batch` is set by the caller before calling.
        let Some(col) = &self.batch else {
            return Err(self.ctx.skip(loc, SkipKind::Corrupt, "internal: no batch"));
        };
        let Some(bytes) = Self::value(col, pos) else {
            return Err(self.ctx.skip(loc, SkipKind::MissingText, "text is null"));
        };
        let cap = self.ctx.limits.max_doc_bytes;
        if bytes.len() > cap {
            return Err(self.ctx.skip(
                loc,
                SkipKind::TooLarge,
                format!(
                    "document of {} bytes exceeds the {cap}-byte cap",
                    bytes.len()
                ),
            ));
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(self.ctx.doc(row, s.to_string(), None)),
            Err(e) => Err(self.ctx.skip(
                loc,
                SkipKind::InvalidUtf8,
                format!("bad byte at offset {}", e.valid_up_to()),
            )),
        }
    }
}

impl Source for ParquetSource {
    fn next_item(&mut self) -> Option<Item> {
        let item = self.next_inner();
        if item.is_some() {
            self.produced += 1;
        }
        item
    }
}
