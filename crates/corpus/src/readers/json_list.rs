//! `.json` holding a list of strings (the nlp-corpus layout), element `i` being record `i`.
//!
//! The file is one JSON value, so it is read and parsed whole (up to
//! [`MAX_JSON_FILE_BYTES`](super::MAX_JSON_FILE_BYTES)); memory is bounded by one file, not the
//! corpus. A file that is not valid UTF-8 or not valid JSON, or whose top level is not a list, is
//! one skip at the line of the problem; an element that is not a string is one skip at its index.
use std::io::Read;

use serde_json::Value;

use super::{json_type, line_col, strip_bom, FileCtx, Item, Source};
use crate::skip::{Location, SkipKind};

/// Reader of a `.json` list file.
pub(crate) struct JsonList {
    ctx: FileCtx,
    pending: Option<crate::skip::Skip>,
    items: std::iter::Enumerate<std::vec::IntoIter<Value>>,
}

impl JsonList {
    /// Reads and parses a file (bounded by the JSON file cap).
    pub(crate) fn read<R: Read>(reader: R, ctx: FileCtx) -> Self {
        let cap = ctx.limits.max_json_file_bytes;
        let mut bytes = Vec::new();
        let read = reader.take(cap + 1).read_to_end(&mut bytes);
        let early = match read {
            Err(e) => Some((Location::File, SkipKind::Io, format!("read error: {e}"))),
            Ok(_) if bytes.len() as u64 > cap => Some((
                Location::File,
                SkipKind::TooLarge,
                format!("JSON list file exceeds the {cap}-byte cap; use JSONL for large corpora"),
            )),
            Ok(_) => None,
        };
        match early {
            Some((loc, kind, detail)) => JsonList::failed(ctx.skip(loc, kind, detail), ctx),
            None => JsonList::parse(&bytes, ctx),
        }
    }

    fn failed(skip: crate::skip::Skip, ctx: FileCtx) -> Self {
        JsonList {
            ctx,
            pending: Some(skip),
            items: Vec::new().into_iter().enumerate(),
        }
    }

    /// Parses the bytes of a whole file.
    pub(crate) fn parse(bytes: &[u8], ctx: FileCtx) -> Self {
        let file = Location::File;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            let skip = ctx.skip(file, SkipKind::EmptyFile, "no JSON value");
            return JsonList::failed(skip, ctx);
        }
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            let skip = ctx.skip(
                file,
                SkipKind::Binary,
                format!("NUL byte at offset {at}: not a text file"),
            );
            return JsonList::failed(skip, ctx);
        }
        let body = strip_bom(bytes);
        let text = match std::str::from_utf8(body) {
            Ok(t) => t,
            Err(e) => {
                let (line, col) = line_col(body, e.valid_up_to());
                let skip = ctx.skip(
                    Location::Line(line),
                    SkipKind::InvalidUtf8,
                    format!("bad byte at column {col}; file skipped"),
                );
                return JsonList::failed(skip, ctx);
            }
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let skip = ctx.skip(
                    Location::Line(e.line() as u64),
                    SkipKind::MalformedJson,
                    format!("{e}; file skipped"),
                );
                return JsonList::failed(skip, ctx);
            }
        };
        match value {
            Value::Array(items) => JsonList {
                ctx,
                pending: None,
                items: items.into_iter().enumerate(),
            },
            other => {
                let skip = ctx.skip(
                    file,
                    SkipKind::MalformedJson,
                    format!("top level is {}, not a list of strings", json_type(&other)),
                );
                JsonList::failed(skip, ctx)
            }
        }
    }
}

impl Source for JsonList {
    fn next_item(&mut self) -> Option<Item> {
        if let Some(skip) = self.pending.take() {
            return Some(Err(skip));
        }
        let (i, value) = self.items.next()?;
        let loc = Location::Record(i as u64);
        let cap = self.ctx.limits.max_doc_bytes;
        Some(match value {
            Value::String(s) if s.len() > cap => Err(self.ctx.skip(
                loc,
                SkipKind::TooLarge,
                format!("document of {} bytes exceeds the {cap}-byte cap", s.len()),
            )),
            Value::String(s) => Ok(self.ctx.doc(i as u64, s, None)),
            Value::Null => Err(self.ctx.skip(loc, SkipKind::MissingText, "element is null")),
            other => Err(self.ctx.skip(
                loc,
                SkipKind::NonStringText,
                format!("element is {}, not a string", json_type(&other)),
            )),
        })
    }
}
