//! Streaming reader of one Parquet table.
use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::Table;
use crate::error::{Error, Result};

/// Iterates a Parquet table as batches of rows (at most `T::ROWS_PER_GROUP` each), so a table of
/// any size is read in bounded memory.
///
/// Opening checks that the file's columns have the names and types of [`Table::schema`] (extra
/// columns are an error too: the file is not ours), and reports the first mismatch.
pub struct TableReader<T: Table> {
    path: PathBuf,
    location: String,
    rows: u64,
    inner: ParquetRecordBatchReader,
    _rows: PhantomData<fn() -> T>,
}

impl<T: Table> TableReader<T> {
    /// Opens `path` and checks its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_row_groups(path, None)
    }

    /// Opens `path`, reading only the given row groups (all when `None`).
    pub(crate) fn open_row_groups(
        path: impl AsRef<Path>,
        row_groups: Option<Vec<usize>>,
    ) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| Error::parquet(&path, e))?;
        let location = path.display().to_string();
        check_schema(builder.schema(), &T::schema(), &location)?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let builder = builder.with_batch_size(T::ROWS_PER_GROUP.max(1));
        let builder = match row_groups {
            Some(groups) => builder.with_row_groups(groups),
            None => builder,
        };
        let inner = builder.build().map_err(|e| Error::parquet(&path, e))?;
        Ok(TableReader {
            path,
            location,
            rows,
            inner,
            _rows: PhantomData,
        })
    }

    /// Rows in the whole file (from the footer).
    pub fn num_rows(&self) -> u64 {
        self.rows
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T: Table> Iterator for TableReader<T> {
    type Item = Result<Vec<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.inner.next()?;
        Some(
            batch
                .map_err(|e| Error::arrow(&self.path, e))
                .and_then(|b| T::from_batch(&b, &self.location)),
        )
    }
}

/// Reads a whole table into memory (for small tables and tests).
pub fn read_all<T: Table>(path: impl AsRef<Path>) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for batch in TableReader::<T>::open(path)? {
        out.extend(batch?);
    }
    Ok(out)
}

fn check_schema(
    found: &arrow::datatypes::Schema,
    expected: &arrow::datatypes::Schema,
    location: &str,
) -> Result<()> {
    let names = |s: &arrow::datatypes::Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let same = found.fields().len() == expected.fields().len()
        && found
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type().equals_datatype(b.data_type()));
    if same {
        Ok(())
    } else {
        Err(Error::corrupt(
            location,
            format!(
                "schema mismatch: columns [{}] of types [{}], expected [{}] of types [{}]",
                names(found),
                found
                    .fields()
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                names(expected),
                expected
                    .fields()
                    .iter()
                    .map(|f| f.data_type().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        ))
    }
}
