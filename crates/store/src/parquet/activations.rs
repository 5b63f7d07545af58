//! The optional sparse activation log: `saes/{sae}/activations/{prefix}-{seq:06}.parquet`.
//!
//! Columns `feature: uint32, context_id: uint64, pos: uint16, value: float32`, one row per
//! (context, position, active feature). Size is what matters here (one row per token per active
//! feature, ~50-100 per token), so each part file is:
//! - sorted by `(feature, context_id, pos)` within the part (recorded as Parquet sorting columns):
//!   `feature` becomes long runs, `context_id` small non-negative steps;
//! - `feature` and `context_id` DELTA_BINARY_PACKED (long runs, small steps);
//! - `pos` BYTE_STREAM_SPLIT: after a change of context the next position is anywhere in the
//!   window, which costs delta coding a full byte per value; split into byte planes, the low
//!   byte compresses to its entropy (~5 bits for contexts of ~20 tokens) and the high bytes
//!   to nothing;
//! - `value` rounded to [`ActivationWriterOptions::mantissa_bits`] mantissa bits (default 7 =
//!   bf16 precision, relative error ≤ 2^-8, in f32 range: nothing overflows) and
//!   BYTE_STREAM_SPLIT, so the zeroed low mantissa bytes compress to nothing while the column
//!   stays a plain `float32` every reader understands;
//! - zstd level 19 (not 3 as the other tables): ~4 % smaller than 9, written once.
//!
//! On a real log (SmolLM2 demo SAEs, layer 6, L0 32 of 4608) this is 2.2–2.4 bytes per entry
//! (it was 3.0–3.2 with delta-coded positions, f16 precision and level 9); an order-0 entropy
//! bound of the same entries is ~1.0 byte for positions plus ~1.1 for bf16 values. The
//! `activation_log_round_trip_and_bytes_per_entry` test prints its synthetic log's figures.
//! Parts are bounded ([`ActivationWriterOptions::entries_per_part`]), so the writer's memory is
//! bounded; readers prune row groups by the `feature` min/max statistics.
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use arrow::datatypes::{
    DataType, Float32Type, Schema, SchemaRef, UInt16Type, UInt32Type, UInt64Type,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterPropertiesBuilder;
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;

use super::columns::{field, prim, Columns};
use super::{Table, TableReader, TableWriter};
use crate::error::{Error, Result};
use crate::records::ActivationEntry;

impl Table for ActivationEntry {
    const NAME: &'static str = "activations";
    // Small row groups make feature pruning effective; compression is per page, so they cost
    // almost nothing in size.
    const ROWS_PER_GROUP: usize = 131_072;

    fn schema() -> SchemaRef {
        static S: OnceLock<SchemaRef> = OnceLock::new();
        S.get_or_init(|| {
            Arc::new(Schema::new(vec![
                field("feature", DataType::UInt32),
                field("context_id", DataType::UInt64),
                field("pos", DataType::UInt16),
                field("value", DataType::Float32),
            ]))
        })
        .clone()
    }

    fn to_batch(rows: &[Self]) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
        RecordBatch::try_new(
            Self::schema(),
            vec![
                prim::<UInt32Type>(rows.iter().map(|r| r.feature).collect()),
                prim::<UInt64Type>(rows.iter().map(|r| r.context_id).collect()),
                prim::<UInt16Type>(rows.iter().map(|r| r.pos).collect()),
                prim::<Float32Type>(rows.iter().map(|r| r.value).collect()),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch, location: &str) -> Result<Vec<Self>> {
        let c = Columns::new(batch, location);
        let feature = c.prim::<UInt32Type>("feature")?;
        let context_id = c.prim::<UInt64Type>("context_id")?;
        let pos = c.prim::<UInt16Type>("pos")?;
        let value = c.prim::<Float32Type>("value")?;
        Ok((0..batch.num_rows())
            .map(|i| ActivationEntry {
                context_id: context_id[i],
                pos: pos[i],
                feature: feature[i],
                value: value[i],
            })
            .collect())
    }

    fn tune(props: WriterPropertiesBuilder) -> WriterPropertiesBuilder {
        let col = |n: &str| ColumnPath::from(n);
        props
            .set_dictionary_enabled(false)
            .set_column_encoding(col("feature"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col("context_id"), Encoding::DELTA_BINARY_PACKED)
            .set_column_encoding(col("pos"), Encoding::BYTE_STREAM_SPLIT)
            .set_column_encoding(col("value"), Encoding::BYTE_STREAM_SPLIT)
            .set_sorting_columns(Some(
                (0..3)
                    .map(|i| SortingColumn {
                        column_idx: i,
                        descending: false,
                        nulls_first: false,
                    })
                    .collect(),
            ))
    }
}

/// Mantissa bits kept by default: bf16 precision (3 significant digits), which costs ~0.5 byte
/// per entry less than f16's 10 bits.
pub const DEFAULT_MANTISSA_BITS: u8 = 7;

/// Settings of an [`ActivationWriter`].
#[derive(Debug, Clone)]
pub struct ActivationWriterOptions {
    /// Entries buffered (and sorted) per part file. Memory ≈ 24 bytes × this. Default 2^21.
    pub entries_per_part: usize,
    /// Mantissa bits kept in `value` (0..=23; 23 = exact f32, 10 = f16 precision, 7 = bf16).
    /// Default [`DEFAULT_MANTISSA_BITS`].
    pub mantissa_bits: u8,
    /// Part file name prefix; shards use distinct prefixes (e.g. `part-00003`) so their parts
    /// can be moved into one directory on merge. Default `part`.
    pub prefix: String,
    /// zstd level (1..=22). Default 19.
    pub zstd_level: i32,
}

impl Default for ActivationWriterOptions {
    fn default() -> Self {
        ActivationWriterOptions {
            entries_per_part: 1 << 21,
            mantissa_bits: DEFAULT_MANTISSA_BITS,
            prefix: "part".to_string(),
            zstd_level: 19,
        }
    }
}

/// Totals of a finished activation log.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActivationLogStats {
    /// Entries written.
    pub entries: u64,
    /// Part files written.
    pub parts: u32,
    /// Bytes of all part files.
    pub bytes: u64,
}

impl ActivationLogStats {
    /// Bytes per entry (0 when empty).
    pub fn bytes_per_entry(&self) -> f64 {
        if self.entries == 0 {
            0.0
        } else {
            self.bytes as f64 / self.entries as f64
        }
    }
}

/// Writes the sparse activation log of one SAE as sorted, bounded part files.
pub struct ActivationWriter {
    dir: PathBuf,
    options: ActivationWriterOptions,
    buffer: Vec<ActivationEntry>,
    stats: ActivationLogStats,
}

impl ActivationWriter {
    /// Creates `dir` if needed. Existing parts with the same prefix are overwritten as new
    /// parts are written.
    pub fn create(dir: impl AsRef<Path>, options: ActivationWriterOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if options.mantissa_bits > 23 {
            return Err(Error::InvalidInput(format!(
                "mantissa_bits {} > 23",
                options.mantissa_bits
            )));
        }
        crate::fsutil::create_dir_all(&dir)?;
        let cap = options.entries_per_part.clamp(1, 1 << 24);
        Ok(ActivationWriter {
            dir,
            options,
            buffer: Vec::with_capacity(cap.min(1 << 16)),
            stats: ActivationLogStats::default(),
        })
    }

    /// Appends entries in any order; a part is written whenever the buffer is full.
    pub fn write(&mut self, entries: &[ActivationEntry]) -> Result<()> {
        let cap = self.options.entries_per_part.max(1);
        let mut rest = entries;
        while !rest.is_empty() {
            let take = (cap - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() >= cap {
                self.flush_part()?;
            }
        }
        Ok(())
    }

    fn flush_part(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.buffer
            .sort_unstable_by_key(|e| (e.feature, e.context_id, e.pos));
        let bits = self.options.mantissa_bits;
        for e in &mut self.buffer {
            e.value = round_mantissa(e.value, bits);
        }
        let path = self.dir.join(format!(
            "{}-{:06}.parquet",
            self.options.prefix, self.stats.parts
        ));
        let level = ZstdLevel::try_new(self.options.zstd_level)
            .map_err(|e| Error::InvalidInput(format!("zstd level: {e}")))?;
        let props = super::writer::properties_builder::<ActivationEntry>()
            .set_compression(Compression::ZSTD(level))
            .build();
        let mut w = TableWriter::<ActivationEntry>::with_properties(&path, props)?;
        w.write(&self.buffer)?;
        let (rows, bytes) = w.finish()?;
        self.stats.entries += rows;
        self.stats.bytes += bytes;
        self.stats.parts += 1;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the last part and returns the totals.
    pub fn finish(mut self) -> Result<ActivationLogStats> {
        self.flush_part()?;
        crate::fsutil::sync_dir(&self.dir)?;
        Ok(self.stats)
    }
}

/// Rounds an f32 to `bits` mantissa bits, to nearest, ties to even. NaN and infinities pass
/// through; a value that rounds past f32::MAX becomes infinity, as in any narrowing.
pub fn round_mantissa(v: f32, bits: u8) -> f32 {
    if bits >= 23 || !v.is_finite() {
        return v;
    }
    let shift = 23 - u32::from(bits);
    let x = v.to_bits();
    let half = 1u32 << (shift - 1);
    let odd = (x >> shift) & 1;
    f32::from_bits((x + half - 1 + odd) & !((1u32 << shift) - 1))
}

/// Reads the part files of one SAE's activation log.
pub struct ActivationReader {
    parts: Vec<PathBuf>,
}

impl ActivationReader {
    /// Lists `dir/*.parquet` (sorted by name). A missing directory is an empty log.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut parts = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    let path = entry.map_err(|e| Error::io(dir, e))?.path();
                    if path.extension().is_some_and(|e| e == "parquet") {
                        parts.push(path);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        parts.sort();
        Ok(ActivationReader { parts })
    }

    /// The part files.
    pub fn parts(&self) -> &[PathBuf] {
        &self.parts
    }

    /// Every entry, part by part, in batches (each part sorted by feature, context, position).
    pub fn batches(&self) -> impl Iterator<Item = Result<Vec<ActivationEntry>>> + '_ {
        self.parts
            .iter()
            .flat_map(|p| match TableReader::<ActivationEntry>::open(p) {
                Ok(r) => Box::new(r) as Box<dyn Iterator<Item = Result<Vec<ActivationEntry>>>>,
                Err(e) => Box::new(std::iter::once(Err(e))),
            })
    }

    /// All entries of one feature, sorted by (context_id, pos). Reads only the row groups whose
    /// `feature` statistics include it.
    pub fn feature(&self, feature: u32) -> Result<Vec<ActivationEntry>> {
        let mut out = Vec::new();
        for part in &self.parts {
            let file = File::open(part).map_err(|e| Error::io(part, e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| Error::parquet(part, e))?;
            let groups: Vec<usize> = builder
                .metadata()
                .row_groups()
                .iter()
                .enumerate()
                .filter(|(_, rg)| match rg.column(0).statistics() {
                    Some(Statistics::Int32(s)) => match (s.min_opt(), s.max_opt()) {
                        (Some(&lo), Some(&hi)) => (lo as u32) <= feature && feature <= (hi as u32),
                        _ => true,
                    },
                    _ => true,
                })
                .map(|(i, _)| i)
                .collect();
            if groups.is_empty() {
                continue;
            }
            for batch in TableReader::<ActivationEntry>::open_row_groups(part, Some(groups))? {
                out.extend(batch?.into_iter().filter(|e| e.feature == feature));
            }
        }
        out.sort_unstable_by_key(|e| (e.context_id, e.pos));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_requested_precision() {
        assert_eq!(round_mantissa(1.0, 10), 1.0);
        let v = 1.234_567_8_f32;
        let r = round_mantissa(v, 10);
        assert!(((r - v) / v).abs() <= 1.0 / 2048.0, "{r}");
        assert_eq!(r.to_bits() & 0x1fff, 0);
        assert_eq!(r, half::f16::from_f32(v).to_f32());
        assert_eq!(round_mantissa(v, 23), v);
        assert!(round_mantissa(f32::NAN, 10).is_nan());
        // Carry into the exponent.
        assert_eq!(round_mantissa(f32::from_bits(0x3fff_ffff), 10), 2.0);
    }
}
