//! Per-format record readers behind one small trait, [`Source`].
//!
//! A source yields, in file order, either a [`Document`] or a [`Skip`] naming the bad record; it
//! never fails as a whole and never panics on bad bytes. What each reader holds in memory:
//! - JSONL / JSONL.zst / `.txt` lines ([`lines`]): one line at a time, at most
//!   [`MAX_DOC_BYTES`] (a longer line is discarded while read, then reported);
//! - `.txt` ([`text`]): the file, at most [`MAX_DOC_BYTES`] (the rest is never read);
//! - `.json` ([`json_list`]): the whole parsed file, since a JSON list is one value; files over
//!   [`MAX_JSON_FILE_BYTES`] are skipped (write JSONL for larger corpora);
//! - `.parquet` ([`parquet`]): one record batch of the text column, decoded row group by row group.
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::document::Document;
use crate::skip::{Location, Skip, SkipKind};
use crate::spec::{CorpusFile, Format};

pub(crate) mod json_list;
pub(crate) mod lines;
pub(crate) mod parquet;
pub(crate) mod text;

/// Largest document (and largest JSONL record or `.txt` line) read: 64 MiB. Larger ones are
/// skipped as [`SkipKind::TooLarge`].
pub const MAX_DOC_BYTES: usize = 64 << 20;

/// Largest `.json` list file read: 256 MiB (it is parsed whole). Larger ones are skipped as
/// [`SkipKind::TooLarge`].
pub const MAX_JSON_FILE_BYTES: u64 = 256 << 20;

/// Buffer size of the file readers.
const BUF_BYTES: usize = 256 << 10;

/// A record read from a file: a document, or why the record (or the file) was skipped.
pub(crate) type Item = std::result::Result<Document, Skip>;

/// A reader of one file's records.
pub(crate) trait Source: Send {
    /// The next record, or `None` at the end of the file.
    fn next_item(&mut self) -> Option<Item>;
}

/// Size caps, adjustable in tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_doc_bytes: usize,
    pub max_json_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_doc_bytes: MAX_DOC_BYTES,
            max_json_file_bytes: MAX_JSON_FILE_BYTES,
        }
    }
}

/// What a reader needs to know about its file.
#[derive(Debug, Clone)]
pub(crate) struct FileCtx {
    pub path: std::path::PathBuf,
    pub id_prefix: String,
    pub limits: Limits,
}

impl FileCtx {
    pub fn skip(&self, location: Location, kind: SkipKind, detail: impl Into<String>) -> Skip {
        Skip::new(self.path.clone(), location, kind, detail)
    }

    pub fn doc(&self, record: u64, text: String, meta: Option<serde_json::Value>) -> Document {
        Document {
            doc_id: format!("{}:{record}", self.id_prefix),
            text,
            meta,
        }
    }
}

/// A source that yields one skip (a file that could not be opened) and ends.
struct Failed(Option<Skip>);

impl Source for Failed {
    fn next_item(&mut self) -> Option<Item> {
        self.0.take().map(Err)
    }
}

/// Opens a reader for `file`.
pub(crate) fn open(
    file: &CorpusFile,
    txt_lines: bool,
    text_column: &str,
    limits: Limits,
) -> Box<dyn Source> {
    let ctx = FileCtx {
        path: file.path.clone(),
        id_prefix: file.id_prefix.clone(),
        limits,
    };
    let _span = tracing::debug_span!("open", path = %file.path.display()).entered();
    match open_inner(&ctx, file.format, txt_lines, text_column) {
        Ok(source) => source,
        Err(e) => Box::new(Failed(Some(ctx.skip(
            Location::File,
            SkipKind::Io,
            format!("cannot open: {e}"),
        )))),
    }
}

fn open_inner(
    ctx: &FileCtx,
    format: Format,
    txt_lines: bool,
    text_column: &str,
) -> std::io::Result<Box<dyn Source>> {
    let open = |p: &Path| File::open(p).map(|f| BufReader::with_capacity(BUF_BYTES, f));
    Ok(match format {
        Format::Jsonl => Box::new(lines::LineSource::new(
            open(&ctx.path)?,
            ctx.clone(),
            lines::Mode::Jsonl(text_column.to_string()),
            false,
        )),
        Format::JsonlZst => {
            let dec = zstd::stream::read::Decoder::new(File::open(&ctx.path)?)?;
            Box::new(lines::LineSource::new(
                BufReader::with_capacity(BUF_BYTES, dec),
                ctx.clone(),
                lines::Mode::Jsonl(text_column.to_string()),
                true,
            ))
        }
        Format::Txt if txt_lines => Box::new(lines::LineSource::new(
            open(&ctx.path)?,
            ctx.clone(),
            lines::Mode::Txt,
            false,
        )),
        Format::Txt => Box::new(text::WholeText::new(File::open(&ctx.path)?, ctx.clone())),
        Format::JsonList => Box::new(json_list::JsonList::read(
            File::open(&ctx.path)?,
            ctx.clone(),
        )),
        Format::Parquet => Box::new(parquet::ParquetSource::open(
            File::open(&ctx.path)?,
            ctx.clone(),
            text_column,
        )),
    })
}

/// Strips a leading UTF-8 byte-order mark.
pub(crate) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// 1-based line and byte column of byte `offset` in `bytes`.
pub(crate) fn line_col(bytes: &[u8], offset: usize) -> (u64, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    let col = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, col)
}

/// Name of a JSON value's type, for skip reasons.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
