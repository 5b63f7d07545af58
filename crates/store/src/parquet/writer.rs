//! Streaming writer of one Parquet table.
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};

use super::Table;
use crate::error::{Error, Result};

/// zstd level of every table: 3 is zstd's default, ~3-4x faster to write than 9 for a few %
/// larger files.
pub(crate) const ZSTD_LEVEL: i32 = 3;
/// Upper bound of a row group's encoded size, whatever its row count.
pub(crate) const MAX_ROW_GROUP_BYTES: usize = 64 << 20;

/// Writer properties shared by every table, then [`Table::tune`]d.
pub(crate) fn properties<T: Table>() -> WriterProperties {
    properties_builder::<T>().build()
}

/// [`properties`], still open for changes.
pub(crate) fn properties_builder<T: Table>() -> WriterPropertiesBuilder {
    let level = ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default();
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(T::ROWS_PER_GROUP.max(1)))
        .set_max_row_group_bytes(Some(MAX_ROW_GROUP_BYTES))
        .set_created_by(format!("scopedex-store {}", env!("CARGO_PKG_VERSION")));
    T::tune(builder)
}

/// Writes rows of `T` to one Parquet file, one row group at a time.
///
/// Rows are converted to Arrow in chunks of at most `T::ROWS_PER_GROUP`, so memory stays bounded
/// by about one row group whatever the caller's batch size. [`TableWriter::finish`] writes the
/// footer and fsyncs; a writer dropped without `finish` leaves an unreadable file (no footer).
pub struct TableWriter<T: Table> {
    path: PathBuf,
    writer: ArrowWriter<File>,
    rows: u64,
    _rows: PhantomData<fn(&T)>,
}

impl<T: Table> TableWriter<T> {
    /// Creates (truncates) `path` with the table's default properties.
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        Self::with_properties(path, properties::<T>())
    }

    /// Creates (truncates) `path` with explicit writer properties.
    pub fn with_properties(path: impl AsRef<Path>, props: WriterProperties) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let writer = ArrowWriter::try_new(file, T::schema(), Some(props))
            .map_err(|e| Error::parquet(&path, e))?;
        Ok(TableWriter {
            path,
            writer,
            rows: 0,
            _rows: PhantomData,
        })
    }

    /// Appends rows (any number; they are split into row-group-sized batches).
    pub fn write(&mut self, rows: &[T]) -> Result<()> {
        for chunk in rows.chunks(T::ROWS_PER_GROUP.max(1)) {
            let batch = T::to_batch(chunk).map_err(|e| Error::arrow(&self.path, e))?;
            self.writer
                .write(&batch)
                .map_err(|e| Error::parquet(&self.path, e))?;
            self.rows += chunk.len() as u64;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the footer, fsyncs the file and returns `(rows, file bytes)`.
    pub fn finish(self) -> Result<(u64, u64)> {
        let path = self.path;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| Error::parquet(&path, e))?;
        file.sync_all().map_err(|e| Error::io(&path, e))?;
        let bytes = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        Ok((self.rows, bytes))
    }
}
