//! Line-oriented readers: JSONL (plain or zstd) and `.txt` with one document per line.
//!
//! Lines end at `\n`; a trailing `\r` is dropped and a UTF-8 BOM at the start of the file is
//! ignored. Blank (whitespace-only) lines are separators, not records: they yield nothing and are
//! not skips, but they keep their line number, so a record's index is always its 0-based line
//! number and ids stay stable. A file with no record at all is one [`SkipKind::EmptyFile`].
//! An I/O or decompression error (truncated or corrupt zstd) ends the file with one skip at the
//! line being read. A first buffer holding a NUL byte marks the whole file as binary.
use std::io::{self, BufRead};

use serde_json::Value;

use super::{json_type, strip_bom, FileCtx, Item, Source};
use crate::skip::{Location, SkipKind};

/// How a line becomes a document.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    /// A JSON object with a string field of this name; the other fields become the metadata.
    Jsonl(String),
    /// The line is the text.
    Txt,
}

/// The outcome of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// End of input, nothing read.
    Eof,
    /// A line is in the buffer (without its `\n`).
    Read,
    /// The line was longer than the cap; it was consumed and dropped. Holds its length.
    TooLong(u64),
}

/// Reads one line into `buf` (cleared first), keeping at most `cap` bytes: a longer line is
/// consumed to its end without being stored. Memory is bounded by `cap` plus the reader's buffer.
pub(crate) fn read_line_capped<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut total: u64 = 0;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        total += chunk.len() as u64;
        if total <= cap as u64 {
            buf.extend_from_slice(chunk);
        } else if !buf.is_empty() {
            *buf = Vec::new(); // release the partial line
        }
        r.consume(used);
        if done {
            break;
        }
    }
    Ok(if !any {
        Line::Eof
    } else if total > cap as u64 {
        Line::TooLong(total)
    } else {
        Line::Read
    })
}

/// Reader of a line-oriented file.
pub(crate) struct LineSource<R> {
    reader: R,
    ctx: FileCtx,
    mode: Mode,
    compressed: bool,
    buf: Vec<u8>,
    /// Lines read so far (the current line's 1-based number once read).
    line_no: u64,
    /// Documents and skips produced so far.
    produced: u64,
    started: bool,
    done: bool,
}

impl<R: BufRead + Send> LineSource<R> {
    pub(crate) fn new(reader: R, ctx: FileCtx, mode: Mode, compressed: bool) -> Self {
        LineSource {
            reader,
            ctx,
            mode,
            compressed,
            buf: Vec::new(),
            line_no: 0,
            produced: 0,
            started: false,
            done: false,
        }
    }

    fn read_error(&mut self, e: io::Error) -> Item {
        self.done = true;
        let (kind, what) = if self.compressed {
            (SkipKind::Corrupt, "truncated or corrupt zstd stream")
        } else {
            (SkipKind::Io, "read error")
        };
        Err(self.ctx.skip(
            Location::Line(self.line_no + 1),
            kind,
            format!("{what} ({e}); rest of the file skipped"),
        ))
    }

    /// Sniffs the first buffer for NUL bytes.
    fn start(&mut self) -> Option<Item> {
        self.started = true;
        let head = match self.reader.fill_buf() {
            Ok(h) => h,
            Err(e) => return Some(self.read_error(e)),
        };
        if let Some(at) = head.iter().position(|&b| b == 0) {
            self.done = true;
            return Some(Err(self.ctx.skip(
                Location::File,
                SkipKind::Binary,
                format!("NUL byte at offset {at}: not a text file"),
            )));
        }
        None
    }

    fn next_inner(&mut self) -> Option<Item> {
        if !self.started {
            if let Some(item) = self.start() {
                return Some(item);
            }
        }
        loop {
            if self.done {
                return None;
            }
            let cap = self.ctx.limits.max_doc_bytes;
            let read = match read_line_capped(&mut self.reader, &mut self.buf, cap) {
                Ok(r) => r,
                Err(e) => return Some(self.read_error(e)),
            };
            let n = match read {
                Line::Eof => {
                    self.done = true;
                    if self.produced == 0 {
                        let what = if self.line_no == 0 {
                            "no bytes"
                        } else {
                            "only blank lines"
                        };
                        return Some(Err(self.ctx.skip(
                            Location::File,
                            SkipKind::EmptyFile,
                            format!("{what}, no records"),
                        )));
                    }
                    return None;
                }
                Line::TooLong(n) => {
                    self.line_no += 1;
                    return Some(Err(self.ctx.skip(
                        Location::Line(self.line_no),
                        SkipKind::TooLarge,
                        format!("record of {n} bytes exceeds the {cap}-byte cap"),
                    )));
                }
                Line::Read => {
                    self.line_no += 1;
                    self.line_no
                }
            };
            let mut line: &[u8] = &self.buf;
            if n == 1 {
                line = strip_bom(line);
            }
            if let Some(rest) = line.strip_suffix(b"\r") {
                line = rest;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let loc = Location::Line(n);
            if let Some(at) = line.iter().position(|&b| b == 0) {
                return Some(Err(self.ctx.skip(
                    loc,
                    SkipKind::Binary,
                    format!("NUL byte at column {}", at + 1),
                )));
            }
            let text = match std::str::from_utf8(line) {
                Ok(t) => t,
                Err(e) => {
                    return Some(Err(self.ctx.skip(
                        loc,
                        SkipKind::InvalidUtf8,
                        format!("bad byte at column {}", e.valid_up_to() + 1),
                    )))
                }
            };
            return Some(match &self.mode {
                Mode::Txt => Ok(self.ctx.doc(n - 1, text.to_string(), None)),
                Mode::Jsonl(field) => jsonl_record(&self.ctx, n, text, field),
            });
        }
    }
}

/// Parses one JSONL record (line `n`, 1-based).
fn jsonl_record(ctx: &FileCtx, n: u64, line: &str, field: &str) -> Item {
    let loc = Location::Line(n);
    let value: Value = serde_json::from_str(line)
        .map_err(|e| ctx.skip(loc, SkipKind::MalformedJson, e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(ctx.skip(
            loc,
            SkipKind::MalformedJson,
            format!("record is {}, not a JSON object", json_type(&value)),
        ));
    };
    let text = match map.remove(field) {
        Some(Value::String(s)) => s,
        Some(Value::Null) => {
            return Err(ctx.skip(loc, SkipKind::MissingText, format!("`{field}` is null")))
        }
        Some(other) => {
            return Err(ctx.skip(
                loc,
                SkipKind::NonStringText,
                format!("`{field}` is {}, not a string", json_type(&other)),
            ))
        }
        None => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
            return Err(ctx.skip(
                loc,
                SkipKind::MissingText,
                format!("no `{field}` field (fields: {})", keys.join(", ")),
            ));
        }
    };
    let meta = (!map.is_empty()).then_some(Value::Object(map));
    Ok(ctx.doc(n - 1, text, meta))
}

impl<R: BufRead + Send> Source for LineSource<R> {
    fn next_item(&mut self) -> Option<Item> {
        let item = self.next_inner();
        if item.is_some() {
            self.produced += 1;
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn capped_lines() {
        let mut r = io::BufReader::with_capacity(4, Cursor::new(b"ab\nabcdefgh\nabc".to_vec()));
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), Line::Read);
        assert_eq!(buf, b"ab");
        assert_eq!(
            read_line_capped(&mut r, &mut buf, 3).unwrap(),
            Line::TooLong(8)
        );
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), Line::Read);
        assert_eq!(buf, b"abc");
        assert_eq!(read_line_capped(&mut r, &mut buf, 3).unwrap(), Line::Eof);
    }
}
