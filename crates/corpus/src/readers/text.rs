//! `.txt` with one document per file.
//!
//! At most [`MAX_DOC_BYTES`](super::MAX_DOC_BYTES) + 1 bytes are read: a larger file is skipped
//! as too large without reading the rest. A leading UTF-8 BOM is dropped; the text is otherwise
//! kept byte for byte (offsets refer to it).
use std::io::Read;

use super::{line_col, strip_bom, FileCtx, Item, Source};
use crate::skip::{Location, SkipKind};

/// Reader of a whole-file `.txt` document (yields one item).
pub(crate) struct WholeText<R> {
    reader: Option<R>,
    ctx: FileCtx,
}

impl<R: Read + Send> WholeText<R> {
    pub(crate) fn new(reader: R, ctx: FileCtx) -> Self {
        WholeText {
            reader: Some(reader),
            ctx,
        }
    }
}

/// The document held in `bytes` (a whole `.txt` file), or why it is skipped.
pub(crate) fn text_document(ctx: &FileCtx, bytes: Vec<u8>) -> Item {
    let file = Location::File;
    if bytes.is_empty() {
        return Err(ctx.skip(file, SkipKind::EmptyFile, "no bytes"));
    }
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(ctx.skip(
            file,
            SkipKind::Binary,
            format!("NUL byte at offset {at}: not a text file"),
        ));
    }
    let body = strip_bom(&bytes);
    if let Err(e) = std::str::from_utf8(body) {
        let (line, col) = line_col(body, e.valid_up_to());
        return Err(ctx.skip(
            Location::Line(line),
            SkipKind::InvalidUtf8,
            format!("bad byte at column {col}; file skipped"),
        ));
    }
    let skip = bytes.len() - body.len();
    let mut bytes = bytes;
    bytes.drain(..skip);
    // Checked just above; from_utf8 on the owned buffer does not copy.
    match String::from_utf8(bytes) {
        Ok(text) => Ok(ctx.doc(0, text, None)),
        Err(e) => Err(ctx.skip(file, SkipKind::InvalidUtf8, e.to_string())),
    }
}

impl<R: Read + Send> Source for WholeText<R> {
    fn next_item(&mut self) -> Option<Item> {
        let reader = self.reader.take()?;
        let cap = self.ctx.limits.max_doc_bytes;
        let mut bytes = Vec::new();
        if let Err(e) = reader.take(cap as u64 + 1).read_to_end(&mut bytes) {
            return Some(Err(self.ctx.skip(
                Location::File,
                SkipKind::Io,
                format!("read error: {e}"),
            )));
        }
        if bytes.len() > cap {
            return Some(Err(self.ctx.skip(
                Location::File,
                SkipKind::TooLarge,
                format!("document exceeds the {cap}-byte cap"),
            )));
        }
        Some(text_document(&self.ctx, bytes))
    }
}
